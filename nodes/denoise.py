"""UNetDenoise: the sampling loop, step for step what diffusers' pipelines do.

The noise prediction of each step (conditioning entries, areas, masks, classifier-free
guidance) is nodes/guidance.py's; in the plain case it is one batched UNet call (negative and
positive rows together), as in diffusers' pipelines.
Between steps it checks for cancellation and reports progress (with a cheap preview, built only
when the caller sends previews, ctx.extra["previews"], and only for the reports it sends). For img2img (`denoise` < 1 on clean latents) the
schedule is cut like diffusers' img2img pipeline, so denoise 0 returns the input unchanged.
"""

from __future__ import annotations

import inspect
import math
import weakref
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from latentgraph.graph import (
    CONDITIONING,
    LATENT,
    MODEL,
    SCHEDULER,
    Float,
    Int,
    Output,
    Socket,
    node,
)
from latentgraph.graph.problems import quoted

from . import runtime
from .controlnet import control_modules
from .guidance import Guidance
from .inpaint_sampling import NoiseMask, from_latent
from .latents import comfy_latent_noise, comfy_step_seeds, make_noise
from .model_sampling import node_spec
from .schedulers import build_scheduler, refuse_steps, sampler_label
from .seeds import brownian_seeds, image_seeds, seed_input, step_generators
from .step_window import (
    ALL_STEPS,
    WINDOW_INPUTS,
    StepWindow,
    finish_at_zero_noise,
    strength_steps,
)
from .values import Conditioning, Latent, SchedulerSpec, UNetModel, enforce_limits, input_error


def preview_image(latents: Any) -> Any:
    """A cheap RGB look at the first latent: three channels, each stretched to 0..255.
    Built on the device; only the small uint8 image is copied to the host. On CUDA the copy
    is queued and then waited for at once (the stream synchronized, the step that made the
    latents included), so its bytes are complete before PIL reads them; elsewhere (MPS) it is
    a blocking copy, as a non-blocking one there may still be arriving when PIL reads it. A
    preview is built only when one is sent (lazily, `Context.progress`), not every step."""
    import torch
    from PIL import Image

    x = latents[0, :3].detach().float()
    lo = x.amin(dim=(1, 2), keepdim=True)
    hi = x.amax(dim=(1, 2), keepdim=True)
    x = ((x - lo) / (hi - lo + 1e-6) * 255).round().to(torch.uint8).permute(1, 2, 0)
    if x.is_cuda:
        host = x.to("cpu", non_blocking=True)
        torch.cuda.current_stream(x.device).synchronize()
    else:
        host = x.cpu()
    return Image.fromarray(host.numpy(), "RGB")


_warm: weakref.WeakKeyDictionary[Any, set[tuple]] = weakref.WeakKeyDictionary()


def warm_up(guidance: Guidance, latents: Any, t: Any) -> None:
    """With `compile`: one prediction on new shapes before the loop, so compiling happens once
    per shape, here, and not inside the first timed step."""
    shape = (tuple(latents.shape), tuple(term.batch_key for term in guidance.terms))
    seen = _warm.setdefault(guidance.model, set())
    if shape in seen:
        return
    guidance.predict(latents, t)
    seen.add(shape)


def step_kwargs(scheduler: Any, device: Any, seeds: list[int], eta: float = 0.0) -> dict[str, Any]:
    """step()'s `generator`/`eta` for schedulers whose step() takes them (PNDM, Heun... do
    not). Stochastic samplers' per-step noise is drawn per image, image i from its own seed
    `seeds[i]` (nodes/seeds.py), so an image of a batch gets the noise it gets alone:
    ancestral, DDPM, LCM, TCD and SDE-DPM++ noise through one generator per image, DPM++ SDE's
    Brownian tree through one tree per image (set on `scheduler` here)."""
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = step_generators(device, seeds)
    if getattr(scheduler, "noise_sampler_seed", None) is not None:
        scheduler.noise_sampler_seed = brownian_seeds(seeds)
    return kwargs


def reported_step(index: int, evaluations: int, order: int) -> int | None:
    """The step to report after model evaluation `index` (0-based) of `evaluations`: a
    second-order scheduler (Heun, DPM2) evaluates twice per step but the last, and progress
    counts steps (as ComfyUI shows them); None between a step's two evaluations."""
    if index + 1 == evaluations:
        return -(-evaluations // order)
    return (index + 1) // order if (index + 1) % order == 0 else None


def upstream(ctx: Any, input_name: str) -> str:
    """The node linked to this node's input `input_name`, as " by node '7' (VAEEncode)", when
    the run's prompt says (ctx.extra["prompt"]: the CLI's and the server's runs); else ""."""
    prompt = ctx.extra.get("prompt")
    entry = prompt.get(ctx.node_id) if isinstance(prompt, dict) else None
    link = entry.get("inputs", {}).get(input_name) if isinstance(entry, dict) else None
    if not (isinstance(link, list | tuple) and link and isinstance(link[0], str)):
        return ""
    source = prompt.get(link[0])
    kind = source.get("class_type") if isinstance(source, dict) else None
    return f" by node {link[0]!r}" + (f" ({kind})" if isinstance(kind, str) else "")


def refuse_nonfinite_input(ctx: Any, input_name: str, samples: Any) -> None:
    """Refuse a latent that holds NaN or inf before sampling it: the sampler would only pass
    them on (a black image) and be blamed for them. Names the input and who made it."""
    import torch

    if bool(torch.isfinite(samples).all()):
        return
    raise input_error(ctx, input_name, f"the latent contains NaN or infinite values, made "
                      f"upstream{upstream(ctx, input_name)}, before any sampling step; "
                      "sampling would only pass them on (a black image): fix that node (in "
                      "fp16, try --dtype fp32 or bf16)")  # fmt: skip


def no_step_warning(steps: int, denoise: float, max_steps: int) -> str | None:
    """Why `denoise` above 0 runs no step of a `steps` schedule (`strength_steps` rounds
    steps x denoise down to 0: a hires-fix pass at 0.05 of 12 steps), with the least steps
    (within `max_steps`) and the least denoise (in the input's 0.01 steps) that run one; None
    when a step runs, or denoise is 0 (which returns the input, as documented)."""
    if denoise <= 0.0 or strength_steps(steps, denoise) > 0:
        return None
    least_steps = math.ceil(1 / denoise)
    while strength_steps(least_steps, denoise) == 0:
        least_steps += 1
    least_denoise = math.ceil(100 / steps) / 100
    while strength_steps(steps, least_denoise) == 0:
        least_denoise = round(least_denoise + 0.01, 2)
    raise_steps = f"steps to at least {least_steps} or " if least_steps <= max_steps else ""
    return (f"denoise {denoise:g} x {steps} steps rounds to 0 steps: the latent is returned "
            f"unchanged (raise {raise_steps}denoise to at least {least_denoise:g})")  # fmt: skip


GUIDANCE_RULE = ("classifier-free guidance scale; as in diffusers' pipelines, 1 or less "
                 "follows the positive alone (the negative is not used)")  # fmt: skip


@node(
    "UNetDenoise",
    category="sampling",
    inputs=[
        Socket("unet", MODEL),
        Socket("scheduler", SCHEDULER),
        Socket("positive", CONDITIONING),
        Socket("negative", CONDITIONING),
        Socket("latent", LATENT),
        Int("steps", 20, min=1, max=10000, limit="max_steps"),
        Float("guidance", 7.5, min=0.0, max=100.0, step=0.1, description=GUIDANCE_RULE),
        Float(
            "denoise",
            1.0,
            min=0.0,
            max=1.0,
            step=0.01,
            description="strength for img2img: the last steps x denoise steps of the schedule "
            "run, rounded down (below one step, none: a warning says so); 1 repaints fully, 0 "
            "returns the input",
        ),  # fmt: skip
        seed_input(description="noise for img2img and stochastic schedulers"),
        *WINDOW_INPUTS,
    ],
    outputs=[Output("latent", LATENT)],
)
def unet_denoise(ctx, unet: UNetModel, scheduler: SchedulerSpec, positive: Conditioning,
                 negative: Conditioning, latent: Latent, steps: int = 20, guidance: float = 7.5,
                 denoise: float = 1.0, seed: int = 0, start_step: int = 0,
                 end_step: int = ALL_STEPS, add_noise: bool = True,
                 return_with_leftover_noise: bool = False):  # fmt: skip
    """Denoise latents with the UNet under a scheduler, with classifier-free guidance
    (optionally only steps start_step..end_step of the schedule: base + refiner)."""
    window = StepWindow(start_step, end_step, add_noise, return_with_leftover_noise)
    job = DenoiseJob(ctx, unet, scheduler, positive, negative, latent, steps=steps,
                     guidance=guidance, denoise=denoise, seed=seed, window=window)  # fmt: skip
    return denoise_latent(job)


def denoise_latent(job: DenoiseJob) -> Latent:
    """UNetDenoise's run, for the nodes sampling through it (KSampler, which fills the job's
    ComfyUI fields): its inputs checked, the scheduler made the model's, the job run on the
    run's device and its latents checked and brought back to the CPU."""
    import torch

    ctx = job.ctx
    enforce_limits(ctx, unet_denoise, steps=job.steps)
    refuse_nonfinite_input(ctx, job.latent_input, job.latent.samples)
    scheduler = node_spec(ctx, job.spec, job.unet, "scheduler")  # the model's sampling
    model = job.model
    name = runtime.device_name(ctx.settings)
    with runtime.in_use(ctx.settings, name, model, *control_modules(job.positive, job.negative)):
        out = replace(job, spec=scheduler, device=torch.device(name)).run()
    runtime.check_finite(ctx, out.samples, "the denoised latents", model.dtype,
                         f"the sampler, {sampler_label(scheduler)}, or the model made them; try "
                         "another sampler (euler is the plainest)",
                         " (or --option sdpa=false for models that upcast attention)")  # fmt: skip
    # cached values live on the CPU; a noise mask stays on the latent (as ComfyUI keeps it)
    return replace(out, samples=out.samples.cpu())


@dataclass
class DenoiseJob:
    """One denoising run: UNetDenoise's inputs (or KSampler's), its state in one object.
    `denoise_latent` runs it, with `spec` made the model's and `device` the run's."""

    ctx: Any
    unet: UNetModel
    spec: SchedulerSpec
    positive: Conditioning
    negative: Conditioning
    latent: Latent
    steps: int
    guidance: float
    seed: int
    denoise: float = 1.0
    window: StepWindow = StepWindow()
    comfy_cfg: bool = False  # ComfyUI's cfg rule (nodes/guidance.py `uses_negative`)
    # ComfyUI's batch noise rule (nodes/seeds.py: one generator, the latent's batch positions)
    # for KSampler; else ours, image i from seed + i
    comfy_noise: bool = False
    # the (steps, denoise) the user set when `steps` is the schedule made from them
    # (KSampler's steps / denoise), for the step-limit message
    asked: tuple[int, float] | None = None
    latent_input: str = "latent"  # the caller's name for the latent input, for messages
    # the sampler as the user chose it, for messages (KSampler's `sampler 'dpmpp_2m'
    # (scheduler 'normal')`); empty: the SCHEDULER input's (`scheduler 'dpm++2m'`)
    sampler: str = ""
    device: Any = None  # torch.device, set by `denoise_latent`

    @property
    def model(self) -> Any:
        """The diffusers UNet."""
        return self.unet.unet

    def predictor(self, sched: Any) -> Guidance:
        """The noise prediction for each step (nodes/guidance.py)."""
        return Guidance(self.ctx, self.model, self.device, self.positive, self.negative,
                        self.guidance, tuple(self.latent.samples.shape),
                        sched.config.num_train_timesteps, from_latent(self.latent),
                        comfy_cfg=self.comfy_cfg)  # fmt: skip

    def bounds(self) -> tuple[int, int]:
        """(first step, step to stop before) of the schedule: img2img and the window cut it."""
        steps = self.steps
        skipped = 0 if self.latent.is_noise else steps - strength_steps(steps, self.denoise)
        return self.window.bounds(steps, skipped)

    def start_noise(self) -> Any:
        """The noise the run starts from: a LatentNoise latent's own, else seeded per image
        (by `comfy_noise`'s rule)."""
        samples = self.latent.samples
        if self.latent.is_noise:
            return samples
        if self.comfy_noise:
            return comfy_latent_noise(self.latent, self.seed)
        return make_noise(tuple(samples.shape[1:]), image_seeds(self.seed, samples.shape[0]))

    def step_seeds(self) -> list[int]:
        """Each image's seed for stochastic samplers' per-step noise (`step_kwargs`): by
        position under `comfy_noise`, else this node's own seed + i."""
        if self.comfy_noise:
            return comfy_step_seeds(self.latent, self.seed)
        return image_seeds(self.seed, self.latent.samples.shape[0])

    def noise_mask(self) -> NoiseMask | None:
        """What the latent's noise mask keeps (nodes/inpaint_sampling.py): the latent (zeros
        for pure noise), re-noised with the starting noise; None without a mask."""
        if self.latent.noise_mask is None:
            return None
        samples = self.latent.samples.to(self.device, self.model.dtype)
        return NoiseMask.for_latent(self.latent, samples, self.start_noise())

    def final_timestep(self, sched: Any) -> Any | None:
        """The noise level the run ends at: the step after the window when it returns its
        leftover noise, else None (clean). A window that stops early stops before the last
        step, so that step's timestep exists (second-order schedulers have 2n - 1)."""
        if not (self.window.stops_early(self.steps) and self.window.leftover_noise):
            return None
        return sched.timesteps[self.bounds()[1] * sched.order]

    def start(self, sched: Any) -> tuple[Any, Any] | None:
        """The starting latents and the timesteps left to run (img2img and the step window
        cut the schedule); None when nothing is left to denoise."""
        samples, steps, denoise, window = self.latent.samples, self.steps, self.denoise, self.window
        is_noise = self.latent.is_noise
        if is_noise and denoise < 1.0:
            self.ctx.warn("denoise < 1 has no effect on pure noise from LatentNoise; "
                          "use VAEEncode for img2img")  # fmt: skip
        elif warning := no_step_warning(steps, denoise, self.ctx.settings.limit("max_steps")):
            self.ctx.warn(warning)
        begin, end = self.bounds()
        order = sched.order
        early = window.stops_early(steps)  # (PNDM has more timesteps than steps: no cut)
        timesteps = sched.timesteps[begin * order : end * order if early else None]
        if len(timesteps) == 0:
            return None
        if early and not window.leftover_noise:
            if not finish_at_zero_noise(sched, end):
                raise input_error(self.ctx, "return_with_leftover_noise", "stopping early at "
                                  "zero noise needs a sigma-based scheduler (euler, dpm++2m, "
                                  "...); or return the leftover noise")  # fmt: skip
            timesteps = sched.timesteps[begin * order :]  # now ending at the window's end
        if hasattr(sched, "set_begin_index"):
            # from the top too: else diffusers finds the first step by its timestep, and a
            # schedule whose rounded first timestep repeats (beta sigmas: 999, 999, ...) starts
            # at the second, so multistep solvers run past their tables (UniPC's assertion,
            # DPM++'s IndexError at the last step)
            sched.set_begin_index(begin * order)
        latents = samples.to(self.device, self.model.dtype)
        if not window.add_noise:  # a latent that still has its noise: continue from it
            return latents, timesteps
        if is_noise and begin == 0:
            return latents * sched.init_noise_sigma, timesteps
        batch = samples.shape[0]
        # starting part-way on pure noise: noise at that step's level
        clean = latents.new_zeros(latents.shape) if is_noise else latents
        noise = self.start_noise().to(latents)
        return sched.add_noise(clean, noise, timesteps[:1].repeat(batch)), timesteps

    def run(self) -> Latent:
        import torch

        from .custom_sampler import set_steps  # (it imports this module)

        ctx = self.ctx
        sched = build_scheduler(self.spec, self.seed)
        sampler = self.sampler or f"scheduler {quoted(self.spec.name or type(sched).__name__)}"
        refuse_steps(ctx, sched, sampler, *(self.asked or (self.steps, 1.0)))
        samples = self.latent.samples
        batch = samples.shape[0]
        guidance = self.predictor(sched)  # checks the conditioning before any step runs
        set_steps(sched, self.spec, self.steps, self.device)  # a sigma shape as a table too
        # The seeds the images were made from (their starting noise's, LatentNoise's), kept
        # on the output; not the per-step noise's below. ComfyUI's rule has no seed per image.
        seeds = self.latent.seeds or (None if self.comfy_noise else image_seeds(self.seed, batch))
        started = self.start(sched)
        if started is None:  # nothing to run: the input as it is (pure noise stays noise)
            return self.latent
        latents, timesteps = started
        # Per-step noise, by design: from this node's own seed (`step_seeds`), not the
        # latent's seeds: a sampler's noise is its own seed's, as ComfyUI's KSampler's
        # (docs/comfy-compat.md, Noise; batch_seeds.yaml feeds both).
        kwargs = step_kwargs(sched, self.device, self.step_seeds())
        previews = bool(ctx.extra.get("previews"))
        total = len(timesteps)
        steps_run = reported_step(total - 1, total, sched.order)
        keep = self.noise_mask()  # outside the latent's noise mask, the original stays
        with torch.inference_mode():
            if ctx.settings.option("compile"):
                warm_up(guidance, latents, timesteps[0])
            for i, t in enumerate(timesteps):
                ctx.check_cancelled()
                noise_pred = guidance.predict(sched.scale_model_input(latents, t), t)
                latents = sched.step(noise_pred, t, latents, **kwargs, return_dict=False)[0]
                if keep is not None:
                    following = timesteps[i + 1] if i + 1 < total else self.final_timestep(sched)
                    latents = keep.after_step(sched, latents, following)
                done = reported_step(i, total, sched.order)
                if done is not None:
                    preview = partial(preview_image, latents) if previews else None
                    ctx.progress(done, steps_run, preview)
        return replace(self.latent, samples=latents, seeds=seeds, is_noise=False)
