"""Guidance: the noise prediction for one sampling step, from the UNet, the positive and
negative CONDITIONING and the guidance (CFG) scale, combined as ComfyUI combines them.

Before the loop each entry is made ready for this latent (a `Term`): its area resolved to
latent cells, its mask resized to the latent (bilinear), its text moved to the device. As
ComfyUI does, an entry with an area gets a partner on the other side with that side's text
over the same area (the smallest entry there covering it), so guidance compares like with like.

At each step, for each side, every entry active at that noise level runs on its area of the
latent (cropped) and the predictions are averaged per cell, weighted by strength × mask (an
area without a mask fades in over 8 cells at edges inside the image, as ComfyUI's does);
cells no entry covers predict zero. Then CFG: negative + scale × (positive − negative),
unless the negative is left out (`uses_negative`: diffusers' rule for UNetDenoise, ComfyUI's for
its samplers).

The plain case (one whole-latent entry per side) is exactly diffusers' pipeline: one batched
call on [negative, positive], predictions used as they are (a lone entry's strength cancels
out). Every UNet call goes through `unet_call`, the one place the model runs while sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from latentgraph.graph.problems import node_name

from .compositing import as_masks, resize_masks
from .controlnet import ControlResiduals, UNetCall, control_misfit
from .inpaint_sampling import concat_channels, is_inpainting_unet, with_concat
from .sdxl import added_inputs
from .values import Area, CondEntry, Conditioning, InpaintImage, input_error

FADE_CELLS = 8  # how far an area's weight ramps up from an edge inside the image (ComfyUI's)
MIN_BOUNDS = 8  # the smallest area, in cells, a mask's bounding box gives (ComfyUI's)
SIDES = ("negative", "positive")  # the order of rows in a batched call, as diffusers has it


@dataclass(frozen=True)
class Region:
    """A rectangle of latent cells."""

    top: int
    left: int
    height: int
    width: int

    def crop(self, x: Any) -> Any:
        """The view of `x` ([..., H, W]) this region covers."""
        return x[..., self.top : self.top + self.height, self.left : self.left + self.width]

    def contains(self, other: Region) -> bool:
        return (self.top <= other.top and self.left <= other.left
                and self.top + self.height >= other.top + other.height
                and self.left + self.width >= other.left + other.width)  # fmt: skip

    @property
    def cells(self) -> int:
        return self.height * self.width


def area_region(area: Area, latent_hw: tuple[int, int]) -> Region:
    """An entry's area in cells of a latent of `latent_hw` (fractions: of its size, rounded as
    ComfyUI does), cut to the latent; an empty region for an area wholly outside it."""
    h, w = latent_hw
    if area.fractions:
        box = (max(1, round(area.height * h)), max(1, round(area.width * w)),
               round(area.y * h), round(area.x * w))  # fmt: skip
    else:
        box = (int(area.height), int(area.width), int(area.y), int(area.x))
    height, width, top, left = box
    top, left = min(top, h), min(left, w)
    return Region(top, left, min(height, h - top), min(width, w - left))


def outside_problem(ctx: Any, area: Area, latent_hw: tuple[int, int]) -> str:
    """Why an area gives no region of the latent (`area_region`): in the units and with the
    node the user set it with (`Area.given`, `area_setter`), and what to do."""
    h, w = latent_hw
    given = area.given or (f"x={area.x:g}, y={area.y:g}, width={area.width:g}, "
                           f"height={area.height:g} (cells)")  # fmt: skip
    setter = area_setter(ctx, area)
    the_area = f"the area {given}{f' of {setter}' if setter else ''}"
    if area.fractions:
        return f"{the_area} starts outside the image: give it x and y below 1"
    if area.scale:  # given in pixels
        width, height = w * area.scale, h * area.scale
        image, fix = f"the {width}x{height} image", f"x below {width} and y below {height}"
    else:
        image, fix = f"the latent ({w}x{h} cells)", f"x below {w} and y below {h}"
    return f"{the_area} starts outside {image}: give it {fix}, or sample a larger image"


def area_setter(ctx: Any, area: Area) -> str:
    """The node that set `area`, as messages name it: by its id unless the run's prompt
    (ctx.extra["prompt"]) has no such node of that type (the area came from the cache, set by
    a node of another workflow with the same inputs), then by its type; "" when unknown."""
    node_id, node_type = area.set_by
    if not node_type:
        return ""
    prompt = ctx.extra.get("prompt") if ctx is not None else None
    if isinstance(prompt, dict):
        entry = prompt.get(node_id)
        if not (isinstance(entry, dict) and entry.get("class_type") == node_type):
            return f"a {node_type} node"
    return node_name(node_id, node_type)


def mask_bounds(mask: Any, latent_hw: tuple[int, int]) -> Region:
    """The bounding box of a (resized) mask's non-zero cells over its batch, at least
    MIN_BOUNDS cells a side; an all-zero mask gives the smallest region (it weighs nothing)."""
    import torch

    h, w = latent_hw
    rows, cols = torch.nonzero(mask.abs().amax(dim=0), as_tuple=True)
    if len(rows) == 0:
        return Region(0, 0, min(MIN_BOUNDS, h), min(MIN_BOUNDS, w))
    top, left = int(rows.min()), int(cols.min())
    height = max(MIN_BOUNDS, int(rows.max()) - top + 1)
    width = max(MIN_BOUNDS, int(cols.max()) - left + 1)
    return Region(top, left, min(height, h - top), min(width, w - left))


def edge_fade(region: Region, latent_hw: tuple[int, int]) -> Any:
    """Weights [1, 1, h, w] rising from 1/FADE_CELLS to 1 over the first FADE_CELLS cells
    from each edge of `region` that lies inside the latent (edges on the border stay 1)."""
    import torch

    def ramp(length: int, start_inside: bool, end_inside: bool) -> Any:
        i = torch.arange(length, dtype=torch.float32)
        r = torch.ones(length)
        if start_inside:
            r = r * ((i + 1) / FADE_CELLS).clamp(max=1.0)
        if end_inside:
            r = r * ((length - i) / FADE_CELLS).clamp(max=1.0)
        return r

    h, w = latent_hw
    ys = ramp(region.height, region.top > 0, region.top + region.height < h)
    xs = ramp(region.width, region.left > 0, region.left + region.width < w)
    return (ys[:, None] * xs[None, :])[None, None]


@dataclass
class Term:
    """One conditioning entry made ready for sampling one latent: where it acts (`region`,
    None for the whole latent; `mask` resized to the latent) and its rows on the device."""

    side: str  # "negative" or "positive": the UNetDenoise input it came from
    entry: CondEntry
    region: Region | None
    mask: Any  # [B or 1, H, W] on the device, or None
    embeds: Any = None  # [B, tokens, dim] on the device
    added: dict[str, Any] | None = None  # SDXL's added_cond_kwargs rows
    weight: Any = 1.0  # strength, or strength × mask (× edge fade) [B or 1, 1, h, w]
    concat: Any = None  # an inpainting UNet's mask + masked-image channels [B, 5, h, w]

    @property
    def plain(self) -> bool:
        """Acting on every cell alike: its prediction is used as it is when it is alone."""
        return self.region is None and self.mask is None

    def active(self, t: Any, train_steps: int) -> bool:
        """Whether timestep `t` lies in the entry's range (`in_percent_range`)."""
        entry = self.entry
        return in_percent_range(t, train_steps, entry.start_percent, entry.end_percent)

    @property
    def batch_key(self) -> tuple:
        """Terms sharing this key run in one UNet call."""
        return (self.region, tuple(self.embeds.shape[1:]), self.added is None)


def in_percent_range(t: Any, train_steps: int, start: float, end: float) -> bool:
    """Whether timestep `t` lies in the range start..end of sampling: percent p is timestep
    (1 - p) × (train_steps - 1), so 0 is the noisiest level and 1 the cleanest (entries'
    timestep ranges and ControlNets' start/end percent alike)."""
    level = float(t)
    last = train_steps - 1
    return (1 - end) * last <= level <= (1 - start) * last


@dataclass
class Batch:
    """Terms sharing a `batch_key`, run in one UNet call: their rows concatenated once (in
    order: negatives first) and reused at every step they are active together."""

    terms: list[Term]
    embeds: Any  # [len(terms) × B, tokens, dim]
    added: dict[str, Any] | None
    concat: Any = None  # an inpainting UNet's mask + masked-image rows, on the batch's region

    @classmethod
    def of(cls, terms: list[Term]) -> Batch:
        import torch

        added = None
        if terms[0].added is not None:
            added = {k: torch.cat([term.added[k] for term in terms]) for k in terms[0].added}
        concat = None
        if terms[0].concat is not None:
            region = terms[0].region
            concat = torch.cat([term.concat if region is None else region.crop(term.concat)
                                for term in terms])  # fmt: skip
        return cls(terms, torch.cat([term.embeds for term in terms]), added, concat)

    @property
    def region(self) -> Region | None:
        return self.terms[0].region


def unet_call(model: Any, x: Any, t: Any, batch: Batch, controls: ControlResiduals) -> Any:
    """The UNet's noise prediction for a batch of terms on the model input `x` (whole: the
    batch's region is cut here), one chunk per term. The one place the UNet runs while
    sampling: what else it is given goes here: the entries' ControlNet residuals and
    T2I-Adapter features (`controls`, computed from the latents alone), and an inpainting
    UNet's mask and masked-image channels after the latents."""
    import torch

    x = x if batch.region is None else batch.region.crop(x)
    n = len(batch.terms)
    model_input = torch.cat([x] * n) if n > 1 else x
    chunks = [term.entry.controls for term in batch.terms]
    extra = controls.kwargs(UNetCall(model_input, t, batch.embeds, batch.added, chunks))
    return model(with_concat(model_input, batch.concat), t, encoder_hidden_states=batch.embeds,
                 added_cond_kwargs=batch.added, return_dict=False, **extra)[0]  # fmt: skip


def uses_negative(scale: float, comfy: bool = False) -> bool:
    """Whether classifier-free guidance runs (the negative predicted too). diffusers'
    pipelines (UNetDenoise): only for a scale above 1, anything else follows the positive
    alone. ComfyUI's samplers (KSampler, KSamplerAdvanced, SamplerCustom, CFGGuider): for any
    scale but 1, its one shortcut (`math.isclose`, as ComfyUI checks it): cfg 0 gives the
    negative's prediction, 0.5 a blend."""
    return not math.isclose(scale, 1.0) if comfy else scale > 1.0


def _rows(ctx: Any, side: str, embeds: Any, batch: int) -> Any:
    if embeds.shape[0] == batch:
        return embeds
    if embeds.shape[0] == 1:
        return embeds.expand(batch, *embeds.shape[1:])
    raise input_error(ctx, side, f"{embeds.shape[0]} prompts for a batch of {batch} latents; "
                                 "give one prompt or one per image")  # fmt: skip


def _paired(source: list[Term], target: list[Term]) -> list[Term]:
    """ComfyUI's pairing: for each `source` term with a region, the smallest `target` term
    covering that region (else a whole-latent one) lends its text to a copy of the source
    term on the target side, unless it already has exactly that region."""
    out = list(target)
    for term in source:
        if term.region is None:
            continue
        best = None
        for other in out:
            if other.region is None:
                best = other if best is None else best
            elif other.region.contains(term.region) and (
                best is None or best.region is None or other.region.cells < best.region.cells
            ):
                best = other
        if best is None or best.region == term.region:
            continue
        text = best.entry
        entry = replace(term.entry, embeds=text.embeds, pooled=text.pooled,
                        prompts=text.prompts, size=text.size)  # fmt: skip
        out.append(Term(best.side, entry, term.region, term.mask))
    return out


@dataclass
class Guidance:
    """The noise prediction for one step of sampling a latent of `latent_shape`: the entries
    of `positive` and `negative` (the latter only when `uses_negative`: guidance > 1 as
    diffusers has it, or with `comfy_cfg` any scale but 1, as ComfyUI has it)."""

    ctx: Any
    model: Any  # the diffusers UNet
    device: Any  # torch.device
    positive: Conditioning
    negative: Conditioning
    scale: float  # the guidance (CFG) scale
    latent_shape: tuple[int, ...]  # [B, C, h, w]
    train_steps: int = 1000  # the model's noise levels (the scheduler's num_train_timesteps)
    inpaint: InpaintImage | None = None  # an inpainting UNet's input when no entry gives one
    comfy_cfg: bool = False  # ComfyUI's cfg rule (KSampler, CFGGuider), else diffusers'

    def __post_init__(self) -> None:
        hw = tuple(self.latent_shape[-2:])
        positive = [self._resolved("positive", e, hw) for e in self.positive.entries]
        negative = [self._resolved("negative", e, hw) for e in self.negative.entries]
        negative = _paired(positive, negative)
        positive = _paired(negative, positive)
        self.terms = [self._ready(t, hw) for t in (negative if self.guided else []) + positive]
        self._batches: dict[tuple[int, ...], Batch] = {}
        self.controls = ControlResiduals(self.train_steps)

    @property
    def guided(self) -> bool:
        """Classifier-free guidance: negative and positive rows in one UNet call."""
        return uses_negative(self.scale, self.comfy_cfg)

    def _resolved(self, side: str, entry: CondEntry, hw: tuple[int, int]) -> Term:
        import torch

        for control in entry.controls:
            problem = control_misfit(control, self.model)
            if problem:
                raise input_error(self.ctx, side, problem)
        mask, region = None, None
        if entry.mask is not None:
            mask = resize_masks(as_masks(entry.mask.to(self.device, torch.float32)), *hw)
            if mask.shape[0] not in (1, self.latent_shape[0]):
                raise input_error(self.ctx, side, f"a mask of {mask.shape[0]} images for a "
                                  f"batch of {self.latent_shape[0]} latents")  # fmt: skip
            if entry.mask_bounds:
                region = mask_bounds(mask, hw)
        if entry.area is not None and region is None:
            region = area_region(entry.area, hw)
            if region.height <= 0 or region.width <= 0:
                raise input_error(self.ctx, side, outside_problem(self.ctx, entry.area, hw))
        return Term(side, entry, region, mask)

    def _ready(self, term: Term, hw: tuple[int, int]) -> Term:
        """The term with its rows on the device and its weight."""
        dtype = self.model.dtype
        embeds = _rows(self.ctx, term.side, term.entry.embeds, self.latent_shape[0])
        added = added_inputs(self.ctx, self.model, term.entry, term.side, self.latent_shape)
        if added is not None:
            added = {"text_embeds": added["text_embeds"].to(self.device, dtype),
                     "time_ids": added["time_ids"].to(self.device)}  # fmt: skip
        weight: Any = term.entry.strength
        if term.mask is not None:
            mask = term.mask * term.entry.mask_strength
            mask = mask if term.region is None else term.region.crop(mask)
            weight = (mask[:, None] * weight).to(dtype)
        elif term.region is not None:
            weight = (edge_fade(term.region, hw) * weight).to(self.device, dtype)
        return replace(term, embeds=embeds.to(self.device, dtype), added=added, weight=weight,
                       concat=self._concat(term))  # fmt: skip

    def _concat(self, term: Term) -> Any:
        """An inpainting UNet's extra channels for this term (its entry's masked image, else
        the run's); None for other UNets."""
        if not is_inpainting_unet(self.model):
            return None
        try:
            extra = concat_channels(self.latent_shape, term.entry.inpaint or self.inpaint)
        except ValueError as exc:
            raise input_error(self.ctx, term.side, str(exc)) from None
        return extra.to(self.device, self.model.dtype)

    def predict(self, x: Any, t: Any) -> Any:
        """The guided noise prediction for the model input `x` [B, C, h, w] at timestep `t`."""
        active = [term for term in self.terms if term.active(t, self.train_steps)]
        groups: dict[tuple, list[Term]] = {}
        for term in active:
            groups.setdefault(term.batch_key, []).append(term)
        preds: dict[int, Any] = {}
        for terms in groups.values():
            key = tuple(id(term) for term in terms)
            if key not in self._batches:
                self._batches[key] = Batch.of(terms)
            out = unet_call(self.model, x, t, self._batches[key], self.controls)
            for term, pred in zip(terms, out.chunk(len(terms)), strict=True):
                preds[id(term)] = pred
        sides = {side: [(term, preds[id(term)]) for term in active if term.side == side]
                 for side in SIDES}  # fmt: skip
        cond = _combined(sides["positive"], x)
        if not self.guided:
            return cond
        uncond = _combined(sides["negative"], x)
        return uncond + self.scale * (cond - uncond)


def _combined(predictions: list[tuple[Term, Any]], x: Any) -> Any:
    """One side's prediction: the terms' predictions averaged per cell, weighted; zero where
    no term acts (as ComfyUI has it)."""
    import torch

    if len(predictions) == 1 and predictions[0][0].plain:
        return predictions[0][1]
    total, count = torch.zeros_like(x), torch.zeros_like(x)
    for term, pred in predictions:
        region = term.region
        view = (lambda a: a) if region is None else region.crop
        view(total).add_(pred * term.weight)
        view(count).add_(torch.as_tensor(term.weight, dtype=x.dtype, device=x.device))
    return total / torch.where(count > 0, count, torch.ones_like(count))
