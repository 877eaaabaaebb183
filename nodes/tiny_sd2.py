"""`builtin:tiny-sd2-v`: an SD 2.x-shaped v-prediction model with random weights.

Like `builtin:tiny-sd` (nodes/tiny_model.py), built by the project on first use from fixed
seeds in the diffusers folder layout. It has what sets Stable Diffusion 2.x's 768-v model apart:
a scheduler config saying `prediction_type: v_prediction`, linear attention projections with a
head size per block, a text encoder with gelu activations (OpenCLIP's) whose tokenizer pads
with "!". Its images are noise; it exists so v-prediction is tested against diffusers.

    python -m latentgraph.nodes.tiny_sd2          # build (or find) the folder, print it
"""

from __future__ import annotations

from pathlib import Path

from latentgraph.graph import paths

from .tiny_model import (
    MODEL_INDEX,
    SCHEDULER_CONFIG,
    TEXT_CONFIG,
    UNET_CONFIG,
    VAE_CONFIG,
    build_folder,
    write_json,
)

NAME = "tiny-sd2-v"
BUILD_VERSION = 1  # bump when the recipe changes so old cached builds are rebuilt

SD2_UNET_CONFIG = {**UNET_CONFIG, "use_linear_projection": True, "attention_head_dim": [2, 4]}
SD2_TEXT_CONFIG = {**TEXT_CONFIG, "hidden_act": "gelu"}
SD2_SCHEDULER_CONFIG = {**SCHEDULER_CONFIG, "prediction_type": "v_prediction"}


def default_path() -> Path:
    return paths.built_model(NAME, BUILD_VERSION)


def _build(folder: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .clip_vocab import write_tokenizer_files

    torch.manual_seed(20)
    UNet2DConditionModel(**SD2_UNET_CONFIG).save_pretrained(folder / "unet")
    torch.manual_seed(21)
    AutoencoderKL(**VAE_CONFIG).save_pretrained(folder / "vae")
    torch.manual_seed(22)
    CLIPTextModel(CLIPTextConfig(**SD2_TEXT_CONFIG)).save_pretrained(folder / "text_encoder")
    write_tokenizer_files(folder / "tokenizer", pad_token="!")
    DDIMScheduler(**SD2_SCHEDULER_CONFIG).save_pretrained(folder / "scheduler")
    write_json(folder / "model_index.json", MODEL_INDEX)


def ensure_tiny_sd2(path: Path | None = None) -> Path:
    """The tiny SD 2.x v-prediction model's folder, built first if needed (atomically)."""
    return build_folder(Path(path) if path is not None else default_path(), _build)


if __name__ == "__main__":
    print(ensure_tiny_sd2())
