"""`builtin:tiny-sd-inpaint`: `builtin:tiny-sd` with an inpainting UNet, built on first use.

An inpainting checkpoint (runwayml's SD 1.5 inpainting, SD 2 inpainting) is the text-to-image
model with a UNet taking 9 input channels: the noisy latents (4), the mask at latent size (1)
and the latents of the masked image (4), in that order (diffusers' StableDiffusionInpaintPipeline).
This one is the tiny model's recipe with `in_channels` 9 and random weights from fixed seeds;
its text encoder and VAE are tiny-sd's (same seeds, same weights). Its images are noise.

    python -m latentgraph.nodes.tiny_model --inpaint [--single-file out.safetensors]
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from latentgraph.graph import paths

from .inpaint_sampling import INPAINT_CHANNELS  # latents + mask + masked-image latents
from .tiny_model import MODEL_INDEX, UNET_CONFIG, build_folder, write_model
from .tiny_model import write_config_folder as write_tiny_configs

NAME = "tiny-sd-inpaint"
BUILD_VERSION = 1  # bump when the recipe changes so old cached builds are rebuilt
UNET_CONFIG_INPAINT = {**UNET_CONFIG, "in_channels": INPAINT_CHANNELS}
MODEL_INDEX_INPAINT = {**MODEL_INDEX, "_class_name": "StableDiffusionInpaintPipeline"}


def default_path() -> Path:
    return paths.built_model(NAME, BUILD_VERSION)


def ensure_tiny_inpaint(path: Path | None = None) -> Path:
    """The tiny inpainting model's folder, built first if needed (atomically)."""
    write = partial(write_model, unet_config=UNET_CONFIG_INPAINT, model_index=MODEL_INDEX_INPAINT)
    return build_folder(Path(path) if path is not None else default_path(), write)


def write_config_folder(folder: Path) -> None:
    """The configs without weights, for reading a tiny inpainting single file offline."""
    write_tiny_configs(folder, UNET_CONFIG_INPAINT, MODEL_INDEX_INPAINT)
