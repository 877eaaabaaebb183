"""ComfyUI's classic nodes, with ComfyUI's names, inputs, widget order and outputs.

Thin adapters over latentgraph's own nodes (loaders, text, denoise): no second copy of the
diffusion code. They are declared in `comfy_registry`; `install()` adds them to a registry
(`import latentgraph.nodes` installs them into the default one). VAEDecode, VAEEncode,
LoadImage, SaveImage and PreviewImage need no adapter: latentgraph's own nodes (nodes/vae.py,
nodes/images.py) already have ComfyUI's names, inputs and outputs.

Samplers: `sampler_name` + `scheduler` become a diffusers scheduler and config options
(`SAMPLERS`, `SIGMAS`); combinations with no equivalent are refused at validation with the
supported ones listed. docs/comfy-compat.md says where results differ from ComfyUI.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from latentgraph.graph import (
    ANY,
    BOOLEAN,
    CLIP,
    CONDITIONING,
    FLOAT,
    INT,
    LATENT,
    MODEL,
    STRING,
    VAE,
    Bool,
    Choice,
    Float,
    Int,
    NodeResult,
    NodeType,
    Output,
    Registry,
    Settings,
    Socket,
    String,
    default_registry,
    node,
)  # fmt: skip
from latentgraph.graph.context import BATCH_LIMITS, SIZE_LIMITS, limit_label
from latentgraph.graph.problems import quoted

from . import models_dirs
from .custom_sampler import sigma_problem
from .images import MASK  # noqa: F401 - ComfyUI's mask socket type, for plugins
from .model_sampling import model_scheduler_config
from .seeds import seed_input
from .step_window import tail_of_longer_schedule
from .text import embedding_identity, embedding_problems
from .values import (
    ClipModel,
    Conditioning,
    Latent,
    SchedulerSpec,
    UNetModel,
    enforce_limits,
    input_called,
    input_error,
)

MAX_RESOLUTION = 16384
INT_LIMIT = 2**63 - 1
comfy_registry = Registry()

# ComfyUI sampler_name -> (latentgraph SchedulerSelect name, extra diffusers options)
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("euler", {}),
    "euler_ancestral": ("euler_a", {}),
    "heun": ("heun", {}),
    "dpm_2": ("dpm2", {}),
    "dpm_2_ancestral": ("dpm2_a", {}),
    "lms": ("lms", {}),
    "dpmpp_2m": ("dpm++2m", {}),
    "dpmpp_sde": ("dpm++sde", {}),
    "dpmpp_2m_sde": ("dpm++2m_sde", {}),
    "ddpm": ("ddpm", {}),
    "lcm": ("lcm", {}),
    "deis": ("deis", {}),
    "ddim": ("ddim", {}),
    "uni_pc": ("unipc", {"solver_type": "bh1", "solver_order": 3}),  # ComfyUI's order
    "uni_pc_bh2": ("unipc", {"solver_type": "bh2", "solver_order": 3}),
}
# ComfyUI's sigma shapes run from the model's highest noise level to its lowest (timesteps
# T - 1 to 0). diffusers' Euler-family schedulers take the shape's range from the spaced
# timesteps instead, so with a checkpoint's "leading" spacing (SDXL's) Karras started at
# timestep 951 of 1000 (20 steps), lower with fewer steps: "linspace" spans exactly T - 1..0
# (at 1 step, T - 1: nodes/schedulers.py `spans_from_the_top`).
_WHOLE_RANGE = {"timestep_spacing": "linspace"}
# ComfyUI scheduler -> diffusers options. A sigma shape runs on a scheduler that has the option,
# or is made by diffusers' Euler and given as a table to a sampler that runs one
# (`sampler_problem`; nodes/custom_sampler.py `set_steps`).
SIGMAS: dict[str, dict[str, Any]] = {
    "normal": {"timestep_spacing": "linspace"},
    "karras": {"use_karras_sigmas": True, **_WHOLE_RANGE},
    "exponential": {"use_exponential_sigmas": True, **_WHOLE_RANGE},
    "sgm_uniform": {"timestep_spacing": "trailing"},
    "simple": {"timestep_spacing": "trailing"},
    "ddim_uniform": {"timestep_spacing": "leading"},
    "beta": {"use_beta_sigmas": True, **_WHOLE_RANGE},
}
SIGMA_SHAPES = frozenset({"karras", "exponential", "beta"})
# latentgraph scheduler names whose diffusers class takes use_karras/exponential/beta_sigmas
# (checked against diffusers' signatures by tests/comfy); the others run a shape only as a
# table (custom_sampler.sigma_problem says which can).
WITH_SIGMA_SHAPES = frozenset(
    {"lms", "euler", "heun", "dpm++2m", "dpm++2m_sde", "dpm++sde", "dpm2", "dpm2_a", "unipc",
     "deis"}
)  # fmt: skip
# ComfyUI's LatentUpscale makes each side at least this many pixels (8 cells), in all cases;
# our own latent tools (nodes/latent_tools.py) keep their own rules
LATENT_UPSCALE_FLOOR = 64
UPSCALE_METHODS = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "area": "area",
                   "bicubic": "bicubic"}  # fmt: skip


def install(registry: Registry | None = None) -> list[str]:
    """Add the ComfyUI nodes to `registry`; returns the names of the nodes they replaced.
    An adapter named like one of our built-in nodes is refused (ValueError naming both), so
    `import latentgraph.nodes` fails rather than lose ours without a word: a ComfyUI name is
    declared once, as our node or as an adapter (docs/contributing.md). No replacement of a
    built-in is intended: VAEDecode, VAEEncode, LoadImage, SaveImage, PreviewImage and the tools
    are ours under ComfyUI's names, with no adapter."""
    registry = registry if registry is not None else default_registry
    shadowed = [f"{t.name!r} ({t.module}) would replace the built-in one in {held.module}"
                for t in comfy_registry
                if (held := registry.get(t.name)) is not None and held is not t and held.builtin]  # fmt: skip
    if shadowed:
        raise ValueError(f"ComfyUI adapter {'; '.join(shadowed)}: declare a ComfyUI name once, "
                         "as our node or as an adapter in nodes/comfy*.py, never both")  # fmt: skip
    replaced = [t.name for t in comfy_registry if t.name in registry]
    for node_type in comfy_registry:
        registry.add(node_type)  # a name a plugin took: NameClash, or said (plugins._on_clash)
    return replaced


def _node(name: str, display_name: str, category: str, **kw: Any):
    return node(name, display_name=display_name, category=category, registry=comfy_registry, **kw)


# --- samplers --------------------------------------------------------------------------------


def runs_sigma_shapes(ours: str) -> bool:
    """Whether latentgraph sampler `ours` runs ComfyUI's sigma shapes: its diffusers class has
    the option, or it runs a given noise schedule (SamplerCustomAdvanced's rule,
    `sigma_problem`), which diffusers' Euler makes in that shape."""
    return ours in WITH_SIGMA_SHAPES or sigma_problem(ours) is None


def sampler_problem(sampler_name: Any, scheduler: Any) -> str | None:
    """Why this sampler/scheduler pair cannot run here, or None when it can."""
    if sampler_name not in SAMPLERS or scheduler not in SIGMAS:
        return None  # the dropdown check reports unknown values with the supported list
    ours = SAMPLERS[sampler_name][0]
    if scheduler in SIGMA_SHAPES and not runs_sigma_shapes(ours):
        usable = [s for s in SIGMAS if s not in SIGMA_SHAPES]
        unable = [name for name, (lg, _) in SAMPLERS.items() if not runs_sigma_shapes(lg)]
        return (f"scheduler {quoted(scheduler)} has no diffusers equivalent with sampler "
                f"{quoted(sampler_name)} (no {scheduler} sigmas, no given noise schedule); with "
                f"{quoted(sampler_name)} use one of: {', '.join(usable)}; or with "
                f"{quoted(scheduler)} any sampler but {', '.join(unable)}")  # fmt: skip
    return None


def _check_sampler(inputs: dict[str, Any], settings: Settings) -> list[tuple[str | None, str]]:
    message = sampler_problem(inputs.get("sampler_name"), inputs.get("scheduler"))
    return [("scheduler", message)] if message else []


def sampler_spec(model: UNetModel, sampler_name: str, scheduler: str) -> SchedulerSpec:
    """The SchedulerSpec latentgraph's UNetDenoise runs, for a ComfyUI sampler + scheduler."""
    from .schedulers import SCHEDULERS

    config = model_scheduler_config(model)
    ours, options = SAMPLERS[sampler_name]
    class_name, overrides = SCHEDULERS[ours]
    merged = {**overrides, **options, **SIGMAS[scheduler]}
    if ours == "lcm" or class_name in ("DPMSolverSinglestepScheduler",):
        merged.pop("timestep_spacing", None)
    return SchedulerSpec(dict(config), ours, class_name, merged)


def _is_empty(latent: Latent) -> bool:
    return latent.is_noise is False and not bool(latent.samples.any())


def _sample(ctx, model, *, seed, steps, cfg, sampler_name, scheduler, positive, negative,
            latent, asked=None, **window):  # fmt: skip
    """Run UNetDenoise with the ComfyUI sampler and scheduler, over the window's part of a
    `steps` schedule, with ComfyUI's cfg rule (only cfg 1 leaves the negative out). An empty
    latent sampled from the first step starts from pure noise; one starting part-way is noised
    to that step's level by UNetDenoise, as ComfyUI does. `asked`: KSampler's (steps, denoise)
    that made the `steps` schedule."""
    from .denoise import DenoiseJob, denoise_latent
    from .latents import comfy_latent_noise
    from .step_window import StepWindow

    if sampler_name not in SAMPLERS:
        raise input_error(ctx, "sampler_name", f"unsupported sampler {quoted(str(sampler_name))}; "
                                               f"one of: {', '.join(SAMPLERS)}")  # fmt: skip
    if scheduler not in SIGMAS:
        raise input_error(ctx, "scheduler", f"unsupported scheduler {quoted(str(scheduler))}; "
                                            f"one of: {', '.join(SIGMAS)}")  # fmt: skip
    problem = sampler_problem(sampler_name, scheduler)
    if problem:
        raise input_error(ctx, "scheduler", problem)
    spec = sampler_spec(model, sampler_name, scheduler)
    from_the_top = window.get("start_step", 0) == 0 and window.get("add_noise", True)
    if _is_empty(latent) and from_the_top:
        # given as pure noise, it starts as the pipelines do (noise x init_noise_sigma), not
        # added to zeros at the first timestep (smaller for DDIM, DPM++, UniPC)
        noise = comfy_latent_noise(latent, seed)
        latent = replace(latent, samples=noise, is_noise=True)  # a noise mask, positions kept
    leftover = window.pop("return_with_leftover_noise", False)
    # the sampler and scheduler as the user named them, for messages (not ours: 'dpm++2m')
    chosen = f"sampler {quoted(sampler_name)} (scheduler {quoted(scheduler)})"
    job = DenoiseJob(ctx, model, spec, positive, negative, latent, steps=steps, guidance=cfg,
                     seed=seed, window=StepWindow(**window, leftover_noise=leftover),
                     comfy_cfg=True, comfy_noise=True, asked=asked, latent_input="latent_image",
                     sampler=chosen)  # fmt: skip
    return denoise_latent(job)


SAMPLER_INPUTS = [
    Int("steps", 20, min=1, max=10000, limit="max_steps"),
    Float("cfg", 8.0, min=0.0, max=100.0, step=0.1, round=0.01),
    Choice("sampler_name", list(SAMPLERS), "euler"),
    Choice("scheduler", list(SIGMAS), "normal"),
    Socket("positive", CONDITIONING),
    Socket("negative", CONDITIONING),
    Socket("latent_image", LATENT),
]


def denoise_problem(steps: Any, denoise: Any, settings: Settings) -> str | None:
    """Why KSampler's `denoise` cannot run under the run's step limit, or None: it runs
    `steps` steps of a schedule of steps / denoise steps, and the schedule is bounded too."""
    if type(steps) is not int or not isinstance(denoise, int | float):
        return None  # linked or ill-typed: checked where the value is known
    total, _ = tail_of_longer_schedule(steps, denoise)
    bound = settings.limit("max_steps")
    if total <= bound or steps > bound:  # (steps over the limit: its own input says so)
        return None
    return (f"denoise {denoise} runs the last {steps} steps of a schedule of steps / denoise = "
            f"{total} steps, over the limit of {bound} ({limit_label(settings, 'max_steps')}); raise "
            "denoise or the limit")  # fmt: skip


def _check_ksampler(inputs: dict[str, Any], settings: Settings) -> list[tuple[str | None, str]]:
    problem = denoise_problem(inputs.get("steps"), inputs.get("denoise"), settings)
    return _check_sampler(inputs, settings) + ([("denoise", problem)] if problem else [])


@_node(
    "KSampler", "KSampler", "sampling",
    inputs=[Socket("model", MODEL), seed_input(),
            *SAMPLER_INPUTS, Float("denoise", 1.0, min=0.0, max=1.0, step=0.01,
                                   description="below 1: the last `steps` steps of a schedule "
                                   "of steps / denoise steps (img2img); 0: no steps")],
    outputs=[Output("LATENT", LATENT)],
    check=_check_ksampler,
)  # fmt: skip
def ksampler(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
             latent_image, denoise=1.0):  # fmt: skip
    """Denoise a latent (an empty one: text to image) with a ComfyUI sampler and scheduler.
    `denoise` is ComfyUI's: the step window over a longer schedule, not diffusers' strength;
    so is `cfg`: negative + cfg × (positive − negative), only cfg 1 leaving the negative out."""
    problem = denoise_problem(steps, denoise, ctx.settings)
    if problem:
        raise input_error(ctx, "denoise", problem)
    total, first = tail_of_longer_schedule(steps, denoise)
    return _sample(ctx, model, seed=seed, steps=total, cfg=cfg, sampler_name=sampler_name,
                   scheduler=scheduler, positive=positive, negative=negative,
                   latent=latent_image, start_step=first, asked=(steps, denoise))  # fmt: skip


# samplers whose diffusers scheduler has no noise levels (sigmas) to end early at zero noise
WITHOUT_SIGMAS = frozenset({"ddim", "ddpm", "lcm"})


def _check_advanced(inputs: dict[str, Any], settings: Settings) -> list[tuple[str | None, str]]:
    problems = _check_sampler(inputs, settings)
    end, steps = inputs.get("end_at_step"), inputs.get("steps")
    early = isinstance(end, int) and isinstance(steps, int) and end < steps
    if (early and inputs.get("return_with_leftover_noise") == "disable"
            and inputs.get("sampler_name") in WITHOUT_SIGMAS):  # fmt: skip
        can = ", ".join(s for s in SAMPLERS if s not in WITHOUT_SIGMAS)
        problems.append(("return_with_leftover_noise", f"stopping early ({end} < steps {steps}) "
                         f"at zero noise is not possible with {quoted(inputs['sampler_name'])}; use "
                         f"'enable' or one of the samplers that can: {can}"))  # fmt: skip
    return problems


@_node(
    "KSamplerAdvanced", "KSampler (Advanced)", "sampling",
    inputs=[Socket("model", MODEL), Choice("add_noise", ["enable", "disable"], "enable"),
            seed_input("noise_seed"), *SAMPLER_INPUTS,
            Int("start_at_step", 0, min=0, max=10000), Int("end_at_step", 10000, min=0, max=10000),
            Choice("return_with_leftover_noise", ["disable", "enable"], "disable")],
    outputs=[Output("LATENT", LATENT)],
    check=_check_advanced,
)  # fmt: skip
def ksampler_advanced(ctx, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler,
                      positive, negative, latent_image, start_at_step=0, end_at_step=10000,
                      return_with_leftover_noise="disable"):  # fmt: skip
    """KSampler over part of the schedule (steps start_at_step..end_at_step): SDXL base +
    refiner, the base returning its leftover noise and the refiner adding none."""
    return _sample(ctx, model, seed=noise_seed, steps=steps, cfg=cfg, sampler_name=sampler_name,
                   scheduler=scheduler, positive=positive, negative=negative,
                   latent=latent_image, start_step=start_at_step,
                   end_step=end_at_step, add_noise=add_noise == "enable",
                   return_with_leftover_noise=return_with_leftover_noise == "enable")  # fmt: skip


# --- loaders ---------------------------------------------------------------------------------


def _checkpoint_source(ctx, name: str) -> str:
    if name in models_dirs.BUILTIN_CHECKPOINTS:
        return name
    try:
        return str(models_dirs.resolve("checkpoints", name, ctx.settings.models_dirs))
    except models_dirs.ModelNotFound as exc:
        raise input_error(ctx, "ckpt_name", str(exc)) from None


@_node(
    "CheckpointLoaderSimple", "Load Checkpoint", "loaders",
    inputs=[models_dirs.model_choice("ckpt_name", "checkpoints", models_dirs.checkpoint_names,
                                     description="a checkpoint from the models folder's "
                                                 "checkpoints/")],
    outputs=[Output("MODEL", MODEL), Output("CLIP", CLIP), Output("VAE", VAE)],
    identity=models_dirs.identity_hook("checkpoints", "ckpt_name"),
)  # fmt: skip
def checkpoint_loader(ctx, ckpt_name: str):
    """Load a checkpoint's UNet, text encoder and VAE (the built-in tiny model needs no file)."""
    from .loaders import load_model

    with input_called(ctx, "source", "ckpt_name"):
        unet, clip, vae, scheduler = load_model(ctx, _checkpoint_source(ctx, ckpt_name), "auto")
    return replace(unet, scheduler_config=dict(scheduler.config)), clip, vae  # as ComfyUI's MODEL


@_node(
    "VAELoader", "Load VAE", "loaders",
    inputs=[models_dirs.model_choice("vae_name", "vae", models_dirs.vae_names)],
    outputs=[Output("VAE", VAE)],
    identity=models_dirs.identity_hook("vae", "vae_name"),
)  # fmt: skip
def vae_loader(ctx, vae_name: str):
    """Load a VAE file from the models folder's vae/."""
    from .loaders import load_vae

    try:
        path = models_dirs.resolve("vae", vae_name, ctx.settings.models_dirs)
    except models_dirs.ModelNotFound as exc:
        raise input_error(ctx, "vae_name", str(exc)) from None
    with input_called(ctx, "source", "vae_name"):
        return load_vae(ctx, str(path), "auto")


# --- conditioning ----------------------------------------------------------------------------


@_node(
    "CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning",
    inputs=[String("text", multiline=True, dynamic_prompts=True), Socket("clip", CLIP)],
    outputs=[Output("CONDITIONING", CONDITIONING)],
    identity=embedding_identity,
    check=embedding_problems,
)  # fmt: skip
def clip_text_encode(ctx, text: str, clip: ClipModel):
    """Encode one prompt (weights, escapes and embeddings as in TextEncode)."""
    from .text import encode

    # CLIPSetLastLayer's layer, else the model's own: SDXL's penultimate (both encoders), SD's last
    layer = clip.stop_at_layer
    if clip.is_sdxl:
        from .sdxl import PENULTIMATE, encode_sdxl

        return encode_sdxl(ctx, clip, [text], layer=PENULTIMATE if layer is None else layer)
    return Conditioning.of(encode(ctx, clip, [text], -1 if layer is None else layer), [text])


@_node(
    "CLIPSetLastLayer", "CLIP Set Last Layer", "conditioning",
    inputs=[Socket("clip", CLIP), Int("stop_at_clip_layer", -1, min=-24, max=-1)],
    outputs=[Output("CLIP", CLIP)],
)  # fmt: skip
def clip_set_last_layer(ctx, clip: ClipModel, stop_at_clip_layer: int = -1):
    """Use an earlier text-encoder layer (CLIP skip: -2 skips the last one)."""
    layers = (clip.text_encoder_2 if clip.is_sdxl else clip.text_encoder).config.num_hidden_layers
    if -stop_at_clip_layer > layers:
        raise input_error(ctx, "stop_at_clip_layer", f"the text encoder has only {layers} layers")
    return replace(clip, stop_at_layer=stop_at_clip_layer)


# --- latents ---------------------------------------------------------------------------------


@_node(
    "EmptyLatentImage", "Empty Latent Image", "latent",
    inputs=[Int("width", 512, min=16, max=MAX_RESOLUTION, step=8, limit=SIZE_LIMITS),
            Int("height", 512, min=16, max=MAX_RESOLUTION, step=8, limit=SIZE_LIMITS),
            Int("batch_size", 1, min=1, max=4096, limit=BATCH_LIMITS)],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def empty_latent_image(ctx, width: int, height: int, batch_size: int = 1):
    """A zero latent for width x height images (SD's 8x downscale); KSampler adds the noise."""
    import torch

    enforce_limits(ctx, empty_latent_image, width=width, height=height, batch_size=batch_size)
    samples = torch.zeros([batch_size, 4, height // 8, width // 8], dtype=torch.float32)
    return Latent(samples, None, is_noise=False)


@_node(
    "LatentUpscale", "Upscale Latent", "latent",
    inputs=[Socket("samples", LATENT), Choice("upscale_method", list(UPSCALE_METHODS)),
            Int("width", 512, min=0, max=MAX_RESOLUTION, step=8, limit="max_image_pixels"),
            Int("height", 512, min=0, max=MAX_RESOLUTION, step=8, limit="max_image_pixels"),
            Choice("crop", ["disabled", "center"])],
    outputs=[Output("LATENT", LATENT)],
)  # fmt: skip
def latent_upscale(ctx, samples: Latent, upscale_method: str, width: int, height: int,
                   crop: str = "disabled"):  # fmt: skip
    """Resize latents to width x height pixels (0 keeps the aspect ratio from the other; each
    side at least 64 pixels, 8 cells)."""
    from .latent_tools import LATENT_SCALE, resized
    from .resize import target_size

    # in pixels, as ComfyUI's: each side raised to 64 first (a smaller side given or derived)
    size = target_size(*samples.samples.shape[-2:], height, width, floor=LATENT_UPSCALE_FLOOR)
    if size is None:
        return samples
    lh, lw = (side // LATENT_SCALE for side in size)
    return resized(ctx, "width", samples, lh, lw, UPSCALE_METHODS[upscale_method], crop)


# --- utilities -------------------------------------------------------------------------------


@_node("PrimitiveInt", "Int", "utils/primitive",
       inputs=[Int("value", 0, min=-INT_LIMIT, max=INT_LIMIT, seed=True)],
       outputs=[Output("INT", INT)])  # fmt: skip
def primitive_int(ctx, value: int):
    return value


@_node("PrimitiveFloat", "Float", "utils/primitive",
       inputs=[Float("value", 0.0, min=-INT_LIMIT, max=INT_LIMIT)],
       outputs=[Output("FLOAT", FLOAT)])  # fmt: skip
def primitive_float(ctx, value: float):
    return value


@_node("PrimitiveString", "String", "utils/primitive",
       inputs=[String("value", "")], outputs=[Output("STRING", STRING)])  # fmt: skip
def primitive_string(ctx, value: str):
    return value


@_node("PrimitiveStringMultiline", "String (Multiline)", "utils/primitive",
       inputs=[String("value", "", multiline=True)], outputs=[Output("STRING", STRING)])  # fmt: skip
def primitive_string_multiline(ctx, value: str):
    return value


@_node("PrimitiveBoolean", "Boolean", "utils/primitive",
       inputs=[Bool("value", False)], outputs=[Output("BOOLEAN", BOOLEAN)])  # fmt: skip
def primitive_boolean(ctx, value: bool):
    return value


@_node("StringConcatenate", "Concatenate", "utils/string",
       inputs=[String("string_a", "", multiline=True), String("string_b", "", multiline=True),
               String("delimiter", "")],
       outputs=[Output("STRING", STRING)])  # fmt: skip
def string_concatenate(ctx, string_a: str, string_b: str, delimiter: str = ""):
    """string_a + delimiter + string_b."""
    return f"{string_a}{delimiter}{string_b}"


def preview_text(value: Any) -> str:
    """How PreviewAny shows a value: strings as they are, numbers and others as JSON or repr."""
    import json

    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | list | dict) or value is None:
        try:
            return json.dumps(value, indent=2)
        except (TypeError, ValueError):
            pass
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {list(shape)}"
    return repr(value)[:10_000]


@_node("PreviewAny", "Preview Any", "utils",
       inputs=[Socket("source", ANY)], output_node=True)  # fmt: skip
def preview_any(ctx, source: Any):
    """Show any value as text in the editor."""
    return NodeResult(values=(), ui={"text": [preview_text(source)]})


def comfy_types() -> list[NodeType]:
    return list(comfy_registry)
