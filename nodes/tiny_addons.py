"""Tiny LoRA and textual-inversion files for `builtin:tiny-sd`, built by the project.

No real LoRA fits the tiny model, so these are written from its module names with seeded
random weights, in the layouts people share: kohya/ComfyUI (`lora_unet_*`, `lora_te_*`,
`.lora_down`/`.lora_up`/`.alpha`) and diffusers (`unet.*`/`text_encoder.*`, `.lora_A`/`.lora_B`),
and embeddings in the SD 1.x (`emb_params`) and SDXL (`clip_l`/`clip_g`) layouts.
`builtin:tiny-lora` (kohya) and `builtin:tiny-lora-diffusers` name the LoRAs in LoadLoRA and
LoraLoader, so the example workflows run on a fresh clone;
`latentgraph tiny-model --addons MODELS_DIR` (or `python -m latentgraph.nodes.tiny_addons
MODELS_DIR`) writes all of them into a models folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from latentgraph.graph import paths

BUILD_VERSION = 1
RANK = 4
ALPHA = 2.0  # differs from the rank so the alpha/rank scaling is exercised
# LoRA-able layers: the UNet's attention projections and the text encoder's attention ones.
UNET_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")  # fmt: skip
TEXT_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")
BUILTIN_LORAS = {"builtin:tiny-lora": "kohya", "builtin:tiny-lora-diffusers": "diffusers"}


def _linear_shapes() -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """(UNet, text encoder) target module names -> (out, in) features, from the tiny model."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .tiny_model import TEXT_CONFIG, UNET_CONFIG

    with torch.device("meta"):
        unet = UNet2DConditionModel(**UNET_CONFIG)
        text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    shapes = []
    for model, targets in ((unet, UNET_TARGETS), (text, TEXT_TARGETS)):
        found = {name: (m.out_features, m.in_features) for name, m in model.named_modules()
                 if name.endswith(targets) and isinstance(m, torch.nn.Linear)}  # fmt: skip
        shapes.append(found)
    # The text encoder's module names as LoRA files write them (transformers 4's layout).
    text_names = {_text_name(k): v for k, v in shapes[1].items()}
    return shapes[0], text_names


def _text_name(module: str) -> str:
    return module if module.startswith("text_model.") else "text_model." + module


def lora_tensors(layout: str, seed: int = 0, scale: float = 0.5) -> dict[str, Any]:
    """A tiny LoRA's tensors in the "kohya" or "diffusers" layout (same weights either way)."""
    import torch

    unet, text = _linear_shapes()
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {}
    for prefix, modules in (("unet", unet), ("text_encoder", text)):
        for name, (fan_out, fan_in) in sorted(modules.items()):
            down = torch.randn(RANK, fan_in, generator=gen) * scale
            up = torch.randn(fan_out, RANK, generator=gen) * scale
            if layout == "kohya":
                short = "lora_unet_" if prefix == "unet" else "lora_te_"
                key = short + name.replace(".", "_")
                out[f"{key}.lora_down.weight"] = down
                out[f"{key}.lora_up.weight"] = up
                out[f"{key}.alpha"] = torch.tensor(ALPHA)
            elif layout == "diffusers":
                # diffusers' own layout has no alpha: its scaling is 1 (alpha = rank).
                out[f"{prefix}.{name}.lora_A.weight"] = down * (ALPHA / RANK)
                out[f"{prefix}.{name}.lora_B.weight"] = up
            else:
                raise ValueError(f"unknown LoRA layout {layout!r}; expected kohya or diffusers")
    return out


def embedding_tensors(layout: str, tokens: int = 2, seed: int = 0) -> dict[str, Any]:
    """A tiny textual-inversion embedding: "sd1" (emb_params) or "sdxl" (clip_l + clip_g)."""
    import torch

    from .tiny_model import TEXT_CONFIG

    gen = torch.Generator().manual_seed(seed)
    width = TEXT_CONFIG["hidden_size"]
    vectors = torch.randn(tokens, width, generator=gen)
    if layout == "sd1":
        return {"emb_params": vectors}
    if layout == "sdxl":
        return {"clip_l": vectors, "clip_g": torch.randn(tokens, 2 * width, generator=gen)}
    raise ValueError(f"unknown embedding layout {layout!r}; expected sd1 or sdxl")


def save_atomic(tensors: dict[str, Any], out: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write a .safetensors file through a temp file and a rename: never half a file."""
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}-", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def builtin_lora(name: str) -> Path:
    """The file behind a `builtin:` LoRA name, written into the cache dir on first use."""
    layout = BUILTIN_LORAS.get(name)
    if layout is None:
        raise ValueError(f"unknown built-in LoRA {name!r}; known: {', '.join(BUILTIN_LORAS)}")
    path = paths.cache_dir() / "models" / f"{name.split(':', 1)[1]}-v{BUILD_VERSION}.safetensors"
    if not path.is_file():
        save_atomic(lora_tensors(layout), path, {"format": "pt"})
    return path


def write_models_folder(root: Path) -> list[Path]:
    """Put the tiny LoRAs (loras/) and embeddings (embeddings/) into a models root."""
    root = Path(root)
    return [
        save_atomic(lora_tensors("kohya"), root / "loras" / "tiny-lora-kohya.safetensors"),
        save_atomic(lora_tensors("diffusers"), root / "loras" / "tiny-lora-diffusers.safetensors"),
        save_atomic(embedding_tensors("sd1"), root / "embeddings" / "tiny-embedding.safetensors"),
        save_atomic(embedding_tensors("sdxl", seed=1),
                    root / "embeddings" / "tiny-embedding-sdxl.safetensors"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentgraph.nodes.tiny_addons")
    parser.add_argument("models_dir", type=Path, help="a models root (loras/, embeddings/)")
    args = parser.parse_args(argv)
    for path in write_models_folder(args.models_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
