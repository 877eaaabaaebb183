"""VAEDecode (LATENT → IMAGE) and VAEEncode (IMAGE → LATENT), with ComfyUI's input names.

IMAGE is float32 [B, H, W, C] in 0..1 on the CPU. Tiled decoding (large images in bounded
memory) and sliced decoding (one image at a time) are per-node inputs, defaulting to the run's
`vae_tiling` / `vae_slicing` options; they never switch modes on the shared VAE module.
ComfyUI's VAEDecode has neither (`comfy_extra`): its files hold no values for them, and the
editor shows them as input sockets.

The one tiler is diffusers' (AutoencoderKL's `tiled_decode`, and its tiled encode): tiles of
the VAE's own size (its config's `sample_size`: 512 pixels for SD 1.5, a quarter overlapping),
or of a `Tiles` size, for ComfyUI's VAEDecodeTiled and VAEEncodeTiled (nodes/comfy_vae.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from latentgraph.graph import IMAGE, LATENT, VAE, Bool, Output, Socket, node

from . import runtime
from .values import Latent, VAEModel, input_error


@dataclass(frozen=True)
class Tiles:
    """Tiles of a tiled decode or encode, in pixels: a side and the overlap of neighbours
    (ComfyUI's `tile_size` and `overlap`)."""

    size: int
    overlap: int


def overlap_factor(cells: int, overlap: int, scale: int) -> float:
    """The overlap diffusers' tiler is given, a fraction of a tile of `cells` latent cells
    (`scale` pixels each). It multiplies that fraction by the tile's cells and pixels and
    rounds each product down, so a fraction such as 6/33 came out a cell short and the tiles
    no longer met (an image a few pixels off): the fraction of the largest overlap up to
    `overlap` cells whose every product is whole."""
    for cut in range(overlap, 0, -1):
        f = cut / cells
        if all(int(n * f) == cut * n // cells and int(n * (1 - f)) == n - cut * n // cells
               for n in (cells, cells * scale)):  # fmt: skip
            return f
    return 0.0


def tiler(vae: VAEModel, tiles: Tiles | None) -> Any:
    """The VAE module that tiles: a shallow copy (a new attribute dict; the submodules and
    weights are the shared module's) with diffusers' `use_tiling` set and, for `tiles`, its
    tile attributes (whole latent cells, the overlap at most a quarter of the tile; None: the
    VAE's own), so the shared module never changes under another run."""
    own = copy.copy(vae.vae)
    own.use_tiling = True
    if tiles is not None:
        f = vae.scale_factor
        cells = max(1, tiles.size // f)
        own.tile_latent_min_size, own.tile_sample_min_size = cells, cells * f
        own.tile_overlap_factor = overlap_factor(cells, min(tiles.overlap // f, cells // 4), f)
    return own


def decode(ctx, vae: VAEModel, samples, tiled: bool = False, sliced: bool = False,
           tiles: Tiles | None = None):  # fmt: skip
    """Latents [B, C, h, w] to images; `tiled`: in `tiles` (None: the VAE's own size)."""
    import torch

    model = vae.vae
    tiling = tiler(vae, tiles) if tiled else model
    out = []
    with torch.inference_mode(), runtime.in_use(ctx.settings, vae.device, model):
        z = samples.to(model.device, model.dtype) / vae.scaling_factor
        for part in z.split(1) if sliced else [z]:
            if tiled and max(part.shape[-2:]) > tiling.tile_latent_min_size:
                img = tiling.tiled_decode(part, return_dict=False)[0]
            else:
                img = model.decode(part, return_dict=False)[0]
            out.append(img)
    image = torch.cat(out)
    runtime.check_finite(
        ctx,
        image,
        "the decoded images",
        model.dtype,
        "the latents decoded already contain them (see the sampler's warning)"
        if not bool(torch.isfinite(samples).all())
        else "the VAE made them from finite latents; is it the model's VAE?",
        ", or with --option vae_fp32=true (only the VAE in fp32)",
    )
    return (image / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float()


@node(
    "VAEDecode",
    display_name="VAE Decode",
    category="latent",
    inputs=[
        Socket("samples", LATENT),
        Socket("vae", VAE),
        Bool("tiled", False, optional=True, comfy_extra=True,
             description="decode in overlapping tiles (large images in bounded memory)"),
        Bool("sliced", False, optional=True, comfy_extra=True,
             description="decode one image of the batch at a time"),
    ],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def vae_decode(ctx, samples: Latent, vae: VAEModel, tiled: bool = False, sliced: bool = False):
    """Latents to RGB images."""
    settings = ctx.settings
    return decode(ctx, vae, samples.samples, tiled or settings.option("vae_tiling"),
                  sliced or settings.option("vae_slicing"))  # fmt: skip


@node(
    "VAEEncode",
    display_name="VAE Encode",
    category="latent",
    inputs=[Socket("pixels", IMAGE), Socket("vae", VAE)],
    outputs=[Output("LATENT", LATENT)],
)
def vae_encode(ctx, pixels, vae: VAEModel):
    """RGB images to latents (the distribution's mean: deterministic), for img2img.

    Width and height must be multiples of the VAE's scale factor: other sizes are cropped
    around the centre (as ComfyUI does), with a warning.
    """
    return Latent(encode(ctx, vae, fit_to_scale(ctx, vae, pixels, "pixels")[0]), None,
                  is_noise=False)  # fmt: skip


def fit_to_scale(ctx, vae: VAEModel, pixels, input_name: str) -> tuple[Any, tuple[slice, slice]]:
    """Images cropped around the centre to multiples of the VAE's scale factor (with a
    warning when cut), and the (rows, columns) kept, to cut masks the same way."""
    if pixels.ndim != 4 or pixels.shape[-1] not in (3, 4):
        raise input_error(ctx, input_name, f"expected an image batch [B, H, W, 3], got "
                                           f"shape {list(pixels.shape)}")  # fmt: skip
    f = vae.scale_factor
    h, w = pixels.shape[1], pixels.shape[2]
    ch, cw = (h // f) * f, (w // f) * f
    if ch == 0 or cw == 0:
        raise input_error(ctx, input_name, f"image is {w}x{h}; it must be at least the VAE's "
                                           f"scale factor {f} on each side")  # fmt: skip
    top, left = (h - ch) // 2, (w - cw) // 2
    if (ch, cw) != (h, w):
        ctx.warn(f"image is {w}x{h}, not a multiple of the VAE's scale factor {f}: "
                 f"cropped to {cw}x{ch}")  # fmt: skip
    box = (slice(top, top + ch), slice(left, left + cw))
    return pixels[:, box[0], box[1]], box


def encode(ctx, vae: VAEModel, pixels, tiles: Tiles | None = None) -> Any:
    """Latents (the distribution's mean, scaled) of images whose sides are multiples of the
    VAE's scale factor; encoded in `tiles` when given (None: whole)."""
    import torch

    model = vae.vae
    encoder = tiler(vae, tiles) if tiles is not None else model  # tiles an image larger than a tile
    with torch.inference_mode(), runtime.in_use(ctx.settings, vae.device, model):
        x = pixels[..., :3].permute(0, 3, 1, 2).to(model.device, model.dtype) * 2 - 1
        dist = encoder.encode(x).latent_dist
    # contiguous: the mean is a view of the encoder's output, whose strides would otherwise
    # reach the UNet (its kernels round differently) and differ from a cached copy's
    return (dist.mode() * vae.scaling_factor).cpu().contiguous()
