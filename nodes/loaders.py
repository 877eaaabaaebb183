"""Model loading nodes: LoadModel, LoadVAE, LoadTextEncoder.

Sources: `builtin:tiny-sd`; a diffusers folder; a single-file `.safetensors` checkpoint (read
offline with the configs-only folders shipped in nodes/configs/ as `config=`); a hub repo id
(online only: offline it fails with a message saying how to use a local file). Pickle-based
checkpoints (.ckpt/.pt/.bin) are refused: loading them can run arbitrary code.
Everything goes through the model manager, so the same weights load once per process.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentgraph.graph import CLIP, MODEL, SCHEDULER, VAE, Choice, Output, String, node, paths

from . import runtime
from .model_manager import manager, module_bytes
from .values import ClipModel, NodeInputError, SchedulerSpec, UNetModel, VAEModel, input_error

BUILTIN_TINY = "builtin:tiny-sd"
CONFIG_PRESETS = ("auto", "sd15", "sd2", "sd2-base", BUILTIN_TINY)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CONFIGS = Path(__file__).parent / "configs"


@dataclass
class Source:
    """Where weights come from. `identity` changes whenever the weights may have changed."""

    kind: str  # "builtin" | "folder" | "single_file" | "hub"
    location: str
    identity: str


def _stat_identity(path: Path) -> str:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    parts = [str(path.resolve())]
    for f in files:
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _candidates(text: str, models_dirs: list[Path]) -> list[Path]:
    p = Path(text).expanduser()
    if p.is_absolute():
        return [p]
    return [p] + [Path(d) / p for d in models_dirs]


def find_source(text: str, models_dirs: list[Path] | None = None) -> Source:
    """Classify a source string. Raises ValueError (without node context) when unusable."""
    text = text.strip()
    if text == BUILTIN_TINY:
        from .tiny_model import BUILD_VERSION

        return Source("builtin", text, f"{text}-v{BUILD_VERSION}")
    if text.startswith("builtin:"):
        raise ValueError(f"unknown built-in model {text!r}; the only one is {BUILTIN_TINY!r}")
    if text.lower().endswith(PICKLE_SUFFIXES):
        raise ValueError(
            f"{text!r} is a pickle-based checkpoint, which can run code when loaded; it is "
            "refused. Convert it to .safetensors (or use a diffusers folder)"
        )
    for p in _candidates(text, models_dirs or []):
        if p.is_dir():
            if not (p / "model_index.json").is_file() and not (p / "config.json").is_file():
                raise ValueError(f"{str(p)!r} is a folder but not a diffusers model folder "
                                 "(no model_index.json or config.json)")  # fmt: skip
            return Source("folder", str(p.resolve()), _stat_identity(p))
        if p.is_file():
            if p.suffix.lower() != ".safetensors":
                raise ValueError(f"{str(p)!r}: expected a .safetensors checkpoint or a folder")
            return Source("single_file", str(p.resolve()), _stat_identity(p))
    if HUB_ID.match(text) and not text.lower().endswith(".safetensors"):
        return Source("hub", text, f"hub:{text}")
    looked = ", ".join(str(p) for p in _candidates(text, models_dirs or []))
    raise ValueError(f"model file not found: {text!r} (looked at: {looked})")


def _identity(inputs: dict[str, Any]) -> str:
    try:
        return find_source(str(inputs.get("source", ""))).identity
    except ValueError as exc:
        return f"unresolved:{exc}"


def config_folder(preset: str) -> Path:
    """A configs-only model folder (no weights) for `from_single_file(config=...)`.

    The shipped JSON configs are copied into the cache dir with the tokenizer files written
    from the CLIP vocabulary, once (atomically).
    """
    if preset == BUILTIN_TINY:
        from .tiny_model import ensure_tiny_sd

        return ensure_tiny_sd()
    src = CONFIGS / preset
    if not (src / "model_index.json").is_file():
        raise ValueError(f"unknown config preset {preset!r}; expected one of {CONFIG_PRESETS}")
    dest = paths.cache_dir() / "configs" / f"{preset}-v1"
    if (dest / "model_index.json").is_file():
        return dest
    from .clip_vocab import write_tokenizer_files

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        write_tokenizer_files(tmp / "tokenizer")
        if (tmp / "tokenizer" / "tokenizer_config.json").is_file():
            # Keep the preset's own pad token (SD 2 pads with "!").
            shutil.copy(src / "tokenizer" / "tokenizer_config.json", tmp / "tokenizer")
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _checkpoint_keys(path: str) -> dict[str, list[int]]:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as fh:
        return {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}


def detect_preset(path: str) -> str:
    """Which shipped config fits a single-file checkpoint, from its tensor names and shapes."""
    shapes = _checkpoint_keys(path)
    tok = shapes.get("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight")
    if tok is not None:
        return BUILTIN_TINY if tok[1] == 32 else "sd15"
    if any(k.startswith("cond_stage_model.model.") for k in shapes):
        return "sd2"
    raise ValueError("not a Stable Diffusion 1.x/2.x checkpoint (no text encoder weights found)")


@dataclass(eq=False)
class Bundle:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict[str, Any]


def _apply_options(bundle: Bundle, options: dict[str, Any]) -> None:
    import torch

    if options.get("attention_slicing"):
        bundle.unet.set_attention_slice("auto")
    if options.get("sdpa") is False:
        from diffusers.models.attention_processor import AttnProcessor

        bundle.unet.set_attn_processor(AttnProcessor())
        bundle.vae.set_attn_processor(AttnProcessor())
    if options.get("channels_last"):
        bundle.unet.to(memory_format=torch.channels_last)
    if options.get("compile"):
        bundle.unet.compile()


def _load_bundle(ctx: Any, source: Source, config: str, device: str, dtype: str) -> Bundle:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    torch_dtype = runtime.torch_dtype(dtype)
    load_device = "cpu" if ctx.settings.options.get("cpu_offload") else device
    if source.kind in ("builtin", "folder", "hub"):
        if source.kind == "builtin":
            from .tiny_model import ensure_tiny_sd

            folder: str = str(ensure_tiny_sd())
        elif source.kind == "hub":
            folder = _download(ctx, source.location)
        else:
            folder = source.location
        kw = {"torch_dtype": torch_dtype}
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **kw)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", **kw)
        text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **kw)
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        from diffusers import DDIMScheduler

        sched_config = dict(DDIMScheduler.load_config(folder, subfolder="scheduler"))
    else:
        from diffusers import StableDiffusionPipeline

        preset = detect_preset(source.location) if config == "auto" else config
        cfg = str(config_folder(preset)) if preset in CONFIG_PRESETS else preset
        pipe = StableDiffusionPipeline.from_single_file(
            source.location, config=cfg, torch_dtype=torch_dtype, local_files_only=True,
            safety_checker=None, requires_safety_checker=False,
        )  # fmt: skip
        unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
        sched_config = dict(pipe.scheduler.config)
    for m in (unet, vae, text_encoder):
        m.to(load_device)
        m.eval()
        m.requires_grad_(False)
    return Bundle(unet, vae, text_encoder, tokenizer, sched_config)


def _download(ctx: Any, repo_id: str) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    hint = (
        f"hub id {repo_id!r} could not be fetched (this machine is offline or the hub is "
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
        raise input_error(ctx, "source", f"{hint} ({type(exc).__name__}: {exc})") from exc


def load_bundle(ctx: Any, source_text: str, config: str = "auto") -> tuple[Bundle, str]:
    """The shared Bundle for a source on this run's device/dtype, and its manager key."""
    try:
        source = find_source(source_text, ctx.settings.models_dirs)
    except ValueError as exc:
        raise input_error(ctx, "source", str(exc)) from None
    device = runtime.device_name(ctx.settings)
    dtype = runtime.dtype_name(ctx.settings, device)
    opts = ctx.settings.options
    mutating = sorted(k for k in ("attention_slicing", "sdpa", "channels_last", "compile",
                                  "cpu_offload") if k in opts)  # fmt: skip
    key = "|".join([source.identity, config, device, dtype] + [f"{k}={opts[k]}" for k in mutating])

    def load() -> Bundle:
        try:
            bundle = _load_bundle(ctx, source, config, device, dtype)
        except NodeInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors/diffusers raise many kinds
            raise input_error(
                ctx, "source", f"could not load {source_text!r}: {type(exc).__name__}: {exc}"
            ) from exc
        _apply_options(bundle, opts)
        return bundle

    def size(b: Bundle) -> int:
        return module_bytes(b.unet, b.vae, b.text_encoder)

    mem_device = "cpu" if opts.get("cpu_offload") else device
    return manager().get(key, load, device=mem_device, size=size), key


def _source_choices() -> list[str]:
    return [BUILTIN_TINY]


@node(
    "LoadModel",
    category="loaders",
    inputs=[
        String(
            "source",
            BUILTIN_TINY,
            description="builtin:tiny-sd, a diffusers folder, a "
            ".safetensors checkpoint, or a hub repo id (online only)",
        ),  # fmt: skip
        String(
            "config",
            "auto",
            description="for single-file checkpoints: auto, sd15, sd2, "
            "sd2-base, builtin:tiny-sd, or a diffusers folder holding the configs",
        ),  # fmt: skip
    ],
    outputs=[
        Output("unet", MODEL),
        Output("clip", CLIP),
        Output("vae", VAE),
        Output("scheduler", SCHEDULER, description="the model's own scheduler config"),
    ],
    identity=_identity,
)
def load_model(ctx, source: str, config: str = "auto"):
    """Load a Stable Diffusion model (once per process; shared by every node that uses it)."""
    bundle, key = load_bundle(ctx, source, config)
    device = runtime.device_name(ctx.settings)
    dtype = runtime.dtype_name(ctx.settings, device)
    return (
        UNetModel(bundle.unet, key, device, dtype),
        ClipModel(bundle.tokenizer, bundle.text_encoder, key, device),
        VAEModel(bundle.vae, key, device),
        SchedulerSpec(
            dict(bundle.scheduler_config), None, bundle.scheduler_config.get("_class_name", "")
        ),  # fmt: skip
    )


def _component_folder(ctx: Any, source_text: str, subfolder: str) -> tuple[str, str | None, str]:
    try:
        source = find_source(source_text, ctx.settings.models_dirs)
    except ValueError as exc:
        raise input_error(ctx, "source", str(exc)) from None
    if source.kind == "builtin":
        from .tiny_model import ensure_tiny_sd

        return str(ensure_tiny_sd()), subfolder, source.identity
    if source.kind == "hub":
        return _download(ctx, source.location), subfolder, source.identity
    if source.kind == "folder":
        sub = subfolder if (Path(source.location) / subfolder).is_dir() else None
        return source.location, sub, source.identity
    return source.location, None, source.identity


@node(
    "LoadVAE",
    category="loaders",
    inputs=[
        String("source", description="a diffusers model or VAE folder, or a VAE .safetensors"),
        Choice(
            "config",
            ["sd15", "sd2", "sd2-base", BUILTIN_TINY],
            "sd15",
            description="architecture of a single-file VAE",
        ),  # fmt: skip
    ],
    outputs=[Output("vae", VAE)],
    identity=_identity,
)
def load_vae(ctx, source: str, config: str = "sd15"):
    """Load a VAE on its own, to swap it into a model (e.g. a better-trained decoder)."""
    from diffusers import AutoencoderKL

    location, sub, identity = _component_folder(ctx, source, "vae")
    device = runtime.device_name(ctx.settings)
    dtype = runtime.dtype_name(ctx.settings, device)

    def load():
        kw = {"torch_dtype": runtime.torch_dtype(dtype)}
        try:
            if location.endswith(".safetensors"):
                vae = AutoencoderKL.from_single_file(
                    location, config=str(config_folder(config)), subfolder="vae",
                    local_files_only=True, **kw)  # fmt: skip
            else:
                vae = AutoencoderKL.from_pretrained(location, subfolder=sub, **kw)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise input_error(
                ctx, "source", f"could not load a VAE from {source!r}: {exc}"
            ) from exc
        return vae.to(device).eval().requires_grad_(False)

    key = f"vae|{identity}|{config}|{device}|{dtype}"
    vae = manager().get(key, load, device=device, size=module_bytes)
    return VAEModel(vae, key, device)


@node(
    "LoadTextEncoder",
    category="loaders",
    inputs=[String("source", description="a diffusers model folder (text_encoder + tokenizer)")],
    outputs=[Output("clip", CLIP)],
    identity=_identity,
)
def load_text_encoder(ctx, source: str):
    """Load a CLIP tokenizer + text encoder on their own."""
    from transformers import CLIPTextModel, CLIPTokenizer

    location, sub, identity = _component_folder(ctx, source, "text_encoder")
    if location.endswith(".safetensors"):
        raise input_error(ctx, "source", "expected a diffusers folder, not a single file")
    device = runtime.device_name(ctx.settings)
    dtype = runtime.dtype_name(ctx.settings, device)

    def load():
        try:
            te = CLIPTextModel.from_pretrained(location, subfolder=sub,
                                               torch_dtype=runtime.torch_dtype(dtype))  # fmt: skip
            tok = CLIPTokenizer.from_pretrained(location, subfolder="tokenizer" if sub else None)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise input_error(ctx, "source", f"could not load a text encoder: {exc}") from exc
        return tok, te.to(device).eval().requires_grad_(False)

    key = f"clip|{identity}|{device}|{dtype}"
    tok, te = manager().get(key, load, device=device, size=lambda v: module_bytes(v[1]))
    return ClipModel(tok, te, key, device)
