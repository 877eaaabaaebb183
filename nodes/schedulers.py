"""SchedulerSelect: a diffusers scheduler by name, from the model's own scheduler config.

The SCHEDULER socket carries a `SchedulerSpec` (class + config), never a live scheduler:
schedulers are stateful, so UNetDenoise builds a fresh one per run with `build_scheduler`.
How the MODEL must be sampled (prediction type, zsnr, LCM) is applied to a spec by
nodes/model_sampling.py `for_model`, the one rule every sampler calls.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from latentgraph.graph import SCHEDULER, Bool, Choice, Output, Socket, node
from latentgraph.graph.problems import quoted

from .seeds import generator_seed
from .values import SchedulerSpec, input_error

# name -> (diffusers class, config overrides)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm++2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpm++3m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 3}),
    "dpm++2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpm++sde": ("DPMSolverSDEScheduler", {}),
    "dpm++1s": ("DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++",
                                                 "lower_order_final": True}),
    "dpm2": ("KDPM2DiscreteScheduler", {}),
    "dpm2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "deis": ("DEISMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
    "tcd": ("TCDScheduler", {}),
}  # fmt: skip
SPACINGS = ("default", "leading", "linspace", "trailing")
# the names above whose diffusers class takes `use_karras_sigmas` (checked against diffusers'
# signatures by tests/nodes/test_schedulers.py)
KARRAS = frozenset({"lms", "euler", "heun", "dpm++2m", "dpm++3m", "dpm++2m_sde", "dpm++sde",
                    "dpm++1s", "dpm2", "dpm2_a", "unipc", "deis"})  # fmt: skip


def scheduler_class(class_name: str):
    """The diffusers scheduler class of that name."""
    import diffusers

    return getattr(diffusers, class_name)


def _quiet_brownian_rounding() -> None:
    """DPM++ SDE asks torchsde's Brownian tree for times a rounding error outside its range
    (`Should have ta>=t0 but got ta=0.0291675366461277 and t0=0.029168`); torchsde clamps them
    and carries on, so the warning tells the user nothing. Only that message is silenced."""
    import warnings

    warnings.filterwarnings("ignore", message=r"Should have t[ab][<>]=t[01] but got", category=UserWarning,
                            module=r"torchsde\.")  # fmt: skip


def build_scheduler(spec: SchedulerSpec, seed: int | None = None):
    """A fresh scheduler instance for one run. `seed` feeds SDE noise samplers (torchsde)."""
    class_name = spec.class_name or spec.config.get("_class_name") or "DDIMScheduler"
    cls = scheduler_class(class_name)
    config = {k: v for k, v in spec.config.items() if not k.startswith("_")}
    config.update(spec.overrides)
    accepted = set(inspect.signature(cls.__init__).parameters)
    if "noise_sampler_seed" in accepted and seed is not None:
        config["noise_sampler_seed"] = generator_seed(seed)
    if "noise_sampler_seed" in accepted:
        _quiet_brownian_rounding()
    if class_name == "UniPCMultistepScheduler" and config.get("solver_type") == "bh1":
        # bh1's B(h) = h is infinite on a step to noise level zero, and its last (first-order)
        # step multiplies it by 0: NaN, a black image. End at the model's lowest level instead,
        # diffusers' own option (ComfyUI's uni_pc ends at sigma 0.001 for the same reason).
        config["final_sigmas_type"] = "sigma_min"
    return cls.from_config({k: v for k, v in config.items() if k in accepted})


def spans_from_the_top(sched: Any, spec: SchedulerSpec, steps: int) -> SchedulerSpec:
    """The spec `sched` (built from it, fresh) schedules `steps` steps with. "linspace" spacing
    spans timesteps T - 1..0, but diffusers' linspace of 1 step is timestep 0 alone, the model's
    lowest noise level (0.03): a 1-step run would start from an almost clean latent (KSampler's
    normal, karras, exponential, beta; ComfyUI's 1 step starts at T - 1). At 1 step "trailing"
    is that timestep T - 1, so it is given to `sched` and to the returned spec; more steps and
    other spacings are left as they are."""
    if steps != 1 or sched.config.get("timestep_spacing") != "linspace":
        return spec
    sched.register_to_config(timestep_spacing="trailing")  # diffusers' own config setter
    return replace(spec, overrides={**spec.overrides, "timestep_spacing": "trailing"})


def sampler_label(spec: SchedulerSpec) -> str:
    """The sampler a spec builds, for messages: its name, diffusers class and options."""
    class_name = spec.class_name or spec.config.get("_class_name") or "DDIMScheduler"
    options = "".join(f", {k}={v!r}" for k, v in spec.overrides.items())
    name = f"scheduler {quoted(spec.name)}" if spec.name else "the model's own scheduler"
    return f"{name} (diffusers {class_name}{options})"


def makes_steps(sched: Any, steps: int) -> bool:
    """Whether `sched.set_timesteps(steps)` gives a schedule of `steps` distinct noise levels
    the model was trained on. diffusers checks little of that itself: "leading" spacing past
    T - steps_offset steps (T: num_train_timesteps) reaches timestep T, and rounded timesteps
    repeat past T (linspace: T - 1); a repeated level is a zero-length step, where DPM++ and
    UniPC divide by zero, and the step count runs past diffusers' tables (IndexError at the
    last step). Sets the scheduler's timesteps."""
    try:
        sched.set_timesteps(steps)
    except ValueError:  # diffusers' own refusals: DDIM past T, LCM past original_inference_steps
        return False
    sigmas = getattr(sched, "sigmas", None)
    if sigmas is None:  # stepping on training timesteps (DDIM, PNDM, LCM...)
        timesteps = sched.timesteps
        inside = int(timesteps.max()) < sched.config.num_train_timesteps
        return inside and len(set(timesteps.tolist())) >= steps
    levels = sigmas[:-1][:: sched.order]  # second-order schedulers list each level twice
    return len(set(levels.tolist())) >= steps


def steps_problem(sched: Any, sampler: str, steps: int) -> str | None:
    """Why `sched` (a fresh instance) cannot run `steps` steps (`makes_steps`), with the most
    it can; None when it can. `sampler`: what the user chose, as they named it (`scheduler
    'dpm++2m'`; KSampler's `sampler 'dpmpp_2m' (scheduler 'normal')`)."""
    import copy

    if makes_steps(copy.deepcopy(sched), steps):
        return None
    good, bad = 0, steps  # the most below `steps` (schedules break only past a point)
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if makes_steps(copy.deepcopy(sched), mid) else (good, mid)
    spacing = sched.config.get("timestep_spacing")
    hint = ("; 'linspace' or 'trailing' timestep spacing may allow more"
            if spacing == "leading" and "original_inference_steps" not in sched.config
            else "")  # fmt: skip
    return (
        f"{sampler} makes at most {good} distinct steps from this model's "
        f"{sched.config.num_train_timesteps} training timesteps"
        f"{f' with {quoted(spacing)} timestep spacing' if spacing else ''}; got {steps}{hint}"
    )


def refuse_steps(ctx: Any, sched: Any, sampler: str, steps: int, denoise: float = 1.0) -> None:
    """Refuse a schedule `sched` (`sampler` to the user) cannot make (`steps_problem`): before
    any step, since past that diffusers' schedule fails at the last step. `steps` and `denoise`
    are what the user set: ComfyUI's denoise below 1 (KSampler) makes a schedule of steps /
    denoise steps, and the message says so, on `denoise` when `steps` alone would fit, else on
    `steps`."""
    from .step_window import tail_of_longer_schedule

    total, _ = tail_of_longer_schedule(steps, denoise)
    problem = steps_problem(sched, sampler, total)
    if not problem:
        return
    if total == steps:
        raise input_error(ctx, "steps", problem)
    steps_fit = steps_problem(sched, sampler, steps) is None
    raise input_error(ctx, "denoise" if steps_fit else "steps", (
        f"steps {steps} with denoise {denoise} makes a schedule of {total} steps "
        f"(steps / denoise); {problem}; {'raise denoise or lower' if steps_fit else 'lower'} "
        "steps"))  # fmt: skip


def karras_problem(name: Any, karras: Any) -> str | None:
    """Why SchedulerSelect cannot give scheduler `name` Karras sigmas, or None (also for an
    unknown name: its own check says so). As KSampler refuses its `karras` scheduler with a
    sampler that has none, before anything runs."""
    if karras is not True or name not in SCHEDULERS or name in KARRAS:
        return None
    return (f"scheduler {quoted(name)} has no Karras sigmas (diffusers' {SCHEDULERS[name][0]} takes "
            f"no use_karras_sigmas); with karras use one of: {', '.join(sorted(KARRAS))}")  # fmt: skip


def _check_select(inputs: dict[str, Any], settings: Any) -> list[tuple[str | None, str]]:
    problem = karras_problem(inputs.get("name"), inputs.get("karras"))
    return [("karras", problem)] if problem else []


@node(
    "SchedulerSelect",
    category="sampling",
    inputs=[
        Socket("scheduler", SCHEDULER, description="the model's scheduler config (LoadModel)"),
        Choice("name", list(SCHEDULERS), "dpm++2m"),
        Bool("karras", False, description=f"Karras sigmas: {', '.join(sorted(KARRAS))}"),
        Choice("timestep_spacing", list(SPACINGS), "default"),
    ],
    outputs=[Output("scheduler", SCHEDULER)],
    check=_check_select,
)
def scheduler_select(ctx, scheduler: SchedulerSpec, name: str, karras: bool = False,
                     timestep_spacing: str = "default"):  # fmt: skip
    """Pick the sampling algorithm, configured from the model's own noise schedule."""
    if name not in SCHEDULERS:
        raise input_error(
            ctx, "name", f"unknown scheduler {quoted(str(name))}; one of {list(SCHEDULERS)}"
        )
    class_name, overrides = SCHEDULERS[name]
    overrides = dict(overrides)
    accepted = set(inspect.signature(scheduler_class(class_name).__init__).parameters)
    problem = karras_problem(name, karras)
    if problem:
        raise input_error(ctx, "karras", problem)
    if karras:
        overrides["use_karras_sigmas"] = True
    if timestep_spacing != "default":
        if "timestep_spacing" in accepted:
            overrides["timestep_spacing"] = timestep_spacing
        else:
            ctx.warn(f"scheduler {quoted(name)} has no timestep spacing option; ignored")
    return SchedulerSpec(dict(scheduler.config), name, class_name, overrides)
