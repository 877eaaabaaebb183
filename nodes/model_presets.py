"""Model presets: which architecture a model is, so which configs describe it.

The built-in models' recipes (`RECIPES`: each one's version, where it is built, how); the config
presets a single-file checkpoint is read with (`CONFIG_PRESETS`: the SD 1.5/2.x/XL ones shipped
in nodes/configs/, a built-in model's written by its recipe) and their configs-only folders
(`config_folder`); and which preset a file is, from its tensor names and shapes (`detect_preset`;
a VAE's or text encoder's alone by its width). Apart from nodes/loaders.py, which finds the
weights and loads them: what a model is does not depend on how it is read, and ControlNet
loading asks it too (nodes/control_loading.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentgraph.graph import paths
from latentgraph.graph.problems import error_line, quoted

from . import tiny_inpaint, tiny_model, tiny_sd2, tiny_sdxl
from .models_dirs import BUILTIN_CHECKPOINTS, KINDS
from .sdxl_loading import sdxl_preset

BUILTIN_TINY, BUILTIN_SDXL, BUILTIN_SDXL_REFINER, BUILTIN_SD2_V, BUILTIN_INPAINT = BUILTINS = (
    BUILTIN_CHECKPOINTS
)


@dataclass(frozen=True)
class BuiltinRecipe:
    """How a built-in model is made: its recipe's `version` (part of its identity and of its
    build's name), where it is built (`path`, built or not), `build`, which builds it on
    first use and returns that folder, and `write_config`, which writes its configs without
    weights into a folder (its config preset's: the `config=` folder a single file of it is
    read with, `config_folder`); None for a model with no preset."""

    version: int
    path: Callable[[], Path]
    build: Callable[[], Path]
    write_config: Callable[[Path], None] | None


# every built-in model's recipe, by its name (`BUILTINS`): the one place that knows which
# module builds it (builtin:tiny-sd2-v has no config preset)
RECIPES: dict[str, BuiltinRecipe] = {
    BUILTIN_TINY: BuiltinRecipe(tiny_model.BUILD_VERSION, tiny_model.default_path,
                                tiny_model.ensure_tiny_sd, tiny_model.write_config_folder),
    BUILTIN_SDXL: BuiltinRecipe(tiny_sdxl.BUILD_VERSION, tiny_sdxl.default_path,
                                tiny_sdxl.ensure_tiny_sdxl, tiny_sdxl.write_config_folder),
    BUILTIN_SDXL_REFINER: BuiltinRecipe(
        tiny_sdxl.BUILD_VERSION, functools.partial(tiny_sdxl.default_path, refiner=True),
        tiny_sdxl.ensure_tiny_sdxl_refiner,
        functools.partial(tiny_sdxl.write_config_folder, refiner=True)),
    BUILTIN_SD2_V: BuiltinRecipe(tiny_sd2.BUILD_VERSION, tiny_sd2.default_path,
                                 tiny_sd2.ensure_tiny_sd2, None),
    BUILTIN_INPAINT: BuiltinRecipe(tiny_inpaint.BUILD_VERSION, tiny_inpaint.default_path,
                                   tiny_inpaint.ensure_tiny_inpaint,
                                   tiny_inpaint.write_config_folder),
}  # fmt: skip


def builtin_recipe(name: str) -> BuiltinRecipe:
    """The recipe of built-in model `name` (`RECIPES`); a ValueError naming the built-in
    models for any other name, never another model's recipe."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(_unknown_builtin(name)) from None


def builtin_preset(name: str) -> str:
    """The config preset describing built-in model `name`: its name without `builtin:`
    (`tiny-sd` for builtin:tiny-sd), the one spelling every config input lists, so LoadModel,
    LoadVAE and LoadTextEncoder take the same word; the model's own name is read as it too
    (`config_preset`)."""
    return name.removeprefix("builtin:")


# the built-in models' config presets, each with the recipe writing its configs
PRESET_RECIPES = {builtin_preset(name): recipe for name, recipe in RECIPES.items()
                  if recipe.write_config is not None}  # fmt: skip
TINY_PRESET, TINY_SDXL_PRESET, TINY_INPAINT_PRESET = (
    builtin_preset(name) for name in (BUILTIN_TINY, BUILTIN_SDXL, BUILTIN_INPAINT)
)
CONFIG_PRESETS = ("auto", "sd15", "sd2", "sd2-base", "sdxl", "sdxl-refiner", "sd15-inpaint",
                  "sd2-inpaint", *PRESET_RECIPES)  # fmt: skip
# the presets LoadVAE's and LoadTextEncoder's `config` inputs list (nodes/loaders.py)
VAE_CONFIGS = ("auto", "sd15", "sd2", "sd2-base", "sdxl", TINY_PRESET, TINY_SDXL_PRESET)
TEXT_ENCODER_CONFIGS = ("auto", "sd15", "sd2", "sd2-base", TINY_PRESET)


def config_preset(config: str) -> str:
    """The preset a `config` value names: a built-in model's name (`builtin:tiny-sd`) as its
    preset (`builtin_preset`), any other value as written."""
    if config in BUILTINS and builtin_preset(config) in CONFIG_PRESETS:
        return builtin_preset(config)
    return config


def builtin_version(name: str) -> int:
    """The recipe version of a built-in model (part of its identity)."""
    return builtin_recipe(name).version


def builtin_path(name: str) -> Path:
    """Where a built-in model's folder is built in the cache, built or not (its recipe version
    in its name: `graph.paths.built_model`)."""
    return builtin_recipe(name).path()


def builtin_folder(name: str) -> Path:
    """The folder of a built-in model, built on first use."""
    return builtin_recipe(name).build()


def _unknown_builtin(text: str) -> str:
    return f"unknown built-in model {quoted(text)}; the built-in ones are {', '.join(RECIPES)}"


CONFIGS = Path(__file__).parent / "configs"  # the shipped presets' configs, one folder each


def _shipped_digest(src: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        h.update(f.relative_to(src).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def config_folder(preset: str) -> Path:
    """A configs-only model folder (no weights) for `from_single_file(config=...)`.

    Shipped presets are copied from nodes/configs/ with the tokenizer files written from the
    CLIP vocabulary; a built-in model's is written by its recipe (`PRESET_RECIPES`). Built
    once into the cache dir (atomically), under a name that changes when the shipped files
    (or the recipe's version) change.
    """
    preset = config_preset(preset)
    recipe = PRESET_RECIPES.get(preset)
    if recipe is not None:
        return _build_config_folder(f"{preset}-v{recipe.version}", recipe.write_config)
    src = CONFIGS / preset
    if preset not in CONFIG_PRESETS or not (src / "model_index.json").is_file():
        raise ValueError(
            f"unknown config preset {quoted(preset)}; expected one of {CONFIG_PRESETS}"
        )

    def write(tmp: Path) -> None:
        from .clip_vocab import write_tokenizer_files

        shutil.copytree(src, tmp, dirs_exist_ok=True)
        for sub in ("tokenizer", "tokenizer_2"):  # SDXL has two; its refiner only the second
            if not (src / sub).is_dir():
                continue
            write_tokenizer_files(tmp / sub)
            own = src / sub / "tokenizer_config.json"
            if own.is_file():
                # Keep the preset's own special tokens (SD 2 pads with "!"), in both files
                # transformers reads them from.
                shutil.copy(own, tmp / sub)
                tokens = json.loads(own.read_text(encoding="utf-8"))
                special = {k: v for k, v in tokens.items() if k.endswith("_token")}
                (tmp / sub / "special_tokens_map.json").write_text(
                    json.dumps(special), encoding="utf-8"
                )

    return _build_config_folder(f"{preset}-{_shipped_digest(src)}", write)


def _build_config_folder(name: str, write: Any) -> Path:
    from .tiny_model import build_folder

    return build_folder(paths.cache_dir() / "configs" / name, write)


def checkpoint_shapes(path: str) -> dict[str, list[int]]:
    """Tensor names and shapes from a .safetensors header (no tensor data is read).

    Raises ValueError with a plain message for a file that is not valid safetensors
    (truncated, corrupt, or another format renamed).
    """
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as fh:
            return {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except OSError as exc:
        raise ValueError(f"could not load {quoted(str(path))}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(
            f"could not load {quoted(str(path))}: not a valid .safetensors file (truncated or "
            f"corrupt?): {error_line(exc)}"
        ) from None


_UNET_PROBE = "model.diffusion_model.input_blocks.0.0.weight"  # a full checkpoint's UNet
# (first UNet conv channels, cross-attention context dim) -> shipped config preset
_ARCHITECTURES = {(320, 768): "sd15", (320, 1024): "sd2", (32, 32): TINY_PRESET}
# a UNet taking 9 input channels (latents + mask + masked-image latents): the inpainting one
INPAINT_PRESETS = {"sd15": "sd15-inpaint", "sd2": "sd2-inpaint", TINY_PRESET: TINY_INPAINT_PRESET}
INPUT_CHANNELS = (4, 9)  # text-to-image, inpainting


def unet_preset(width: int, context: int | None) -> str | None:
    """The shipped config preset of a UNet (or a ControlNet copied from one) of this width
    (first convolution's channels) and cross-attention context size; None when unknown."""
    return _ARCHITECTURES.get((width, context))


def loader_name(kind: str, comfy: bool | None = None) -> str:
    """The node that loads a `kind` of file (a `models_dirs.KINDS` key with a loader), in the
    workflow's dialect: ComfyUI's node set (comfy True) or ours (False); both when the dialect
    is not known (None)."""
    ours, theirs = KINDS[kind].loader, KINDS[kind].comfy_loader
    if ours is None:
        raise ValueError(f"no node loads a {kind} file alone")
    if theirs is None or comfy is False:
        return ours
    return theirs if comfy else f"{ours}, or {theirs} in ComfyUI"


def _what_else(shapes: dict[str, list[int]], comfy: bool | None = None) -> str:
    """What a file that is no full checkpoint looks like, from its tensor names, and which
    loader reads it (named as `loader_name` names it)."""
    from .control_loading import ControlLoadError, kind_of

    if any("lora_" in k for k in shapes):
        return f"it looks like a LoRA (lora_* tensors): load it with {loader_name('loras', comfy)}"
    try:
        kind = kind_of(shapes, None, Path())
        return f"it looks like a {'ControlNet' if kind == 'controlnet' else 'T2I-Adapter'}: " \
               f"load it with {loader_name('controlnet', comfy)}"  # fmt: skip
    except ControlLoadError:
        pass
    if any(k.startswith(("text_model.", "cond_stage_model.", "text_encoder")) for k in shapes):
        return f"it looks like a text encoder: load it with {loader_name('text_encoders', comfy)}"
    if {"emb_params", "string_to_param", "clip_l", "clip_g"} & set(shapes):
        return ("it looks like a textual-inversion embedding: put it in the models folder's "
                "embeddings/ and write embedding:NAME in a prompt")  # fmt: skip
    return f"a VAE-only file goes in {loader_name('vae', comfy)}"


def detect_preset(shapes: dict[str, list[int]], comfy: bool | None = None) -> str:
    """Which shipped config fits a single-file checkpoint, from its tensor names and shapes:
    SDXL by its conditioner's tensors (nodes/sdxl_loading.py), else the UNet's width and its
    cross-attention context size (SD 1.x: 768, from CLIP ViT-L;
    SD 2.x: 1024, from OpenCLIP ViT-H; the tiny model: 32), and the UNet's input channels
    (9: an inpainting model). SD 2.x 768-v and 512-base have the same shapes: "sd2" here;
    `loaders.single_file_config` tells them apart by their weights. SD 2's inpainting model is the
    512-base one (epsilon). `comfy`: the workflow's dialect, for the loader a file that is no
    checkpoint is pointed to (`loader_name`)."""
    conv_in = shapes.get(_UNET_PROBE)
    if conv_in is None:
        raise ValueError(
            "not a full Stable Diffusion checkpoint: no UNet weights (model.diffusion_model.*)"
            f"; {_what_else(shapes, comfy)}"
        )
    channels = conv_in[1] if len(conv_in) == 4 else None
    if channels not in INPUT_CHANNELS:
        raise ValueError(
            f"the UNet takes {channels} input channels; supported: 4 (text-to-image) and 9 "
            "(inpainting)"
        )
    if any(k.startswith("conditioner.embedders.") for k in shapes):
        if channels != 4:
            raise ValueError("a single-file SDXL inpainting checkpoint has no shipped config; "
                             "use its diffusers folder (or set config to one)")  # fmt: skip
        return sdxl_preset(shapes, conv_in[0])
    context = sorted({shape[1] for k, shape in shapes.items()
                      if k.startswith("model.diffusion_model.") and k.endswith("attn2.to_k.weight")
                      and len(shape) == 2})  # fmt: skip
    found = (conv_in[0], context[0] if len(context) == 1 else None)
    preset = unet_preset(*found)
    if preset is not None and channels == 9:
        preset = INPAINT_PRESETS[preset]
    if preset is None:
        raise ValueError(
            f"unknown architecture (UNet width {found[0]}, cross-attention context "
            f"{context or 'none'}); known: SD 1.x (320, 768), SD 2.x (320, 1024), the tiny "
            "model (32, 32), each with 4 or 9 (inpainting) input channels. Set config to a "
            "diffusers folder holding this model's configs"
        )
    return preset


# width of the first layer -> preset whose configs describe the component
_VAE_WIDTHS = {128: "sd15", 32: TINY_PRESET}
_SDXL_VAE_WIDTHS = {128: "sdxl", 32: TINY_SDXL_PRESET}
SDXL_ARCHITECTURE = "stable-diffusion-xl"  # the SAI model spec's architecture ids for SDXL
_CLIP_WIDTHS = {768: "sd15", 1024: "sd2", 32: TINY_PRESET}


def _width_preset(width: int, widths: dict[int, str], what: str) -> str:
    """The preset of a component whose first layer is `width` wide (`widths`); a ValueError
    naming the known widths for any other."""
    preset = widths.get(width)
    if preset is None:
        known = ", ".join(f"{w} ({p})" for w, p in widths.items())
        raise ValueError(
            f"unknown {what} architecture (width {width}; known: {known}); set config to the "
            "preset or a diffusers folder that describes it"
        )
    return preset


def _says_sdxl(path: str) -> bool:
    """Whether the file's SAI model spec metadata (`modelspec.architecture`) names SDXL."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as fh:
        architecture = (fh.metadata() or {}).get("modelspec.architecture", "")
    return architecture.startswith(SDXL_ARCHITECTURE)


def vae_preset(path: str, shapes: dict[str, list[int]], width: int) -> str:
    """Which config describes a single file's VAE (`config` auto), and so its latent scaling
    factor (SDXL's 0.13025, SD's 0.18215): a full checkpoint's own architecture
    (`detect_preset`); a VAE alone by its model spec metadata, else its width (SD and SDXL VAEs
    have the same shapes: SD's is taken; `config` sdxl says otherwise). A ValueError for a
    width no preset has."""
    if _UNET_PROBE in shapes:
        try:
            return detect_preset(shapes)
        except ValueError:
            pass  # an architecture we cannot run (inpainting...): its VAE by its width
    if width in _SDXL_VAE_WIDTHS and _says_sdxl(path):
        return _SDXL_VAE_WIDTHS[width]
    return _width_preset(width, _VAE_WIDTHS, "VAE")


def text_encoder_preset(width: int) -> str:
    """Which config (and tokenizer) describes a single file's CLIP text encoder of this width
    (`config` auto); a ValueError for a width no preset has."""
    return _width_preset(width, _CLIP_WIDTHS, "text encoder")
