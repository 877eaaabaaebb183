"""Latent tools, with ComfyUI's names and inputs: resize, composite, blend, batch, crop, flip,
rotate.

Positions and sizes are in pixels, as in ComfyUI, and divided by LATENT_SCALE (8: Stable
Diffusion's VAE, and the tiny model's) to address latent cells. Results are clean latents
(`is_noise` False) unless the values are only moved around (flip, rotate, crop, batch
slicing), so pure noise from LatentNoise stays noise through those. Seeds follow the rows
they belong to, and so do batch positions (`Latent.batch_index`: which draw of ComfyUI's
samplers' batch noise a row gets, nodes/seeds.py), as in ComfyUI: a row picked by
LatentFromBatch is re-made as it was in its batch, and RepeatLatentBatch's copies get new draws.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from latentgraph.graph import LATENT, Choice, Float, Int, Output, Socket, node

from .canvas import check_canvas
from .compositing import RESIZE_SOURCE, SOURCE_MASK, edge_ramp, paste
from .resize import batch_window, center_crop, match_batch, resize, scaled_size
from .seeds import batch_positions
from .values import Latent, input_error

LATENT_SCALE = 8
MAX_SIZE = 16384
LATENT_METHODS = ("nearest-exact", "bilinear", "area", "bicubic")
FLIPS = ("x-axis: vertically", "y-axis: horizontally")
ROTATIONS = ("none", "90 degrees", "180 degrees", "270 degrees")


def resized(ctx: Any, input_name: str, latent: Latent, height: int, width: int, method: str,
            crop: str = "disabled") -> Latent:  # fmt: skip
    """`latent` resized to height x width cells; over the run's pixel limit is an error
    naming `input_name`."""
    check_canvas(ctx, input_name, width * LATENT_SCALE, height * LATENT_SCALE)
    samples = resize(latent.samples, height, width, method, crop)
    return replace(latent, samples=samples, is_noise=False)


def _fit(samples: Any, like: Any) -> Any:
    """`samples` resized (bilinear, centre crop) to the height and width of `like`."""
    if samples.shape[-2:] == like.shape[-2:]:
        return samples
    return resize(center_crop(samples, *like.shape[-2:]), *like.shape[-2:], "bilinear")


def _joined_seeds(a: Latent, b: Latent) -> list[int] | None:
    return a.seeds + b.seeds if a.seeds is not None and b.seeds is not None else None


def _joined_positions(a: Latent, b: Latent) -> list[int] | None:
    """LatentBatch's batch positions: each side's, when either has picked ones; None (one
    batch, rows 0..B-1: a new draw for each) when neither has."""
    if a.batch_index is None and b.batch_index is None:
        return None
    return (batch_positions(a.batch_index, a.samples.shape[0])
            + batch_positions(b.batch_index, b.samples.shape[0]))  # fmt: skip


def repeated_positions(batch_index: list[int] | None, amount: int) -> list[int] | None:
    """RepeatLatentBatch's batch positions: copy k of the rows is shifted k times the span of
    their positions (ComfyUI's rule), so [2] x 3 is [2, 3, 4] and every copy gets new noise;
    None stays None (rows 0..B*amount-1 is the same shift)."""
    if batch_index is None:
        return None
    span = max(batch_index) - min(batch_index) + 1
    return [p + k * span for k in range(amount) for p in batch_index]


@node(
    "LatentUpscaleBy",
    display_name="Upscale Latent By",
    category="latent",
    inputs=[Socket("samples", LATENT), Choice("upscale_method", list(LATENT_METHODS)),
            Float("scale_by", 1.5, min=0.01, max=8.0, step=0.01)],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_upscale_by(ctx, samples: Latent, upscale_method: str, scale_by: float = 1.5):
    """Resize latents by a factor (hires fix: upscale, then denoise again part way)."""
    height, width = scaled_size(*samples.samples.shape[-2:], scale_by)
    return resized(ctx, "scale_by", samples, height, width, upscale_method)


@node(
    "LatentComposite",
    display_name="Latent Composite",
    category="latent",
    inputs=[Socket("samples_to", LATENT), Socket("samples_from", LATENT),
            Int("x", 0, min=0, max=MAX_SIZE, step=8), Int("y", 0, min=0, max=MAX_SIZE, step=8),
            Int("feather", 0, min=0, max=MAX_SIZE, step=8,
                description="pixels over which the pasted edges fade in (not at the border)")],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_composite(ctx, samples_to: Latent, samples_from: Latent, x: int = 0, y: int = 0,
                     feather: int = 0):  # fmt: skip
    """Paste `samples_from` into `samples_to` at (x, y) pixels, edges faded over `feather`."""
    dest, src = samples_to.samples, samples_from.samples
    left, top = x // LATENT_SCALE, y // LATENT_SCALE
    height, width = dest.shape[-2:]
    h, w = min(src.shape[-2], height - top), min(src.shape[-1], width - left)
    if h <= 0 or w <= 0:
        return replace(samples_to, samples=dest.clone(), is_noise=False)
    sides = (top > 0, top + h < height, left > 0, left + w < width)
    ramp = edge_ramp(h, w, feather // LATENT_SCALE, sides)
    out = paste(dest, src[..., :h, :w], left, top, ramp[None])
    return replace(samples_to, samples=out, is_noise=False)


@node(
    "LatentCompositeMasked",
    display_name="Latent Composite Masked",
    category="latent",
    inputs=[Socket("destination", LATENT), Socket("source", LATENT),
            Int("x", 0, min=0, max=MAX_SIZE, step=8), Int("y", 0, min=0, max=MAX_SIZE, step=8),
            RESIZE_SOURCE, SOURCE_MASK],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_composite_masked(ctx, destination: Latent, source: Latent, x: int = 0, y: int = 0,
                            resize_source: bool = False, mask: Any = None):  # fmt: skip
    """Paste `source` into `destination` at (x, y) pixels through an optional mask."""
    src = source.samples
    if resize_source:
        src = resize(src, *destination.samples.shape[-2:], "bilinear")
    out = paste(destination.samples, src, x // LATENT_SCALE, y // LATENT_SCALE, mask)
    return replace(destination, samples=out, is_noise=False)


@node(
    "LatentBlend",
    display_name="Latent Blend",
    category="latent",
    inputs=[Socket("samples1", LATENT), Socket("samples2", LATENT),
            Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01,
                  description="weight of samples1 (1: samples1 only)")],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_blend(ctx, samples1: Latent, samples2: Latent, blend_factor: float = 0.5):
    """samples1 * blend_factor + samples2 * (1 - blend_factor); samples2 is resized to fit."""
    a = samples1.samples
    b = match_batch(_fit(samples2.samples, a), a.shape[0]).to(a.dtype)
    return replace(samples1, samples=a * blend_factor + b * (1 - blend_factor), is_noise=False)


@node(
    "RepeatLatentBatch",
    display_name="Repeat Latent Batch",
    category="latent/batch",
    inputs=[Socket("samples", LATENT), Int("amount", 1, min=1, max=64)],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def repeat_latent_batch(ctx, samples: Latent, amount: int = 1):
    """The batch repeated `amount` times (rows 0..n-1, then 0..n-1 again, ...)."""
    x = samples.samples
    height, width = x.shape[-2] * LATENT_SCALE, x.shape[-1] * LATENT_SCALE
    check_canvas(ctx, "amount", width, height, x.shape[0] * amount)
    seeds = samples.seeds * amount if samples.seeds is not None else None
    return replace(samples, samples=x.repeat((amount, 1, 1, 1)), seeds=seeds,
                   batch_index=repeated_positions(samples.batch_index, amount))  # fmt: skip


@node(
    "LatentFromBatch",
    display_name="Latent From Batch",
    category="latent/batch",
    inputs=[Socket("samples", LATENT), Int("batch_index", 0, min=0, max=63),
            Int("length", 1, min=1, max=64)],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_from_batch(ctx, samples: Latent, batch_index: int = 0, length: int = 1):
    """Rows batch_index .. batch_index + length - 1 of a batch (the last row if past the end),
    keeping their batch positions: KSampler re-makes the picked images."""
    count = samples.samples.shape[0]
    rows = batch_window(count, batch_index, length)
    seeds = samples.seeds[rows] if samples.seeds is not None else None
    positions = batch_positions(samples.batch_index, count)[rows]
    return replace(samples, samples=samples.samples[rows].clone(), seeds=seeds,
                   batch_index=positions)  # fmt: skip


@node(
    "LatentBatch",
    display_name="Latent Batch",
    category="latent/batch",
    inputs=[Socket("samples1", LATENT), Socket("samples2", LATENT)],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_batch(ctx, samples1: Latent, samples2: Latent):
    """One batch: samples1's rows, then samples2's (resized to samples1's size if needed)."""
    import torch

    a, b = samples1.samples, samples2.samples
    height, width = a.shape[-2] * LATENT_SCALE, a.shape[-1] * LATENT_SCALE
    check_canvas(ctx, "samples2", width, height, a.shape[0] + b.shape[0])
    same_size = a.shape[1:] == b.shape[1:]
    if a.shape[1] != b.shape[1]:
        raise input_error(ctx, "samples2", f"{b.shape[1]} latent channels, samples1 has "
                                           f"{a.shape[1]}: latents of different models")  # fmt: skip
    out = torch.cat([a, _fit(b, a).to(a.dtype)])
    noise = samples1.is_noise and samples2.is_noise and same_size
    return replace(samples1, samples=out, seeds=_joined_seeds(samples1, samples2), is_noise=noise,
                   batch_index=_joined_positions(samples1, samples2))  # fmt: skip


@node(
    "LatentCrop",
    display_name="Crop Latent",
    category="latent/transform",
    inputs=[Socket("samples", LATENT),
            Int("width", 512, min=64, max=MAX_SIZE, step=8),
            Int("height", 512, min=64, max=MAX_SIZE, step=8),
            Int("x", 0, min=0, max=MAX_SIZE, step=8), Int("y", 0, min=0, max=MAX_SIZE, step=8)],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_crop(ctx, samples: Latent, width: int = 512, height: int = 512, x: int = 0,
                y: int = 0):  # fmt: skip
    """The width x height pixel area at (x, y); an origin too near the far edge is moved back
    so that at least 64 pixels (8 cells) remain, as ComfyUI does."""
    s = samples.samples
    h, w = s.shape[-2:]
    left = max(0, min(x // LATENT_SCALE, w - 8))
    top = max(0, min(y // LATENT_SCALE, h - 8))
    out = s[..., top : top + height // LATENT_SCALE, left : left + width // LATENT_SCALE]
    return replace(samples, samples=out.clone())


@node(
    "LatentFlip",
    display_name="Flip Latent",
    category="latent/transform",
    inputs=[Socket("samples", LATENT), Choice("flip_method", list(FLIPS))],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_flip(ctx, samples: Latent, flip_method: str = FLIPS[0]):
    """Mirror latents: "x-axis" flips top to bottom, "y-axis" left to right."""
    import torch

    dim = 2 if flip_method == FLIPS[0] else 3
    return replace(samples, samples=torch.flip(samples.samples, dims=[dim]))


@node(
    "LatentRotate",
    display_name="Rotate Latent",
    category="latent/transform",
    inputs=[Socket("samples", LATENT), Choice("rotation", list(ROTATIONS))],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_rotate(ctx, samples: Latent, rotation: str = "none"):
    """Rotate latents clockwise by 90, 180 or 270 degrees."""
    import torch

    turns = ROTATIONS.index(rotation)
    # rot90 turns from the first dim towards the second: width towards height is clockwise
    return replace(samples, samples=torch.rot90(samples.samples, k=turns, dims=[3, 2]).clone())
