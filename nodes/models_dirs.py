"""Models folders laid out like ComfyUI's, so users reuse the weights they already have.

A models root holds one sub-folder per kind (checkpoints/, vae/, loras/, embeddings/, ...).
Roots come from `--models-dir` / `--extra-models-dir` (the run's `Settings.models_dirs`, which
node code reads from its Context, dropdowns and check hooks from the settings they are given),
then `$LATENTGRAPH_MODELS_DIRS` (os.pathsep-separated), then `<data dir>/models`. Dropdowns list the files found; `resolve` turns a listed name (or, for
loaders that take them, a diffusers folder's name) back into a path, reads a path that leads
into the folder as its name there, and refuses anything else (`..`, files outside the roots). Only
safetensors files are listed (`graph.paths.weight_files`, the walk the server's model routes
use too; ComfyUI's `.sft` as well, read as safetensors): pickled weights are never loaded.

The built-in tiny model is always first in the checkpoint list, so the classic graph runs on a
fresh install with no weights downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from latentgraph.graph import Choice, Input, Settings
from latentgraph.graph.paths import (
    WEIGHT_SUFFIXES,
    KindFolder,
    listed_file,
    listed_spelling,
    models_folder_dirs,
    models_roots,
    user_path,
    weight_files,
)
from latentgraph.graph.problems import did_you_mean, quoted

from .runtime import model_identity

BUILTIN_CHECKPOINT = "builtin:tiny-sd"
# every built-in model, offered first in the checkpoint dropdown (their recipes: nodes/model_presets.py)
BUILTIN_CHECKPOINTS = (BUILTIN_CHECKPOINT, "builtin:tiny-sdxl", "builtin:tiny-sdxl-refiner",
                       "builtin:tiny-sd2-v", "builtin:tiny-sd-inpaint")  # fmt: skip


@dataclass(frozen=True)
class ModelKind:
    """One kind of model file, declared once so its facts cannot drift apart."""

    folders: tuple[str, ...]  # sub-folder names searched under each root (ComfyUI's, aliases)
    # what messages call its models: the words users know, not the folder's name ("LoRA 'x'
    # not found", not "loras model 'x'"); where it looked is said beside it
    words: str
    # the node a file of it given to the wrong loader is pointed to (`model_presets.loader_name`):
    # ours, and ComfyUI's; None where there is none
    loader: str | None = None
    comfy_loader: str | None = None


# folder kind -> its declaration: the kinds some node reads (the loaders' dropdowns and folders,
# LoadLoRA, LoadControlNet, `embedding:NAME`), which GET /models lists. ComfyUI's others
# (diffusion_models/unet, clip_vision, hypernetworks, configs, vae_approx, gligen, ...) hold
# nothing a node here reads: an extra_model_paths.yaml naming them is told they are ignored,
# not warned about each run.
KINDS: dict[str, ModelKind] = {
    "checkpoints": ModelKind(("checkpoints", "Stable-diffusion"), "checkpoint"),
    "vae": ModelKind(("vae", "VAE"), "VAE", "LoadVAE", "VAELoader"),
    "loras": ModelKind(("loras", "Lora"), "LoRA", "LoadLoRA", "LoraLoader"),
    "embeddings": ModelKind(("embeddings",), "embedding"),
    "text_encoders": ModelKind(("text_encoders", "clip"), "text encoder", "LoadTextEncoder"),
    "controlnet": ModelKind(("controlnet", "t2i_adapter", "ControlNet"),  # ControlNet/: A1111's
                            "ControlNet or T2I-Adapter", "LoadControlNet", "ControlNetLoader"),
    "upscale_models": ModelKind(("upscale_models",), "upscale model"),
    "diffusers": ModelKind(("diffusers",), "diffusers model"),
}  # fmt: skip
# folder kind -> sub-folder names searched under each root (`KINDS`' folders), as the server's
# model routes take them
FOLDERS: dict[str, tuple[str, ...]] = {kind: k.folders for kind, k in KINDS.items()}
# every sub-folder name of a kind: what a models root holds, and a kind an
# extra_model_paths.yaml may name
KIND_NAMES = tuple(name for names in FOLDERS.values() for name in names)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pt2")


def is_pickled(name: str) -> bool:
    """True for a weights file name whose format is a pickle (can run code when loaded)."""
    return PurePosixPath(model_name(name.strip())).suffix.lower() in PICKLE_SUFFIXES


def kind_of(name: str) -> str:
    """The kind (a `KINDS` key) a sub-folder name of `KIND_NAMES` is one of (`clip`:
    text_encoders)."""
    return next(kind for kind, names in FOLDERS.items() if name in names)


def model_name(value: Any) -> Any:
    """A model name as the dropdowns list it: a `\\` read as `/`, since a workflow saved on
    Windows names `SD1.5\\foo.safetensors` (ComfyUI there lists it so) and a backslash is never
    part of a model file name meant here. Anything but text is returned as it is."""
    return value.replace("\\", "/") if isinstance(value, str) else value


def model_choice(name: str, folder: str, choices: Callable[[Settings], Sequence[str]], *,
                 description: str = "") -> Input:  # fmt: skip
    """A dropdown of the models folders' `folder` files (every ComfyUI loader's model name):
    a listed name written with backslashes (`model_name`) or in another Unicode form
    (`listed_spelling`: `é` typed, decomposed on disk) is accepted, and keyed as the listed
    one, which `resolve` reads too; a name not listed is refused naming where the choices come
    from (`folder_hint`). The server's /models/<folder> lists what it lists (`models_folder`)."""

    def listed(value: str, settings: Settings) -> str | None:
        return listed_spelling(model_name(value), choices(settings))

    def key(value: Any, settings: Settings) -> Any:
        if isinstance(value, str) and not value.isascii():  # no listing for a plain name
            return listed(value, settings) or model_name(value)
        return model_name(value)

    return Choice(name, choices, hint=folder_hint(folder), description=description,
                  also_accepts=lambda value, settings: listed(value, settings) is not None,
                  canonical=key, models_folder=folder)  # fmt: skip


class ModelNotFound(ValueError):
    """A model name that is not a file listed under the configured models folders."""


class NotListed(ModelNotFound):
    """`resolve`'s plain "not found": a name no listed file (nor, where taken, model folder)
    of its folder has, and no path either; a caller trying several names for one
    (`embedding:NAME`: NAME.safetensors, then NAME.sft) says it once for all of them."""


def folder_paths(folder: str, dirs: Sequence[Path | str] | None = None) -> list[Path]:
    """Every existing directory searched for `folder` (for /experiment/models)."""
    if folder not in FOLDERS:
        raise ModelNotFound(f"unknown models folder {folder!r}; known: {', '.join(FOLDERS)}")
    return models_folder_dirs(FOLDERS[folder], dirs)


def list_files(folder: str, dirs: Sequence[Path | str] | None = None) -> list[str]:
    """Names of the weight files of one kind, as a dropdown shows them (sorted, deduplicated)."""
    names: set[str] = set()
    for base in folder_paths(folder, dirs):
        names.update(weight_files(base))
    return sorted(names, key=str.lower)


def folder_hint(folder: str) -> Callable[[Any, Settings], str]:
    """Where a dropdown of `folder`'s files finds them, for the run's settings: named when a
    value is not listed (`Input.choices_hint`), since a file the user has is most often in no
    models folder yet. The folders searched are named as a not-found error names them
    (`where_looked`), and a name that is a link to a missing file says so (`broken_link`); a
    pickled file that is there is refused as such (`pickle_refusal`), as LoadLoRA and
    `embedding:NAME` refuse one."""

    def hint(value: Any, settings: Settings) -> str:
        if isinstance(value, str) and pickled_file(folder, value, settings.models_dirs):
            return pickle_refusal(value)
        broken = broken_link(folder, value, settings.models_dirs) if isinstance(value, str) else ""
        return (f"{broken}the choices are the .safetensors files in {folder}/ of the models "
                f"folders; {where_looked((folder,), settings.models_dirs)}; pickled files (.ckpt, "
                ".pt, .pth, .bin) are never listed, for safety: convert them to .safetensors")  # fmt: skip

    return hint


def pickled_file(folder: str, name: str, dirs: Sequence[Path | str] | None) -> Path | None:
    """The file a pickled `name` (`is_pickled`) names in a `folder` directory, else None: a
    dropdown refusing a name it does not list says that is why."""
    if not is_pickled(name):
        return None
    try:
        posix = safe_name(name)
    except ModelNotFound:
        return None
    for base in folder_paths(folder, dirs):
        if base.joinpath(*posix.parts).is_file():
            return base.joinpath(*posix.parts)
    return None


def broken_link(folder: str, name: str, dirs: Sequence[Path | str] | None) -> str:
    """\"`name` (path) is a link to a missing file, TARGET; \" when `name` is one in a
    `folder` directory (it is not listed: it could not be loaded), else \"\"."""
    try:
        posix = safe_name(name)
    except ModelNotFound:
        return ""
    for base in folder_paths(folder, dirs):
        candidate = base.joinpath(*posix.parts)
        if candidate.is_symlink() and not candidate.exists():
            return (f"{quoted(name)} ({candidate}) is a link to a missing file, "
                    f"{os.readlink(candidate)}; ")  # fmt: skip
    return ""


def safe_name(name: str) -> PurePosixPath:
    """`name` as a POSIX name inside a models folder (`\\` read as `/`); `ModelNotFound` for a
    path (absolute, a drive, `..`) or no name at all."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ModelNotFound(f"bad model name {quoted(name)}")
    posix = PurePosixPath(model_name(name))
    if posix.is_absolute() or ".." in posix.parts or (len(name) > 1 and name[1] == ":"):
        raise ModelNotFound(
            f"model name {quoted(name)} must be a name inside a models folder, not a path"
        )
    return posix


def pickle_refusal(name: str) -> str:
    """Why a pickled weights file (`is_pickled`) is refused: by LoadLoRA, LoadControlNet,
    `embedding:NAME`, `resolve` and a model dropdown naming one in its folder (`folder_hint`)."""
    return (f"{quoted(name)} is a pickle-based file, which can run code when loaded; it is "
            "refused: convert it to .safetensors (or use its .safetensors version)")  # fmt: skip


def weights_path(folder: str, name: str, dirs: Sequence[Path | str] | None = None, *,
                 folders: bool = False) -> Path:  # fmt: skip
    """The weights a LoRA or ControlNet `name` gives (LoadLoRA, LoadControlNet): a path to
    them (`absolute_source`), else a name in the models folders' `folder`/ (`resolve`; with
    `folders`, diffusers model folders too). Raises `ModelNotFound`: what is wrong with the
    path, or where the name was looked for, adding that a path works as well."""
    path = absolute_source(name, folders=folders)
    if path is not None:
        return path
    try:
        return resolve(folder, name, dirs, folders=folders)
    except ModelNotFound as exc:
        what = "a .safetensors file" + (" or a diffusers folder" if folders else "")
        raise ModelNotFound(f"{exc}; or give a path to {what} (absolute, or from the working "
                            "directory)") from None  # fmt: skip


def absolute_source(name: str, *, folders: bool = False) -> Path | None:
    """A path given instead of a name inside a models folder (LoadLoRA, LoadControlNet): the
    .safetensors (or .sft) file there (with `folders`, or the diffusers model folder,
    `is_model_folder`), as an absolute path. A relative path is read from the working
    directory, as LoadModel's are, and is taken as a path when something is there or when it
    can be no name (`..`); otherwise it stays a name for `resolve` (so does a folder that is no
    model folder). None when `name` is no path. Raises `ModelNotFound` saying what is wrong
    with the path."""
    path = typed_path(name)
    if not path.is_absolute():
        try:
            there = bool(name.strip()) and path.exists()
        except (OSError, ValueError):  # NUL, a name too long: no path (resolve says why)
            return None
        if not there and ".." not in PurePosixPath(name.replace("\\", "/")).parts:
            return None
        if there and path.is_dir() and not is_model_folder(path):
            return None
        path = path.absolute()
    if path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES:
        return path
    if folders and is_model_folder(path):
        return path
    expected = "a .safetensors file" + (" or a diffusers model folder" if folders else "")
    problem = f"is not {expected}" if path.exists() else f"does not exist (expected {expected})"
    raise ModelNotFound(f"{path} {problem}")


def typed_path(name: str) -> Path:
    """A model name read as a path (`graph.paths.user_path`, `~` expanded); a `~user` of no
    user here is a `ModelNotFound` saying so, which the loaders report as the input's error."""
    try:
        return user_path(name, None)
    except ValueError as exc:
        raise ModelNotFound(str(exc)) from None


def is_model_folder(path: Path) -> bool:
    """A diffusers model folder: one holding its config.json (a single model: ControlNet,
    VAE, ...) or model_index.json (a whole pipeline)."""
    return path.is_dir() and any((path / f).is_file() for f in ("config.json", "model_index.json"))


def _name_inside(name: str, bases: Sequence[Path]) -> str | None:
    """The name an existing path (relative to the current directory, or absolute) has inside
    one of `bases`, so `models/loras/x.safetensors` reads as `x.safetensors`; None for a
    name that is no such path."""
    try:
        path = user_path(name, None)
        if not name or not path.exists():
            return None
    except (OSError, ValueError):  # a `~user` of no user is no such path either
        return None
    for base in bases:
        for inner, outer in ((path.absolute(), base.absolute()), (path.resolve(), base.resolve())):
            if inner.is_relative_to(outer) and inner != outer:
                return inner.relative_to(outer).as_posix()
    return None


def resolve(folder: str, name: str, dirs: Sequence[Path | str] | None = None, *,
            folders: bool = False) -> Path:  # fmt: skip
    """The file behind a listed model name, or with `folders` a diffusers model folder
    (`is_model_folder`) named by its path inside the folder (a trailing / is allowed). A path
    to one (from the current directory, or absolute) that leads inside the folder is read as
    its name there. Raises `ModelNotFound` naming where it looked."""
    bases = folder_paths(folder, dirs)
    posix = safe_name(_name_inside(name, bases) or name)
    if is_pickled(name):
        raise ModelNotFound(pickle_refusal(name))
    hidden = any(part.startswith(".") for part in posix.parts)
    for base in bases:
        candidate = base.joinpath(*posix.parts)
        listed = listed_file(base, posix.as_posix())  # by its listed spelling
        if listed is not None:
            return listed
        if folders and not hidden and is_model_folder(candidate):
            return candidate
    looked = where_looked((folder,), dirs)
    kind = KINDS[folder].words
    broken = broken_link(folder, name, dirs)
    if broken:
        raise ModelNotFound(f"{kind} {broken.removesuffix('; ')}")
    if typed_path(name).exists():  # a path, to somewhere else
        raise ModelNotFound(f"{kind} {quoted(name)} is not inside the models folders' "
                            f"{folder}/ ({looked}): a name inside one of them is expected")  # fmt: skip
    hint = listed_hint(posix.as_posix(), list_files(folder, dirs))
    missing = f"{kind} {quoted(name)} not found{hint} ({looked})"
    if len(posix.parts) > 1:  # maybe meant as a path from the working directory
        missing += f", and as a path, {Path(name).absolute()} does not exist"
    raise NotListed(missing)


def listed_hint(name: str, listed: list[str]) -> str:
    """The hint for a model name not among a folder's `listed` files: the file that is the
    name and an extension (`tiny-lora` typed, `tiny-lora.safetensors` listed: a name written
    by hand leaves the extension out, the dropdowns show it), else a "did you mean"."""
    named = [c for c in listed if PurePosixPath(c).with_suffix("").as_posix() == name]
    if named and name not in listed:
        return f"; did you mean {' or '.join(quoted(c) for c in named)}, with its extension?"
    return did_you_mean(name, listed)


# how a ComfyUI install's folders are read where they are: its extra_model_paths.yaml
MODEL_PATHS_FILE = "or --extra-model-paths FILE to read ComfyUI's extra_model_paths.yaml"
OTHER_MODELS_FOLDER = "pass --models-dir DIR to look in another models folder"
# with a models folder given, a second --models-dir is refused: another is added as an extra
EXTRA_MODELS_FOLDER = "pass --extra-models-dir DIR to look in another models folder too"


def where_looked(folders: Sequence[str], dirs: Sequence[Path | str] | None) -> str:
    """Where a name of the models `folders` (kinds) was looked for ("looked in DIR, ...", or
    that no models folder has such a folder, naming the models folders), and how to look
    elsewhere: a not-found message says both, since the default models folder is in the user
    data folder, not ./models (`graph.paths.models_roots`). With a models root given (in
    `dirs`), the flag that adds one more (a second --models-dir is refused); with the kind's
    folders from an extra_model_paths.yaml (the `KindFolder`s), the file's entries that gave
    the ones looked in (`comfyui.embeddings`), where another is added; --extra-model-paths
    only when no such file was given."""
    bases = [base for folder in folders for base in folder_paths(folder, dirs)]
    kinds = " or ".join(f"{folder}/" for folder in folders)
    where = f"looked in {', '.join(str(b) for b in bases)}" if bases else (
        f"no models folder has a {kinds} folder (models folders: "
        f"{', '.join(str(r) for r in models_roots(dirs))})")  # fmt: skip
    files = [d for d in dirs or () if isinstance(d, KindFolder)]
    roots_given = len(files) < len(dirs or ())
    how = EXTRA_MODELS_FOLDER if roots_given else OTHER_MODELS_FOLDER
    entries = dict.fromkeys(d.entry for d in files if d.entry and d.path.is_dir()
                            and any(d.kind in FOLDERS[f] for f in folders))  # fmt: skip
    if entries:
        how += f", or add one to {', '.join(entries)} in the --extra-model-paths file"
    elif not files:
        how += f" ({MODEL_PATHS_FILE})"
    return f"{where}; {how}"


def root_warning(root: Path) -> str | None:
    """Why `root`, given as a models root, may be the wrong folder: it is no folder (a typo in
    `$LATENTGRAPH_MODELS_DIRS`, whose folders no flag checks), or it holds none of the kind
    folders (`KIND_NAMES`), so every model named is "not one of" its choices. Says what
    was looked for and, when it is clear, the folder meant: `<root>/models` (an install's
    root given) or the parent (a kind folder given). None when a kind folder is there. Not an
    error: a new, empty root is legitimate."""
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        return f"{root} {what}: no models are found there"
    if any((root / name).is_dir() for name in KIND_NAMES):
        return None
    message = (f"{root} has none of the models folders' kind folders ("
               f"{', '.join(f'{n}/' for n in list(FOLDERS)[:4])}, ...)")  # fmt: skip
    if any((root / "models" / name).is_dir() for name in KIND_NAMES):
        return f"{message}; did you mean {root / 'models'}?"
    kind = next((k for k, kind_names in FOLDERS.items() if root.name in kind_names), None)
    if kind is not None:
        return (f"{message}: it is a {kind} folder itself; give the models root holding it, "
                f"{root.parent}")  # fmt: skip
    return f"{message}: models in it are found once they are in such folders"


def file_identity(path: Path) -> str:
    """Resolved path, size and mtime of a file, or of every file under a folder (a diffusers
    model's, at any depth): changes whenever one is replaced, added or removed. The one file
    identity for cache keys and the model manager's keys."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return "|".join([f"{path.resolve()}/", *map(file_identity, files)])
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


MISSING = "missing:"  # how an identity hook's answer starts when the name does not resolve


def missing_identity(why: object) -> str:
    """An identity hook's answer for a name that does not resolve, saying `why`: what
    `missing_problems` reads back."""
    return f"{MISSING}{why}"


def missing_problems(input_name: str, identity: str) -> list[tuple[str | None, str]]:
    """A check hook's problems for a model input from its identity (`missing:<why>` when
    the name does not resolve): validation reports them before anything runs."""
    return [(input_name, identity.removeprefix(MISSING))] if identity.startswith(MISSING) else []


def identity_hook(folder: str, input_name: str) -> Callable[[dict[str, Any], Settings], str]:
    """The identity hook of a models-folder dropdown: the file's `file_identity` (so
    replacing the file invalidates what was built from it), and the run's device, dtype and
    model-changing options (`runtime.model_identity`)."""

    def identity(inputs: dict[str, Any], settings: Settings) -> str:
        name = str(inputs.get(input_name, ""))
        try:
            path = resolve(folder, name, settings.models_dirs)
        except ModelNotFound:
            return f"{name}|{model_identity(settings)}"
        return f"{file_identity(path)}|{model_identity(settings)}"

    return identity


def checkpoint_names(settings: Settings) -> list[str]:
    """The checkpoint dropdown: the built-in tiny models, then every checkpoint file found."""
    return [*BUILTIN_CHECKPOINTS, *list_files("checkpoints", settings.models_dirs)]


def vae_names(settings: Settings) -> list[str]:
    return list_files("vae", settings.models_dirs)


def experiment_models(dirs: Sequence[Path | str] | None = None) -> list[dict]:
    """The /experiment/models answer: each folder kind with the directories searched."""
    return [
        {"name": folder, "folders": [str(p) for p in folder_paths(folder, dirs)]}
        for folder in FOLDERS
    ]


def experiment_folder(folder: str, dirs: Sequence[Path | str] | None = None) -> list[dict]:
    """The /experiment/models/{folder} answer."""
    bases = folder_paths(folder, dirs)
    out = []
    for index, base in enumerate(bases):
        out += [{"name": n, "pathIndex": index} for n in weight_files(base)]
    if folder == "checkpoints":
        out[:0] = [{"name": name, "pathIndex": 0} for name in BUILTIN_CHECKPOINTS]
    return out
