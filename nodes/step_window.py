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


def strength_steps(steps: int, denoise: float) -> int:
    """diffusers' img2img `strength` (UNetDenoise's `denoise`): the last int(steps x denoise)
    steps of a `steps` schedule run, so a product below 1 runs none (diffusers refuses it:
    "the number of pipeline steps is 0"; UNetDenoise warns, `denoise.no_step_warning`)."""
    return min(int(steps * denoise), steps)


def finish_at_zero_noise(sched: Any, end_step: int) -> bool:
    """Make the schedule end after step `end_step`, at the noise level a full run ends at
    (zero; the model's lowest level for schedulers that stop there: DEIS, UniPC bh1), so a run
    that stops early returns a clean latent. The scheduler's tables are cut as a full run of
    `end_step` steps would have them, so it takes that step for its last: multistep solvers
    (DPM++ 2M, DEIS, UniPC) take it at first order, as at the end of a full run and as
    ComfyUI's samplers do when the next sigma is 0 (a second-order update to zero noise
    divides by zero: NaN), and two-evaluation samplers (Heun, DPM2, DPM++ SDE) take only its
    first, an Euler step to zero. Only sigma-based schedulers have that level to set; returns
    False for the others (DDIM, DDPM, LCM, ...)."""
    import torch

    sigmas = getattr(sched, "sigmas", None)  # diffusers: only sigma-based schedulers have it
    order = sched.order
    cut = (end_step - 1) * order + 1  # a full run of end_step steps has this many timesteps
    if not isinstance(sigmas, torch.Tensor) or end_step < 1 or cut >= len(sched.timesteps):
        return False
    final = sigmas[-1]
    sched.timesteps = sched.timesteps[:cut]
    sched.sigmas = torch.cat([sigmas[:cut], final[None], sigmas[cut + 1 :]])
    interpol = getattr(sched, "sigmas_interpol", None)
    if isinstance(interpol, torch.Tensor):  # KDPM2 (ancestral): the level its first half goes
        # to, read at the step's index + 1 (ancestral: at the index)
        sched.sigmas_interpol = torch.cat(
            [interpol[: cut - 1], final.repeat(2), interpol[cut + 1 :]]
        )
    return True
