"""Recognising and loading SDXL's text encoders from a diffusers folder.

An SDXL folder has a second tokenizer and text encoder (`tokenizer_2`, `text_encoder_2`: a
CLIPTextModelWithProjection, whose projected output is the pooled embedding); SDXL's refiner
has only that second pair. LoadModel (nodes/loaders.py) loads the rest as for SD 1.x.
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
            folder, subfolder="text_encoder", torch_dtype=torch_dtype
        )
    tokenizer_2 = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2")
    text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(
        folder, subfolder="text_encoder_2", torch_dtype=torch_dtype
    )
    return tokenizer, text_encoder, tokenizer_2, text_encoder_2
