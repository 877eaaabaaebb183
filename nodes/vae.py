"""VAEDecode (LATENT → IMAGE) and VAEEncode (IMAGE → LATENT).

IMAGE is float32 [B, H, W, C] in 0..1 on the CPU. Tiled decoding (large images in bounded
memory) and sliced decoding (one image at a time) are per-node inputs, defaulting to the run's
`vae_tiling` / `vae_slicing` options; they never switch modes on the shared VAE module.
"""

from __future__ import annotations

from latentgraph.graph import IMAGE, LATENT, VAE, Bool, Output, Socket, node

from .values import Latent, VAEModel, input_error


def decode(vae: VAEModel, samples, tiled: bool = False, sliced: bool = False):
    import torch

    model = vae.vae
    z = samples.to(model.device, model.dtype) / vae.scaling_factor
    chunks = z.split(1) if sliced else [z]
    out = []
    with torch.inference_mode():
        for part in chunks:
            if tiled and max(part.shape[-2:]) > model.tile_latent_min_size:
                img = model.tiled_decode(part, return_dict=False)[0]
            else:
                img = model.decode(part, return_dict=False)[0]
            out.append(img)
    image = torch.cat(out)
    return (image / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float()


@node(
    "VAEDecode",
    category="latent",
    inputs=[
        Socket("vae", VAE),
        Socket("latent", LATENT),
        Bool("tiled", False, description="decode in overlapping tiles (large images)"),
        Bool("sliced", False, description="decode one image of the batch at a time"),
    ],
    outputs=[Output("image", IMAGE)],
)
def vae_decode(ctx, vae: VAEModel, latent: Latent, tiled: bool = False, sliced: bool = False):
    """Latents to RGB images."""
    opts = ctx.settings.options
    return decode(vae, latent.samples, tiled or bool(opts.get("vae_tiling")),
                  sliced or bool(opts.get("vae_slicing")))  # fmt: skip


@node(
    "VAEEncode",
    category="latent",
    inputs=[Socket("vae", VAE), Socket("image", IMAGE)],
    outputs=[Output("latent", LATENT)],
)
def vae_encode(ctx, vae: VAEModel, image):
    """RGB images to latents (the distribution's mean: deterministic), for img2img."""
    import torch

    if image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise input_error(ctx, "image", f"expected an image batch [B, H, W, 3], got "
                                        f"shape {list(image.shape)}")  # fmt: skip
    f = vae.scale_factor
    h, w = image.shape[1], image.shape[2]
    if h % f or w % f:
        raise input_error(ctx, "image", f"image is {w}x{h}; width and height must be multiples "
                                        f"of the VAE's scale factor {f}")  # fmt: skip
    model = vae.vae
    pixels = image[..., :3].permute(0, 3, 1, 2).to(model.device, model.dtype) * 2 - 1
    with torch.inference_mode():
        dist = model.encode(pixels).latent_dist
    return Latent(dist.mode() * vae.scaling_factor, None, is_noise=False)
