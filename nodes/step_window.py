"""Running part of a schedule: start/end steps, adding noise or not, leftover noise.

What base + refiner needs (diffusers' `denoising_end` on the base pipeline, `denoising_start`
on the refiner; ComfyUI's KSamplerAdvanced): the base runs steps [0, k) of an n-step schedule
and returns its latent with the noise left at step k; the refiner runs steps [k, n) of the same
schedule from that latent, adding no noise. With `leftover_noise` off, a run that ends early
finishes at noise level zero instead (its last step jumps to the clean prediction), as
ComfyUI's "return_with_leftover_noise: disable" does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latentgraph.graph import Bool, Int

ALL_STEPS = 10000

WINDOW_INPUTS = [
    Int("start_step", 0, min=0, max=ALL_STEPS, description="first step of the schedule to run "
        "(a refiner continues where the base stopped)"),
    Int("end_step", ALL_STEPS, min=0, max=ALL_STEPS, description="step to stop before "
        f"({ALL_STEPS}: the end)"),
    Bool("add_noise", True, description="add noise at the start; off for a latent that still "
         "has its noise (from a run that stopped early)"),
    Bool("return_with_leftover_noise", False, description="when stopping early, return the "
         "latent with its remaining noise (for a refiner) instead of finishing at zero noise"),
]  # fmt: skip


@dataclass(frozen=True)
class StepWindow:
    """Which steps of the schedule run, and how the run starts and ends."""

    start_step: int = 0
    end_step: int = ALL_STEPS
    add_noise: bool = True
    leftover_noise: bool = False

    def bounds(self, steps: int, skipped: int) -> tuple[int, int]:
        """(first step, step to stop before); `skipped` steps are already cut (img2img)."""
        return max(self.start_step, skipped), min(self.end_step, steps)

    def stops_early(self, steps: int) -> bool:
        return self.end_step < steps


def tail_of_longer_schedule(steps: int, denoise: float) -> tuple[int, int]:
    """ComfyUI's `denoise` (KSampler, BasicScheduler): always run `steps` steps, the last ones
    of a schedule of int(steps / denoise) steps, so a lower denoise starts at a lower noise
    level without fewer steps. Returns (schedule length, first step to run); denoise 0 or less
    leaves no step to run."""
    if denoise <= 0.0:
        return steps, steps
    total = steps if denoise >= 1.0 else int(steps / denoise)
    return total, total - steps


def finish_at_zero_noise(sched: Any, end_index: int) -> bool:
    """Make the step ending at schedule index `end_index` land on noise level zero, so a run
    that stops early returns a clean latent. Only sigma-based schedulers (Euler, DPM++, ...)
    have that level to set; returns False for the others (DDIM, PNDM, ...)."""
    import torch

    sigmas = getattr(sched, "sigmas", None)  # diffusers: only sigma-based schedulers have it
    if not isinstance(sigmas, torch.Tensor) or end_index >= len(sigmas):
        return False
    sigmas = sigmas.clone()
    sigmas[end_index] = 0.0
    sched.sigmas = sigmas
    return True
