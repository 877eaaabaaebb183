"""ComfyUI's custom-sampling nodes that need ComfyUI's names mapped, as thin adapters.

KSamplerSelect (ComfyUI sampler names, through nodes/comfy.py `SAMPLERS`), BasicScheduler and
SDTurboScheduler (a MODEL instead of a SCHEDULER: its checkpoint's scheduler config) and
SamplerCustom (noise, CFG guider and SamplerCustomAdvanced in one node) over nodes/sigmas.py,
nodes/guiders.py and nodes/custom_sampler.py. The nodes whose inputs already are ComfyUI's
(RandomNoise, DisableNoise, the guiders, the sigma formulas, SplitSigmas,
SamplerCustomAdvanced) are declared once, there. Installed with the classic nodes.
"""

from __future__ import annotations

from typing import Any

from latentgraph.graph import (
    CONDITIONING,
    LATENT,
    MODEL,
    Bool,
    Choice,
    Float,
    Int,
    Output,
    Settings,
    Socket,
)
from latentgraph.graph.declare import SAMPLER, SIGMAS

from .comfy import SAMPLERS, _node, sampler_spec
from .comfy import SIGMAS as SCHEDULER_NAMES
from .custom_sampler import Noise, Sampler, sampler_custom_advanced, sigma_problem
from .guiders import CFG, cfg_guider
from .model_sampling import for_model, model_scheduler_config
from .seeds import seed_input
from .sigmas import TURBO_STEPS, model_sigmas, turbo_sigmas
from .values import Conditioning, Latent, SchedulerSpec, UNetModel, input_error


def _sampler_problem(sampler_name: Any) -> str | None:
    if sampler_name not in SAMPLERS:
        return None  # the dropdown check lists the supported names
    usable = tuple(n for n, (ours, _) in SAMPLERS.items() if sigma_problem(ours) is None)
    return sigma_problem(SAMPLERS[sampler_name][0], sampler_name, usable)


def _check_select(inputs: dict[str, Any], settings: Settings) -> list[tuple[str | None, str]]:
    message = _sampler_problem(inputs.get("sampler_name"))
    return [("sampler_name", message)] if message else []


@_node(
    "KSamplerSelect", "KSamplerSelect", "sampling/custom_sampling/samplers",
    inputs=[Choice("sampler_name", list(SAMPLERS), "euler")],
    outputs=[Output("SAMPLER", SAMPLER)],
    check=_check_select,
)  # fmt: skip
def ksampler_select(ctx, sampler_name: str = "euler"):
    """A sampler by ComfyUI name, for SamplerCustom(Advanced)."""
    problem = _sampler_problem(sampler_name) if sampler_name in SAMPLERS else (
        f"unsupported sampler {sampler_name!r}; one of: {', '.join(SAMPLERS)}")  # fmt: skip
    if problem:
        raise input_error(ctx, "sampler_name", problem)
    ours, options = SAMPLERS[sampler_name]
    return Sampler(ours, dict(options))


@_node(
    "BasicScheduler", "BasicScheduler", "sampling/custom_sampling/schedulers",
    inputs=[Socket("model", MODEL), Choice("scheduler", list(SCHEDULER_NAMES), "normal"),
            Int("steps", 20, min=1, max=10000, limit="max_steps"),
            Float("denoise", 1.0, min=0.0, max=1.0, step=0.01)],
    outputs=[Output("SIGMAS", SIGMAS)],
)  # fmt: skip
def basic_scheduler(ctx, model: UNetModel, scheduler: str = "normal", steps: int = 20,
                    denoise: float = 1.0):  # fmt: skip
    """The model's noise levels in one of ComfyUI's schedule shapes (normal, karras, ...)."""
    if scheduler not in SCHEDULER_NAMES:
        raise input_error(ctx, "scheduler", f"unsupported scheduler {scheduler!r}; "
                                            f"one of: {', '.join(SCHEDULER_NAMES)}")  # fmt: skip
    return model_sigmas(ctx, for_model(sampler_spec(model, "euler", scheduler), model), steps,
                        denoise)  # fmt: skip


@_node(
    "SDTurboScheduler", "SDTurboScheduler", "sampling/custom_sampling/schedulers",
    inputs=[Socket("model", MODEL), Int("steps", 1, min=1, max=TURBO_STEPS),
            Float("denoise", 1.0, min=0.0, max=1.0, step=0.01)],
    outputs=[Output("SIGMAS", SIGMAS)],
)  # fmt: skip
def sd_turbo_scheduler(ctx, model: UNetModel, steps: int = 1, denoise: float = 1.0):
    """SD/SDXL Turbo's few-step noise levels for the model."""
    spec = SchedulerSpec(model_scheduler_config(model), "euler", "EulerDiscreteScheduler")
    return turbo_sigmas(for_model(spec, model), steps, denoise)


@_node(
    "SamplerCustom", "SamplerCustom", "sampling/custom_sampling",
    inputs=[Socket("model", MODEL), Bool("add_noise", True), seed_input("noise_seed"),
            Float("cfg", 8.0, **CFG), Socket("positive", CONDITIONING),
            Socket("negative", CONDITIONING), Socket("sampler", SAMPLER),
            Socket("sigmas", SIGMAS), Socket("latent_image", LATENT)],
    outputs=[Output("output", LATENT), Output("denoised_output", LATENT)],
)  # fmt: skip
def sampler_custom(ctx, model: UNetModel, add_noise: bool, noise_seed: int, cfg: float,
                   positive: Conditioning, negative: Conditioning, sampler: Sampler,
                   sigmas: Any, latent_image: Latent):  # fmt: skip
    """SamplerCustomAdvanced with RandomNoise (or none) and a CFG guider in one node."""
    noise = Noise(noise_seed, enabled=add_noise)
    guider = cfg_guider(ctx, model, positive, negative, cfg)
    return sampler_custom_advanced(ctx, noise, guider, sampler, sigmas, latent_image)
