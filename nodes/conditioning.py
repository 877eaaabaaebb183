"""Conditioning nodes: lists of entries joined, text embeddings mixed, and where (area, mask),
how strongly and when (a range of noise levels) each entry acts while sampling.

A CONDITIONING is a list of entries (nodes/values.py); the sampler combines them per step
(nodes/guidance.py). Setting nodes change every entry of their input; Combine joins two lists
(each entry predicted on its own, predictions averaged); Concat and Average change the text
embeddings of each entry (only the first entry of the other input is used, with a warning
otherwise, as ComfyUI does). ComfyUI's names are adapters over these (nodes/comfy_conditioning.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from latentgraph.graph import CONDITIONING, MASK, VAE, Bool, Float, Int, Output, Socket, node

from .compositing import as_masks
from .latents import DEFAULT_SCALE
from .values import Area, CondEntry, Conditioning, VAEModel, input_error

MAX_PIXELS = 16384
OUT = [Output("conditioning", CONDITIONING)]


def strength_input(description: str) -> Any:
    return Float("strength", 1.0, min=0.0, max=10.0, step=0.01, description=description)


def _batch_pair(ctx: Any, name: str, a: Any, b: Any) -> tuple[Any, Any]:
    """`a` and `b` ([B, ...]) with one batch size: a batch of 1 is repeated to the other's."""
    if a.shape[0] == b.shape[0]:
        return a, b
    if b.shape[0] == 1:
        return a, b.expand(a.shape[0], *b.shape[1:])
    if a.shape[0] == 1:
        return a.expand(b.shape[0], *a.shape[1:]), b
    raise input_error(ctx, name, f"{b.shape[0]} prompts against {a.shape[0]}: give one prompt "
                                 "or as many as the other input")  # fmt: skip


def _first(ctx: Any, name: str, cond: Conditioning) -> CondEntry:
    if len(cond.entries) > 1:
        ctx.warn(f"{name} has {len(cond.entries)} entries: only the first is used")
    return cond.entries[0]


def combine(a: Conditioning, b: Conditioning) -> Conditioning:
    return Conditioning(a.entries + b.entries)


def concat(ctx: Any, to: Conditioning, other: Conditioning, other_name: str) -> Conditioning:
    """Each entry of `to` with the first entry of `other`'s tokens appended to its own."""
    import torch

    extra = _first(ctx, other_name, other).embeds

    def joined(entry: CondEntry) -> CondEntry:
        own, more = _batch_pair(ctx, other_name, entry.embeds, extra)
        return replace(entry, embeds=torch.cat([own, more.to(own.dtype)], dim=1))

    return to.map(joined)


def average(ctx: Any, to: Conditioning, other: Conditioning, weight: float,
            other_name: str) -> Conditioning:  # fmt: skip
    """Each entry of `to` as weight × its embeddings + (1 - weight) × the first entry of
    `other`'s (cut or zero-padded to the same token count); pooled embeddings alike (an
    entry without one takes `other`'s)."""
    import torch

    source = _first(ctx, other_name, other)

    def mixed(entry: CondEntry) -> CondEntry:
        own, theirs = _batch_pair(ctx, other_name, entry.embeds, source.embeds)
        theirs = theirs[:, : own.shape[1]].to(own.dtype)
        if theirs.shape[1] < own.shape[1]:
            pad = own.new_zeros(theirs.shape[0], own.shape[1] - theirs.shape[1], own.shape[2])
            theirs = torch.cat([theirs, pad], dim=1)
        pooled = entry.pooled
        if source.pooled is not None:
            pooled = source.pooled if pooled is None else (
                pooled * weight + source.pooled.to(pooled.dtype) * (1.0 - weight))  # fmt: skip
        return replace(entry, embeds=own * weight + theirs * (1.0 - weight), pooled=pooled)

    return to.map(mixed)


def zero_out(cond: Conditioning) -> Conditioning:
    """Every entry's embeddings (and pooled embedding) as zeros of the same shape."""
    import torch

    def zeroed(entry: CondEntry) -> CondEntry:
        pooled = None if entry.pooled is None else torch.zeros_like(entry.pooled)
        return replace(entry, embeds=torch.zeros_like(entry.embeds), pooled=pooled)

    return cond.map(zeroed)


def with_area(cond: Conditioning, area: Area, strength: float) -> Conditioning:
    """Every entry acting on `area` with `strength` (and no longer on a mask's bounds)."""
    return cond.map(lambda e: replace(e, area=area, strength=strength, mask_bounds=False))


def pixel_area(ctx: Any, width: int, height: int, x: int, y: int, scale: int) -> Area:
    """An area given in pixels, in latent cells at `scale` pixels per cell (rounded down); the
    pixels and the node setting them kept for messages (`Area.given`)."""
    return Area(height // scale, width // scale, y // scale, x // scale,
                given=f"x={x}, y={y}, width={width}, height={height}", scale=scale,
                set_by=(ctx.node_id, ctx.node_type))  # fmt: skip


def fraction_area(ctx: Any, width: float, height: float, x: float, y: float) -> Area:
    """An area given in fractions of the image's size (resolved when sampling); the fractions
    and the node setting them kept for messages (`Area.given`)."""
    given = f"x={x:g}, y={y:g}, width={width:g}, height={height:g} (fractions)"
    return Area(height, width, y, x, fractions=True, given=given,
                set_by=(ctx.node_id, ctx.node_type))  # fmt: skip


def with_strength(cond: Conditioning, strength: float) -> Conditioning:
    return cond.map(lambda e: replace(e, strength=strength))


def with_mask(mask: Any, cond: Conditioning, strength: float, bounds: bool) -> Conditioning:
    masks = as_masks(mask)
    return cond.map(lambda e: replace(e, mask=masks, mask_strength=strength, mask_bounds=bounds))


def with_time_range(ctx: Any, cond: Conditioning, start: float, end: float) -> Conditioning:
    if start > end:
        ctx.warn(f"start {start} is after end {end}: the conditioning will never act")
    return cond.map(lambda e: replace(e, start_percent=start, end_percent=end))


@node("CombineConditioning", category="conditioning",
      inputs=[Socket("first", CONDITIONING), Socket("second", CONDITIONING)], outputs=OUT)  # fmt: skip
def combine_conditioning(ctx, first: Conditioning, second: Conditioning):
    """The entries of both: the sampler predicts with each and averages the predictions
    (weighted by strength, per cell for areas and masks)."""
    return combine(first, second)


@node("ConcatConditioning", category="conditioning",
      inputs=[Socket("conditioning", CONDITIONING),
              Socket("extra", CONDITIONING, description="its tokens are appended (its first "
                     "entry's)")],
      outputs=OUT)  # fmt: skip
def concat_conditioning(ctx, conditioning: Conditioning, extra: Conditioning):
    """Each entry with another prompt's tokens appended (longer than 77 tokens, one entry)."""
    return concat(ctx, conditioning, extra, "extra")


@node("AverageConditioning", category="conditioning",
      inputs=[Socket("conditioning", CONDITIONING),
              Socket("other", CONDITIONING, description="mixed in (its first entry)"),
              Float("weight", 1.0, min=0.0, max=1.0, step=0.01,
                    description="how much of `conditioning`: 1 all of it, 0 all of `other`")],
      outputs=OUT)  # fmt: skip
def average_conditioning(ctx, conditioning: Conditioning, other: Conditioning, weight: float = 1.0):
    """A weighted average of two prompts' embeddings, on each entry of `conditioning`."""
    return average(ctx, conditioning, other, weight, "other")


@node("ZeroConditioning", category="conditioning", inputs=[Socket("conditioning", CONDITIONING)],
      outputs=OUT)  # fmt: skip
def zero_conditioning(ctx, conditioning: Conditioning):
    """The same entries with all-zero embeddings (a negative that is no prompt at all)."""
    return zero_out(conditioning)


@node(
    "ConditioningArea", category="conditioning",
    inputs=[Socket("conditioning", CONDITIONING),
            Int("width", 64, min=8, max=MAX_PIXELS, step=8, description="in pixels"),
            Int("height", 64, min=8, max=MAX_PIXELS, step=8),
            Int("x", 0, min=0, max=MAX_PIXELS, step=8, description="left edge, in pixels"),
            Int("y", 0, min=0, max=MAX_PIXELS, step=8, description="top edge, in pixels"),
            strength_input("weight against other entries on the same cells"),
            Socket("vae", VAE, optional=True, description="gives the pixels per latent cell "
                   f"(else {DEFAULT_SCALE}, SD's)")],
    outputs=OUT,
)  # fmt: skip
def conditioning_area(ctx, conditioning: Conditioning, width: int = 64, height: int = 64,
                      x: int = 0, y: int = 0, strength: float = 1.0,
                      vae: VAEModel | None = None):  # fmt: skip
    """Make each entry act on a rectangle of the image only (given in pixels, rounded down to
    latent cells); its edges inside the image fade in over 8 cells."""
    scale = vae.scale_factor if vae is not None else DEFAULT_SCALE
    if width < scale or height < scale:
        raise input_error(ctx, "width" if width < scale else "height",
                          f"smaller than one latent cell ({scale} pixels)")  # fmt: skip
    return with_area(conditioning, pixel_area(ctx, width, height, x, y, scale), strength)


def _fraction(name: str, default: float, description: str = "") -> Any:
    return Float(name, default, min=0.0, max=1.0, step=0.01, description=description)


@node(
    "ConditioningAreaFraction", category="conditioning",
    inputs=[Socket("conditioning", CONDITIONING),
            _fraction("width", 1.0, "of the image's width"), _fraction("height", 1.0),
            _fraction("x", 0.0, "left edge"), _fraction("y", 0.0, "top edge"),
            strength_input("weight against other entries on the same cells")],
    outputs=OUT,
)  # fmt: skip
def conditioning_area_fraction(ctx, conditioning: Conditioning, width: float = 1.0,
                               height: float = 1.0, x: float = 0.0, y: float = 0.0,
                               strength: float = 1.0):  # fmt: skip
    """Make each entry act on a rectangle given as fractions of the image's size (resolved
    against the latent when sampling, so it fits any size)."""
    return with_area(conditioning, fraction_area(ctx, width, height, x, y), strength)


@node("ConditioningStrength", category="conditioning",
      inputs=[Socket("conditioning", CONDITIONING),
              strength_input("weight against other entries on the same cells")],
      outputs=OUT)  # fmt: skip
def conditioning_strength(ctx, conditioning: Conditioning, strength: float = 1.0):
    """Set each entry's weight in the per-cell average of predictions."""
    return with_strength(conditioning, strength)


@node(
    "ConditioningMask", category="conditioning",
    inputs=[Socket("conditioning", CONDITIONING),
            Socket("mask", MASK, description="where the entry acts (resized to the latent)"),
            strength_input("multiplies the mask"),
            Bool("mask_bounds", False, description="run the UNet on the mask's bounding box "
                 "only, not the whole image")],
    outputs=OUT,
)  # fmt: skip
def conditioning_mask(ctx, conditioning: Conditioning, mask: Any, strength: float = 1.0,
                      mask_bounds: bool = False):  # fmt: skip
    """Make each entry act through a mask: its prediction weighs mask × strength per cell."""
    return with_mask(mask, conditioning, strength, mask_bounds)


@node(
    "ConditioningTimeRange", category="conditioning",
    inputs=[Socket("conditioning", CONDITIONING),
            Float("start", 0.0, min=0.0, max=1.0, step=0.001,
                  description="from this fraction of the noise levels (0: the noisiest)"),
            Float("end", 1.0, min=0.0, max=1.0, step=0.001,
                  description="to this fraction (1: the end)")],
    outputs=OUT,
)  # fmt: skip
def conditioning_time_range(ctx, conditioning: Conditioning, start: float = 0.0,
                            end: float = 1.0):  # fmt: skip
    """Make each entry act only while sampling between two noise levels (fractions of the
    model's timesteps, 0 the noisiest, as ComfyUI's start/end percent)."""
    return with_time_range(ctx, conditioning, start, end)
