"""`builtin:tiny-sdxl` and `builtin:tiny-sdxl-refiner`: SDXL-shaped models with random weights.

Like `builtin:tiny-sd` (nodes/tiny_model.py), built by the project on first use from fixed
seeds, in the diffusers folder layout, and loaded back through the real `from_pretrained` path.
They have SDXL's structure, small: two text encoders (a CLIPTextModel standing for CLIP ViT-L,
a CLIPTextModelWithProjection standing for OpenCLIP bigG, whose projected output is the pooled
embedding), their hidden states concatenated as the UNet's context, and a UNet conditioned on
"text_time" (pooled embedding + six size/crop numbers). The refiner, as SDXL's refiner, has only
the second encoder, five time numbers (the last an aesthetic score), and shares the base's VAE
and second encoder (same seeds, same weights). The VAE is the tiny SD one (factor 8, 4 channels)
with SDXL's scaling factor. Their images are noise.

    python -m latentgraph.nodes.tiny_sdxl            # build (or find) both folders, print them
    python -m latentgraph.nodes.tiny_sdxl --single-file base.safetensors \
        --refiner-file refiner.safetensors           # also as original-layout checkpoints
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from latentgraph.graph import paths

from .tiny_model import SCHEDULER_CONFIG, TEXT_CONFIG, VAE_CONFIG, build_folder, write_json
from .tiny_model import UNET_CONFIG as SD_UNET_CONFIG

BUILD_VERSION = 1  # bump when a recipe changes so old cached builds are rebuilt

TIME_EMBED_DIM = 8  # addition_time_embed_dim: each time id becomes 8 numbers
TEXT_CONFIG_2 = {
    **TEXT_CONFIG,
    "hidden_size": 64,
    "intermediate_size": 48,
    "num_attention_heads": 4,
    "hidden_act": "gelu",  # OpenCLIP bigG uses gelu, CLIP ViT-L quick_gelu
    "projection_dim": 32,
}
CONTEXT_DIM = TEXT_CONFIG["hidden_size"] + TEXT_CONFIG_2["hidden_size"]  # both encoders


def _unet_config(cross_attention_dim: int, time_ids: int, transformer_layers: list[int]) -> dict:
    """tiny-sd's UNet with SDXL's conditioning: linear attention projections, attention depth
    per block, and the "text_time" added embedding (time ids + pooled text)."""
    return {
        **SD_UNET_CONFIG,
        "transformer_layers_per_block": transformer_layers,
        "attention_head_dim": [2, 4],
        "use_linear_projection": True,
        "cross_attention_dim": cross_attention_dim,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": TIME_EMBED_DIM,
        "projection_class_embeddings_input_dim": time_ids * TIME_EMBED_DIM
        + TEXT_CONFIG_2["projection_dim"],
    }


UNET_CONFIG = _unet_config(CONTEXT_DIM, 6, [1, 2])
REFINER_UNET_CONFIG = _unet_config(TEXT_CONFIG_2["hidden_size"], 5, [1, 1])
SDXL_VAE_CONFIG = {**VAE_CONFIG, "scaling_factor": 0.13025}
SDXL_SCHEDULER_CONFIG = {
    **{k: v for k, v in SCHEDULER_CONFIG.items() if k not in ("clip_sample", "set_alpha_to_one")},
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
}

_TEXT_1 = {"text_encoder": ["transformers", "CLIPTextModel"],
           "tokenizer": ["transformers", "CLIPTokenizer"]}  # fmt: skip
_COMMON = {
    "_diffusers_version": "0.30.0",
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
MODEL_INDEX = {"_class_name": "StableDiffusionXLPipeline", "force_zeros_for_empty_prompt": True,
               **_TEXT_1, **_COMMON}  # fmt: skip
REFINER_MODEL_INDEX = {
    "_class_name": "StableDiffusionXLImg2ImgPipeline",
    "force_zeros_for_empty_prompt": False,
    "requires_aesthetics_score": True,
    "text_encoder": [None, None],
    "tokenizer": [None, None],
    **_COMMON,
}


def default_path(refiner: bool = False) -> Path:
    name = "tiny-sdxl-refiner" if refiner else "tiny-sdxl"
    return paths.built_model(name, BUILD_VERSION)


def _build(folder: Path, refiner: bool) -> None:
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from .clip_vocab import write_tokenizer_files

    torch.manual_seed(10 if refiner else 0)
    UNet2DConditionModel(**(REFINER_UNET_CONFIG if refiner else UNET_CONFIG)).save_pretrained(
        folder / "unet"
    )
    torch.manual_seed(1)
    AutoencoderKL(**SDXL_VAE_CONFIG).save_pretrained(folder / "vae")
    if not refiner:
        torch.manual_seed(2)
        CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).save_pretrained(folder / "text_encoder")
        write_tokenizer_files(folder / "tokenizer")
    torch.manual_seed(3)
    text_2 = CLIPTextModelWithProjection(CLIPTextConfig(**TEXT_CONFIG_2))
    text_2.save_pretrained(folder / "text_encoder_2")
    write_tokenizer_files(folder / "tokenizer_2", pad_token="!")
    EulerDiscreteScheduler(**SDXL_SCHEDULER_CONFIG).save_pretrained(folder / "scheduler")
    write_json(folder / "model_index.json", REFINER_MODEL_INDEX if refiner else MODEL_INDEX)


def ensure_tiny_sdxl(path: Path | None = None, refiner: bool = False) -> Path:
    """The tiny SDXL base (or refiner) folder, built first if needed (atomically)."""
    dest = Path(path) if path is not None else default_path(refiner)
    return build_folder(dest, lambda folder: _build(folder, refiner))


def ensure_tiny_sdxl_refiner(path: Path | None = None) -> Path:
    return ensure_tiny_sdxl(path, refiner=True)


def write_config_folder(folder: Path, refiner: bool = False) -> None:
    """The model's folder without its weights: the `config=` folder `from_single_file` needs to
    read a tiny SDXL single-file checkpoint offline."""
    shutil.copytree(ensure_tiny_sdxl(refiner=refiner), folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.safetensors"))  # fmt: skip


def write_single_file(out: Path, refiner: bool = False, folder: Path | None = None) -> Path:
    """Write the tiny SDXL base (or refiner) as one original-layout `.safetensors` checkpoint,
    the layout of Stability's sd_xl_base_1.0 / sd_xl_refiner_1.0 files. Atomic."""
    from .ldm_layout import sdxl_to_original, torch_ops
    from .tiny_model import save_checkpoint, weights

    folder = Path(folder) if folder is not None else ensure_tiny_sdxl(refiner=refiner)

    def config(sub: str) -> dict:
        return json.loads((folder / sub / "config.json").read_text(encoding="utf-8"))

    state = sdxl_to_original(
        weights(folder, "unet"), config("unet"), weights(folder, "vae"), config("vae"),
        None if refiner else weights(folder, "text_encoder"), weights(folder, "text_encoder_2"),
        torch_ops(),
    )  # fmt: skip
    return save_checkpoint(state, Path(out), folder.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentgraph.nodes.tiny_sdxl")
    parser.add_argument("--single-file", type=Path, default=None,
                        help="also write the base as a checkpoint")  # fmt: skip
    parser.add_argument("--refiner-file", type=Path, default=None,
                        help="also write the refiner as a checkpoint")  # fmt: skip
    args = parser.parse_args(argv)
    print(ensure_tiny_sdxl())
    print(ensure_tiny_sdxl_refiner())
    if args.single_file is not None:
        print(write_single_file(args.single_file))
    if args.refiner_file is not None:
        print(write_single_file(args.refiner_file, refiner=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
