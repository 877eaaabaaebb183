"""A ComfyUI `extra_model_paths.yaml` read into models folders (`--extra-model-paths FILE`), so
an install's per-kind folders are found without moving them.

The file holds sections, each a mapping with an optional `base_path` (`~` and `$VAR` expanded; a
relative one is read from the file's folder), an optional `is_default` (its folders are
searched before the others, as ComfyUI makes them its first), and model kinds (`checkpoints`,
`loras`, `clip`, ...) each naming one folder or several (one per line, or a list), relative to
`base_path`. Each becomes a `graph.paths.KindFolder`, named by its entry (`a111.checkpoints`).
Kinds no node here reads (`gligen`, `hypernetworks`, `clip_vision`, ...: none of the models
folders' `FOLDERS`) are ignored and named once (`ModelPaths.ignored`); a read kind's folder that
is a file (or under one) or missing is warned about, once per kind (`folder_warnings`: the
stock file names three upscale_models folders, most installs lack some); a section's base_path
that does not exist is said once for the section, not for each of its kinds (the stock file's
`base_path: path/to/stable-diffusion-webui/` gave six lines). It is composed as
workflows are (`parse_yaml`: no tags run, no aliases), so a problem names file:line:column;
`is_default` takes what ComfyUI's YAML 1.1 reader takes as a boolean (`yes`, `on`, ...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from latentgraph.graph.paths import KindFolder
from latentgraph.graph.problems import quoted

from .models_dirs import KIND_NAMES, kind_of

_SPECIAL = ("base_path", "is_default")


class ModelPathsError(ValueError):
    """An extra_model_paths file that cannot be read: the message names file:line and what
    was expected."""


@dataclass
class ModelPaths:
    """What a file gives: the kind folders of `is_default` sections (searched first), the
    others', the kinds ignored (`section.kind`), the sections whose base_path does not exist
    (their warnings, `no_base`) and the other read kinds' folders that are none."""

    first: list[KindFolder] = field(default_factory=list)
    others: list[KindFolder] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    no_base: list[str] = field(default_factory=list)
    unfound: list[Unfound] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """This file's warnings: one per section whose base_path does not exist, then one per
        kind (`folder_warnings`)."""
        return [*self.no_base, *folder_warnings(self.unfound)]


class Unfound(NamedTuple):
    """A kind's folder that is none, so its models are not found: `what` it is (`missing`,
    `a file, not a folder`, ...), named by the entry `at` (`file:line:col: a111.loras`)."""

    kind: str  # a `FOLDERS` key: clip's folders are text_encoders'
    at: str
    folder: Path
    what: str


def folder_warnings(unfound: list[Unfound]) -> list[str]:
    """One warning per kind for the folders `unfound` (of one file, or of every file a
    command reads), each entry once with its folders ("a111.upscale_models: .../ESRGAN,
    .../SwinIR are missing"): ComfyUI's stock file names folders most installs lack some of,
    which warned a dozen lines before each command."""
    by_kind: dict[str, dict[tuple[str, str], list[Path]]] = {}
    for kind, at, folder, what in dict.fromkeys(unfound):
        by_kind.setdefault(kind, {}).setdefault((at, what), []).append(folder)
    warnings = []
    for entries in by_kind.values():
        each = [f"{at}: {', '.join(map(str, folders))} {'is' if len(folders) == 1 else 'are'} {what}"
                for (at, what), folders in entries.items()]  # fmt: skip
        warnings.append(f"{'; '.join(each)}: no models are found there")
    return warnings


def read_model_paths(path: Path) -> ModelPaths:
    """The kind folders an extra_model_paths file names. Raises `ModelPathsError`."""
    from latentgraph.graph.workflow.positions import Refused, Wording, parse_yaml

    wording = Wording(where="in an extra_model_paths file", instead="write the folder out")

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelPathsError(f"{path}: cannot be read: {exc}") from None
    try:
        data, doc, empty = parse_yaml(text, str(path), wording)
    except Refused as exc:
        raise ModelPathsError(str(exc.problem)) from None
    if doc.problems:
        raise ModelPathsError(str(doc.problems[0]))
    found = ModelPaths()
    if empty:
        return found

    def where(*keys: str) -> str:
        location = doc.at.get(tuple(keys))
        return str(location) if location is not None else str(path)

    if not isinstance(data, dict):
        raise ModelPathsError(f"{where()}: expected sections (name: a mapping with base_path "
                              "and model kinds such as checkpoints, loras, vae)")  # fmt: skip
    for section, conf in data.items():
        if conf is None:
            continue
        if not isinstance(conf, dict):
            raise ModelPathsError(f"{where(section)}: section {quoted(section)}: expected a mapping "
                                  "with base_path and model kinds (checkpoints: ..., loras: ...)")  # fmt: skip
        base = _base_path(conf.get("base_path"), path, where(section, "base_path"))
        default = _boolean(conf.get("is_default", False))
        if default is None:
            raise ModelPathsError(f"{where(section, 'is_default')}: {section}.is_default: "
                                  "expected true or false (or yes, no, on, off), got "
                                  f"{_shown(conf['is_default'])}")  # fmt: skip
        into = found.first if default else found.others
        no_base = "base_path" in conf and _not_a_folder(base) == "missing"
        read = False  # a kind a node reads: a missing base_path is then said
        for kind, value in conf.items():
            if kind in _SPECIAL:
                continue
            folders = _folders(value, f"{where(section, kind)}: {section}.{kind}")
            if kind not in KIND_NAMES:
                found.ignored.append(f"{section}.{kind}")
                continue
            read = True
            for n, folder in enumerate([] if no_base else folders):  # no_base: said once
                at = where(section, kind, n) if isinstance(value, list) else where(section, kind)
                what = _not_a_folder(base / folder)
                if what:
                    found.unfound.append(Unfound(kind_of(kind), f"{at}: {section}.{kind}",
                                                 base / folder, what))  # fmt: skip
            into += [KindFolder(kind, base / folder, f"{section}.{kind}") for folder in folders]
        if no_base and read:
            found.no_base.append(f"{section}: base_path {conf['base_path'].strip()} does not "
                                 f"exist ({where(section, 'base_path')})")  # fmt: skip
    return found


# what PyYAML's safe_load, which ComfyUI reads this file with, takes as a boolean (YAML 1.1);
# the file is composed by the YAML 1.2 rules workflows use, where these are text
_BOOLEANS = {word: value for words, value in ((("yes", "true", "on"), True),
                                              (("no", "false", "off"), False))
             for w in words for word in (w, w.capitalize(), w.upper())}  # fmt: skip


def _boolean(value: Any) -> bool | None:
    """`is_default` as a working ComfyUI file writes it (`true`, `yes`, `On`, ...); None when
    it is no boolean."""
    if isinstance(value, bool):
        return value
    return _BOOLEANS.get(value) if isinstance(value, str) else None


def _shown(value: Any) -> str:
    return quoted(value) if isinstance(value, str) else repr(value)


def _not_a_folder(folder: Path) -> str:
    """What a kind's folder that is none is (its models are not found): a file (or another
    non-folder) in its place or above it (a base_path that is a file, the `models` of
    `models/loras`), or nothing there (missing); "" for a folder."""
    if folder.is_dir():
        return ""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir():
        return "missing"
    kind = "a file, not a folder" if existing.is_file() else "not a folder"
    return kind if existing == folder else f"under {existing}, {kind}"


def _base_path(value: Any, file: Path, where: str) -> Path:
    """A section's base_path: `~` and `$VAR` expanded, a relative one read from the file's
    folder; the file's folder when there is none."""
    if value is None:
        return file.absolute().parent
    if not isinstance(value, str) or not value.strip():
        raise ModelPathsError(f"{where}: base_path: expected a folder, got {_shown(value)}")
    base = Path(os.path.expandvars(os.path.expanduser(value.strip())))
    return base if base.is_absolute() else file.absolute().parent / base


def _folders(value: Any, where: str) -> list[str]:
    """A kind's folders: a text of one or several, one per line (blank lines skipped), or a
    list of texts."""
    items = value.split("\n") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ModelPathsError(f"{where}: expected a folder, or several one per line, got "
                              f"{_shown(value)}")  # fmt: skip
    return [os.path.expandvars(os.path.expanduser(i.strip())) for i in items if i.strip()]
