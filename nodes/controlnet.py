"""ControlNet and T2I-Adapter while sampling: what a conditioning entry's `controls` add to
each UNet call, and the ApplyControlNet / LoadControlNet nodes.

A `Control` is one control model applied to an entry with its image, strength and step range
(ApplyControlNet appends one to every entry of both conditionings; ComfyUI's nodes chain them
the same way). At each UNet call, `ControlResiduals.kwargs` gives the UNet's extra inputs:
- a ControlNet runs on the call's own input (latents, timestep, text rows) with its image,
  and its outputs, scaled by strength, become `down_block_additional_residuals` and
  `mid_block_additional_residual` (diffusers' StableDiffusionControlNetPipeline, step for step);
- a T2I-Adapter runs once per sampling run on its image; its features, scaled by strength,
  become `down_intrablock_additional_residuals` (diffusers' StableDiffusionAdapterPipeline).
Several controls are summed (diffusers' MultiControlNetModel, ComfyUI's chained controls).
A call batches several entries (chunks of rows, e.g. [negative, positive]); rows whose entry
lacks a control get zero from it. A control runs only at the steps inside its range (the same
rule as an entry's own timestep range, `guidance.in_percent_range`), and a strength of 0
adds nothing at all: the result is bit for bit the one without the control.

The image is resized to the latent's size in pixels (`hint_scale` per cell, nearest-exact
with a centre crop, as ComfyUI does) unless it has that size already; a T2I-Adapter's to that
size rounded up to a multiple of its pixel unshuffle (`hint_size`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from latentgraph.graph import (
    CONDITIONING,
    IMAGE,
    MODEL,
    Float,
    Output,
    Settings,
    Socket,
    String,
    node,
)
from latentgraph.graph.cache import Codec, register_codec
from latentgraph.graph.problems import node_name

from .control_loading import (
    ControlLoadError,
    DifferenceWithoutModel,
    control_identity,
    load_control,
)
from .models_dirs import missing_problems
from .values import Conditioning, ControlModel, UNetModel, input_error

CONTROL_NET = "CONTROL_NET"
STRENGTH_MAX = 10.0


@dataclass(frozen=True, eq=False)
class Control:
    """One control model on a conditioning entry: its image (IMAGE [B, H, W, C] in 0..1),
    strength, the part of sampling it acts in (0: the noisiest step, 1: the cleanest), and
    the node that applied it (`ApplyControlNet node 'control'`, for messages)."""

    model: ControlModel
    image: Any
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0
    applied_by: str = ""


# (config field, what it is): a ControlNet's residuals and inputs fit a UNet only where its
# config says what the UNet's does (diffusers' ControlNetModel.from_unet copies them)
_CONTROLNET_FIT = (("cross_attention_dim", "cross-attention width"),
                   ("block_out_channels", "block channels"),
                   ("layers_per_block", "layers per block"),
                   ("addition_embed_type", "added inputs"),  # SDXL's: text_time
                   ("projection_class_embeddings_input_dim", "added inputs' width"))  # fmt: skip


def applier(ctx: Any) -> str:
    """A Control's `applied_by`: the applying node as messages name it."""
    return node_name(ctx.node_id, ctx.node_type)


def _plain(value: Any) -> Any:
    if value is None:
        return "none"
    return list(value) if isinstance(value, (list, tuple)) else value


def control_misfit(control: Control, unet: Any) -> str | None:
    """Why `control` cannot steer `unet` (a diffusers UNet), read from the two configs, or
    None when it fits: a ControlNet's text width, block channels, layers and SDXL inputs must
    be the UNet's; a T2I-Adapter's feature widths those of the UNet's down blocks, and its
    layout ("full_adapter_xl": a feature after the first downsampling) the UNet's (a first down
    block without cross-attention, as SDXL's)."""
    model, config = control.model, control.model.model.config
    if model.kind == "t2i_adapter":
        blocks = _plain(unet.config.block_out_channels)
        widths = _plain(config.channels)[: len(blocks)]
        xl_unet = "CrossAttn" not in unet.config.down_block_types[0]
        xl_adapter = config.adapter_type.endswith("_xl")
        diffs = [f"its feature widths {widths}, the UNet's down blocks' {blocks}"] \
            if widths != blocks[: len(widths)] else []  # fmt: skip
        if xl_adapter != xl_unet:
            diffs.append(f"its layout {config.adapter_type}, for a UNet whose first down block "
                         f"{'lacks' if xl_adapter else 'has'} cross-attention")  # fmt: skip
        what = "T2I-Adapter"
    else:
        other = [(label, _plain(config.get(field)), _plain(unet.config.get(field)))
                 for field, label in _CONTROLNET_FIT
                 if _plain(config.get(field)) != _plain(unet.config.get(field))]  # fmt: skip
        if other and other[-1][0] == "added inputs' width" and \
                any(label == "added inputs" for label, _, _ in other):  # fmt: skip
            other.pop()  # it follows from their kind
        diffs = [f"its {label} {its}, the UNet's {unets}" for label, its, unets in other]
        what = "ControlNet"
    if not diffs:
        return None
    applied = f" (control_net of {control.applied_by})" if control.applied_by else ""
    return (
        f"{what} {model.name or model.key}{applied} does not fit this model's unet: "
        f"{'; '.join(diffs)}; is it a {what} for another model family (SDXL vs SD 1.5)?"
    )


def control_modules(*conds: Conditioning) -> list[Any]:
    """The control models (ControlNet, T2I-Adapter modules) the entries of `conds` apply, each
    once: a sampling run uses them beside the UNet, so it holds them in runtime.in_use with it
    (under `cpu_offload`, on the GPU for the run and back on the CPU after)."""
    found: list[Any] = []
    for cond in conds:
        for entry in cond.entries:
            for control in entry.controls:
                if not any(control.model.model is m for m in found):
                    found.append(control.model.model)
    return found


def with_control(cond: Conditioning, control: Control) -> Conditioning:
    """`cond` with `control` added to each of its entries (a new value: values are cached)."""
    return cond.map(lambda entry: replace(entry, controls=(*entry.controls, control)))


@dataclass
class UNetCall:
    """One UNet call while sampling: its input rows, timestep, text rows and SDXL inputs, and
    `chunks`: the controls of the entry behind each equal chunk of rows, in row order."""

    sample: Any  # [n * B, C, h, w], scaled for the scheduler
    timestep: Any
    embeds: Any  # [n * B, tokens, dim]
    added: dict[str, Any] | None
    chunks: Sequence[tuple[Control, ...]]


def hint_size(model: ControlModel, h: int, w: int) -> tuple[int, int]:
    """The control image's size in pixels for a latent of `h` x `w` cells: `hint_scale`
    pixels per cell, a T2I-Adapter's rounded up to a multiple of its pixel unshuffle
    (diffusers' `downscale_factor`: 16 in SDXL's layout), as ComfyUI scales its hint. Its
    later halvings round up as the UNet's do, so its features have the UNet's sizes at any
    latent size, not only at multiples of the unshuffle."""
    size = (h * model.hint_scale, w * model.hint_scale)
    if model.kind != "t2i_adapter":
        return size
    step = model.model.downscale_factor
    return (math.ceil(size[0] / step) * step, math.ceil(size[1] / step) * step)


class ControlResiduals:
    """The controls' inputs to the UNet through one sampling run (T2I-Adapter features and
    resized images are kept for the run: the image does not change between steps)."""

    def __init__(self, train_steps: int) -> None:
        self.train_steps = train_steps
        self._hints: dict[tuple, Any] = {}
        self._features: dict[tuple, list[Any]] = {}

    def kwargs(self, call: UNetCall) -> dict[str, Any]:
        """The extra keyword arguments of the UNet for `call` ({} when no control acts)."""
        from .guidance import in_percent_range

        acting: list[Control] = []
        for controls in call.chunks:
            for control in controls:
                if control.strength != 0 and not any(control is c for c in acting) and \
                        in_percent_range(call.timestep, self.train_steps, control.start_percent,
                                         control.end_percent):  # fmt: skip
                    acting.append(control)
        out: dict[str, Any] = {}
        for control in acting:
            rows = [i for i, controls in enumerate(call.chunks)
                    if any(control is c for c in controls)]  # fmt: skip
            if control.model.kind == "t2i_adapter":
                _add(
                    out, "down_intrablock_additional_residuals", self._adapter(control, call, rows)
                )
            else:
                down, mid = self._controlnet(control, call, rows)
                _add(out, "down_block_additional_residuals", down)
                _add(out, "mid_block_additional_residual", mid)
        return out

    def _hint(self, control: Control, call: UNetCall, chunks: int) -> Any:
        """The image at the latent's size in pixels, `chunks` times B rows, on the model."""
        import torch

        from .resize import match_batch, resize

        n = len(call.chunks)
        batch, _, h, w = call.sample.shape
        size = hint_size(control.model, h, w)
        key = (id(control), batch // n, chunks, size)
        if key not in self._hints:
            image = control.image[..., :3].movedim(-1, 1).float()
            if control.model.kind == "t2i_adapter" and control.model.model.config.in_channels == 1:
                image = image.mean(dim=1, keepdim=True)
            image = resize(image, *size, "nearest-exact", "center")
            image = match_batch(image, batch // n)
            module = control.model.model
            dtype = next(module.parameters()).dtype
            # The memory layout picks the convolution kernels, so it is diffusers' own: its
            # ControlNet pipeline hands a contiguous image, its adapter pipeline a permuted
            # (channels-last) one.
            adapter = control.model.kind == "t2i_adapter"
            layout = torch.channels_last if adapter else torch.contiguous_format
            hint = torch.cat([image] * chunks).to(call.sample.device, dtype)
            hint = hint.contiguous(memory_format=layout)
            self._hints[key] = hint
        return self._hints[key]

    def _controlnet(self, control: Control, call: UNetCall, rows: list[int]) -> tuple[Any, Any]:
        module = control.model.model
        sample, embeds, added = (_take(x, rows, len(call.chunks))
                                 for x in (call.sample, call.embeds, call.added))  # fmt: skip
        extra = {"added_cond_kwargs": added} if added else {}
        down, mid = module(sample.to(module.dtype), call.timestep,
                           encoder_hidden_states=embeds.to(module.dtype),
                           controlnet_cond=self._hint(control, call, len(rows)),
                           conditioning_scale=control.strength, return_dict=False, **extra)  # fmt: skip
        dtype = call.sample.dtype
        down = [_spread(d.to(dtype), rows, len(call.chunks)) for d in down]
        return down, _spread(mid.to(dtype), rows, len(call.chunks))

    def _adapter(self, control: Control, call: UNetCall, rows: list[int]) -> list[Any]:
        """The adapter's features, computed once per run on one chunk's rows (the image
        does not depend on the step or the text), repeated for each chunk it acts on."""
        import torch

        key = (id(control), tuple(call.sample.shape), tuple(rows))
        if key not in self._features:
            features = control.model.model(self._hint(control, call, 1))
            self._features[key] = [
                _spread(torch.cat([f.to(call.sample.dtype)] * len(rows)), rows, len(call.chunks))
                for f in features
            ]
        return [f * control.strength for f in self._features[key]]


def _take(x: Any, rows: list[int], chunks: int) -> Any:
    """The chunks `rows` of `x` (a tensor, or a dict of tensors; None stays None)."""
    import torch

    if x is None:
        return None
    if isinstance(x, dict):
        return {k: _take(v, rows, chunks) for k, v in x.items()}
    if len(rows) == chunks:
        return x
    parts = x.chunk(chunks)
    return torch.cat([parts[i] for i in rows])


def _spread(x: Any, rows: list[int], chunks: int) -> Any:
    """A result for the chunks `rows` put back among all chunks, zero in the others."""
    import torch

    if len(rows) == chunks:
        return x
    parts = list(x.chunk(len(rows)))
    zero = torch.zeros_like(parts[0])
    return torch.cat([parts[rows.index(i)] if i in rows else zero for i in range(chunks)])


def _add(out: dict[str, Any], name: str, value: Any) -> None:
    """Sum `value` (a tensor or a list of them) into `out[name]`."""
    if name not in out:
        out[name] = value
    elif isinstance(value, list):
        out[name] = [a + b for a, b in zip(out[name], value, strict=True)]
    else:
        out[name] = out[name] + value


# --- nodes -----------------------------------------------------------------------------------


def _identity(inputs: dict[str, Any], settings: Settings) -> str:
    from .runtime import model_identity

    name = str(inputs.get("control_net", ""))
    return f"{control_identity(name, settings.models_dirs)}|{model_identity(settings)}"


def _check(inputs: dict[str, Any], settings: Settings) -> list[tuple[str | None, str]]:
    name = inputs.get("control_net")
    if not isinstance(name, str):
        return []
    return missing_problems("control_net", control_identity(name, settings.models_dirs))


def control_net_input(**kw: Any) -> Any:
    return String("control_net", description="a ControlNet or T2I-Adapter: builtin:tiny-"
                  "controlnet, builtin:tiny-t2i-adapter, a name in the models folders' "
                  "controlnet/, or a path to a .safetensors file or diffusers folder (absolute, or "
                  "from the working directory)",
                  **kw)  # fmt: skip


@node(
    "LoadControlNet",
    category="loaders",
    inputs=[control_net_input(),
            Socket("unet", MODEL, optional=True, description="the model a difference "
                   "ControlNet (stored minus its base model) is added to")],
    outputs=[Output("control_net", CONTROL_NET)],
    identity=_identity,
    check=_check,
)  # fmt: skip
def load_control_net(ctx, control_net: str, unet: UNetModel | None = None):
    """Load a ControlNet or T2I-Adapter (once per process; shared by every node using it)."""
    try:
        return load_control(ctx.settings, control_net, unet)
    except DifferenceWithoutModel as exc:
        raise input_error(ctx, "control_net", f"{exc}: connect that model to unet") from None
    except ControlLoadError as exc:
        raise input_error(ctx, "control_net", str(exc)) from None


def strength_input() -> Any:
    return Float("strength", 1.0, min=0.0, max=STRENGTH_MAX, step=0.01,
                 description="how strongly the control steers (0: not at all)")  # fmt: skip


PERCENT_INPUTS = [
    Float("start_percent", 0.0, min=0.0, max=1.0, step=0.001,
          description="where in sampling the control starts (0: the first, noisiest step)"),
    Float("end_percent", 1.0, min=0.0, max=1.0, step=0.001,
          description="where it stops (1: the last step)"),
]  # fmt: skip


@node(
    "ApplyControlNet",
    # ComfyUI's ControlNetApplyAdvanced is "Apply ControlNet": the editor's search tells them apart
    display_name="Apply ControlNet (latentgraph)",
    category="conditioning",
    inputs=[Socket("positive", CONDITIONING), Socket("negative", CONDITIONING),
            Socket("control_net", CONTROL_NET),
            Socket("image", IMAGE, description="the control image (edges, depth, pose...)"),
            strength_input(), *PERCENT_INPUTS],
    outputs=[Output("positive", CONDITIONING), Output("negative", CONDITIONING)],
)  # fmt: skip
def apply_control_net(ctx, positive: Conditioning, negative: Conditioning,
                      control_net: ControlModel, image: Any, strength: float = 1.0,
                      start_percent: float = 0.0, end_percent: float = 1.0):  # fmt: skip
    """Steer sampling with a ControlNet or T2I-Adapter and an image (chain several to mix)."""
    if start_percent > end_percent:
        raise input_error(ctx, "end_percent", f"{end_percent} is before start_percent "
                                              f"{start_percent}")  # fmt: skip
    if strength == 0:
        return positive, negative
    control = Control(control_net, image, strength, start_percent, end_percent, applier(ctx))
    return with_control(positive, control), with_control(negative, control)


# --- caching ---------------------------------------------------------------------------------


def _controlled(value: Any) -> bool:
    return isinstance(value, Conditioning) and any(e.controls for e in value.entries)


def _size(value: Conditioning) -> int:
    def nbytes(t: Any) -> int:
        return int(t.numel() * t.element_size()) if t is not None else 0

    images = {id(c.image): c.image for e in value.entries for c in e.controls}
    return sum(nbytes(e.embeds) + nbytes(e.pooled) for e in value.entries) + \
        sum(nbytes(i) for i in images.values())  # fmt: skip


# A conditioning holding controls holds model handles: kept in memory only, never on disk.
register_codec(Codec("lg.controlled-conditioning", _controlled, _size))
