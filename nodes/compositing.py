"""Laying one tensor over another through a mask: the paste that latent and image composites
share, and the mask shape helpers they need. Tensors are [B, C, H, W]; coordinates are in the tensor's own cells.
"""

from __future__ import annotations

from typing import Any

from latentgraph.graph import MASK, Bool, Socket

from .resize import match_batch, resize

# The inputs the masked composites (latent and image) share, declared once.
RESIZE_SOURCE = Bool("resize_source", False,
                     description="first resize the source to the destination's size")  # fmt: skip
SOURCE_MASK = Socket("mask", MASK, optional=True,
                     description="where the source shows (resized to the source)")  # fmt: skip


def as_masks(mask: Any) -> Any:
    """A mask as float32 [B, H, W] (plugins may hand over [H, W])."""
    return mask.reshape((-1, *mask.shape[-2:])).float()


def resize_masks(masks: Any, height: int, width: int) -> Any:
    """[B, H, W] masks resized (bilinear) to height x width."""
    return resize(masks[:, None], height, width, "bilinear")[:, 0]


def paste(destination: Any, source: Any, x: int, y: int, mask: Any = None) -> Any:
    """A copy of `destination` with `source` laid over it, top-left corner at (x, y).

    `mask` ([B, h, w] or [h, w], 0..1) is resized to the source's size and weighs the source
    against the destination (1: source). The source's batch is repeated or cut to the
    destination's; what falls outside the destination is dropped.
    """
    out = destination.clone()
    batch, _, height, width = out.shape
    source = match_batch(source.to(out.dtype), batch)
    h, w = source.shape[-2:]
    bottom, right = min(height, y + h), min(width, x + w)
    if bottom <= y or right <= x:
        return out
    if mask is None:
        weight = out.new_ones((batch, 1, h, w))
    else:
        weight = match_batch(resize_masks(as_masks(mask), h, w), batch)[:, None].to(out.dtype)
    weight = weight[..., : bottom - y, : right - x]
    region = out[..., y:bottom, x:right]
    out[..., y:bottom, x:right] = source[..., : bottom - y, : right - x] * weight + region * (
        1 - weight
    )
    return out


def edge_ramp(height: int, width: int, feather: int, sides: tuple[bool, bool, bool, bool]) -> Any:
    """A [height, width] weight rising linearly from 1/feather to 1 over `feather` cells
    from each edge whose flag is set (top, bottom, left, right); 1 elsewhere."""
    import torch

    ramp = torch.ones((height, width))
    if feather <= 0:
        return ramp
    rows = torch.arange(height, dtype=torch.float32)
    cols = torch.arange(width, dtype=torch.float32)
    top, bottom, left, right = sides

    def rise(distance: Any) -> Any:
        return ((distance + 1) / feather).clamp(max=1.0)

    if top:
        ramp *= rise(rows)[:, None]
    if bottom:
        ramp *= rise(height - 1 - rows)[:, None]
    if left:
        ramp *= rise(cols)[None, :]
    if right:
        ramp *= rise(width - 1 - cols)[None, :]
    return ramp
