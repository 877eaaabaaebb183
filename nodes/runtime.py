"""Device and dtype for a run, from Settings ("auto": CUDA fp16, then MPS, then CPU fp32)."""

from __future__ import annotations

from typing import Any

from latentgraph.graph import Settings

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def device_name(settings: Settings) -> str:
    if settings.device != "auto":
        return settings.device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def dtype_name(settings: Settings, device: str) -> str:
    if settings.dtype != "auto":
        if settings.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {settings.dtype!r}; expected auto, fp32, fp16, bf16")
        return settings.dtype
    return "fp16" if device.startswith("cuda") else "fp32"


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, DTYPES[name])


def option(settings: Settings, name: str, default: Any = False) -> Any:
    return settings.options.get(name, default)
