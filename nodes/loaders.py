"""Model loading nodes: LoadModel, LoadVAE, LoadTextEncoder.

Sources: `builtin:tiny-sd`; a diffusers folder; a single-file `.safetensors` checkpoint in the
original (LDM) layout (read offline with a configs-only folder as `config=`: a config preset's,
picked from the tensor shapes; nodes/model_presets.py knows the presets and the built-in models'
recipes); a hub repo id (online only: offline it fails with a message saying how to use a local
file). Pickle-based checkpoints (.ckpt/.pt/.pth/.bin/.pkl) are refused, never opened, not even
with torch.load(weights_only=True): convert them to .safetensors once. So is a diffusers folder
whose weights are pickles (`unet/diffusion_pytorch_model.bin`), and every folder is read with
`use_safetensors=True`, so diffusers and transformers never fall back to one.
Everything goes through the model manager, so the same weights load once per process.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from latentgraph.graph import (
    CLIP,
    MODEL,
    SCHEDULER,
    VAE,
    Aliases,
    Choice,
    Input,
    Output,
    Settings,
    String,
    node,
    paths,
)
from latentgraph.graph.files import FileWriteError
from latentgraph.graph.paths import KindFolder, ModelsDir, builtin_identity, user_path
from latentgraph.graph.problems import error_line, printable, quoted

from . import model_sampling, runtime
from .model_manager import budgeted, module_bytes
from .model_presets import (
    BUILTIN_TINY,
    BUILTINS,
    CONFIG_PRESETS,
    TEXT_ENCODER_CONFIGS,
    VAE_CONFIGS,
    builtin_folder,
    builtin_version,
    checkpoint_shapes,
    config_folder,
    config_preset,
    detect_preset,
    text_encoder_preset,
    vae_preset,
)
from .models_dirs import (
    ModelNotFound,
    file_identity,
    is_model_folder,
    is_pickled,
    resolve,
    where_looked,
)
from .sdxl_loading import is_sdxl_folder, load_sdxl_text_encoders, sdxl_pipeline_class
from .values import (
    ClipModel,
    ModelSampling,
    NodeInputError,
    SchedulerSpec,
    UNetModel,
    VAEModel,
    input_error,
)


def _config_choice(presets: tuple[str, ...], description: str) -> Input:
    """A component loader's `config` input: `presets`, each also taken as its built-in
    model's name (`config: builtin:tiny-sd`, as LoadModel's config takes it), a spelling no
    dropdown lists and the workflow schema names (`Aliases`)."""
    builtin_names = tuple(name for name in BUILTINS
                          if name != config_preset(name) and config_preset(name) in presets)  # fmt: skip
    return Choice("config", list(presets), "auto", description=description,
                  also_accepts=Aliases(builtin_names))  # fmt: skip


PREDICTIONS = ("auto", "eps", "v_prediction")  # LoadModel's `prediction` input
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Source:
    """Where weights come from. `identity` changes whenever the weights may have changed."""

    kind: str  # "builtin" | "folder" | "single_file" | "hub"
    location: str
    identity: str


EMPTY_SOURCE = ("the source is empty; expected a built-in model (builtin:tiny-sd, ...), a "
                "diffusers folder, a .safetensors file or a hub repo id")  # fmt: skip


def _pickle_refusal(text: str) -> str:
    return (f"{quoted(text)} is a pickle-based checkpoint, which can run code when loaded; it is "
            "refused. Convert it to .safetensors")  # fmt: skip


def pickled_weights(folder: Path) -> str | None:
    """The first pickled weights file (its path inside `folder`, e.g.
    `unet/diffusion_pytorch_model.bin`) in a diffusers folder or one of its component
    subfolders that holds no .safetensors file beside it: the weights diffusers or transformers
    would unpickle. None when every component has safetensors weights."""
    for where in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        files = sorted(p for p in where.iterdir() if p.is_file())
        if any(p.suffix.lower() in paths.WEIGHT_SUFFIXES for p in files):
            continue
        pickles = [p for p in files if is_pickled(p.name)]
        if pickles:
            return pickles[0].relative_to(folder).as_posix()
    return None


def _candidates(text: str, models_dirs: list[ModelsDir]) -> list[Path]:
    """`text` as a path: from the current folder, or under each models root given. A kind
    folder (`--extra-model-paths`) is no root: `resolve` looks in it for a name. A `~user`
    of no user here is a ValueError saying so (`user_path`)."""
    p = user_path(text, None)
    if p.is_absolute():
        return [p]
    return [p] + [d / p for d in models_dirs if not isinstance(d, KindFolder)]


# the models folders each loader's names are looked up in (nodes/models_dirs.py), after a path
# from the current directory or a models root: ComfyUI's CheckpointLoaderSimple reads
# checkpoints/, and its diffusers/ holds diffusers model folders
MODEL_FOLDERS = ("checkpoints", "diffusers")
VAE_FOLDERS = ("vae",)
TEXT_ENCODER_FOLDERS = ("text_encoders",)
COMPONENT_FOLDERS = {"vae": VAE_FOLDERS, "text_encoder": TEXT_ENCODER_FOLDERS}


def _places(text: str, folders: tuple[str, ...], models_dirs: list[ModelsDir] | None) -> Any:
    """Where a source may be, in order: the paths, then (only if needed) the folders' name."""
    yield from _candidates(text, models_dirs or [])
    for folder in folders:
        try:
            yield resolve(folder, text, models_dirs, folders=True)
            return
        except ModelNotFound:
            continue


def _check_suffix(path: Path) -> None:
    """Refuse a file that is not of the safetensors family (`paths.WEIGHT_SUFFIXES`)."""
    if path.suffix.lower() not in paths.WEIGHT_SUFFIXES:
        raise ValueError(f"{quoted(str(path))}: expected a .safetensors (or .sft) checkpoint or a "
                         "folder")  # fmt: skip


@contextmanager
def safetensors_named(path: str) -> Iterator[str]:
    """`path` under a name diffusers' pipeline `from_single_file` reads with safetensors: it
    takes only a path and picks its reader by the suffix (torch.load for any name not ending
    in exactly .safetensors; it has no state-dict entry), so a .sft (or .SafeTensors) file is
    given as a link named .safetensors to the same bytes, in a temporary folder."""
    if path.endswith(".safetensors"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="latentgraph-sft-") as tmp:
        alias = Path(tmp) / "checkpoint.safetensors"
        try:
            alias.symlink_to(path)
        except OSError:
            try:  # no symlinks (Windows without developer mode): a hard link, same volume
                os.link(path, alias)
            except OSError as exc:
                raise ValueError(f"{quoted(str(path))}: cannot be read as safetensors under its name, and "
                                 f"linking it under a .safetensors name failed ({exc}): "
                                 "rename it to .safetensors") from None  # fmt: skip
        yield str(alias)


def find_source(text: str, models_dirs: list[ModelsDir] | None = None,
                folders: tuple[str, ...] = MODEL_FOLDERS) -> Source:  # fmt: skip
    """Classify a source string: a built-in, a path (from the current directory or a models
    root), a name in the models folders' `folders`, or a hub id. Raises ValueError (without
    node context) when unusable."""
    text = text.strip()
    if not text:
        raise ValueError(EMPTY_SOURCE)
    if text.startswith("builtin:"):
        return Source("builtin", text, builtin_identity(text, builtin_version(text)))
    if is_pickled(text):
        raise ValueError(_pickle_refusal(text) + " (or use a diffusers folder)")
    for p in _places(text, folders, models_dirs):
        if p.is_dir():
            if not is_model_folder(p):
                raise ValueError(f"{quoted(str(p))} is a folder but not a diffusers model folder "
                                 "(no model_index.json or config.json)")  # fmt: skip
            pickled = pickled_weights(p)
            if pickled is not None:
                raise ValueError(f"{quoted(str(p))}: {pickled} is a pickle; latentgraph loads only "
                                 ".safetensors (save the model with safe_serialization=True, "
                                 "or convert that file)")  # fmt: skip
            return Source("folder", str(p.resolve()), file_identity(p))
        if p.is_file():
            _check_suffix(p)
            return Source("single_file", str(p.resolve()), file_identity(p))
    if HUB_ID.match(text) and not text.lower().endswith(".safetensors"):
        return Source("hub", text, f"hub:{text}")
    looked = ", ".join(printable(str(p)) for p in _candidates(text, models_dirs or []))
    looked += f"; for a name, {where_looked(folders, models_dirs)}"
    raise ValueError(f"model file not found: {quoted(text)} (looked at: {looked})")


def identity_in(folders: tuple[str, ...]) -> Any:
    """A loader's identity hook: the weights' identity (found as `find_source` finds them in
    `folders`), and the run's device, dtype and model-changing options: a result made in
    fp32 (or on the CPU) never serves an fp16 (or GPU) run."""

    def identity(inputs: dict[str, Any], settings: Settings) -> str:
        try:
            source = find_source(str(inputs.get("source", "")), settings.models_dirs, folders)
            weights = source.identity
        except ValueError as exc:
            weights = f"unresolved:{exc}"
        return f"{weights}|{runtime.model_identity(settings)}"

    return identity


def is_comfy_node(ctx: Any) -> bool:
    """Whether the running node is one of ComfyUI's (a ComfyUI prompt or workflow)."""
    from .comfy import comfy_registry

    return ctx.node_type in comfy_registry


@dataclass(eq=False)
class Bundle:
    unet: Any
    vae: Any
    text_encoder: Any  # None for SDXL's refiner, which has only the second encoder
    tokenizer: Any
    scheduler_config: dict[str, Any]
    tokenizer_2: Any = None  # SDXL's second tokenizer and encoder
    text_encoder_2: Any = None
    sampling: ModelSampling = ModelSampling()  # found in the scheduler config or the file


def _apply_options(bundle: Bundle, settings: Settings) -> None:
    import torch

    from .attention import choose_attention

    choose_attention(bundle.unet, bundle.vae, settings)
    if settings.option("channels_last"):
        bundle.unet.to(memory_format=torch.channels_last)
    if settings.option("compile"):
        # Static shapes: one compiled graph per latent shape, built before the first step
        # (UNetDenoise warms it up), not lazily inside it.
        bundle.unet.compile(dynamic=False)


def _load_bundle(ctx: Any, source: Source, config: str, device: str, dtype: str) -> Bundle:
    """Load every component; for a single file, `config` is the resolved config folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from .quiet import quiet_libraries

    tokenizer_2 = text_encoder_2 = None  # SDXL's second pair
    quiet_libraries()  # no library progress bars or info logs amid ours
    torch_dtype = runtime.torch_dtype(dtype)
    if source.kind in ("builtin", "folder", "hub"):
        if source.kind == "builtin":
            folder: str = str(builtin_folder(source.location))
        elif source.kind == "hub":
            folder = _download(ctx, source.location)
        else:
            folder = source.location
        kw = {"torch_dtype": torch_dtype, "use_safetensors": True}  # never a pickle
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **kw)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", **kw)
        if is_sdxl_folder(folder):
            tokenizer, text_encoder, tokenizer_2, text_encoder_2 = load_sdxl_text_encoders(
                folder, torch_dtype
            )
        else:
            text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **kw)
            tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        from diffusers import DDIMScheduler

        sched_config = dict(DDIMScheduler.load_config(folder, subfolder="scheduler"))
    else:
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        if is_sdxl_folder(config):
            with safetensors_named(source.location) as location:
                pipe = sdxl_pipeline_class(config).from_single_file(
                    location, config=config, torch_dtype=torch_dtype, local_files_only=True
                )
            tokenizer_2, text_encoder_2 = pipe.tokenizer_2, pipe.text_encoder_2
        else:
            with safetensors_named(source.location) as location:
                pipe = StableDiffusionPipeline.from_single_file(
                    location, config=config, torch_dtype=torch_dtype, local_files_only=True,
                    safety_checker=None, requires_safety_checker=False,
                )  # fmt: skip
        unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
        # The config folder's own scheduler config, exactly as for a diffusers folder.
        sched_config = dict(DDIMScheduler.load_config(config, subfolder="scheduler"))
    sampling = model_sampling.from_scheduler_config(sched_config)
    if source.kind == "single_file":  # marker tensors (v_pred, ztsnr) say more than the preset
        sampling = model_sampling.from_markers(checkpoint_shapes(source.location)) or sampling
    vae = upcast_vae(ctx.settings, vae, dtype)
    unet, vae, text_encoder, text_encoder_2 = (
        None if m is None else place(ctx.settings, m, device)
        for m in (unet, vae, text_encoder, text_encoder_2)  # no first encoder: SDXL's refiner
    )
    return Bundle(unet, vae, text_encoder, tokenizer, sched_config, tokenizer_2, text_encoder_2,
                  sampling)  # fmt: skip


def _download(ctx: Any, repo_id: str) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    hint = (
        f"hub id {quoted(repo_id)} could not be fetched (this machine is offline or the hub is "
        "unreachable). Download the model elsewhere and set `source` to the local diffusers "
        "folder or the single-file .safetensors checkpoint (absolute path, or relative to a "
        "models directory)"
    )
    if offline:
        raise input_error(ctx, "source", hint)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, allow_patterns=["*.json", "*.txt", "*.safetensors"])
    except Exception as exc:  # noqa: BLE001 - any network/hub failure means the same to the user
        raise input_error(ctx, "source", f"{hint} ({error_line(exc)})") from exc


def single_file_config(ctx: Any, path: str, config: str) -> str:
    """The config folder for a single-file checkpoint: detected from its tensor shapes when
    `config` is "auto", else the named preset or a diffusers folder holding the configs."""
    try:
        shapes = checkpoint_shapes(path)
    except ValueError as exc:
        raise input_error(ctx, "source", str(exc)) from None
    if config == "auto":
        try:
            preset = detect_preset(shapes, is_comfy_node(ctx))
        except ValueError as exc:
            raise input_error(ctx, "source", f"{path}: {exc}") from None
        if preset == "sd2" and not model_sampling.sd2_is_v_model(path):
            preset = "sd2-base"  # same shapes as the 768-v model; eps
        return str(config_folder(preset))
    if config_preset(config) in CONFIG_PRESETS:
        return str(config_folder(config))
    folder = typed_config_folder(ctx, config)
    if not (folder / "model_index.json").is_file() or not (folder / "unet").is_dir():
        raise input_error(
            ctx, "config",
            f"{quoted(config)} is neither a preset ({', '.join(CONFIG_PRESETS)}) nor a diffusers "
            "folder holding the model's configs (model_index.json, unet/, vae/, ...)",
        )  # fmt: skip
    return str(folder.resolve())


def typed_config_folder(ctx: Any, config: str) -> Path:
    """A `config` input's folder as typed (`user_path`, `~` expanded): a `~user` of no user
    here is that input's error, as any other config that is no folder."""
    try:
        return user_path(config, None)
    except ValueError as exc:
        raise input_error(ctx, "config", str(exc)) from None


def load_bundle(ctx: Any, source_text: str, config: str = "auto") -> tuple[Bundle, str]:
    """The shared Bundle for a source on this run's device/dtype, and its manager key."""
    try:
        source = find_source(source_text, ctx.settings.models_dirs)
    except ValueError as exc:
        raise input_error(ctx, "source", str(exc)) from None
    # `config` only matters for single files; elsewhere it must not split the manager key.
    config = (
        single_file_config(ctx, source.location, config) if source.kind == "single_file" else "-"
    )
    device = runtime.device_name(ctx.settings)
    dtype = runtime.dtype_name(ctx.settings, device)
    key = "|".join([source.identity, config, runtime.model_identity(ctx.settings)])

    def load() -> Bundle:
        try:
            bundle = _load_bundle(ctx, source, config, device, dtype)
        except (NodeInputError, FileWriteError):  # a built-in's build the disk refused
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors/diffusers raise many kinds
            raise input_error(
                ctx, "source", f"could not load {quoted(source_text)}: {error_line(exc)}"
            ) from exc
        _apply_options(bundle, ctx.settings)
        return bundle

    def size(b: Bundle) -> int:
        return module_bytes(b.unet, b.vae, b.text_encoder, b.text_encoder_2)

    return _managed(ctx, key, load, device, size, source.location), key


def check_source(literals: dict, settings: Settings | None,
                 folders: tuple[str, ...] = MODEL_FOLDERS) -> list[tuple[str | None, str]]:  # fmt: skip
    """Validation-time refusals for a `source` literal, before any model work: what
    `find_source` (the lookup the node runs) refuses, in the loader's models `folders`: an
    empty source, pickle files, unknown built-ins, a file or folder that is not there.
    Built-ins and hub ids pass (offline, a hub id fails when the node runs, saying why)."""
    source = literals.get("source")
    if not isinstance(source, str):
        return []
    try:
        find_source(source, settings.models_dirs if settings is not None else None, folders)
    except ValueError as exc:
        return [("source", str(exc))]
    return []


SourceCheck = Callable[[dict, Settings], list[tuple[str | None, str]]]


def source_check(folders: tuple[str, ...]) -> SourceCheck:
    """The check hook of a loader whose `source` names are looked up in `folders`."""

    def check(literals: dict, settings: Settings) -> list[tuple[str | None, str]]:
        return check_source(literals, settings, folders)

    return check


@node(
    "LoadModel",
    category="loaders",
    inputs=[
        String(
            "source",
            BUILTIN_TINY,
            description="builtin:tiny-sd (or builtin:tiny-sdxl, builtin:tiny-sdxl-refiner, "
            "builtin:tiny-sd2-v, builtin:tiny-sd-inpaint), "
            "a diffusers folder, a .safetensors (or .sft) checkpoint (a path, or a name in the "
            "models folders' checkpoints/; diffusers folders there or in diffusers/), or a hub "
            "repo id (online only)",
        ),  # fmt: skip
        String(
            "config",
            "auto",
            description="for single-file checkpoints: auto (from the tensors; SD 2.x 768-v "
            "or 512-base from their weights), sd15, sd2, sd2-base, sdxl, sdxl-refiner, "
            "sd15-inpaint, sd2-inpaint, tiny-sd, tiny-sdxl, tiny-sdxl-refiner, tiny-sd-inpaint, "
            "or a diffusers folder holding the configs",
        ),  # fmt: skip
        Choice(
            "prediction",
            list(PREDICTIONS),
            "auto",
            description="what the UNet predicts: auto (the scheduler config's prediction_type; "
            "a single file's v_pred marker or SD 2.x weights), eps, or v_prediction",
        ),
    ],
    outputs=[
        Output("unet", MODEL),
        Output("clip", CLIP),
        Output("vae", VAE),
        Output("scheduler", SCHEDULER, description="the model's own scheduler config"),
    ],
    identity=identity_in(MODEL_FOLDERS),
    check=source_check(MODEL_FOLDERS),
)
def load_model(ctx, source: str, config: str = "auto", prediction: str = "auto"):
    """Load a Stable Diffusion model (once per process; shared by every node that uses it)."""
    bundle, key = load_bundle(ctx, source, config)
    device = runtime.device_name(ctx.settings)
    dtype = runtime.dtype_name(ctx.settings, device)
    sampling = model_sampling.declared(prediction, bundle.sampling)
    return (
        UNetModel(bundle.unet, key, device, dtype, sampling),
        ClipModel(
            bundle.tokenizer,
            bundle.text_encoder,
            key,
            device,
            bundle.tokenizer_2,
            bundle.text_encoder_2,
        ),  # fmt: skip
        VAEModel(bundle.vae, key, device),
        SchedulerSpec(
            model_sampling.sampled_config(bundle.scheduler_config, sampling),
            None,
            bundle.scheduler_config.get("_class_name", ""),
        ),  # fmt: skip
    )


_Loaded = TypeVar("_Loaded")


@dataclass(frozen=True)
class _Component:
    """One load of LoadVAE or LoadTextEncoder: the node's context, its `source` as given, the
    weights found for it (`location`, a file or a folder, and `sub`, the folder's subfolder
    holding the component, None to read the folder itself), its model manager `key`, and the
    run's device and dtype."""

    ctx: Any
    source: str
    location: str
    sub: str | None
    key: str
    device: str
    dtype: str

    @classmethod
    def find(cls, ctx: Any, source: str, config: str, kind: str) -> _Component:
        """The `kind` of component ("vae", "text_encoder": a model folder's subfolder holding
        it) that `source` names, found as `find_source` finds it in the models folders'
        `COMPONENT_FOLDERS[kind]`; its manager key has one spelling of a `config` preset."""
        try:
            found = find_source(source, ctx.settings.models_dirs, COMPONENT_FOLDERS[kind])
        except ValueError as exc:
            raise input_error(ctx, "source", str(exc)) from None
        location, sub = found.location, None
        if found.kind == "builtin":
            location, sub = str(builtin_folder(found.location)), kind
        elif found.kind == "hub":
            location, sub = _download(ctx, found.location), kind
        elif found.kind == "folder" and (Path(found.location) / kind).is_dir():
            sub = kind
        key = "|".join([kind, found.identity, config_preset(config),
                        runtime.model_identity(ctx.settings)])  # fmt: skip
        device = runtime.device_name(ctx.settings)
        dtype = runtime.dtype_name(ctx.settings, device)
        return cls(ctx, source, location, sub, key, device, dtype)

    def read(self, what: str, from_file: Callable[[str, Any], _Loaded],
             from_folder: Callable[[str, str | None, Any], _Loaded]) -> _Loaded:  # fmt: skip
        """The component read from its file (`from_file(path, torch dtype)`) or folder
        (`from_folder(folder, sub, torch dtype)`) in the run's dtype, not yet placed on its
        device; a library's failure is the node's `source` error, naming `what` ("a VAE")."""
        from .quiet import quiet_libraries

        quiet_libraries()  # LoadModel may not run in this process (its outputs cached)
        torch_dtype = runtime.torch_dtype(self.dtype)
        try:
            if Path(self.location).is_file():  # a single file `find_source` took (its suffix)
                return from_file(self.location, torch_dtype)
            return from_folder(self.location, self.sub, torch_dtype)
        except (NodeInputError, FileWriteError):
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors/diffusers/transformers raise many kinds
            raise input_error(
                self.ctx, "source", f"could not load {what} from {quoted(self.source)}: "
                f"{error_line(exc)}",
            ) from exc  # fmt: skip

    def place(self, module: Any) -> Any:
        """A module of the component on the run's device (`place`)."""
        return place(self.ctx.settings, module, self.device)

    def managed(self, load: Callable[[], _Loaded], size: Callable[[_Loaded], int]) -> _Loaded:
        """`load()` once per process under the component's key (`_managed`)."""
        return _managed(self.ctx, self.key, load, self.device, size, self.location)


@dataclass(frozen=True)
class ClipParts:
    """A text encoder as read (LoadTextEncoder): the tokenizer and its encoder, and SDXL's
    second pair; the first pair is None for SDXL's refiner, the second for SD."""

    tokenizer: Any
    text_encoder: Any
    tokenizer_2: Any = None
    text_encoder_2: Any = None

    def placed(self, place: Callable[[Any], Any]) -> ClipParts:
        """The parts with each encoder put where `place` puts a module (a tokenizer is none)."""
        return replace(self, text_encoder=_placed(place, self.text_encoder),
                       text_encoder_2=_placed(place, self.text_encoder_2))  # fmt: skip

    def size(self) -> int:
        """The encoders' bytes (`module_bytes`), for the model manager's budget."""
        return module_bytes(self.text_encoder, self.text_encoder_2)


def _placed(place: Callable[[Any], Any], module: Any) -> Any:
    return None if module is None else place(module)


# Prefixes a component's tensors may carry inside a single file (full checkpoints, ComfyUI).
_VAE_PREFIXES = ("first_stage_model.", "vae.", "")
_CLIP_PREFIXES = ("cond_stage_model.transformer.", "text_encoder.", "")


def _component_prefix(shapes: dict[str, list[int]], prefixes: tuple[str, ...],
                      probes: tuple[str, ...]) -> tuple[str, str] | None:  # fmt: skip
    """(prefix, probe) of the first probe tensor found under one of the prefixes."""
    for prefix in prefixes:
        for probe in probes:
            if prefix + probe in shapes:
                return prefix, probe
    return None


def _component_preset(ctx: Any, config: str, detect: Callable[[], str]) -> str:
    """A single-file component's preset: `config` as given, or for auto the one `detect()`
    finds (nodes/model_presets.py); a file of no known architecture is the `source`'s error."""
    if config != "auto":
        return config
    try:
        return detect()
    except ValueError as exc:
        raise input_error(ctx, "source", str(exc)) from None


def _config_dir(ctx: Any, config: str) -> str:
    if config_preset(config) in CONFIG_PRESETS:
        return str(config_folder(config))
    folder = typed_config_folder(ctx, config)
    if not (folder / "model_index.json").is_file():
        raise input_error(
            ctx, "config", f"{quoted(config)} is neither a preset nor a config folder"
        )
    return str(folder)


def _strip(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _load_strict(ctx: Any, module: Any, state: dict[str, Any], path: str) -> Any:
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]
    if missing or unexpected:
        raise input_error(
            ctx, "source", f"{path}: tensors do not fit the architecture (missing "
            f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected "
            f"{unexpected[:3]}{'...' if len(unexpected) > 3 else ''}); check `config`",
        )  # fmt: skip
    return module


def _single_file_vae(ctx: Any, path: str, config: str, torch_dtype: Any) -> Any:
    """A VAE from one .safetensors file: original (LDM) layout, alone or inside a full
    checkpoint, through `from_single_file`; or diffusers layout, loaded into the config."""
    from diffusers import AutoencoderKL

    shapes = checkpoint_shapes(path)
    ldm = _component_prefix(shapes, _VAE_PREFIXES, ("encoder.down.0.block.0.conv1.weight",))
    hf = _component_prefix(shapes, _VAE_PREFIXES, ("encoder.down_blocks.0.resnets.0.conv1.weight",))
    found = ldm or hf
    if found is None:
        raise input_error(ctx, "source", f"{path}: no VAE weights found (encoder.* tensors)")
    width = shapes[found[0] + "encoder.conv_in.weight"][0]
    preset = _component_preset(ctx, config, lambda: vae_preset(path, shapes, width))
    folder = _config_dir(ctx, preset)
    from safetensors.torch import load_file

    # The tensors, not the path: diffusers reads a path by its suffix (torch.load unless it
    # ends in .safetensors), so a .sft loads exactly as the same bytes named .safetensors do.
    state = load_file(path)
    if ldm is not None:
        return AutoencoderKL.from_single_file(
            state, config=folder, subfolder="vae", local_files_only=True, torch_dtype=torch_dtype
        )
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
    _load_strict(ctx, vae, _strip(state, found[0]), path)
    return vae.to(torch_dtype)


@node(
    "LoadVAE",
    category="loaders",
    inputs=[
        String("source", description="a diffusers model or VAE folder, or a VAE .safetensors "
               "(original or diffusers layout; a full checkpoint's VAE too): a path, or a name "
               "in the models folders' vae/"),
        _config_choice(
            VAE_CONFIGS,
            "architecture and latent scaling factor of a single-file VAE (auto: a full "
            "checkpoint's own; a VAE alone by its model spec metadata, else SD's 0.18215: set "
            "sdxl for an SDXL VAE file, 0.13025)",
        ),
    ],
    outputs=[Output("vae", VAE)],
    identity=identity_in(VAE_FOLDERS),
    check=source_check(VAE_FOLDERS),
)  # fmt: skip
def load_vae(ctx, source: str, config: str = "auto"):
    """Load a VAE on its own, to swap it into a model (e.g. a better-trained decoder)."""

    def from_file(path: str, torch_dtype: Any) -> Any:
        return _single_file_vae(ctx, path, config, torch_dtype)

    def from_folder(folder: str, sub: str | None, torch_dtype: Any) -> Any:
        from diffusers import AutoencoderKL

        return AutoencoderKL.from_pretrained(folder, subfolder=sub, torch_dtype=torch_dtype,
                                             use_safetensors=True)  # fmt: skip

    component = _Component.find(ctx, source, config, "vae")

    def load() -> Any:
        vae = component.read("a VAE", from_file, from_folder)
        return component.place(upcast_vae(ctx.settings, vae, component.dtype))

    return VAEModel(component.managed(load, module_bytes), component.key, component.device)


def _managed(ctx: Any, key: str, load: Callable[[], Any], device: str,
             size: Callable[[Any], int], location: str) -> Any:  # fmt: skip
    """`load()` through the model manager: counted against the GPU's budget, or the RAM's when
    offloaded; room for the size of the weights at `location` (`weights_bytes`) is made
    before loading."""
    mgr = budgeted(ctx.settings)
    where = runtime.home_device(ctx.settings, device)
    return mgr.get(key, load, device=where, size=size, expect=weights_bytes(location))


def weights_bytes(location: str) -> int:
    """Bytes of the .safetensors files at `location` (a file or a folder): the estimate the
    manager makes room for before loading; 0 for the built-in model and hub ids."""
    path = Path(location)
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*.safetensors") if f.is_file())
    return 0


def place(settings: Any, module: Any, device: str) -> Any:
    """A module frozen for inference, on `device`; with `cpu_offload` (on a GPU), kept on the
    CPU with accelerate's hook moving it to `device` for each use. The hook never moves it
    back: its users wrap each use in runtime.in_use, which does."""
    module = module.eval().requires_grad_(False)
    if not runtime.offloads(settings, device):
        return module.to(device)
    from accelerate import cpu_offload_with_hook

    cpu_offload_with_hook(module, execution_device=device)
    return module


def upcast_vae(settings: Any, vae: Any, dtype: str) -> Any:
    """The VAE in fp32 when the run is fp16 and `vae_fp32` is on: by default, when the VAE's
    config says it needs it (`force_upcast`, as diffusers' SD and SDXL VAEs do): fp16 VAEs
    overflow into NaN, a black image. bf16 has fp32's range and is kept."""
    if dtype != "fp16":
        return vae
    wanted = settings.option("vae_fp32")
    if wanted == "auto":
        wanted = bool(vae.config.get("force_upcast", False))
    return vae.float() if wanted else vae


def _single_file_clip(ctx: Any, path: str, config: str, torch_dtype: Any) -> ClipParts:
    """A CLIP text encoder from one .safetensors file in transformers' layout (alone, as
    ComfyUI's text_encoders/ files are, or inside an SD 1.x checkpoint), plus the tokenizer of
    the matching preset."""
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    shapes = checkpoint_shapes(path)
    probe = "embeddings.token_embedding.weight"
    found = _component_prefix(shapes, _CLIP_PREFIXES, ("text_model." + probe, probe))
    if found is None:
        raise input_error(
            ctx, "source", f"{path}: no CLIP text encoder weights in transformers' layout "
            "(text_model.embeddings.token_embedding.weight)",
        )  # fmt: skip
    width = shapes[found[0] + found[1]][1]
    folder = _config_dir(ctx, _component_preset(ctx, config, lambda: text_encoder_preset(width)))
    model_config = CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder")
    if model_config.hidden_size != width:  # refuse before allocating a model that cannot fit
        raise input_error(
            ctx, "source", f"{path}: a text encoder of width {width}, but config {quoted(config)} "
            f"describes width {model_config.hidden_size}",
        )  # fmt: skip
    model = CLIPTextModel(model_config)
    state = _strip(load_file(path), found[0])
    own = set(model.state_dict())
    state = {(k if k in own else k.removeprefix("text_model.")): v for k, v in state.items()}
    _load_strict(ctx, model, state, path)
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    return ClipParts(tokenizer, model.to(torch_dtype))


@node(
    "LoadTextEncoder",
    category="loaders",
    inputs=[
        String("source", description="a diffusers model folder (text_encoder + tokenizer; "
               "SDXL: both encoders), or a CLIP text encoder .safetensors in transformers' "
               "layout: a path, or a name in the models folders' text_encoders/"),
        _config_choice(TEXT_ENCODER_CONFIGS,
                       "architecture and tokenizer of a single-file text encoder"),
    ],
    outputs=[Output("clip", CLIP)],
    identity=identity_in(TEXT_ENCODER_FOLDERS),
    check=source_check(TEXT_ENCODER_FOLDERS),
)  # fmt: skip
def load_text_encoder(ctx, source: str, config: str = "auto"):
    """Load a CLIP tokenizer + text encoder on their own (an SDXL model's: both pairs)."""

    def from_file(path: str, torch_dtype: Any) -> ClipParts:
        return _single_file_clip(ctx, path, config, torch_dtype)

    def from_folder(folder: str, sub: str | None, torch_dtype: Any) -> ClipParts:
        from transformers import CLIPTextModel, CLIPTokenizer

        if is_sdxl_folder(folder):
            tok, te, tok_2, te_2 = load_sdxl_text_encoders(folder, torch_dtype)
            return ClipParts(tok, te, tok_2, te_2)
        te = CLIPTextModel.from_pretrained(folder, subfolder=sub, torch_dtype=torch_dtype,
                                           use_safetensors=True)  # fmt: skip
        tok = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer" if sub else None)
        return ClipParts(tok, te)

    component = _Component.find(ctx, source, config, "text_encoder")

    def load() -> ClipParts:
        return component.read("a text encoder", from_file, from_folder).placed(component.place)

    parts = component.managed(load, ClipParts.size)
    return ClipModel(parts.tokenizer, parts.text_encoder, component.key, component.device,
                     tokenizer_2=parts.tokenizer_2, text_encoder_2=parts.text_encoder_2)  # fmt: skip
