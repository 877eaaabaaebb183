"""LoadLoRA: a LoRA's low-rank updates fused into copies of the UNet and text encoder.

Reading and applying go through diffusers and peft: `lora_state_dict` converts kohya/ComfyUI
files (`lora_unet_*`, `lora_te_*`; SDXL's `lora_te1_*`/`lora_te2_*`) to diffusers' layout
(`unet.`, `text_encoder.`, `text_encoder_2.`), `load_lora_into_unet` /
`load_lora_into_text_encoder` inject peft layers (into each text encoder a CLIP has: an SDXL
CLIP's second one under the `text_encoder_2` prefix), and the fuse adds strength * delta to the
weights, exactly as diffusers' `load_lora_weights` + `fuse_lora` does. All of it happens on a
copy (nodes/model_copies.py) kept by the model manager under the base's key plus the LoRA's
file identity and strength: the shared base model is never changed, so taking a LoRA out of a
graph gives the base model's images back bit for bit, and a strength change re-runs only the
nodes downstream of the LoRA. Stacked LoRAs are fused one after another, each on the previous
copy. A copy is counted in the manager's budget by its own fused layers only; it keeps the
base's other weights alive while it is held, even if the base entry itself is evicted.
What a file has that the model cannot take (layers naming no module of it: `unplaced`; a part
for a text encoder the CLIP lacks, or any on a node without a CLIP: `_Patcher.left_out`) is
left out with one node warning, not a library log line nor silence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from latentgraph.graph import CLIP, MODEL, Float, Output, Settings, Socket, String, node
from latentgraph.graph.paths import builtin_identity
from latentgraph.graph.problems import error_line

from . import models_dirs
from .model_manager import manager
from .values import ClipModel, UNetModel, input_error

ADAPTER = "latentgraph_lora"
STRENGTH_LIMIT = 100.0


class LoraError(ValueError):
    """A LoRA that cannot be found or applied; the message names the file."""


def lora_path(name: str, dirs: list[Path] | None = None) -> Path:
    """`builtin:tiny-lora*`, a name inside the models folders' loras/ (or a path leading
    there, `models_dirs.resolve`), or a path to a .safetensors file (absolute, or from the
    working directory: `models_dirs.absolute_source`)."""
    from .tiny_addons import BUILTIN_LORAS, builtin_lora

    if name in BUILTIN_LORAS:
        return builtin_lora(name)
    if name.startswith("builtin:"):
        raise LoraError(f"unknown built-in LoRA {name!r}; known: {', '.join(BUILTIN_LORAS)}")
    if models_dirs.is_pickled(name):
        raise LoraError(models_dirs.pickle_refusal(name))
    try:
        return models_dirs.weights_path("loras", name, dirs)
    except models_dirs.ModelNotFound as exc:
        raise LoraError(str(exc)) from None


def shown_name(name: str, path: Path) -> str:
    """How messages name a LoRA: a built-in one as the workflow does (`builtin:tiny-lora`,
    not its file in the cache), a file by the path it was found at."""
    from .tiny_addons import BUILTIN_LORAS

    return name if name in BUILTIN_LORAS else str(path)


def lora_identity(name: str, dirs: list[Path] | None = None) -> str:
    """Path, size and mtime: replacing the file changes the cache keys built from it. Cheap
    (no torch): validation and cache keys call it; a built-in LoRA is not built for it."""
    from .tiny_addons import BUILD_VERSION, BUILTIN_LORAS

    if name in BUILTIN_LORAS:
        return builtin_identity(name, BUILD_VERSION)
    try:
        path = lora_path(name, dirs)
    except LoraError as exc:
        return models_dirs.missing_identity(exc)
    return models_dirs.file_identity(path)


TEXT_ENCODERS = ("text_encoder", "text_encoder_2")  # a CLIP's encoders, as LoRA prefixes


def read_lora(
    path: Path, unet_config: Any = None, shown: str = ""
) -> tuple[dict[str, Any], dict[str, float] | None]:
    """The file's tensors in diffusers' layout (keys under unet. / text_encoder. /
    text_encoder_2.), and the kohya alphas when the file had them. `unet_config` lets
    diffusers map SDXL kohya files that name the UNet's blocks the original way; errors name
    the file `shown` (default: its path)."""
    from .quiet import quiet_libraries

    quiet_libraries()  # before diffusers' pipelines are imported: see nodes/quiet.py
    from diffusers import StableDiffusionPipeline
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        raw = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise LoraError(
            f"{shown or path}: not a readable .safetensors file: {error_line(exc)}"
        ) from None
    try:
        state, alphas = StableDiffusionPipeline.lora_state_dict(raw, unet_config=unet_config)
    except Exception as exc:  # noqa: BLE001 - diffusers' converters raise many kinds
        if is_lycoris(raw):
            raise LoraError(f"{shown or path}: a LoHa/LoKr (LyCORIS) file: not supported") from None
        raise LoraError(
            f"{shown or path}: not a LoRA diffusers can read: {error_line(exc)}"
        ) from None
    return state, alphas


def is_lycoris(raw: dict[str, Any]) -> bool:
    """LoHa (`*.hada_w1_a`, ...) or LoKr (`*.lokr_w1`, ...) tensors: diffusers' converters
    fail on them with a message about renaming keys that does not say what the file is."""
    return any(".hada_" in key or ".lokr_" in key for key in raw)


def _has(state: dict[str, Any], prefix: str) -> bool:
    return any(k.startswith(prefix + ".") for k in state)


def _layers(state: dict[str, Any], part: str) -> set[str]:
    """The modules `part`'s LoRA layers patch, named as diffusers' loaders hand them to peft
    (the converters `load_lora_into_unet` / `load_lora_into_text_encoder` apply first). The
    load returns nothing of what peft left out (diffusers only logs it), and a LoRA placing
    nothing must not reach peft at all; tests/nodes/test_lora.py pins this against diffusers."""
    from diffusers.utils import (
        convert_state_dict_to_diffusers,
        convert_state_dict_to_peft,
        convert_unet_state_dict_to_peft,
    )

    own = {k.removeprefix(f"{part}."): v for k, v in state.items() if k.startswith(f"{part}.")}
    if part != "unet":
        own = convert_state_dict_to_peft(convert_state_dict_to_diffusers(own))
    elif "lora_A" not in next(iter(own), "lora_A"):  # diffusers' test: the first key
        own = convert_unet_state_dict_to_peft(own)
    return {key.split(".lora_")[0] for key in own}


def unplaced(state: dict[str, Any], part: str, model: Any) -> tuple[list[str], int]:
    """(`part`'s LoRA layers naming no module of `model`, sorted; how many layers `part` has):
    a file for a slightly different model, or a converter's typo. peft loads the others and
    leaves these out with a library log line; a text encoder's may name its modules under
    `text_model.` (older transformers), as diffusers allows."""
    modules = {name for name, _ in model.named_modules()}
    layers = _layers(state, part)
    missing = [name for name in layers
               if name not in modules and name.removeprefix("text_model.") not in modules]  # fmt: skip
    return sorted(missing), len(layers)


def unplaced_warning(shown: str, part: str, missing: list[str], total: int) -> str:
    """One line, as ComfyUI's "lora key not loaded": the file, how many layers, a few names."""
    names = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    cause = "; is it a LoRA for another model?" if len(missing) == total else ""
    return (f"{shown}: {len(missing)} of {total} {part} LoRA layers not loaded, this model has "
            f"no such layer: {names}{cause}")  # fmt: skip


@dataclass(frozen=True)
class _Copy:
    """What the model manager holds for one part with a LoRA fused in: the module, and what
    building it found, kept and evicted with it (a strength sweep leaves no trace of the
    copies the manager let go): the warnings a node served this copy says as the node that
    built it did, and the parts the file has layers for (`_Patcher.left_out`)."""

    module: Any
    notes: tuple[str, ...]
    parts: frozenset[str]


def _fused_unet(base: Any, state: dict, alphas: Any, strength: float) -> Any:
    from diffusers import StableDiffusionPipeline

    from .model_copies import copy_module

    unet = copy_module(base)
    StableDiffusionPipeline.load_lora_into_unet(state, alphas, unet, adapter_name=ADAPTER)
    unet.fuse_lora(lora_scale=strength, safe_fusing=True, adapter_names=[ADAPTER])
    unet.unload_lora()
    return unet


def _fused_text_encoder(base: Any, state: dict, alphas: Any, strength: float,
                        prefix: str) -> Any:  # fmt: skip
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders.lora_base import (  # what diffusers' pipelines call for a CLIP
        _remove_text_encoder_monkey_patch,
        fuse_text_encoder_lora,
    )

    from .model_copies import copy_module

    te = copy_module(base)
    StableDiffusionPipeline.load_lora_into_text_encoder(state, alphas, te, prefix=prefix,
                                                        adapter_name=ADAPTER)  # fmt: skip
    fuse_text_encoder_lora(te, lora_scale=strength, safe_fusing=True, adapter_names=[ADAPTER])
    _remove_text_encoder_monkey_patch(te)
    return te


# how torch's load_state_dict names each tensor of another shape, in the error it raises
_OTHER_SHAPE = re.compile(r"size mismatch for (\S+): copying a param with shape "
                          r"torch\.Size\(\[([^\]]*)\]\) from checkpoint, the shape in current "
                          r"model is torch\.Size\(\[([^\]]*)\]\)")  # fmt: skip


def misfit(exc: Exception) -> str:
    """Why a LoRA does not fit a model, in one line: the tensors torch found of other shapes
    counted, the first shown (the file's shape and the model's), and the likely cause; any
    other error by its first line."""
    found = _OTHER_SHAPE.findall(str(exc))
    if not found:
        return error_line(exc)
    name, file_shape, model_shape = found[0]
    name = re.sub(rf"\.{ADAPTER}\.(\w+)$", r" \1", name)
    count = f"{len(found)} tensors have other shapes" if len(found) > 1 else \
        "1 tensor has another shape"  # fmt: skip
    return (f"{count} (first: {name}: file [{file_shape}], model [{model_shape}]); is it a "
            "LoRA for another model family (SDXL vs SD 1.5)?")  # fmt: skip


@dataclass(frozen=True)
class LoraUse:
    """Which LoRA to apply, how strongly, and the input errors point at."""

    name: str
    strength_model: float = 1.0
    strength_clip: float = 1.0
    input_name: str = "lora"


class _Patcher:
    """One LoRA file applied to models: read at most once, only when a copy must be built."""

    def __init__(self, ctx: Any, use: LoraUse, unet_config: Any) -> None:
        dirs = ctx.settings.models_dirs
        self.ctx, self.use, self.unet_config = ctx, use, unet_config
        try:
            self.path = lora_path(use.name, dirs)
        except LoraError as exc:
            raise self.error(str(exc)) from None
        self.identity = lora_identity(use.name, dirs)
        self.shown = shown_name(use.name, self.path)
        self._state: tuple[dict, Any] | None = None
        self._parts: frozenset[str] | None = None  # from the file, or a copy built from it

    def error(self, message: str) -> Exception:
        return input_error(self.ctx, self.use.input_name, message)

    def state(self) -> tuple[dict, Any]:
        if self._state is None:
            try:
                self._state = read_lora(self.path, self.unet_config, self.shown)
            except LoraError as exc:
                raise self.error(str(exc)) from None
            parts = frozenset(p for p in ("unet", *TEXT_ENCODERS) if _has(self._state[0], p))
            if not parts:
                raise self.error(f"{self.shown}: no UNet or text-encoder LoRA weights found")
            self._parts = parts
        return self._state

    def parts(self) -> frozenset[str]:
        """The parts the file has layers for: as a copy built from it found them, else read."""
        if self._parts is None:
            self.state()
        assert self._parts is not None  # state() found them
        return self._parts

    def left_out(self, parts: tuple[str, ...], why: str) -> None:
        """Warn that the file's layers for `parts` (those it has) are not applied, and why:
        a part the model has no place for would otherwise be dropped without a word."""
        found = [part for part in parts if part in self.parts()]
        if found:
            self.ctx.warn(f"{self.shown}: its {' and '.join(found)} LoRA layers were not "
                          f"applied: {why}")  # fmt: skip

    def patched(self, what: str, base_key: str, base: Any, strength: float,
                device: str) -> tuple[str, Any]:  # fmt: skip
        """(manager key, module with the LoRA fused in at `strength`), built once per process."""
        from .model_copies import new_bytes
        from .quiet import dropped_warnings

        key = f"{base_key}|{what}+lora:{self.identity}@{strength!r}"

        def build() -> _Copy:
            tensors, alphas = self.state()
            if not _has(tensors, what):
                return _Copy(base, (), self.parts())
            missing, total = unplaced(tensors, what, base)
            notes = (unplaced_warning(self.shown, what, missing, total),) if missing else ()
            if len(missing) == total:  # peft refuses a LoRA that patches nothing
                return _Copy(base, notes, self.parts())
            try:
                with dropped_warnings():  # peft's about the layers `notes` names
                    if what == "unet":
                        module = _fused_unet(base, tensors, alphas, strength)
                    else:
                        module = _fused_text_encoder(base, tensors, alphas, strength, what)
            except Exception as exc:  # noqa: BLE001 - peft/diffusers raise many kinds on a mismatch
                raise self.error(f"{self.shown} does not fit this model's {what}: "
                                 f"{misfit(exc)}") from exc  # fmt: skip
            return _Copy(module, notes, self.parts())

        held: _Copy = manager().get(key, build, device=device,
                                    size=lambda c: new_bytes(c.module, base))  # fmt: skip
        if self._parts is None:
            self._parts = held.parts
        for note in held.notes:
            self.ctx.warn(note)
        return key, held.module


def apply_lora(ctx: Any, unet: UNetModel, clip: ClipModel | None,
               use: LoraUse) -> tuple[UNetModel, ClipModel | None]:  # fmt: skip
    """The LoRA fused into copies of `unet` (and of each of `clip`'s text encoders, when
    given); a strength of 0 returns that input itself. Errors name the node and
    `use.input_name`."""
    patcher = _Patcher(ctx, use, unet.unet.config)
    out_unet, out_clip = unet, clip
    if use.strength_model != 0:
        key, module = patcher.patched("unet", unet.key, unet.unet, use.strength_model,
                                      unet.device)  # fmt: skip
        out_unet = replace(unet, unet=module, key=key)
        if clip is None:
            patcher.left_out(TEXT_ENCODERS, "this node takes no CLIP (LoraLoader applies them)")
    if clip is not None and use.strength_clip != 0:
        out_clip = _patched_clip(patcher, clip, use.strength_clip)
    return out_unet, out_clip


def _patched_clip(patcher: _Patcher, clip: ClipModel, strength: float) -> ClipModel:
    """Every text encoder the CLIP has (SDXL: two; its refiner: the second only) patched; the
    file's layers for an encoder the CLIP lacks are warned about."""
    keys, encoders = [], []
    for what, module in zip(TEXT_ENCODERS, (clip.text_encoder, clip.text_encoder_2), strict=True):
        if module is not None:
            key, module = patcher.patched(what, clip.key, module, strength, clip.device)
            keys.append(key)
        else:
            patcher.left_out((what,), f"this CLIP has no {what}; is it a LoRA for another "
                             "model family (SDXL vs SD 1.5)?")  # fmt: skip
        encoders.append(module)
    return replace(clip, text_encoder=encoders[0], text_encoder_2=encoders[1], key=keys[0])


def _identity(inputs: dict[str, Any], settings: Settings) -> str:
    return lora_identity(str(inputs.get("lora", "")), settings.models_dirs)


def _check(inputs: dict[str, Any], settings: Settings) -> list[tuple[str | None, str]]:
    name = inputs.get("lora")
    if not isinstance(name, str):
        return []
    return models_dirs.missing_problems("lora", lora_identity(name, settings.models_dirs))


def strength(name: str, description: str) -> Any:
    return Float(name, 1.0, min=-STRENGTH_LIMIT, max=STRENGTH_LIMIT, step=0.01,
                 description=description)  # fmt: skip


@node(
    "LoadLoRA",
    category="loaders",
    inputs=[
        Socket("unet", MODEL),
        Socket("clip", CLIP, description="passed through unchanged at strength_clip 0"),
        String("lora", description="a .safetensors LoRA (kohya/ComfyUI or diffusers layout): "
               "a name in the models folders' loras/, a path to a file (absolute, or from the "
               "working directory), or builtin:tiny-lora"),
        strength("strength_model", "how much of the LoRA goes into the UNet (0: none)"),
        strength("strength_clip", "how much goes into the text encoders (0: none)"),
    ],
    outputs=[Output("unet", MODEL), Output("clip", CLIP)],
    identity=_identity,
    check=_check,
)  # fmt: skip
def load_lora(ctx, unet: UNetModel, clip: ClipModel, lora: str, strength_model: float = 1.0,
              strength_clip: float = 1.0):  # fmt: skip
    """Apply a LoRA to a model's UNet and text encoder (chain several to stack them)."""
    return apply_lora(ctx, unet, clip, LoraUse(lora, strength_model, strength_clip))
