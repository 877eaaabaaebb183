"""Seeds: the one place their rules live.

A seed is any integer from 0 to 2**64 - 1 (ComfyUI's seed widget goes that far, and torch
generators take 64-bit seeds). Image i of a batch made from seed s uses seed s + i, for its
starting noise and for stochastic samplers' per-step noise alike (`step_generators`), so any
image of a batch can be reproduced alone with batch 1 and that image's seed: latentgraph's own
nodes' rule (LatentNoise, UNetDenoise).

ComfyUI's nodes (KSampler, KSamplerAdvanced, RandomNoise) keep ComfyUI's rule instead, so its
workflows behave as there: a batch's starting noise comes from ONE generator seeded `seed`, one
draw per batch position (`batch_positions`: the latent's batch index, as LatentFromBatch and
RepeatLatentBatch set it); consecutive seeds share no image, and a picked position re-makes
that image (nodes/latents.py `batch_noise`). Their per-step noise is per position too
(`position_step_seeds`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from latentgraph.graph import Input, Int

SEED_MAX = 2**64 - 1


def seed_input(name: str = "seed", description: str = "") -> Input:
    """The declaration of a seed input: 0..SEED_MAX, with the editor's randomize control."""
    return Int(name, 0, min=0, max=SEED_MAX, seed=True, description=description)


def image_seeds(seed: int, count: int) -> list[int]:
    """The seed of each image of a batch of `count` made from `seed`."""
    return [seed + i for i in range(count)]


def batch_positions(batch_index: list[int] | None, count: int) -> list[int]:
    """The batch positions a latent's `count` rows hold under ComfyUI's rule: its batch index
    (nodes/values.py Latent), else 0..count-1."""
    return list(batch_index) if batch_index is not None else list(range(count))


def position_step_seeds(seed: int, positions: list[int]) -> list[int]:
    """ComfyUI's nodes' per-step noise seeds (`step_generators`), one per row: position 0 is
    `seed` itself (a batch of one as before), another a 64-bit hash of (seed, position), so
    consecutive seeds share no row's noise and a picked position gets the noise it had."""
    return [seed if p == 0 else _hashed(seed, p) for p in positions]


def _hashed(seed: int, position: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def generator_seed(seed: int) -> int:
    """A seed as random generators take it: reduced into 64 bits (seed + i may step past
    SEED_MAX). torch.Generator.manual_seed and torchsde's Brownian trees (the SDE schedulers'
    noise_sampler_seed) both take any 64-bit seed, so no consumer needs fewer bits."""
    return int(seed) % 2**64


def cpu_generator(seed: int) -> Any:
    """A CPU torch generator seeded with `seed` (CPU: the same noise on any device)."""
    import torch

    return torch.Generator("cpu").manual_seed(generator_seed(seed))


def device_generator(device: Any, seed: int) -> Any:
    """A torch generator on `device` seeded with `seed`: for stochastic schedulers' per-step
    noise, drawn where it is used (no host copy each step). Unlike the starting noise
    (`cpu_generator`), it differs between devices for the same seed (docs/gpu.md)."""
    import torch

    return torch.Generator(device).manual_seed(generator_seed(seed))


def step_generators(device: Any, seeds: list[int]) -> list[Any]:
    """Stochastic samplers' per-step noise for a batch whose image i has seed `seeds[i]`: one
    `device_generator` per image. diffusers' schedulers draw it with `randn_tensor`, which
    takes a list of generators and draws row i from generator i, so image i gets the noise it
    gets alone (a list of one draws as the lone generator does)."""
    return [device_generator(device, s) for s in seeds]


def brownian_seeds(seeds: list[int]) -> list[int]:
    """DPM++ SDE's Brownian-tree seeds (its `noise_sampler_seed`) for the same batch: one tree
    per image, seeded as the image alone is (diffusers' BatchedBrownianTree takes a list of
    one seed per row and draws each row from its own tree)."""
    return [generator_seed(s) for s in seeds]
