"""ComfyUI's VAEDecodeTiled and VAEEncodeTiled, with ComfyUI's names, inputs, ranges and
outputs, as thin adapters over nodes/vae.py's decode and encode, tiled by the one tiler there
(diffusers', which VAEDecode's `tiled` uses) at the asked tile size.

`tile_size` and `overlap` are pixels, as in ComfyUI: a tile is `tile_size // 8` latent cells
of an SD-family VAE (its scale factor), the overlap likewise whole cells and at most a quarter
of the tile (a larger one is taken as a quarter, as ComfyUI's VAEDecodeTiled does).
`temporal_size` and `temporal_overlap` only concern video VAEs in ComfyUI; latentgraph loads
none, so they are checked against ComfyUI's ranges and unused, as ComfyUI ignores them for an
image VAE. Sliced decoding follows the run's `vae_slicing` option, as for VAEDecode.

Installed with the classic nodes (`comfy_registry`, see nodes/comfy.py).
"""

from __future__ import annotations

from latentgraph.graph import IMAGE, LATENT, VAE, Int, Output, Socket, node

from .comfy import comfy_registry
from .vae import Tiles, decode, encode, fit_to_scale
from .values import Latent, VAEModel

# ComfyUI's tile inputs: (default, min, max, step) for the decoder's; the encoder's tile_size
# steps by 64
TILE_INPUTS = [
    Int("tile_size", 512, min=64, max=4096, step=32,
        description="tile side in pixels (smaller: less memory)"),
    Int("overlap", 64, min=0, max=4096, step=32,
        description="pixels shared by neighbouring tiles, blended; at most a quarter of a tile"),
    Int("temporal_size", 64, min=8, max=4096, step=4,
        description="only for video VAEs (ComfyUI's; unused: latentgraph has none)"),
    Int("temporal_overlap", 8, min=4, max=4096, step=4,
        description="only for video VAEs (ComfyUI's; unused: latentgraph has none)"),
]  # fmt: skip
ENCODE_TILE_INPUTS = [Int("tile_size", 512, min=64, max=4096, step=64,
                          description=TILE_INPUTS[0].description), *TILE_INPUTS[1:]]  # fmt: skip


@node(
    "VAEDecodeTiled", display_name="VAE Decode (Tiled)", category="latent",
    inputs=[Socket("samples", LATENT), Socket("vae", VAE), *TILE_INPUTS],
    outputs=[Output("IMAGE", IMAGE)],
    registry=comfy_registry,
)  # fmt: skip
def vae_decode_tiled(ctx, samples: Latent, vae: VAEModel, tile_size: int = 512,
                     overlap: int = 64, temporal_size: int = 64, temporal_overlap: int = 8):  # fmt: skip
    """VAEDecode in tiles of `tile_size` pixels: large images in bounded memory."""
    return decode(ctx, vae, samples.samples, tiled=True,
                  sliced=ctx.settings.option("vae_slicing"), tiles=Tiles(tile_size, overlap))  # fmt: skip


@node(
    "VAEEncodeTiled", display_name="VAE Encode (Tiled)", category="latent",
    inputs=[Socket("pixels", IMAGE), Socket("vae", VAE), *ENCODE_TILE_INPUTS],
    outputs=[Output("LATENT", LATENT)],
    registry=comfy_registry,
)  # fmt: skip
def vae_encode_tiled(ctx, pixels, vae: VAEModel, tile_size: int = 512, overlap: int = 64,
                     temporal_size: int = 64, temporal_overlap: int = 8):  # fmt: skip
    """VAEEncode in tiles of `tile_size` pixels: large images in bounded memory.

    Sizes not a multiple of the VAE's scale factor are centre-cropped, with a warning, as by
    VAEEncode."""
    images = fit_to_scale(ctx, vae, pixels, "pixels")[0]
    return Latent(encode(ctx, vae, images, tiles=Tiles(tile_size, overlap)), None,
                  is_noise=False)  # fmt: skip
