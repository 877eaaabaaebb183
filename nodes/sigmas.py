"""Noise-level schedules (SIGMAS) for the custom sampler: computed, split, passed on sockets.

A SIGMAS value is what ComfyUI passes: a 1-D float32 CPU tensor of noise levels, highest
first, usually ending at 0; n + 1 levels make n steps. `ScheduleSigmas` and `TurboSigmas` take
the levels from the model's own noise schedule as diffusers computes them (an Euler scheduler
built from the model's scheduler config); the Karras, exponential and polyexponential shapes
are their published formulas over a [sigma_min, sigma_max] range (diffusers has no public
function taking their `rho`). ComfyUI's BasicScheduler and SDTurboScheduler are adapters over
the first two (nodes/comfy_sampling.py); the formula nodes and SplitSigmas have ComfyUI's
names and inputs already.
"""

from __future__ import annotations

import math
from typing import Any

from latentgraph.graph import SCHEDULER, Float, Int, Output, Settings, Socket, node
from latentgraph.graph.declare import SIGMAS

from .schedulers import build_scheduler, refuse_steps, spans_from_the_top
from .step_window import tail_of_longer_schedule
from .values import SchedulerSpec, input_error

SIGMA_RANGE = dict(min=0.0, max=5000.0, step=0.01)  # ComfyUI's widget range for sigma_min/max
TURBO_STEPS = 10  # SD/SDXL Turbo: timesteps 999, 899, ..., 99


def _euler(spec: SchedulerSpec) -> Any:
    """An Euler scheduler from the model's config and the spec's schedule options (Karras,
    spacing, ...): the scheduler whose `set_timesteps` gives plain noise levels, one per step."""
    return build_scheduler(SchedulerSpec(spec.config, "euler", "EulerDiscreteScheduler",
                                         spec.overrides))  # fmt: skip


def model_sigmas(ctx, spec: SchedulerSpec, steps: int, denoise: float) -> Any:
    """The last `steps` steps (steps + 1 levels) of a schedule of steps / denoise steps, as
    diffusers computes it for the model: denoise < 1 starts part-way down (img2img). A
    schedule longer than the model's allows is refused on the node's `steps`."""
    import torch

    if denoise <= 0.0:
        return torch.zeros(0)
    total, first = tail_of_longer_schedule(steps, denoise)
    sched = _euler(spec)
    refuse_steps(ctx, sched, "scheduler 'euler'", total)
    spans_from_the_top(sched, spec, total)
    sched.set_timesteps(total)
    return sched.sigmas[first:].float().cpu()


def turbo_sigmas(spec: SchedulerSpec, steps: int, denoise: float) -> Any:
    """SD/SDXL Turbo's schedule: the model's noise levels at timesteps 999, 899, ..., 99,
    `steps` of them from the one denoise picks (1: from 999; 0.5: from 499), then 0."""
    import torch

    start = TURBO_STEPS - int(TURBO_STEPS * denoise)
    timesteps = [TURBO_STEPS * 100 - 1 - 100 * i for i in range(TURBO_STEPS)][start:start + steps]  # fmt: skip
    if not timesteps:
        return torch.zeros(1)
    sched = _euler(SchedulerSpec(spec.config))  # plain levels: no Karras or spacing options
    sched.set_timesteps(timesteps=timesteps)
    return sched.sigmas.float().cpu()


@node(
    "ScheduleSigmas",
    category="sampling/sigmas",
    inputs=[
        Socket("scheduler", SCHEDULER, description="the model's schedule (LoadModel), or "
               "SchedulerSelect for Karras sigmas or a timestep spacing"),
        Int("steps", 20, min=1, max=10000, limit="max_steps"),
        Float("denoise", 1.0, min=0.0, max=1.0, step=0.01, description="below 1: only the "
              "last steps of a longer schedule (img2img); 0: no steps"),
    ],
    outputs=[Output("sigmas", SIGMAS)],
)  # fmt: skip
def schedule_sigmas(ctx, scheduler: SchedulerSpec, steps: int = 20, denoise: float = 1.0):
    """The noise levels of `steps` steps of the model's schedule, as diffusers computes them."""
    return model_sigmas(ctx, scheduler, steps, denoise)


@node(
    "TurboSigmas",
    category="sampling/sigmas",
    inputs=[
        Socket("scheduler", SCHEDULER, description="the model's schedule (LoadModel)"),
        Int("steps", 1, min=1, max=TURBO_STEPS),
        Float("denoise", 1.0, min=0.0, max=1.0, step=0.01),
    ],
    outputs=[Output("sigmas", SIGMAS)],
)  # fmt: skip
def schedule_turbo(ctx, scheduler: SchedulerSpec, steps: int = 1, denoise: float = 1.0):
    """The few-step schedule SD Turbo and SDXL Turbo were distilled for."""
    return turbo_sigmas(scheduler, steps, denoise)


# --- the published formulas ------------------------------------------------------------------


def karras(steps: int, sigma_min: float, sigma_max: float, rho: float) -> Any:
    """Karras et al. (2022), eq. 5: levels evenly spaced in sigma ** (1 / rho), then 0."""
    import torch

    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _with_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(steps: int, sigma_min: float, sigma_max: float) -> Any:
    """Levels evenly spaced in log sigma, then 0."""
    import torch

    return _with_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps,
                                     dtype=torch.float64).exp())  # fmt: skip


def polyexponential(steps: int, sigma_min: float, sigma_max: float, rho: float) -> Any:
    """Log sigma falling as (1 - i / (n - 1)) ** rho from log sigma_max to log sigma_min,
    then 0 (rho 1 is the exponential schedule)."""
    import torch

    ramp = torch.linspace(1, 0, steps, dtype=torch.float64) ** rho
    lo, hi = math.log(sigma_min), math.log(sigma_max)
    return _with_zero((ramp * (hi - lo) + lo).exp())


def _with_zero(levels: Any) -> Any:
    import torch

    return torch.cat([levels, levels.new_zeros(1)]).float()


def _positive(*names: str):
    """A check hook refusing zero for `names` (a log or a 1 / rho of zero has no value)."""

    def check(inputs: dict[str, Any], settings: Settings) -> list[tuple[str | None, str]]:
        return [(name, f"must be above 0 for this schedule (got {inputs[name]})")
                for name in names
                if isinstance(inputs.get(name), int | float) and inputs[name] <= 0]  # fmt: skip

    return check


def _steps() -> Int:
    return Int("steps", 20, min=1, max=10000, limit="max_steps")


def _sigma_inputs() -> list:
    return [Float("sigma_max", 14.614642, **SIGMA_RANGE),
            Float("sigma_min", 0.0291675, **SIGMA_RANGE)]  # fmt: skip


@node(
    "KarrasScheduler", display_name="KarrasScheduler", category="sampling/schedulers",
    inputs=[_steps(), *_sigma_inputs(), Float("rho", 7.0, min=0.0, max=100.0, step=0.01)],
    outputs=[Output("SIGMAS", SIGMAS)],
    check=_positive("rho"),
)  # fmt: skip
def karras_scheduler(ctx, steps: int, sigma_max: float, sigma_min: float, rho: float = 7.0):
    """Karras noise levels between sigma_max and sigma_min (more steps at low noise)."""
    return karras(steps, sigma_min, sigma_max, rho)


@node(
    "ExponentialScheduler", display_name="ExponentialScheduler", category="sampling/schedulers",
    inputs=[_steps(), *_sigma_inputs()],
    outputs=[Output("SIGMAS", SIGMAS)],
    check=_positive("sigma_max", "sigma_min"),
)  # fmt: skip
def exponential_scheduler(ctx, steps: int, sigma_max: float, sigma_min: float):
    """Noise levels evenly spaced in log sigma between sigma_max and sigma_min."""
    return exponential(steps, sigma_min, sigma_max)


@node(
    "PolyexponentialScheduler", display_name="PolyexponentialScheduler",
    category="sampling/schedulers",
    inputs=[_steps(), *_sigma_inputs(), Float("rho", 1.0, min=0.0, max=100.0, step=0.01)],
    outputs=[Output("SIGMAS", SIGMAS)],
    check=_positive("sigma_max", "sigma_min"),
)  # fmt: skip
def polyexponential_scheduler(ctx, steps: int, sigma_max: float, sigma_min: float,
                              rho: float = 1.0):  # fmt: skip
    """Noise levels falling polynomially in log sigma (rho 1: exponential)."""
    return polyexponential(steps, sigma_min, sigma_max, rho)


@node(
    "SplitSigmas", display_name="SplitSigmas", category="sampling/sigmas",
    inputs=[Socket("sigmas", SIGMAS), Int("step", 0, min=0, max=10000)],
    outputs=[Output("high_sigmas", SIGMAS), Output("low_sigmas", SIGMAS)],
)  # fmt: skip
def split_sigmas(ctx, sigmas: Any, step: int = 0):
    """Steps before `step` (high noise) and from `step` on (low noise); both keep the level
    at `step`, so running one after the other (no noise added) runs the whole schedule."""
    if sigmas.dim() != 1:
        raise input_error(ctx, "sigmas", f"expected a 1-D list of noise levels, got shape "
                                         f"{list(sigmas.shape)}")  # fmt: skip
    return sigmas[: step + 1].clone(), sigmas[step:].clone()
