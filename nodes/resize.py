"""Resizing tensors laid out [B, C, H, W] (latents, and images moved channel-first): the one
resize the image, latent and mask nodes share.

Methods have ComfyUI's names. "lanczos" goes through pillow (per channel, in float, so
latents resize as well as pictures); the others are torch's interpolation. A "center" crop
first cuts the input to the target's aspect ratio, around the centre, so nothing is stretched.
"""

from __future__ import annotations

from typing import Any

METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROPS = ("disabled", "center")


def center_crop(x: Any, height: int, width: int) -> Any:
    """The middle part of `x` [..., H, W] with the aspect ratio of height x width."""
    h, w = x.shape[-2:]
    if w * height > h * width:  # too wide
        keep = max(1, round(h * width / height))
        left = (w - keep) // 2
        return x[..., left : left + keep]
    if w * height < h * width:  # too tall
        keep = max(1, round(w * height / width))
        top = (h - keep) // 2
        return x[..., top : top + keep, :]
    return x


def target_size(h: int, w: int, height: int, width: int, floor: int = 1) -> tuple[int, int] | None:
    """The height x width a resize to `height` x `width` makes of an h x w input: a side given
    as 0 follows the other side by the input's aspect ratio (rounded); None when both are 0
    (the input is kept). Each side is at least `floor`, a given side raised to it before the
    other follows it (ComfyUI's LatentUpscale: 64 pixels; its image nodes: 1). Only the ratio
    h : w is used, so latents give their cells and get pixels, as ComfyUI's LatentUpscale
    computes before it divides by 8."""
    if width == 0 and height == 0:
        return None
    height, width = (max(floor, side) if side else 0 for side in (height, width))
    return height or max(floor, round(h * width / w)), width or max(floor, round(w * height / h))


def scaled_size(h: int, w: int, by: float) -> tuple[int, int]:
    """h x w scaled by the factor `by`, each side rounded and at least 1."""
    return max(1, round(h * by)), max(1, round(w * by))


def resize(x: Any, height: int, width: int, method: str, crop: str = "disabled") -> Any:
    """`x` [B, C, H, W] resized to height x width with `method` (one of METHODS)."""
    import torch
    import torch.nn.functional as F

    if method not in METHODS:
        raise ValueError(f"unknown resize method {method!r}; one of: {', '.join(METHODS)}")
    if crop == "center":
        x = center_crop(x, height, width)
    if tuple(x.shape[-2:]) == (height, width):
        return x.clone()
    if method == "lanczos":
        return _lanczos(x, height, width)
    kwargs = {"align_corners": False} if method in ("bilinear", "bicubic") else {}
    out = F.interpolate(x.float(), size=(height, width), mode=method, **kwargs)
    return out.to(x.dtype) if x.dtype.is_floating_point else out.to(torch.float32)


def _lanczos(x: Any, height: int, width: int) -> Any:
    import numpy as np
    import torch
    from PIL import Image

    planes = x.detach().float().cpu().numpy()
    out = np.empty((*planes.shape[:2], height, width), dtype=np.float32)
    for b in range(planes.shape[0]):
        for c in range(planes.shape[1]):
            plane = Image.fromarray(planes[b, c])  # float32: mode "F"
            out[b, c] = np.asarray(plane.resize((width, height), Image.Resampling.LANCZOS))
    return torch.from_numpy(out).to(x.dtype)


def batch_window(count: int, batch_index: int, length: int) -> slice:
    """Rows `batch_index` .. `batch_index + length - 1` of a batch of `count`, as ComfyUI's
    *FromBatch nodes pick them: from the last row when `batch_index` is past the end."""
    start = min(batch_index, count - 1)
    return slice(start, min(start + length, count))


def match_batch(x: Any, size: int) -> Any:
    """`x` with `size` rows: repeated (cycling) when it has fewer, cut when it has more."""
    n = x.shape[0]
    if n == size:
        return x
    if n > size:
        return x[:size]
    reps = -(-size // n)
    return x.repeat((reps,) + (1,) * (x.ndim - 1))[:size]
