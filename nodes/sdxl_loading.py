"""Recognising SDXL models (diffusers folders, single-file checkpoints) and loading their text
encoders.

An SDXL folder has a second tokenizer and text encoder (`tokenizer_2`, `text_encoder_2`: a
CLIPTextModelWithProjection, whose projected output is the pooled embedding); SDXL's refiner
has only that second pair. LoadModel (nodes/loaders.py) loads the rest as for SD 1.x.
A single-file SDXL checkpoint keeps its text encoders under `conditioner.embedders.N.`: the
base has CLIP ViT-L (transformers' layout) at 0 and OpenCLIP bigG at 1, the refiner only
OpenCLIP bigG, at 0 (nodes/ldm_layout.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def is_sdxl_folder(folder: str | Path) -> bool:
    """True for a diffusers SDXL folder (base or refiner): it has a `text_encoder_2`."""
    return _listed(Path(folder), "text_encoder_2")


def _listed(folder: Path, name: str) -> bool:
    """Whether the folder holds a component: its subfolder is there and model_index.json, if
    any, does not list it as absent (the refiner lists `text_encoder` as [null, null])."""
    if not (folder / name).is_dir():
        return False
    index = folder / "model_index.json"
    if not index.is_file():
        return True
    entry = json.loads(index.read_text(encoding="utf-8")).get(name)
    return not (isinstance(entry, list) and entry and entry[0] is None)


def load_sdxl_text_encoders(folder: str | Path, torch_dtype: Any) -> tuple[Any, Any, Any, Any]:
    """(tokenizer, text_encoder, tokenizer_2, text_encoder_2); the first two are None for a
    refiner folder."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = Path(folder)
    tokenizer = text_encoder = None
    if _listed(folder, "text_encoder"):
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(
            folder, subfolder="text_encoder", torch_dtype=torch_dtype, use_safetensors=True
        )
    tokenizer_2 = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2")
    text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(
        folder, subfolder="text_encoder_2", torch_dtype=torch_dtype, use_safetensors=True
    )
    return tokenizer, text_encoder, tokenizer_2, text_encoder_2


# (UNet width, refiner?) -> config preset (nodes/configs/sdxl*, or the tiny models' recipes)
_SDXL_ARCHITECTURES = {(320, False): "sdxl", (384, True): "sdxl-refiner",
                       (32, False): "tiny-sdxl", (32, True): "tiny-sdxl-refiner"}  # fmt: skip


def sdxl_preset(shapes: dict[str, list[int]], unet_width: int) -> str:
    """The config preset of a single-file SDXL checkpoint, from its UNet's width and its
    tensor names: the refiner has no CLIP ViT-L (`conditioner.embedders.0.transformer.*`)."""
    from .ldm_layout import SDXL_CLIP_L_PREFIX

    refiner = not any(k.startswith(SDXL_CLIP_L_PREFIX) for k in shapes)
    preset = _SDXL_ARCHITECTURES.get((unet_width, refiner))
    if preset is None:
        kind = "refiner" if refiner else "base"
        raise ValueError(
            f"unknown SDXL {kind} architecture (UNet width {unet_width}); known: SDXL base "
            "(320), SDXL refiner (384), the tiny models (32). Set config to a diffusers folder "
            "holding this model's configs"
        )
    return preset


def sdxl_pipeline_class(folder: str | Path) -> Any:
    """The diffusers pipeline a config folder names: the refiner's is the img2img one."""
    import diffusers

    index = json.loads((Path(folder) / "model_index.json").read_text(encoding="utf-8"))
    if index.get("_class_name") == "StableDiffusionXLImg2ImgPipeline":
        return diffusers.StableDiffusionXLImg2ImgPipeline
    return diffusers.StableDiffusionXLPipeline
