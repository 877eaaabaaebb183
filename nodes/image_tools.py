"""Image tools: resize, invert, batch, blank images, composite, crop, blend, size, and padding
for outpainting, each under ComfyUI's name with its inputs. A tool ComfyUI has none of goes here
too, under a name ComfyUI does not use (docs/contributing.md).

IMAGE is float32 [B, H, W, C] in 0..1 (C is 3, or 4 with alpha); results stay in 0..1.
"""

from __future__ import annotations

import math
from typing import Any

from latentgraph.graph import IMAGE, INT, MASK, Choice, Float, Int, Output, Socket, node
from latentgraph.graph.context import BATCH_LIMITS, SIZE_LIMITS

from .canvas import check_canvas
from .compositing import RESIZE_SOURCE, SOURCE_MASK, paste
from .resize import (
    CROPS,
    METHODS,
    batch_window,
    center_crop,
    match_batch,
    resize,
    scaled_size,
    target_size,
)
from .values import enforce_limits

MAX_SIZE = 16384
BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")


def resize_images(ctx: Any, input_name: str, image: Any, height: int, width: int, method: str,
                  crop: str = "disabled") -> Any:  # fmt: skip
    """Images resized to height x width (an error naming `input_name` over the pixel limit)."""
    check_canvas(ctx, input_name, width, height, image.shape[0])
    out = resize(image.movedim(-1, 1), height, width, method, crop).movedim(1, -1)
    return out.clamp(0.0, 1.0).contiguous()


def _fit(image: Any, like: Any, method: str) -> Any:
    """`image` resized (centre crop) to the height and width of `like`, channels matched."""
    height, width = like.shape[1:3]
    if image.shape[1:3] != (height, width):
        cropped = center_crop(image.movedim(-1, 1), height, width)
        image = resize(cropped, height, width, method).movedim(1, -1).clamp(0.0, 1.0)
    return _channels(image, like.shape[-1])


def _channels(image: Any, count: int) -> Any:
    """RGB ↔ RGBA: drop alpha, or add an opaque one."""
    import torch

    if image.shape[-1] == count:
        return image
    if image.shape[-1] > count:
        return image[..., :count]
    return torch.cat([image, image.new_ones((*image.shape[:3], count - image.shape[-1]))], -1)


@node(
    "ImageScale",
    display_name="Upscale Image",
    category="image/upscaling",
    inputs=[Socket("image", IMAGE), Choice("upscale_method", list(METHODS)),
            Int("width", 512, min=0, max=MAX_SIZE, limit="max_image_pixels"),
            Int("height", 512, min=0, max=MAX_SIZE, limit="max_image_pixels"),
            Choice("crop", list(CROPS), description="center: cut to the new aspect ratio first")],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def image_scale(ctx, image, upscale_method: str, width: int = 512, height: int = 512,
                crop: str = "disabled"):  # fmt: skip
    """Resize images to width x height (0 keeps the aspect ratio from the other side)."""
    size = target_size(*image.shape[1:3], height, width)
    if size is None:
        return image
    return resize_images(ctx, "width", image, *size, upscale_method, crop)


@node(
    "ImageScaleBy",
    display_name="Upscale Image By",
    category="image/upscaling",
    inputs=[Socket("image", IMAGE), Choice("upscale_method", list(METHODS)),
            Float("scale_by", 1.0, min=0.01, max=8.0, step=0.01)],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def image_scale_by(ctx, image, upscale_method: str, scale_by: float = 1.0):
    """Resize images by a factor."""
    size = scaled_size(*image.shape[1:3], scale_by)
    return resize_images(ctx, "scale_by", image, *size, upscale_method)


@node(
    "ImageScaleToTotalPixels",
    display_name="Scale Image to Total Pixels",
    category="image/upscaling",
    inputs=[Socket("image", IMAGE), Choice("upscale_method", list(METHODS)),
            Float("megapixels", 1.0, min=0.01, max=16.0, step=0.01,
                  description="target size in units of 1024 x 1024 pixels"),
            Int("resolution_steps", 1, min=1, max=256, optional=True,
                description="round width and height to multiples of this")],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def image_scale_to_total_pixels(ctx, image, upscale_method: str, megapixels: float = 1.0,
                                resolution_steps: int = 1):  # fmt: skip
    """Resize images, keeping the aspect ratio, to about `megapixels` x 1024 x 1024 pixels."""
    h, w = image.shape[1:3]
    scale = math.sqrt(megapixels * 1024 * 1024 / (w * h))
    step = max(1, resolution_steps)
    new_w = max(step, round(w * scale / step) * step)
    new_h = max(step, round(h * scale / step) * step)
    return resize_images(ctx, "megapixels", image, new_h, new_w, upscale_method)


@node("ImageInvert", display_name="Invert Image", category="image",
      inputs=[Socket("image", IMAGE)], outputs=[Output("IMAGE", IMAGE)])  # fmt: skip
def image_invert(ctx, image):
    """1 - image (a negative)."""
    return 1.0 - image


@node(
    "ImageBatch",
    display_name="Batch Images",
    category="image",
    inputs=[Socket("image1", IMAGE), Socket("image2", IMAGE)],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def image_batch(ctx, image1, image2):
    """One batch: image1's images, then image2's (resized to image1's size if needed)."""
    import torch

    h, w = image1.shape[1:3]
    check_canvas(ctx, "image2", w, h, image1.shape[0] + image2.shape[0])
    return torch.cat([image1, _fit(image2, image1, "bilinear").to(image1.dtype)])


@node(
    "RepeatImageBatch",
    display_name="RepeatImageBatch",
    category="image/batch",
    inputs=[Socket("image", IMAGE),
            Int("amount", 1, min=1, max=4096, limit="max_batch",
                description="how many times the whole batch is repeated")],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def repeat_image_batch(ctx, image, amount: int = 1):
    """The batch repeated `amount` times (images 0..n-1, then 0..n-1 again, ...); the batch
    made answers to the batch limits, as ImageBatch's does."""
    h, w = image.shape[1:3]
    check_canvas(ctx, "amount", w, h, image.shape[0] * amount)
    return image.repeat((amount, 1, 1, 1))


@node(
    "ImageFromBatch",
    display_name="ImageFromBatch",
    category="image/batch",
    inputs=[Socket("image", IMAGE), Int("batch_index", 0, min=0, max=4095),
            Int("length", 1, min=1, max=4096)],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def image_from_batch(ctx, image, batch_index: int = 0, length: int = 1):
    """Images batch_index .. batch_index + length - 1 of a batch (the last one if past the
    end), as LatentFromBatch picks rows."""
    return image[batch_window(image.shape[0], batch_index, length)].clone()


@node(
    "EmptyImage",
    display_name="Empty Image",
    category="image",
    inputs=[Int("width", 512, min=1, max=MAX_SIZE, limit=SIZE_LIMITS),
            Int("height", 512, min=1, max=MAX_SIZE, limit=SIZE_LIMITS),
            Int("batch_size", 1, min=1, max=4096, limit=BATCH_LIMITS),
            Int("color", 0, min=0, max=0xFFFFFF, description="0xRRGGBB, e.g. 16777215 white")],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def empty_image(ctx, width: int = 512, height: int = 512, batch_size: int = 1, color: int = 0):
    """A batch of width x height images of one colour."""
    import torch

    enforce_limits(ctx, empty_image, width=width, height=height, batch_size=batch_size)
    rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF]) / 255.0
    return rgb.float().expand(batch_size, height, width, 3).contiguous()


@node(
    "ImageCompositeMasked",
    display_name="Image Composite Masked",
    category="image",
    inputs=[Socket("destination", IMAGE), Socket("source", IMAGE),
            Int("x", 0, min=0, max=MAX_SIZE), Int("y", 0, min=0, max=MAX_SIZE),
            RESIZE_SOURCE, SOURCE_MASK],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def image_composite_masked(ctx, destination, source, x: int = 0, y: int = 0,
                           resize_source: bool = False, mask: Any = None):  # fmt: skip
    """Paste `source` into `destination` at (x, y) through an optional mask."""
    src = _channels(source, destination.shape[-1]).movedim(-1, 1)
    if resize_source:
        src = resize(src, *destination.shape[1:3], "bilinear")
    out = paste(destination.movedim(-1, 1), src, x, y, mask)
    return out.movedim(1, -1).clamp(0.0, 1.0).contiguous()


@node(
    "ImageCrop",
    display_name="Image Crop",
    category="image/transform",
    inputs=[Socket("image", IMAGE),
            Int("width", 512, min=1, max=MAX_SIZE), Int("height", 512, min=1, max=MAX_SIZE),
            Int("x", 0, min=0, max=MAX_SIZE), Int("y", 0, min=0, max=MAX_SIZE)],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def image_crop(ctx, image, width: int = 512, height: int = 512, x: int = 0, y: int = 0):
    """The width x height area at (x, y), cut at the image's edges (an origin past the edge
    moves back to the last row or column)."""
    h, w = image.shape[1:3]
    left, top = min(x, w - 1), min(y, h - 1)
    return image[:, top : top + height, left : left + width].clone()


def blend(a: Any, b: Any, mode: str) -> Any:
    """The blend-mode result of a (base) and b (layer), both in 0..1."""
    import torch

    if mode == "normal":
        return b
    if mode == "multiply":
        return a * b
    if mode == "screen":
        return 1 - (1 - a) * (1 - b)
    if mode == "overlay":
        return torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    if mode == "soft_light":
        d = torch.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, torch.sqrt(a))
        return torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (d - a))
    if mode == "difference":
        return a - b  # ComfyUI's (signed; the result is clamped), so its workflows match
    raise ValueError(f"unknown blend mode {mode!r}; one of: {', '.join(BLEND_MODES)}")


@node(
    "ImageBlend",
    display_name="Image Blend",
    category="image/postprocessing",
    inputs=[Socket("image1", IMAGE), Socket("image2", IMAGE),
            Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01,
                  description="weight of the blended result (0: image1 unchanged)"),
            Choice("blend_mode", list(BLEND_MODES), "normal")],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def image_blend(ctx, image1, image2, blend_factor: float = 0.5, blend_mode: str = "normal"):
    """image1 mixed with blend_mode(image1, image2) by blend_factor; image2 is resized to fit."""
    layer = match_batch(_fit(image2, image1, "bicubic"), image1.shape[0]).to(image1.dtype)
    mixed = image1 * (1 - blend_factor) + blend(image1, layer, blend_mode) * blend_factor
    return mixed.clamp(0.0, 1.0)


@node(
    "GetImageSize",
    display_name="Get Image Size",
    category="image",
    inputs=[Socket("image", IMAGE)],
    outputs=[Output("width", INT), Output("height", INT), Output("batch_size", INT)],
)  # fmt: skip
def get_image_size(ctx, image):
    """Width, height and batch size of an image batch."""
    return int(image.shape[2]), int(image.shape[1]), int(image.shape[0])


def outpaint_feather(height: int, width: int, feathering: int,
                     sides: tuple[bool, bool, bool, bool]) -> Any:  # fmt: skip
    """Mask values over the original picture: rising (squared) from 0 to near 1 within
    `feathering` pixels of each padded side (top, bottom, left, right); 0 elsewhere, and 0
    everywhere when the picture is too small for the feathering."""
    import torch

    if feathering <= 0 or feathering * 2 >= height or feathering * 2 >= width:
        return torch.zeros((height, width))
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    far = torch.full((height, width), float(max(height, width)))
    top, bottom, left, right = sides
    distance = torch.stack([rows if top else far, (height - rows) if bottom else far,
                            cols if left else far, (width - cols) if right else far]).amin(0)  # fmt: skip
    rise = ((feathering - distance) / feathering).clamp(min=0.0)
    return rise * rise


@node(
    "ImagePadForOutpaint",
    display_name="Pad Image for Outpainting",
    category="image",
    inputs=[Socket("image", IMAGE),
            Int("left", 0, min=0, max=MAX_SIZE, step=8), Int("top", 0, min=0, max=MAX_SIZE, step=8),
            Int("right", 0, min=0, max=MAX_SIZE, step=8),
            Int("bottom", 0, min=0, max=MAX_SIZE, step=8),
            Int("feathering", 40, min=0, max=MAX_SIZE,
                description="pixels of the picture, next to the new area, that may change too")],
    outputs=[Output("IMAGE", IMAGE), Output("MASK", MASK)],
)  # fmt: skip
def image_pad_for_outpaint(ctx, image, left: int = 0, top: int = 0, right: int = 0,
                           bottom: int = 0, feathering: int = 40):  # fmt: skip
    """A bigger canvas (mid grey) around the picture, and the mask of what to paint: 1 on the
    new area, fading into the picture over `feathering` pixels."""
    import torch

    batch, h, w, c = image.shape
    height, width = h + top + bottom, w + left + right
    check_canvas(ctx, "left", width, height, batch)
    canvas = torch.full((batch, height, width, c), 0.5, dtype=image.dtype)
    canvas[:, top : top + h, left : left + w] = image
    mask = torch.ones((1, height, width), dtype=torch.float32)
    sides = (top > 0, bottom > 0, left > 0, right > 0)
    mask[0, top : top + h, left : left + w] = outpaint_feather(h, w, feathering, sides)
    return canvas, mask
