"""SamplerCustomAdvanced: sampling from parts given on sockets (ComfyUI's custom sampling).

The parts: NOISE (the starting noise: RandomNoise by seed, or DisableNoise), GUIDER (the
noise prediction per step, nodes/guiders.py), SAMPLER (the update rule: a diffusers scheduler
by name) and SIGMAS (the noise levels to step through, nodes/sigmas.py). The scheduler is
given the noise levels with diffusers' own `set_timesteps(sigmas=...)` where it has it
(`set_schedule`); samplers whose diffusers scheduler cannot take them are refused
(`sigma_problem`). KSampler hands such a sampler its sigma shapes the same way (`set_steps`).
The starting noise is KSampler's (ComfyUI's batch rule, nodes/latents.py
`comfy_latent_noise`: one generator, the latent's batch positions), so a seed means the same
image as with KSampler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from latentgraph.graph import LATENT, SCHEDULER, Choice, Output, Socket, node
from latentgraph.graph.declare import GUIDER, NOISE, SAMPLER, SIGMAS

from . import runtime
from .controlnet import control_modules
from .denoise import refuse_nonfinite_input
from .inpaint_sampling import NoiseMask
from .latents import comfy_latent_noise, comfy_step_seeds
from .model_sampling import model_scheduler_config, node_spec
from .schedulers import SCHEDULERS, build_scheduler, sampler_label, spans_from_the_top
from .seeds import seed_input
from .values import Latent, SchedulerSpec, UNetModel, input_error

# latentgraph sampler names whose diffusers scheduler runs a given list of noise levels:
# through `set_timesteps(sigmas=...)` (UniPC takes them only for flow-matching models), or,
# for schedulers whose steps read nothing but their public `sigmas` and `timesteps` tables,
# by setting those tables (as nodes/step_window.py does to end at zero noise). Checked
# against diffusers by tests/nodes/test_custom_sampling.py.
TAKES_SIGMAS = ("euler",)
READS_SIGMA_TABLE = ("euler_a",)


def sigma_problem(name: Any, shown: str = "", usable: tuple[str, ...] = ()) -> str | None:
    """Why sampler `name` (a latentgraph name) cannot run a given noise schedule, or None when
    it can. `shown` and `usable` say it in the caller's names (ComfyUI's, for KSamplerSelect)."""
    usable = usable or TAKES_SIGMAS + READS_SIGMA_TABLE
    if name not in SCHEDULERS or name in TAKES_SIGMAS + READS_SIGMA_TABLE:
        return None  # unknown names: the dropdown check lists the known ones
    return (f"sampler {(shown or name)!r} cannot run a given noise schedule: diffusers' "
            f"{SCHEDULERS[name][0]} takes no custom sigmas; use one of: {', '.join(usable)}")  # fmt: skip


def set_schedule(sched: Any, spec: SchedulerSpec, sigmas: Any, device: Any) -> None:
    """Give scheduler `sched` (built from `spec`) the noise levels `sigmas` to step through,
    with the timesteps diffusers' Euler scheduler derives from them for this model."""
    levels = sigmas.tolist()
    if spec.name in TAKES_SIGMAS:
        sched.set_timesteps(sigmas=levels, device=device)
        return
    euler = build_scheduler(SchedulerSpec(spec.config, "euler", SCHEDULERS["euler"][0]))
    euler.set_timesteps(sigmas=levels, device=device)
    sched.set_timesteps(len(levels) - 1, device=device)
    sched.sigmas, sched.timesteps = euler.sigmas, euler.timesteps


# diffusers' options for a sigma shape (ComfyUI's karras, exponential, beta schedulers)
SHAPE_OPTIONS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


def set_steps(sched: Any, spec: SchedulerSpec, steps: int, device: Any = None) -> None:
    """Give scheduler `sched` (built from `spec`, fresh) a schedule of `steps` steps, from the
    model's highest noise level when its spacing spans the whole range (`spans_from_the_top`).
    A sigma shape `spec` asks for (KSampler's karras, ...) that the scheduler's diffusers class
    has no option for (euler_a) is made once by diffusers' Euler scheduler, from the same
    config and options, and handed to it as a table (`set_schedule`), when it runs one
    (`sigma_problem`); else diffusers sets its own schedule."""
    spec = spans_from_the_top(sched, spec, steps)
    lacking = any(spec.overrides.get(o) and not sched.config.get(o) for o in SHAPE_OPTIONS)
    if not lacking or sigma_problem(spec.name) is not None:
        sched.set_timesteps(steps, device=device)
        return
    euler = build_scheduler(SchedulerSpec(spec.config, "euler", SCHEDULERS["euler"][0],
                                          spec.overrides))  # fmt: skip
    euler.set_timesteps(steps)
    set_schedule(sched, spec, euler.sigmas, device)


@dataclass(frozen=True)
class Noise:
    """NOISE: the starting noise by ComfyUI's batch rule (one generator seeded `seed`, the
    latent's batch positions: nodes/seeds.py), or none (DisableNoise). The seed also seeds
    stochastic samplers' per-step noise, per position too (`step_seeds`)."""

    seed: int = 0
    enabled: bool = True

    def make(self, latent: Latent) -> Any:
        """Unit noise shaped like the latent, or None."""
        if not self.enabled:
            return None
        return comfy_latent_noise(latent, self.seed)

    def step_seeds(self, latent: Latent) -> list[int]:
        """Each row's seed for stochastic samplers' per-step noise, by its batch position."""
        return comfy_step_seeds(latent, self.seed)


@dataclass(frozen=True)
class Sampler:
    """SAMPLER: a latentgraph scheduler name (nodes/schedulers.py), extra diffusers options,
    and the model's scheduler config when given (else the guider's MODEL's is used)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None

    def spec(self, model: UNetModel) -> SchedulerSpec:
        """How to build the diffusers scheduler sampling `model`."""
        config = self.config if self.config is not None else model_scheduler_config(model)
        class_name, overrides = SCHEDULERS[self.name]
        return SchedulerSpec(dict(config), self.name, class_name, {**overrides, **self.options})


@node(
    "SamplerSelect",
    category="sampling/custom_sampling",
    inputs=[Choice("name", list(TAKES_SIGMAS + READS_SIGMA_TABLE), "euler",
                   description="the update rule (the samplers that can run a given schedule)"),
            Socket("scheduler", SCHEDULER, optional=True, description="the model's noise "
                   "schedule (LoadModel's); else the guider's MODEL's. The MODEL's sampling "
                   "(v-prediction, zsnr) applies either way")],
    outputs=[Output("sampler", SAMPLER)],
)  # fmt: skip
def sampler_select(ctx, name: str = "euler", scheduler: SchedulerSpec | None = None):
    """A sampler for SamplerCustomAdvanced, by latentgraph scheduler name."""
    problem = sigma_problem(name)
    if problem or name not in SCHEDULERS:
        raise input_error(ctx, "name", problem or f"unknown sampler {name!r}")
    return Sampler(name, config=dict(scheduler.config) if scheduler is not None else None)


@node(
    "RandomNoise", display_name="RandomNoise", category="sampling/noise",
    inputs=[seed_input("noise_seed")],
    outputs=[Output("NOISE", NOISE)],
)  # fmt: skip
def random_noise(ctx, noise_seed: int = 0):
    """Seeded starting noise, the same as LatentNoise's and KSampler's for that seed."""
    return Noise(noise_seed)


@node(
    "DisableNoise", display_name="DisableNoise", category="sampling/noise",
    outputs=[Output("NOISE", NOISE)],
)  # fmt: skip
def disable_noise(ctx):
    """No starting noise: continue a latent that still has its noise (after SplitSigmas)."""
    return Noise(0, enabled=False)


@node(
    "SamplerCustomAdvanced", display_name="SamplerCustomAdvanced",
    category="sampling/custom_sampling",
    inputs=[Socket("noise", NOISE), Socket("guider", GUIDER), Socket("sampler", SAMPLER),
            Socket("sigmas", SIGMAS), Socket("latent_image", LATENT)],
    outputs=[Output("output", LATENT, description="the latent after the last noise level"),
             Output("denoised_output", LATENT, description="the model's prediction of the "
                    "clean latent at the last step")],
)  # fmt: skip
def sampler_custom_advanced(ctx, noise: Noise, guider: Any, sampler: Sampler, sigmas: Any,
                            latent_image: Latent):  # fmt: skip
    """Denoise through the given noise levels with the guider's predictions."""
    import torch

    spec = node_spec(ctx, sampler.spec(guider.unet), guider.unet, "sampler")
    problem = sigma_problem(spec.name)  # (an lcm model's LCMScheduler cannot)
    if problem:
        raise input_error(ctx, "sampler", problem)
    if sigmas.dim() != 1:
        raise input_error(ctx, "sigmas", f"expected a 1-D list of noise levels, got shape "
                                         f"{list(sigmas.shape)}")  # fmt: skip
    refuse_nonfinite_input(ctx, "latent_image", latent_image.samples)
    model = guider.unet.unet
    name = runtime.device_name(ctx.settings)
    with runtime.in_use(ctx.settings, name, model, *control_modules(*guider.conds)):
        run = CustomSampling(ctx, guider, spec, sigmas, latent_image, noise, torch.device(name))
        out, denoised = run.run()
    runtime.check_finite(ctx, out, "the denoised latents", model.dtype,
                         f"the sampler, {sampler_label(spec)}, or the model made them over these "
                         "sigmas; try another sampler (euler is the plainest)")  # fmt: skip
    seeds, positions = latent_image.seeds, latent_image.batch_index  # (no seed per image)
    return (Latent(out.cpu(), seeds, is_noise=False, batch_index=positions),
            Latent(denoised.cpu(), seeds, is_noise=False, batch_index=positions))  # fmt: skip


@dataclass
class CustomSampling:
    """One run through a given list of noise levels."""

    ctx: Any
    guider: Any  # nodes/guiders.py Guider
    spec: SchedulerSpec
    sigmas: Any  # 1-D float tensor
    latent: Latent
    noise: Noise
    device: Any  # torch.device

    def samples(self) -> Any:
        return self.latent.samples.to(self.device, self.guider.unet.unet.dtype)

    def start(self, sigma: Any) -> Any:
        """The latent at the first noise level: a LatentNoise latent is unit noise already;
        any other gets the NOISE input's noise at that level (none with DisableNoise)."""
        samples = self.samples()
        if self.latent.is_noise:
            return samples * sigma
        noise = self.noise.make(self.latent)
        if noise is None:
            return samples
        return samples + noise.to(samples) * sigma

    def noise_mask(self) -> NoiseMask | None:
        """What the latent's noise mask keeps (nodes/inpaint_sampling.py): outside the mask
        the original at each noise level, re-noised with the starting noise (with
        DisableNoise the latent already holds its noise: it is kept as it is)."""
        if self.latent.noise_mask is None:
            return None
        samples = self.samples()
        noise = samples if self.latent.is_noise else self.noise.make(self.latent)
        noise = samples.new_zeros(samples.shape) if noise is None else noise
        return NoiseMask.for_latent(self.latent, samples, noise)

    def run(self) -> tuple[Any, Any]:
        """(latent after the last level, the model's clean-latent prediction at the last step)."""
        import torch

        from .denoise import preview_image, step_kwargs

        ctx, sigmas = self.ctx, self.sigmas
        if len(sigmas) < 2:  # no step to take
            samples = self.latent.samples
            return samples.clone(), samples.clone()
        seed = self.noise.seed
        sched = build_scheduler(self.spec, seed)
        set_schedule(sched, self.spec, sigmas, self.device)
        latents = self.start(sched.sigmas[0].to(self.device))
        keep = self.noise_mask()  # outside the latent's noise mask, the original stays
        denoised = latents
        predict = self.guider.predictor(ctx, self.device, tuple(self.latent.samples.shape),
                                        sched.config.num_train_timesteps)  # fmt: skip
        kwargs = step_kwargs(sched, self.device, self.noise.step_seeds(self.latent))
        previews = bool(ctx.extra.get("previews"))
        total = len(sched.timesteps)
        with torch.inference_mode():
            for i, t in enumerate(sched.timesteps):
                ctx.check_cancelled()
                noise_pred = predict(sched.scale_model_input(latents, t), t)
                out = sched.step(noise_pred, t, latents, **kwargs)
                latents, denoised = out.prev_sample, out.pred_original_sample
                if keep is not None:
                    latents = keep.at_sigma(latents, float(sched.sigmas[i + 1]))
                ctx.progress(i + 1, total, partial(preview_image, denoised) if previews else None)
        return latents, denoised
