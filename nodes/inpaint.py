"""Inpainting nodes: a noise mask on latents, encoding an image for inpainting, and the
conditioning an inpainting (9-channel) model needs. ComfyUI's names are adapters in
nodes/comfy_inpaint.py; the sampler's side is nodes/inpaint_sampling.py.

Masks (MASK [B, H, W], 1 = repaint) are resized to the image bilinearly and cut like the image
when its sides are cropped to multiples of the VAE's scale factor. The greyed-out pixels and
the grown mask follow ComfyUI's rules: pixels where the rounded mask is 1 become mid grey (0.5)
before encoding, so no trace of what is to be replaced reaches the model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from latentgraph.graph import (
    CONDITIONING,
    IMAGE,
    LATENT,
    MASK,
    VAE,
    Bool,
    Int,
    Output,
    Socket,
    node,
)

from .compositing import as_masks, resize_masks
from .resize import match_batch
from .vae import encode, fit_to_scale
from .values import Conditioning, InpaintImage, Latent, VAEModel

MAX_GROW = 64
GREY = 0.5

GROW_MASK_BY = Int("grow_mask_by", 6, min=0, max=MAX_GROW,
                   description="pixels to grow the noise mask by (each masked pixel becomes a "
                               "square this wide), so the repainted part blends in")  # fmt: skip
NOISE_MASK = Bool("noise_mask", True,
                  description="also put the mask on the latent, so sampling changes only the "
                              "masked part")  # fmt: skip
# The inputs of the two nodes, declared once (ComfyUI's adapters take the same).
ENCODE_INPUTS = [Socket("pixels", IMAGE), Socket("vae", VAE), Socket("mask", MASK), GROW_MASK_BY]
CONDITIONING_INPUTS = [Socket("positive", CONDITIONING), Socket("negative", CONDITIONING),
                       Socket("vae", VAE), Socket("pixels", IMAGE), Socket("mask", MASK),
                       NOISE_MASK]  # fmt: skip
CONDITIONING_OUTPUTS = [Output("positive", CONDITIONING), Output("negative", CONDITIONING),
                        Output("latent", LATENT)]  # fmt: skip


def grow(mask: Any, by: int) -> Any:
    """The rounded mask grown so each masked pixel becomes a `by` x `by` square (reaching
    floor((by - 1) / 2) pixels up and left, the rest down and right): ComfyUI's grow_mask_by
    (a box convolution padded by ceil((by - 1) / 2)). A max filter over that window."""
    import torch.nn.functional as F

    masks = as_masks(mask).round()
    if by <= 1:
        return masks
    before = by // 2  # the padding before: ceil((by - 1) / 2)
    after = by - 1 - before
    padded = F.pad(masks[:, None], (before, after, before, after))
    return F.max_pool2d(padded, kernel_size=by, stride=1)[:, 0]


def grey_out(pixels: Any, mask: Any) -> Any:
    """The images with every pixel under the rounded mask set to mid grey."""
    keep = (1.0 - as_masks(mask).round())[..., None]
    return (pixels[..., :3] - GREY) * keep + GREY


def fit_mask(ctx: Any, vae: VAEModel, pixels: Any, mask: Any) -> tuple[Any, Any]:
    """(images, masks [B, H, W]) cut to the VAE's scale factor; the mask first resized to the
    images' size and given their batch."""
    height, width = pixels.shape[1:3]
    masks = as_masks(mask)
    if tuple(masks.shape[-2:]) != (height, width):
        masks = resize_masks(masks, height, width)
    images, (rows, cols) = fit_to_scale(ctx, vae, pixels, "pixels")
    return images, match_batch(masks[:, rows, cols], images.shape[0])


@node(
    "SetLatentNoiseMask",
    display_name="Set Latent Noise Mask",
    category="latent/inpaint",
    inputs=[Socket("samples", LATENT), Socket("mask", MASK,
                                              description="where sampling may change the latent")],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def set_latent_noise_mask(ctx, samples: Latent, mask):
    """The latent with a noise mask: samplers keep it as it is outside the mask."""
    return replace(samples, noise_mask=as_masks(mask).clone())


@node(
    "InpaintEncode",
    category="latent/inpaint",
    inputs=ENCODE_INPUTS,
    outputs=[Output("latent", LATENT)],
)
def inpaint_encode(ctx, pixels, vae: VAEModel, mask, grow_mask_by: int = 6):
    """Encode an image for inpainting: the masked part greyed out first, the grown mask as the
    latent's noise mask."""
    images, masks = fit_mask(ctx, vae, pixels, mask)
    samples = encode(ctx, vae, grey_out(images, masks))
    return Latent(samples, None, is_noise=False, noise_mask=grow(masks, grow_mask_by))


def with_inpaint_image(cond: Conditioning, image: InpaintImage) -> Conditioning:
    """The conditioning with the inpainting UNet's extra input set on every entry."""
    return cond.map(lambda entry: replace(entry, inpaint=image))


@node(
    "InpaintConditioning",
    category="conditioning/inpaint",
    inputs=CONDITIONING_INPUTS,
    outputs=CONDITIONING_OUTPUTS,
)
def inpaint_conditioning(ctx, positive: Conditioning, negative: Conditioning, vae: VAEModel,
                         pixels, mask, noise_mask: bool = True):  # fmt: skip
    """For an inpainting model: both conditionings carry the masked image's latents and the
    mask (the UNet's extra channels); the latent is the whole image encoded (with the mask as
    its noise mask unless `noise_mask` is off)."""
    images, masks = fit_mask(ctx, vae, pixels, mask)
    image = InpaintImage(encode(ctx, vae, grey_out(images, masks)), masks)
    latent = Latent(encode(ctx, vae, images), None, is_noise=False,
                    noise_mask=masks.clone() if noise_mask else None)  # fmt: skip
    return with_inpaint_image(positive, image), with_inpaint_image(negative, image), latent
