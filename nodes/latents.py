"""LatentNoise: the starting noise of a text-to-image run.

Image i of a batch is drawn from its own generator seeded with seed + i (on the CPU, so the
same seed gives the same noise on any device): any single image of a batch can be reproduced
alone by running batch 1 with that image's seed.

ComfyUI's nodes' noise (nodes/seeds.py) is made here too, once for KSampler and the custom
sampler alike (`comfy_latent_noise`, `comfy_step_seeds`), so a seed is one image in both.
"""

from __future__ import annotations

from typing import Any

from latentgraph.graph import LATENT, VAE, Int, Output, Socket, node
from latentgraph.graph.context import BATCH_LIMITS, SIZE_LIMITS

from .seeds import batch_positions, cpu_generator, image_seeds, position_step_seeds, seed_input
from .values import Latent, VAEModel, enforce_limits, input_error

DEFAULT_SCALE = 8  # Stable Diffusion's VAE; the real factor comes from the VAE when linked


def make_noise(shape: tuple[int, int, int], seeds: list[int]):
    """Unit Gaussian noise [len(seeds), *shape], image i from a generator seeded seeds[i]."""
    import torch

    rows = []
    for s in seeds:
        g = cpu_generator(s)
        rows.append(torch.randn((1, *shape), generator=g, dtype=torch.float32))
    return torch.cat(rows)


def batch_noise(shape: tuple[int, int, int], seed: int, positions: list[int]) -> Any:
    """Unit Gaussian noise [len(positions), *shape] by ComfyUI's rule (nodes/seeds.py): one CPU
    generator seeded `seed` draws one [1, *shape] per batch position 0..max(positions), and row
    i is the draw at positions[i]. Position 0 is `make_noise`'s image for `seed`."""
    import torch

    g = cpu_generator(seed)
    wanted, draws = set(positions), {}
    for p in range(max(positions) + 1):
        draw = torch.randn((1, *shape), generator=g, dtype=torch.float32)
        if p in wanted:
            draws[p] = draw
    return torch.cat([draws[p] for p in positions])


def comfy_latent_noise(latent: Latent, seed: int) -> Any:
    """The starting noise ComfyUI's nodes give `latent` for `seed` (KSampler and RandomNoise
    alike, so both give one image for a seed): `batch_noise` at the latent's batch positions."""
    samples = latent.samples
    return batch_noise(tuple(samples.shape[1:]), seed, _positions(latent))


def comfy_step_seeds(latent: Latent, seed: int) -> list[int]:
    """ComfyUI's nodes' per-step noise seeds for `latent`'s rows, one per batch position
    (`position_step_seeds`): the pair of `comfy_latent_noise`."""
    return position_step_seeds(seed, _positions(latent))


def _positions(latent: Latent) -> list[int]:
    return batch_positions(latent.batch_index, latent.samples.shape[0])


# LatentNoise's sizes: the VAE's scale factor is known only once the model is loaded, so the
# rule is said here and refused when the node runs (EmptyLatentImage floors instead, as ComfyUI).
SCALE_MULTIPLE = (
    "a multiple of the VAE's scale factor (8 for SD 1.x/2.x and SDXL), refused when it runs"
)


@node(
    "LatentNoise",
    category="latent",
    inputs=[
        Socket(
            "vae",
            VAE,
            optional=True,
            description="gives the scale factor and channels (else SD's: 8, 4 channels)",
        ),  # fmt: skip
        Int("width", 512, min=8, max=16384, step=8, limit=SIZE_LIMITS,
            description=SCALE_MULTIPLE),
        Int("height", 512, min=8, max=16384, step=8, limit=SIZE_LIMITS,
            description=SCALE_MULTIPLE),
        Int("batch_size", 1, min=1, max=4096, limit=BATCH_LIMITS),
        seed_input(),
    ],
    outputs=[Output("latent", LATENT)],
)  # fmt: skip
def latent_noise(ctx, width: int, height: int, batch_size: int = 1, seed: int = 0,
                 vae: VAEModel | None = None):  # fmt: skip
    """Seeded starting noise for width x height images; image i uses seed + i (so seeds s and
    s + 1 share batch_size - 1 images: step a seed sweep by batch_size)."""
    factor = vae.scale_factor if vae is not None else DEFAULT_SCALE
    channels = int(vae.vae.config.latent_channels) if vae is not None else 4
    for name, value in (("width", width), ("height", height)):
        if value % factor:
            raise input_error(ctx, name, f"{value} is not a multiple of the VAE's scale factor "
                                         f"{factor} (try {value - value % factor or factor})")  # fmt: skip
    enforce_limits(ctx, latent_noise, width=width, height=height, batch_size=batch_size)
    seeds = image_seeds(seed, batch_size)
    noise = make_noise((channels, height // factor, width // factor), seeds)
    return Latent(noise, seeds, is_noise=True)
