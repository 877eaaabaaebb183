"""Where latentgraph keeps its files, per user, overridable by environment variables.

LATENTGRAPH_CACHE_DIR   output cache and the built-in tiny models (default: user cache dir)
LATENTGRAPH_DATA_DIR    server database, user settings and saved workflows (default: user data dir)
LATENTGRAPH_MODELS_DIRS more models roots, searched after the ones given (os.pathsep between)

Their values are read as a user writes a path (`user_path`: `~` expanded, since systemd's
`Environment=` and `docker -e` pass it as typed; the nodes read a path typed in an input so
too); a relative one is from the working folder, as a folder flag's is. A blank value is no
value: the default.

The models folders' layout is read here, for the nodes (nodes/models_dirs.py: dropdowns and
`resolve`) and the server's model routes (server/api_info.py) alike: the roots, a folder
kind's directories under them and the weight files in one.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

# The files a models folder lists: the safetensors family (ComfyUI's `.sft` too, as Flux files
# ship), the only weights the loaders load, every one read with safetensors whatever its name.
# Pickles (.ckpt, .pt, .bin, ...) could run code when loaded and are never listed.
WEIGHT_SUFFIXES = (".safetensors", ".sft")
_MAX_DEPTH = 8  # sub-folders deeper than this are not searched
# folders a models folder's walk reaches again through links (an alias, `SD1.5 -> sd15`), on
# top of each folder once: links to links could otherwise multiply the paths to walk
_MAX_REVISITS = 1000
# The folders a file name's annotation may name, as ComfyUI's editor and clients write them
# ("clipspace/mask-1.png [input]", "ComfyUI_00001_.png [output]"): `split_annotation`.
FILE_FOLDERS = ("input", "output", "temp")
_ANNOTATION = re.compile(r"(.+) \[([A-Za-z_]+)\]", re.DOTALL)
_log = logging.getLogger("latentgraph.paths")
# (folder, its names that are not UTF-8) already warned about: each said once per process
_warned_undecodable: set[tuple[str, tuple[str, ...]]] = set()
# models folders whose walk stopped at `_MAX_REVISITS`: each said once per process
_warned_revisits: set[str] = set()


CACHE_DIR_ENV = "LATENTGRAPH_CACHE_DIR"
DATA_DIR_ENV = "LATENTGRAPH_DATA_DIR"


def user_path(text: str, variable: str | None) -> Path:
    """A path as a user writes it, `~` (and `~user`) expanded: what a shell would have done
    for a value it never saw (an environment variable set by systemd or `docker -e`, a model
    or config path typed in a node input). The one rule for both. A `~user` of no user here
    (or a `~` with no home folder known) is the user's error, a `ValueError` (Path's bare
    RuntimeError read as our bug) naming the text by what the caller says it is: the
    environment variable `variable` (`$LATENTGRAPH_CACHE_DIR '~x/y': ...`), or, with None, a
    node input's value, quoted alone, since the node error it becomes names the node and
    input (`node 'model' input 'source': '~x/y': ...`)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        from .problems import quoted

        head = text.split("/")[0].split(os.sep)[0]
        why = (f"no user {quoted(head[1:])} on this machine (for {head})" if head != "~"
               else "no home folder is known for ~ ($HOME is not set)")  # fmt: skip
        if variable is None:
            raise ValueError(f"{quoted(text)}: {why}; give the full path") from None
        raise ValueError(f"${variable} {quoted(text)}: {why}; give the folder's full "
                         "path") from None  # fmt: skip


def env_folder(variable: str) -> Path | None:
    """The folder environment variable `variable` names (`user_path`), or None when it is
    unset or blank (`LATENTGRAPH_CACHE_DIR=` or `" "`: the default, not a folder named " ")."""
    value = os.environ.get(variable, "")
    return user_path(value, variable) if value.strip() else None


def cache_dir() -> Path:
    """The cache folder: `$LATENTGRAPH_CACHE_DIR`, else the user cache folder
    (`~/.cache/latentgraph` on Linux, `$XDG_CACHE_HOME/latentgraph`)."""
    return env_folder(CACHE_DIR_ENV) or Path(platformdirs.user_cache_dir("latentgraph"))


# A built-in model's build in `built_models_dir`: its name, its recipe's version, and ".safetensors"
# for a single file (`tiny-sd-v2`, `tiny-lora-v1.safetensors`).
_BUILT_MODEL = re.compile(
    r"(?P<stem>[a-z0-9-]+)-v(?P<version>[1-9][0-9]{0,5})(?P<suffix>\.safetensors)?"
)


def built_models_dir() -> Path:
    """Where the built-in models are built on first use: `models` in the cache folder."""
    return cache_dir() / "models"


def built_model(stem: str, version: int, suffix: str = "") -> Path:
    """The path a built-in model's build has in `built_models_dir`: `STEM-vVERSION` (a folder),
    `STEM-vVERSION.safetensors` (a file, `suffix`). Every builder names its build so, and the
    version is its recipe's, so a changed recipe builds anew beside the old build, which
    `built_model_parts` tells apart from any other file there."""
    return built_models_dir() / f"{stem}-v{version}{suffix}"


def builtin_identity(name: str, version: int) -> str:
    """A built-in model's identity in cache keys (`builtin:tiny-lora-v1`): its name and its
    recipe's version, which names its build too (`built_model`), so a changed recipe keys
    anew. Cheap: nothing is built to know it. The one spelling every built-in uses (the
    checkpoints, LoRAs, control models, the upscaler)."""
    return f"{name}-v{version}"


def built_model_parts(name: str) -> tuple[str, int, str] | None:
    """(stem, version, suffix) of a name `built_model` gives, None for any other name: how
    `latentgraph cache` finds the builds other versions left (nodes/builtin_builds.py)."""
    found = _BUILT_MODEL.fullmatch(name)
    if found is None:
        return None
    return found["stem"], int(found["version"]), found["suffix"] or ""


def data_dir() -> Path:
    """The user data folder: `$LATENTGRAPH_DATA_DIR`, else the platform's
    (`~/.local/share/latentgraph` on Linux, `$XDG_DATA_HOME/latentgraph`)."""
    return env_folder(DATA_DIR_ENV) or Path(platformdirs.user_data_dir("latentgraph"))


def split_annotation(value: str) -> tuple[str, str | None]:
    """A file name and the folder its trailing annotation names, as ComfyUI's
    `folder_paths.annotated_filepath` reads one: "x.png [output]" is ("x.png", "output"), the
    folder standing in for any `type` given beside the name; (value, None) for a name with
    none. Raises ValueError naming an annotation that names no such folder ("x.png [models]",
    "x.png [Output]"): one of `FILE_FOLDERS` is expected. Whether the name stays inside its
    folder is the caller's to check."""
    found = _ANNOTATION.fullmatch(value)
    if found is None:
        return value, None
    name, folder = found.groups()
    if folder not in FILE_FOLDERS:
        expected = ", ".join(f"[{f}]" for f in FILE_FOLDERS)
        raise ValueError(f"{value!r} ends in the folder annotation [{folder}], which names no "
                         f"folder; expected one of {expected}")  # fmt: skip
    return name, folder


@dataclass(frozen=True)
class KindFolder:
    """A folder holding one kind of model itself, not a models root with kind sub-folders:
    a ComfyUI `extra_model_paths.yaml` entry (`loras: /data/my-loras`). `kind` is one of the
    sub-folder names of that kind (`checkpoints`, `clip`, ...); it may stand in a run's
    `Settings.models_dirs` among the roots, searched in its place in their order. `entry`
    names the file's entry that gave it (`a111.checkpoints`: section and kind, as the CLI's
    warnings name it), the name a web client is shown it by (`server.messages.user_folders`),
    since its path is the server's; it plays no part in which folder it is (equality)."""

    kind: str
    path: Path
    entry: str = field(default="", compare=False)


MODELS_DIRS_ENV = "LATENTGRAPH_MODELS_DIRS"
ModelsDir = Path | KindFolder  # one entry of `Settings.models_dirs`


def resolved_models_dir(entry: Path | str | KindFolder) -> ModelsDir:
    """A models root or kind folder as an absolute, resolved path (a Ray actor's working
    folder is not the server's), its kind kept."""
    if isinstance(entry, KindFolder):
        return KindFolder(entry.kind, entry.path.resolve(), entry.entry)
    return Path(entry).resolve()


def _models_dirs(dirs: Sequence[Path | str | KindFolder] | None) -> list[ModelsDir]:
    """Every models root and kind folder in priority order: the given ones (`--models-dir`,
    `--extra-models-dir`, `--extra-model-paths`), the environment's roots, then
    `<data dir>/models`."""
    out: list[ModelsDir] = [d if isinstance(d, KindFolder) else Path(d) for d in dirs or ()]
    out += env_models_roots()
    out.append(data_dir() / "models")
    return list(dict.fromkeys(out))


def env_models_roots() -> list[Path]:
    """The models roots `$LATENTGRAPH_MODELS_DIRS` names (os.pathsep-separated; each a
    `user_path`, blank ones skipped)."""
    env = os.environ.get(MODELS_DIRS_ENV, "")
    return [user_path(p, MODELS_DIRS_ENV) for p in env.split(os.pathsep) if p.strip()]


def models_roots(dirs: Sequence[Path | str | KindFolder] | None = None) -> list[Path]:
    """Models roots in priority order: the given dirs (`--models-dir`, `--extra-models-dir`),
    the environment's, then `<data dir>/models`. The nodes' dropdowns and the server's model
    routes both search these (and the kind folders given among them, `models_folder_dirs`)."""
    return [d for d in _models_dirs(dirs) if isinstance(d, Path)]


def models_folder_dirs(
    names: Sequence[str], dirs: Sequence[Path | str | KindFolder] | None = None
) -> list[Path]:
    """The existing directories of one models folder kind (`names`: its sub-folder names, e.g.
    checkpoints and Stable-diffusion) under every models root, and the kind folders given
    for it (`KindFolder`), in their order."""
    found: list[Path] = []
    for entry in _models_dirs(dirs):
        if isinstance(entry, KindFolder):
            found += [entry.path] if entry.kind in names and entry.path.is_dir() else []
        else:
            found += [entry / name for name in names if (entry / name).is_dir()]
    return list(dict.fromkeys(found))


def inside(base: Path, name: str | Path) -> Path | None:
    """`base / name` resolved, links followed, or None when that leaves `base` (`..`, an
    absolute name elsewhere, a link out of it): the one rule for the files the run reads and
    writes and the ones the server lists."""
    base_resolved = base.resolve()
    target = (base_resolved / name).resolve()
    if target != base_resolved and base_resolved not in target.parents:
        return None
    return target


def hidden(name: str) -> bool:
    """Whether the folder lists leave out a file or folder `name`: one starting with "."
    (the partial writes of uploads and saves, `.upload-*`, `.saving-*`, and what the system
    keeps there), as a shell's listing does. The rule LoadImage's dropdown, the editor's file
    tabs, the /userdata listings and the models folders list by (`listed_names`), /upload/image refuses a
    name by (a file stored under it could not be chosen afterwards), /view serves none by
    (half a killed save's PNG, `graph.files.remove_stale_partials`), and a save node's
    filename_prefix is refused by (`nodes/images.unserved_problem`: saved, it was not served)."""
    return name.startswith(".")


# The zero-width joiners shape Persian, Arabic and Indic words and emoji sequences: a name may
# hold one only where it joins two such characters (`_joins`).
_JOINERS = "\u200c\u200d"
# What shows as a line break, not as a character: U+2028 and U+2029 (categories Zl, Zp).
_SEPARATORS = {"Zl": "a line separator", "Zp": "a paragraph separator"}


def unseen_character(text: str) -> str | None:
    """The first character of `text`, a file name or a relative path of them (`/` between),
    that would hide what the name is wherever it is shown, or None: a control character (a
    newline cuts a listing's line in two and forges the next, ESC drives the terminal), a line
    or paragraph separator (U+2028, U+2029: a line break in some viewers), or an invisible
    Unicode format character (category Cf: a bidi override shows `a<U+202E>gnp.exe` as
    `aexe.png`, a zero-width space alone looks like no name), but for a zero-width
    (non-)joiner that joins two letters or symbols of a script or emoji (`_joins`). The one
    rule for a name a user will see as a file's: a save node's filename_prefix
    (`nodes/images.prefix_problem`), an upload's name and subfolder (`server/safepath.py`)."""
    for segment in text.split("/"):
        for i, c in enumerate(segment):
            category = unicodedata.category(c)
            if category in ("Cc", *_SEPARATORS) or (
                category == "Cf" and not (c in _JOINERS and _joins(segment, i))
            ):
                return c
    return None


def _joins(segment: str, i: int) -> bool:
    """Whether the joiner at `segment[i]` stands between two non-ASCII letters or symbols (the
    one before it counted past its combining marks: a virama, an emoji's variation selector),
    where it shapes a Persian or Indic word or joins an emoji sequence. Next to an ASCII
    character, a '.', or at a name's end it joins nothing and hides in the name: `photo<ZWJ>.png`
    shows as `photo.png`."""
    before = i - 1
    while before >= 0 and unicodedata.category(segment[before]).startswith("M"):
        before -= 1
    return (before >= 0 and i + 1 < len(segment)
            and _joinable(segment[before]) and _joinable(segment[i + 1]))  # fmt: skip


def _joinable(c: str) -> bool:
    """A character a zero-width joiner may join: a letter or symbol beyond ASCII."""
    return not c.isascii() and unicodedata.category(c)[0] in "LS"


def unseen_problem(text: str) -> str | None:
    """What is wrong with `text` by `unseen_character`, said after the name (which the caller
    names as its user knows it), the character by its code point; None when nothing is."""
    unseen = unseen_character(text)
    if unseen is None:
        return None
    category = unicodedata.category(unseen)
    what = _SEPARATORS.get(category) or (
        "a control character" if category == "Cc" else "a format character"
    )
    return (f"contains {what}, U+{ord(unseen):04X}; file names cannot hold control characters "
            "(NUL, newline, ...) nor invisible Unicode format characters (bidi overrides, "
            "zero-width characters)")  # fmt: skip


def listed_names(folder: Path | str, names: Iterable[str]) -> list[str]:
    """The `names` found directly in `folder` (its files and sub-folders, in one call) that a
    folder listing shows: not `hidden`, and UTF-8. A name that is not (a Latin-1 zip unpacked on Linux:
    `l\\xe9.safetensors`) reaches Python as lone surrogates (`surrogateescape`), which no JSON
    answer can encode (every listing holding it was a 500) and no JSON or YAML value can name,
    so it could never be chosen: it is left out, with one warning per folder saying to rename
    it. The one rule every folder list applies (the models folders, LoadImage's dropdown, the
    editor's file tabs, the /userdata listings), for the CLI's choices and the server's alike."""
    shown: list[str] = []
    undecodable: list[str] = []
    for name in names:
        if not hidden(name):
            (shown if _utf8(name) else undecodable).append(name)
    if undecodable:
        _warn_undecodable(str(folder), sorted(undecodable))
    return shown


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _warn_undecodable(folder: str, names: list[str]) -> None:
    from .problems import printable, quoted

    said = (folder, tuple(names))
    if said in _warned_undecodable:
        return
    _warned_undecodable.add(said)
    _log.warning(
        "%s: a name that is not UTF-8 is left out of its listing (no workflow or "
        "request can name it): %s; rename it to UTF-8 (a Latin-1 name: convmv -f "
        "latin1 -t utf-8)",
        printable(folder),
        ", ".join(quoted(n) for n in names),
    )


def weight_files(base: Path) -> list[str]:
    """The weight files (`WEIGHT_SUFFIXES`) under one models folder directory `base`, as sorted
    POSIX names relative to it, the names a dropdown shows and the server's model routes
    answer: hidden and non-UTF-8 files and folders are skipped (`listed_names`), symlinks to
    files and folders followed, at most `_MAX_DEPTH` deep, and a link to nothing left out (it
    could not be loaded). A folder reached by two paths (a link kept as an alias of a folder
    beside it, `SD1.5 -> sd15`) is listed under both, as ComfyUI lists it, so a workflow may
    name either; only a link into the folder's own ancestors (a loop) is not followed, and
    past `_MAX_REVISITS` folders reached again the ones reached after are left out (their
    files stay listed under the folder's first path), with a warning, so links to links
    cannot make the walk endless."""
    names: list[str] = []
    seen: set[str] = set()
    ancestors: dict[str, tuple[str, ...]] = {str(base): ()}  # each folder's ancestors' realpaths
    revisits = 0
    for top, dirs, files in os.walk(base, followlinks=True):
        rel = Path(top).relative_to(base)
        real = os.path.realpath(top)
        above = ancestors.pop(top)
        if real in above or len(rel.parts) > _MAX_DEPTH:
            dirs[:] = []
            continue
        if real in seen:
            revisits += 1
            if revisits > _MAX_REVISITS:
                _warn_revisits(str(base))
                dirs[:] = []
                continue
        seen.add(real)
        weights = [f for f in files if f.lower().endswith(WEIGHT_SUFFIXES)]
        shown = set(listed_names(top, [*dirs, *weights]))
        # a folder's own sub-folders before its links: past the bound, a folder's files are
        # listed under its own name rather than an alias's
        dirs[:] = sorted((d for d in dirs if d in shown),
                         key=lambda d: (os.path.islink(os.path.join(top, d)), d))  # fmt: skip
        ancestors.update((os.path.join(top, d), (*above, real)) for d in dirs)
        for f in weights:
            if f in shown and os.path.exists(os.path.join(top, f)):  # a broken link is no model
                names.append((rel / f).as_posix())
    return sorted(names)


def _warn_revisits(folder: str) -> None:
    from .problems import printable

    if folder in _warned_revisits:
        return
    _warned_revisits.add(folder)
    _log.warning(
        "%s: more than %d folders reached again through links (links to links?); the ones "
        "reached after are not listed again (their files are, under their first path)",
        printable(folder),
        _MAX_REVISITS,
    )


def listed_spelling(name: str, listed: Iterable[str]) -> str | None:
    """The entry of `listed` (a dropdown's file names) that `name` names: itself, or the one
    entry equal to it in Unicode's composed form (NFC), since a file copied from macOS is named
    decomposed (NFD: `e` and a combining accent) and a name typed is composed (`é`): one name
    to a person, two to a Linux filesystem. None when none is (or two are). An ASCII name is
    only itself, so callers can skip listing a folder for one that is no file there."""
    listed = list(listed)
    if name in listed:
        return name
    if name.isascii():
        return None
    composed = unicodedata.normalize("NFC", name)
    found = [entry for entry in listed if unicodedata.normalize("NFC", entry) == composed]
    return found[0] if len(found) == 1 else None


def listed_file(base: Path, name: str) -> Path | None:
    """The file `name` names in the models folder directory `base` when `weight_files` lists
    it there (a symlinked file or folder included), by its listed spelling (`listed_spelling`:
    `é` typed, `é` decomposed on disk), else None: the one rule for "is this a model in that
    folder" the dropdowns, `resolve` and /view_metadata share. `name` is a listed POSIX name;
    a `..` or absolute one is never listed."""
    if name.isascii() and not base.joinpath(*name.split("/")).is_file():
        return None  # the walk only when it may list it
    spelled = listed_spelling(name, weight_files(base))
    return None if spelled is None else base.joinpath(*spelled.split("/"))
