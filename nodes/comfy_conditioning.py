"""ComfyUI's conditioning nodes, with ComfyUI's names, inputs, ranges and widget order, as thin
adapters over nodes/conditioning.py. ComfyUI stores an area given in pixels in units of 8
pixels (pixels // 8), whatever the VAE; so do these.

Installed with the classic nodes (`comfy_registry`, see nodes/comfy.py).
"""

from __future__ import annotations

from typing import Any

from latentgraph.graph import CONDITIONING, MASK, Choice, Float, Int, Output, Socket, node

from . import conditioning as cn
from .comfy import MAX_RESOLUTION, comfy_registry
from .values import Conditioning

OUT = [Output("CONDITIONING", CONDITIONING)]
COMFY_SCALE = 8  # ComfyUI's unit for areas given in pixels
SET_COND_AREA = ["default", "mask bounds"]


def _comfy(name: str, display_name: str, inputs: list, category: str = "conditioning"):
    return node(name, display_name=display_name, category=category, inputs=inputs, outputs=OUT,
                registry=comfy_registry)  # fmt: skip


def _pixels(name: str, default: int, minimum: int) -> Any:
    return Int(name, default, min=minimum, max=MAX_RESOLUTION, step=8)


def _fraction(name: str, default: float) -> Any:
    return Float(name, default, min=0.0, max=1.0, step=0.01)


STRENGTH = Float("strength", 1.0, min=0.0, max=10.0, step=0.01)


@_comfy("ConditioningCombine", "Conditioning (Combine)",
        [Socket("conditioning_1", CONDITIONING), Socket("conditioning_2", CONDITIONING)])  # fmt: skip
def conditioning_combine(ctx, conditioning_1: Conditioning, conditioning_2: Conditioning):
    """Both conditionings' entries (see CombineConditioning)."""
    return cn.combine(conditioning_1, conditioning_2)


@_comfy("ConditioningConcat", "Conditioning (Concat)",
        [Socket("conditioning_to", CONDITIONING), Socket("conditioning_from", CONDITIONING)])  # fmt: skip
def conditioning_concat(ctx, conditioning_to: Conditioning, conditioning_from: Conditioning):
    """conditioning_from's tokens appended to each entry (see ConcatConditioning)."""
    return cn.concat(ctx, conditioning_to, conditioning_from, "conditioning_from")


@_comfy("ConditioningAverage", "Conditioning (Average)",
        [Socket("conditioning_to", CONDITIONING), Socket("conditioning_from", CONDITIONING),
         Float("conditioning_to_strength", 1.0, min=0.0, max=1.0, step=0.01)])  # fmt: skip
def conditioning_average(ctx, conditioning_to: Conditioning, conditioning_from: Conditioning,
                         conditioning_to_strength: float):  # fmt: skip
    """A weighted average of two prompts' embeddings (see AverageConditioning)."""
    return cn.average(ctx, conditioning_to, conditioning_from, conditioning_to_strength,
                      "conditioning_from")  # fmt: skip


@_comfy("ConditioningZeroOut", "ConditioningZeroOut", [Socket("conditioning", CONDITIONING)],
        category="advanced/conditioning")  # fmt: skip
def conditioning_zero_out(ctx, conditioning: Conditioning):
    """All-zero embeddings (see ZeroConditioning)."""
    return cn.zero_out(conditioning)


@_comfy("ConditioningSetArea", "Conditioning (Set Area)",
        [Socket("conditioning", CONDITIONING), _pixels("width", 64, 64),
         _pixels("height", 64, 64), _pixels("x", 0, 0), _pixels("y", 0, 0), STRENGTH])  # fmt: skip
def conditioning_set_area(ctx, conditioning: Conditioning, width: int, height: int, x: int,
                          y: int, strength: float):  # fmt: skip
    """An area in pixels, stored as ComfyUI does in units of 8 (see ConditioningArea)."""
    area = cn.pixel_area(ctx, width, height, x, y, COMFY_SCALE)
    return cn.with_area(conditioning, area, strength)


@_comfy("ConditioningSetAreaPercentage", "Conditioning (Set Area with Percentage)",
        [Socket("conditioning", CONDITIONING), _fraction("width", 1.0), _fraction("height", 1.0),
         _fraction("x", 0.0), _fraction("y", 0.0), STRENGTH])  # fmt: skip
def conditioning_set_area_percentage(ctx, conditioning: Conditioning, width: float,
                                     height: float, x: float, y: float, strength: float):  # fmt: skip
    """An area in fractions of the image (see ConditioningAreaFraction)."""
    return cn.with_area(conditioning, cn.fraction_area(ctx, width, height, x, y), strength)


@_comfy("ConditioningSetAreaStrength", "ConditioningSetAreaStrength",
        [Socket("conditioning", CONDITIONING), STRENGTH])  # fmt: skip
def conditioning_set_area_strength(ctx, conditioning: Conditioning, strength: float):
    """Each entry's weight (see ConditioningStrength)."""
    return cn.with_strength(conditioning, strength)


@_comfy("ConditioningSetMask", "Conditioning (Set Mask)",
        [Socket("conditioning", CONDITIONING), Socket("mask", MASK), STRENGTH,
         Choice("set_cond_area", SET_COND_AREA, "default")])  # fmt: skip
def conditioning_set_mask(ctx, conditioning: Conditioning, mask: Any, strength: float,
                          set_cond_area: str):  # fmt: skip
    """Each entry through a mask; "mask bounds" runs it on the mask's box (see
    ConditioningMask)."""
    return cn.with_mask(mask, conditioning, strength, set_cond_area == "mask bounds")


@_comfy("ConditioningSetTimestepRange", "ConditioningSetTimestepRange",
        [Socket("conditioning", CONDITIONING),
         Float("start", 0.0, min=0.0, max=1.0, step=0.001),
         Float("end", 1.0, min=0.0, max=1.0, step=0.001)],
        category="advanced/conditioning")  # fmt: skip
def conditioning_set_timestep_range(ctx, conditioning: Conditioning, start: float, end: float):
    """Each entry acting between two noise levels (see ConditioningTimeRange)."""
    return cn.with_time_range(ctx, conditioning, start, end)
