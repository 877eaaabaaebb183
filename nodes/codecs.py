"""Cache codecs for the values crossing diffusion sockets.

Latents, conditioning and images are stored as safetensors bytes (tensors plus a small JSON
metadata header), so a second process reuses the first one's work. Model handles are
memory-only: the model manager owns the weights, a handle's cache size is a few bytes and its
digest is its manager key. Registered on import of latentgraph.nodes; torch is imported only
when a value is actually encoded or decoded.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, fields
from typing import Any

from latentgraph.graph.cache import Codec, register_codec

from .values import (
    MODEL_HANDLES,
    Area,
    ClipModel,
    CondEntry,
    Conditioning,
    InpaintImage,
    Latent,
    SchedulerSpec,
    SizeConditioning,
    UNetModel,
)


def _is_tensor(value: Any) -> bool:
    t = type(value)
    return t.__name__ in ("Tensor", "Parameter") and t.__module__.startswith("torch")


def _nbytes(t: Any) -> int:
    return int(t.numel() * t.element_size()) if t is not None else 0


def _pack(tensors: dict[str, Any], meta: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    plain = {k: v.detach().cpu().contiguous() for k, v in tensors.items() if v is not None}
    return save(plain, metadata={"meta": json.dumps(meta)})


def _unpack(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors.torch import load

    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header.get("__metadata__", {}).get("meta", "{}"))
    return load(data), meta


def _digest(encode):
    return lambda value: hashlib.sha256(encode(value)).hexdigest()


def _enc_latent(v: Latent) -> bytes:
    return _pack({"samples": v.samples, "noise_mask": v.noise_mask},
                 {"seeds": v.seeds, "is_noise": v.is_noise, "batch_index": v.batch_index})  # fmt: skip


def _dec_latent(data: bytes) -> Latent:
    t, meta = _unpack(data)
    return Latent(t["samples"], meta.get("seeds"), bool(meta.get("is_noise")), t.get("noise_mask"),
                  meta.get("batch_index"))  # fmt: skip


_ENTRY_TENSORS = ("embeds", "pooled", "mask")


def _enc_cond(v: Conditioning) -> bytes:
    """Entry i's tensors as `i.embeds`, `i.pooled`, `i.mask`; its other fields as JSON."""
    tensors, entries = {}, []
    for i, entry in enumerate(v.entries):
        for name in _ENTRY_TENSORS:
            tensors[f"{i}.{name}"] = getattr(entry, name)
        if entry.inpaint is not None:
            tensors[f"{i}.inpaint.latents"] = entry.inpaint.latents
            tensors[f"{i}.inpaint.mask"] = entry.inpaint.mask
        meta = {f.name: getattr(entry, f.name) for f in fields(entry)
                if f.name not in (*_ENTRY_TENSORS, "inpaint")}  # fmt: skip
        meta["size"] = asdict(entry.size)
        meta["area"] = asdict(entry.area) if entry.area is not None else None
        entries.append(meta)
    return _pack(tensors, {"entries": entries})


def _dec_cond(data: bytes) -> Conditioning:
    t, meta = _unpack(data)
    entries = []
    for i, m in enumerate(meta["entries"]):
        area = m.pop("area")
        size = SizeConditioning(**m.pop("size"))
        prompts = tuple(m.pop("prompts"))
        tensors = {name: t.get(f"{i}.{name}") for name in _ENTRY_TENSORS}
        inpaint = None
        if f"{i}.inpaint.latents" in t:
            inpaint = InpaintImage(t[f"{i}.inpaint.latents"], t[f"{i}.inpaint.mask"])
        entries.append(CondEntry(**tensors, prompts=prompts, size=size,
                                  area=Area(**area) if area else None, inpaint=inpaint, **m))  # fmt: skip
    return Conditioning(tuple(entries))


def _cond_nbytes(v: Conditioning) -> int:
    return sum(_nbytes(getattr(e, name)) for e in v.entries for name in _ENTRY_TENSORS) + sum(
        _nbytes(e.inpaint.latents) + _nbytes(e.inpaint.mask) for e in v.entries if e.inpaint
    )


def _enc_tensor(v: Any) -> bytes:
    return _pack({"tensor": v}, {})


def _dec_tensor(data: bytes) -> Any:
    return _unpack(data)[0]["tensor"]


def _enc_spec(v: SchedulerSpec) -> bytes:
    return json.dumps(asdict(v), sort_keys=True, default=str).encode()


def _dec_spec(data: bytes) -> SchedulerSpec:
    return SchedulerSpec(**json.loads(data))


def _handle_digest(v: Any) -> str:
    """A handle's manager key, and what makes handles on the same weights differ: a UNet's
    sampling and scheduler config, a CLIP's stop-at-layer."""
    if isinstance(v, UNetModel):
        config = json.dumps(v.scheduler_config, sort_keys=True, default=str)
        variant = f"{v.sampling}|{config}"
    else:
        variant = str(v.stop_at_layer) if isinstance(v, ClipModel) else ""
    return hashlib.sha256(f"{type(v).__name__}|{v.key}|{variant}".encode()).hexdigest()


def register() -> None:
    register_codec(Codec("lg.tensor", _is_tensor, _nbytes, _enc_tensor, _dec_tensor,
                         _digest(_enc_tensor)))  # fmt: skip
    register_codec(Codec("lg.latent", lambda v: isinstance(v, Latent),
                         lambda v: _nbytes(v.samples) + _nbytes(v.noise_mask), _enc_latent, _dec_latent,
                         _digest(_enc_latent)))  # fmt: skip
    register_codec(Codec("lg.conditioning.2", lambda v: isinstance(v, Conditioning),
                         _cond_nbytes, _enc_cond, _dec_cond, _digest(_enc_cond)))  # fmt: skip
    register_codec(Codec("lg.scheduler", lambda v: isinstance(v, SchedulerSpec),
                         lambda v: len(_enc_spec(v)), _enc_spec, _dec_spec,
                         _digest(_enc_spec)))  # fmt: skip
    register_codec(Codec("lg.model", lambda v: isinstance(v, MODEL_HANDLES),
                         lambda v: 256, None, None, _handle_digest))  # fmt: skip


register()
