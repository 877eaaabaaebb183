"""Mask nodes, with ComfyUI's names and inputs.

A MASK is float32 [B, H, W] in 0..1 on the CPU; 1 marks what is to change (inpainting) or what
a source covers (composites). Masks from LoadImage/LoadImageMask come from alpha as
`1 - alpha`, so a transparent hole is the area to repaint. Nodes accept [H, W] masks too
(older plugins make them) and always give [B, H, W].
"""

from __future__ import annotations

from typing import Any

from latentgraph.graph import IMAGE, MASK, Bool, Choice, Float, Int, Output, Socket, node

from . import input_files
from .compositing import as_masks, resize_masks
from .images import read_input_image
from .resize import match_batch
from .values import enforce_limits

MAX_SIZE = 16384
CHANNELS = ("red", "green", "blue", "alpha")
OPERATIONS = ("multiply", "add", "subtract", "and", "or", "xor")


def mask_from_channel(picture: Any, channel: str) -> Any:
    """MASK [1, H, W] from one channel of a PIL image; alpha is inverted (transparent → 1).
    A picture without an alpha channel counts as opaque."""
    import numpy as np
    import torch

    band = channel[0].upper()
    rgba = picture if picture.mode == "RGBA" else picture.convert("RGBA")
    values = np.asarray(rgba.getchannel(band), dtype=np.float32) / 255.0
    mask = torch.from_numpy(values.copy())[None]
    return 1.0 - mask if band == "A" else mask


@node(
    "LoadImageMask",
    display_name="Load Image (as Mask)",
    category="mask",
    inputs=[input_files.image_choice(),
            Choice("channel", ["alpha", "red", "green", "blue"], "alpha",
                   description="alpha gives 1 where the picture is transparent")],
    outputs=[Output("MASK", MASK)],
    identity=input_files.identity,
)  # fmt: skip
def load_image_mask(ctx, image: str, channel: str = "alpha"):
    """A mask from one channel of an image in the input folder."""
    return mask_from_channel(read_input_image(ctx, image), channel)


@node("InvertMask", display_name="Invert Mask", category="mask",
      inputs=[Socket("mask", MASK)], outputs=[Output("MASK", MASK)])  # fmt: skip
def invert_mask(ctx, mask):
    """1 - mask: what was kept is changed and the other way round."""
    return 1.0 - as_masks(mask)


@node(
    "GrowMask",
    display_name="Grow Mask",
    category="mask",
    inputs=[Socket("mask", MASK),
            Int("expand", 0, min=-MAX_SIZE, max=MAX_SIZE,
                description="pixels to grow by (negative: shrink)"),
            Bool("tapered_corners", True,
                 description="grow by a cross (rounder corners) instead of a square")],
    outputs=[Output("MASK", MASK)],
)  # fmt: skip
def grow_mask(ctx, mask, expand: int = 0, tapered_corners: bool = True):
    """Grow (or shrink) a mask by `expand` pixels: grey dilation (erosion) with a 3x3 kernel."""
    import numpy as np
    import torch
    from scipy import ndimage

    masks = as_masks(mask)
    if expand == 0:
        return masks.clone()
    corner = 0 if tapered_corners else 1
    footprint = np.array([[corner, 1, corner], [1, 1, 1], [corner, 1, corner]], dtype=bool)
    operation = ndimage.grey_dilation if expand > 0 else ndimage.grey_erosion
    out = []
    for m in masks.numpy():
        for _ in range(abs(expand)):
            ctx.check_cancelled()
            m = operation(m, footprint=footprint)
        out.append(torch.from_numpy(np.ascontiguousarray(m)))
    return torch.stack(out)


@node("ImageToMask", display_name="Convert Image to Mask", category="mask",
      inputs=[Socket("image", IMAGE), Choice("channel", list(CHANNELS), "red")],
      outputs=[Output("MASK", MASK)])  # fmt: skip
def image_to_mask(ctx, image, channel: str = "red"):
    """One channel of an image batch as masks (alpha of an RGB image: all 1s, opaque)."""
    import torch

    index = CHANNELS.index(channel)
    if index >= image.shape[-1]:
        return torch.ones(image.shape[:3], dtype=torch.float32)
    return image[..., index].float().clone()


@node("MaskToImage", display_name="Convert Mask to Image", category="mask",
      inputs=[Socket("mask", MASK)], outputs=[Output("IMAGE", IMAGE)])  # fmt: skip
def mask_to_image(ctx, mask):
    """Masks as grey images (1 → white)."""
    return as_masks(mask)[..., None].expand(-1, -1, -1, 3).contiguous()


@node(
    "SolidMask",
    display_name="Solid Mask",
    category="mask",
    inputs=[Float("value", 1.0, min=0.0, max=1.0, step=0.01),
            Int("width", 512, min=1, max=MAX_SIZE, limit="max_image_pixels"),
            Int("height", 512, min=1, max=MAX_SIZE, limit="max_image_pixels")],
    outputs=[Output("MASK", MASK)],
)  # fmt: skip
def solid_mask(ctx, value: float = 1.0, width: int = 512, height: int = 512):
    """A width x height mask filled with `value`."""
    import torch

    enforce_limits(ctx, solid_mask, width=width, height=height)
    return torch.full((1, height, width), float(value), dtype=torch.float32)


def combine(destination: Any, source: Any, operation: str) -> Any:
    """Two equal-sized mask regions combined; logic operations round each to 0 or 1 first."""
    if operation == "multiply":
        return destination * source
    if operation == "add":
        return destination + source
    if operation == "subtract":
        return destination - source
    a, b = destination.round().bool(), source.round().bool()
    logic = {"and": a & b, "or": a | b, "xor": a ^ b}[operation]
    return logic.float()


@node(
    "MaskComposite",
    display_name="Mask Composite",
    category="mask",
    inputs=[Socket("destination", MASK), Socket("source", MASK),
            Int("x", 0, min=0, max=MAX_SIZE), Int("y", 0, min=0, max=MAX_SIZE),
            Choice("operation", list(OPERATIONS), "multiply")],
    outputs=[Output("MASK", MASK)],
)  # fmt: skip
def mask_composite(ctx, destination, source, x: int = 0, y: int = 0,
                   operation: str = "multiply"):  # fmt: skip
    """Combine `source` into `destination` at (x, y); the result is clamped to 0..1."""
    out = as_masks(destination).clone()
    src = match_batch(as_masks(source), out.shape[0])
    bottom, right = min(out.shape[1], y + src.shape[1]), min(out.shape[2], x + src.shape[2])
    if bottom > y and right > x:
        region = out[:, y:bottom, x:right]
        out[:, y:bottom, x:right] = combine(region, src[:, : bottom - y, : right - x], operation)
    return out.clamp(0.0, 1.0)


@node(
    "JoinImageWithAlpha",
    display_name="Join Image with Alpha",
    category="mask/compositing",
    inputs=[Socket("image", IMAGE), Socket("alpha", MASK,
                                           description="a mask: 1 becomes transparent")],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def join_image_with_alpha(ctx, image, alpha):
    """An RGBA image whose alpha is 1 - mask (the mask resized to the image)."""
    import torch

    batch = max(image.shape[0], as_masks(alpha).shape[0])
    rgb = match_batch(image[..., :3], batch)
    masks = match_batch(resize_masks(as_masks(alpha), *image.shape[1:3]), batch)
    return torch.cat([rgb, (1.0 - masks)[..., None]], dim=-1)
