"""Values that cross sockets between the diffusion nodes.

Plain dataclasses so the cache codecs (nodes/codecs.py) and the ComfyUI adapters can read them.
Tensors are torch tensors, but this module imports no torch: annotations only.
IMAGE values are float32 tensors [B, H, W, C] in 0..1 (ComfyUI's layout, so adapters stay thin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from latentgraph.graph.problems import InputError, refusing_node


class NodeInputError(InputError):
    """Bad user input found while a node runs; the message names the node and the input,
    `reason` is what is wrong with it."""

    def __init__(self, message: str, input_name: str | None, reason: str) -> None:
        super().__init__(message, input_name)
        self.reason = reason


def input_error(ctx: Any, input_name: str | None, message: str) -> NodeInputError:
    where = refusing_node(ctx.node_type, ctx.node_id, input_name)
    return NodeInputError(f"{where}: {message}", input_name, message)


@contextmanager
def input_called(ctx: Any, shared: str, own: str) -> Iterator[None]:
    """Errors a shared loader raises about its input `shared`, named as the calling node's
    input `own` (a ComfyUI adapter's `ckpt_name` is what LoadModel calls `source`)."""
    try:
        yield
    except NodeInputError as exc:
        if exc.input_name != shared:
            raise
        raise input_error(ctx, own, exc.reason) from exc


def enforce_limits(ctx: Any, node_fn: Any, **values: Any) -> None:
    """Refuse values over the run's limits declared on `node_fn`'s inputs: validation does so
    before a run, this guards node code called directly or on an unvalidated graph."""
    for name, message in node_fn.node_type.limit_problems(values, ctx.settings):
        raise input_error(ctx, name, message)


SAMPLING_KINDS = ("eps", "v_prediction", "lcm")


@dataclass(frozen=True)
class ModelSampling:
    """How a UNet is sampled (nodes/model_sampling.py): what its output is ("eps": the noise,
    "v_prediction": the velocity, "lcm": a consistency model's, through LCMScheduler) and
    whether its betas are rescaled to zero terminal SNR."""

    kind: str = "eps"
    zsnr: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SAMPLING_KINDS:
            raise ValueError(f"unknown sampling {self.kind!r}; one of {', '.join(SAMPLING_KINDS)}")

    @property
    def prediction_type(self) -> str:
        """diffusers' name for it (LCM models predict the noise)."""
        return "v_prediction" if self.kind == "v_prediction" else "epsilon"


@dataclass(eq=False)
class UNetModel:
    """MODEL: the denoising UNet, shared through the model manager (LoRA and merge nodes make
    new manager entries; nothing changes a shared one). `sampling` says how every sampler
    must use it (None: as the scheduler config given says); `scheduler_config` is its
    checkpoint's noise schedule for samplers given only the MODEL (KSampler, BasicScheduler),
    set by CheckpointLoaderSimple as ComfyUI's MODEL carries it (None: Stable Diffusion's, as
    for LoadModel's, whose SCHEDULER output carries the schedule). A node deriving a MODEL
    makes it with `dataclasses.replace`, so every field it does not change is kept."""

    unet: Any
    key: str
    device: str
    dtype: str
    sampling: ModelSampling | None = None
    scheduler_config: dict[str, Any] | None = None


@dataclass(eq=False)
class ClipModel:
    """CLIP: tokenizer + text encoder. SDXL has a second pair (`tokenizer_2`, `text_encoder_2`,
    the one with the pooled projection); its refiner has only that second pair.
    `stop_at_layer` is the encoder layer CLIPTextEncode reads (CLIPSetLastLayer's CLIP skip:
    -1 the last, -2 the one before; None: the model's own, the last for SD, the penultimate
    for SDXL). Derived CLIPs are made with `dataclasses.replace`, keeping every other field."""

    tokenizer: Any
    text_encoder: Any
    key: str
    device: str
    tokenizer_2: Any = None
    text_encoder_2: Any = None
    stop_at_layer: int | None = None

    @property
    def is_sdxl(self) -> bool:
        return self.text_encoder_2 is not None


@dataclass(eq=False)
class VAEModel:
    """VAE: the autoencoder. `scale_factor` is pixels per latent cell (8 for the SD family)."""

    vae: Any
    key: str
    device: str

    @property
    def scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)


@dataclass(eq=False)
class UpscaleModel:
    """UPSCALE_MODEL: a super-resolution model (spandrel's ImageModelDescriptor: called on
    [1, 3, H, W] in 0..1, returns [1, 3, H * scale, W * scale])."""

    model: Any
    scale: int
    key: str
    device: str = "cpu"


@dataclass(eq=False)
class ControlModel:
    """CONTROL_NET: a ControlNet (diffusers ControlNetModel: residuals for the UNet's skip
    connections and middle block, computed each step) or a T2I-Adapter (diffusers T2IAdapter:
    features added inside the UNet's down blocks, computed once from the image).
    `hint_scale` is hint pixels per latent cell (the size the control image is resized to);
    `name` is the model as the workflow names it (`builtin:tiny-controlnet`, a file name), for
    messages."""

    model: Any
    kind: str  # "controlnet" | "t2i_adapter"
    key: str
    device: str
    hint_scale: int = 8
    name: str = ""


MODEL_HANDLES = (UNetModel, ClipModel, VAEModel, UpscaleModel, ControlModel)


def holds_model(value: Any, keys: set[str]) -> bool:
    """Whether `value` is a handle on a model loaded under one of the manager `keys`, or a
    conditioning whose controls hold one."""
    if isinstance(value, Conditioning):
        return any(holds_model(c.model, keys) for e in value.entries for c in e.controls)
    return isinstance(value, MODEL_HANDLES) and value.key in keys


@dataclass
class SchedulerSpec:
    """SCHEDULER: how to build a (stateful) diffusers scheduler, not the scheduler itself.

    UNetDenoise builds a fresh instance per run, so a spec is safe to share and cache.
    `name` is None for the model's own scheduler (LoadModel's `scheduler` output).
    """

    config: dict[str, Any]
    name: str | None = None
    class_name: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SizeConditioning:
    """SDXL's micro-conditioning, in pixels: the size the image is said to have been before
    cropping, the crop's top-left corner, the size wanted, and (refiner) an aesthetic score.
    None fields are filled at sampling time (see nodes/sdxl.py `time_ids`)."""

    width: int | None = None
    height: int | None = None
    crop_w: int = 0
    crop_h: int = 0
    target_width: int | None = None
    target_height: int | None = None
    aesthetic_score: float | None = None


@dataclass(frozen=True)
class Area:
    """Where a conditioning entry acts: a rectangle of the latent, in latent cells, or (with
    `fractions`) in fractions of the latent's height and width, resolved when sampling.

    Areas given in pixels become cells when they are set, at the VAE's scale (pixels per latent
    cell, 8 for the SD family), rounded down: ComfyUI's nodes store pixels // 8 (its unit of
    8 pixels), and so do our ComfyUI adapters; our native node takes the scale from a linked
    VAE, else 8, as LatentNoise does.

    `given`, `scale` and `set_by` are for messages only (no part of what the area is): the
    numbers as the user wrote them, the pixels per cell they were read at (0: fractions, or
    cells) and the node that set them, (id, type)."""

    height: float
    width: float
    y: float = 0
    x: float = 0
    fractions: bool = False
    given: str = field(default="", compare=False)
    scale: int = field(default=0, compare=False)
    set_by: tuple[str, str] = field(default=("", ""), compare=False)


@dataclass(frozen=True)
class CondEntry:
    """One entry of a CONDITIONING: text embeddings [B, tokens, dim] (one row per prompt, or
    one row for every image), SDXL's pooled embedding [B, dim] and size conditioning, and
    where and when the entry acts while sampling.

    `area` (None: the whole latent) and `mask` ([B or 1, H, W], any size: resized to the latent;
    scaled by `mask_strength`; `mask_bounds`: the area becomes the mask's bounding box) say
    where; `strength` weighs the entry's prediction against the others'; `start_percent` and
    `end_percent` say when, as fractions of the model's noise levels (0: the noisiest), as
    ComfyUI's do. `controls` are the ControlNets / T2I-Adapters steering the entry's UNet
    rows (nodes/controlnet.py `Control`; summed). nodes/guidance.py combines the entries at
    each step."""

    embeds: Any
    prompts: tuple[str, ...] = ()
    pooled: Any = None
    size: SizeConditioning = field(default_factory=SizeConditioning)
    area: Area | None = None
    strength: float = 1.0
    mask: Any = None
    mask_strength: float = 1.0
    mask_bounds: bool = False
    start_percent: float = 0.0
    end_percent: float = 1.0
    controls: tuple[Any, ...] = ()
    inpaint: InpaintImage | None = None  # an inpainting UNet's extra input (InpaintConditioning)


@dataclass(frozen=True, eq=False)
class InpaintImage:
    """What an inpainting (9-channel) UNet is given besides the noisy latents: the latents of
    the image with the masked part greyed out (scaled like any latent) and the mask (pixels,
    [B, H, W], 1 = repaint). nodes/inpaint_sampling.py builds the UNet's input from it."""

    latents: Any  # [B, 4, h, w]
    mask: Any  # [B, H, W]


@dataclass(frozen=True)
class Conditioning:
    """CONDITIONING: a list of entries, as ComfyUI's is (a text encoder makes one; Combine
    joins lists). Values are cached and shared: derive new ones (`map`), never change one."""

    entries: tuple[CondEntry, ...]

    @classmethod
    def of(cls, embeds: Any, prompts: list[str] | tuple[str, ...] = (), pooled: Any = None,
           size: SizeConditioning | None = None) -> Conditioning:  # fmt: skip
        """A one-entry conditioning acting everywhere, always (what a text encoder gives)."""
        return cls((CondEntry(embeds, tuple(prompts), pooled, size or SizeConditioning()),))

    def map(self, change: Callable[[CondEntry], CondEntry]) -> Conditioning:
        """A new value with `change` applied to each entry."""
        return Conditioning(tuple(change(e) for e in self.entries))

    @property
    def single(self) -> CondEntry:
        """The only entry (what a text encoder gives); an error for several."""
        if len(self.entries) != 1:
            raise ValueError(f"expected conditioning with one entry, got {len(self.entries)}")
        return self.entries[0]

    # The one entry's text, read as before entries existed (an error for several). No `size`:
    # the engine probes values' `size` (PIL images) and that must not raise.
    @property
    def embeds(self) -> Any:
        return self.single.embeds

    @property
    def pooled(self) -> Any:
        return self.single.pooled

    @property
    def prompts(self) -> list[str]:
        return list(self.single.prompts)


@dataclass
class Latent:
    """LATENT: latents [B, C, h, w].

    `is_noise` marks unit Gaussian noise from LatentNoise (denoised from scratch); otherwise
    the samples are clean latents (from VAEEncode or a previous denoise), already multiplied by
    the VAE's scaling factor. `seeds[i]` is the seed image i was made from, when known.
    `noise_mask` (a MASK, [B, H, W], 1 = denoise; nodes/inpaint_sampling.py) limits what a
    sampler changes: outside it the samples are kept. `batch_index[i]` is the batch position row
    i holds for ComfyUI's samplers' noise (nodes/seeds.py `batch_positions`; ComfyUI's
    batch_index, set by LatentFromBatch and RepeatLatentBatch); None: rows 0..B-1.
    """

    samples: Any
    seeds: list[int] | None = None
    is_noise: bool = False
    noise_mask: Any = None
    batch_index: list[int] | None = None

    def __repr__(self) -> str:
        """Its tensors by shape and type (`keep="denoise"` in a REPL printed every number of
        them: dozens of lines)."""
        from latentgraph.graph.scheduler import describe_value

        return (f"Latent(samples={describe_value(self.samples)}, seeds={self.seeds!r}, "
                f"is_noise={self.is_noise!r}, noise_mask={describe_value(self.noise_mask)}, "
                f"batch_index={self.batch_index!r})")  # fmt: skip
