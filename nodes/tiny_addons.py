"""Tiny LoRA and textual-inversion files for `builtin:tiny-sd` and `builtin:tiny-sdxl`, built
by the project.

No real LoRA fits the tiny models, so these are written from their module names with seeded
random weights, in the layouts people share: kohya/ComfyUI (`lora_unet_*`, `lora_te_*`; SDXL:
`lora_te1_*` and `lora_te2_*` for its two text encoders; `.lora_down`/`.lora_up`/`.alpha`) and
diffusers (`unet.*`/`text_encoder.*`/`text_encoder_2.*`, `.lora_A`/`.lora_B`), and embeddings
in the SD 1.x (`emb_params`) and SDXL (`clip_l`/`clip_g`) layouts.
`builtin:tiny-lora` (kohya), `builtin:tiny-lora-diffusers`, `builtin:tiny-sdxl-lora` (kohya)
and `builtin:tiny-sdxl-lora-diffusers` name the LoRAs in LoadLoRA and LoraLoader, so the
example workflows run on a fresh clone;
`latentgraph tiny-model --addons MODELS_DIR` (or `python -m latentgraph.nodes.tiny_addons
MODELS_DIR`) writes all of them into a models folder.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latentgraph.graph import paths
from latentgraph.graph.files import write_file

BUILD_VERSION = 1
RANK = 4
ALPHA = 2.0  # differs from the rank so the alpha/rank scaling is exercised
# LoRA-able layers: the UNet's attention projections and the text encoder's attention ones.
UNET_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")  # fmt: skip
TEXT_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")
# name -> (layout, model)
BUILTIN_LORAS = {"builtin:tiny-lora": ("kohya", "sd"),
                 "builtin:tiny-lora-diffusers": ("diffusers", "sd"),
                 "builtin:tiny-sdxl-lora": ("kohya", "sdxl"),
                 "builtin:tiny-sdxl-lora-diffusers": ("diffusers", "sdxl")}  # fmt: skip
# Each LoRA-able part of a model: (diffusers prefix, kohya prefix)
PARTS = {"sd": (("unet", "lora_unet_"), ("text_encoder", "lora_te_")),
         "sdxl": (("unet", "lora_unet_"), ("text_encoder", "lora_te1_"),
                  ("text_encoder_2", "lora_te2_"))}  # fmt: skip


def _linear_shapes(model: str) -> list[dict[str, tuple[int, int]]]:
    """Per part of PARTS[model]: target module names -> (out, in) features, from the tiny
    model ("sd": tiny-sd, "sdxl": tiny-sdxl's base)."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from . import tiny_model, tiny_sdxl

    with torch.device("meta"):
        if model == "sdxl":
            modules = [UNet2DConditionModel(**tiny_sdxl.UNET_CONFIG),
                       CLIPTextModel(CLIPTextConfig(**tiny_sdxl.TEXT_CONFIG)),
                       CLIPTextModel(CLIPTextConfig(**tiny_sdxl.TEXT_CONFIG_2))]  # fmt: skip
        else:
            modules = [UNet2DConditionModel(**tiny_model.UNET_CONFIG),
                       CLIPTextModel(CLIPTextConfig(**tiny_model.TEXT_CONFIG))]  # fmt: skip
    shapes = []
    for i, module in enumerate(modules):
        targets = UNET_TARGETS if i == 0 else TEXT_TARGETS
        found = {name: (m.out_features, m.in_features) for name, m in module.named_modules()
                 if name.endswith(targets) and isinstance(m, torch.nn.Linear)}  # fmt: skip
        # Text encoders' module names as LoRA files write them (transformers 4's layout).
        shapes.append(found if i == 0 else {_text_name(k): v for k, v in found.items()})
    return shapes


def _text_name(module: str) -> str:
    return module if module.startswith("text_model.") else "text_model." + module


def lora_tensors(layout: str, seed: int = 0, scale: float = 0.5,
                 model: str = "sd") -> dict[str, Any]:  # fmt: skip
    """A tiny LoRA's tensors in the "kohya" or "diffusers" layout (same weights either way),
    for tiny-sd ("sd") or tiny-sdxl ("sdxl")."""
    import torch

    if model not in PARTS:
        raise ValueError(f"unknown model {model!r}; expected sd or sdxl")
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {}
    for (prefix, short), modules in zip(PARTS[model], _linear_shapes(model), strict=True):
        for name, (fan_out, fan_in) in sorted(modules.items()):
            down = torch.randn(RANK, fan_in, generator=gen) * scale
            up = torch.randn(fan_out, RANK, generator=gen) * scale
            if layout == "kohya":
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
    state = {k: v.contiguous() for k, v in tensors.items()}
    return write_file(out, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def builtin_lora_path(name: str) -> Path:
    """Where the file behind a `builtin:` LoRA name is built, built or not."""
    if name not in BUILTIN_LORAS:
        raise ValueError(f"unknown built-in LoRA {name!r}; known: {', '.join(BUILTIN_LORAS)}")
    return paths.built_model(name.split(":", 1)[1], BUILD_VERSION, ".safetensors")


def builtin_lora(name: str) -> Path:
    """The file behind a `builtin:` LoRA name, written into the cache dir on first use."""
    path = builtin_lora_path(name)
    layout, model = BUILTIN_LORAS[name]
    if not path.is_file():
        save_atomic(lora_tensors(layout, model=model), path, {"format": "pt"})
    return path


def models_folder_writes(root: Path) -> list[Callable[[], Path]]:
    """The writes that put the tiny LoRAs (loras/) and embeddings (embeddings/) into a models
    root, each returning its file: called one at a time, a command can say which files a
    failure left written (each is whole and works alone)."""
    loras, embeddings = Path(root) / "loras", Path(root) / "embeddings"
    return [
        lambda: save_atomic(lora_tensors("kohya"), loras / "tiny-lora-kohya.safetensors"),
        lambda: save_atomic(lora_tensors("diffusers"), loras / "tiny-lora-diffusers.safetensors"),
        lambda: save_atomic(lora_tensors("kohya", model="sdxl"),
                            loras / "tiny-sdxl-lora-kohya.safetensors"),
        lambda: save_atomic(lora_tensors("diffusers", model="sdxl"),
                            loras / "tiny-sdxl-lora-diffusers.safetensors"),
        lambda: save_atomic(embedding_tensors("sd1"), embeddings / "tiny-embedding.safetensors"),
        lambda: save_atomic(embedding_tensors("sdxl", seed=1),
                            embeddings / "tiny-embedding-sdxl.safetensors"),
    ]  # fmt: skip


def write_models_folder(root: Path) -> list[Path]:
    """Put the tiny LoRAs (loras/) and embeddings (embeddings/) into a models root."""
    return [write() for write in models_folder_writes(root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentgraph.nodes.tiny_addons")
    parser.add_argument("models_dir", type=Path, help="a models root (loras/, embeddings/)")
    args = parser.parse_args(argv)
    for path in write_models_folder(args.models_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
