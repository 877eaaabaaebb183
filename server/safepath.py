"""Joining user-supplied names onto a base folder without ever leaving it, within the sizes a
filesystem takes: every route that touches a file by a client's name goes through here, so a
name the disk would refuse is a 400 naming the field, never an OSError (and its path) later.
A name a file or folder is made under must also show as it is (`shown_name`)."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path, PurePosixPath

from latentgraph.graph.files import MAX_DEPTH, MAX_NAME_BYTES
from latentgraph.graph.paths import inside, unseen_problem
from latentgraph.graph.problems import quoted

from .errors import ApiError

MAX_PATH_BYTES = 1024  # a relative path in all, leaving room for the base under PATH_MAX


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _shown(value: str) -> str:
    """`value` quoted for a message as the client sent it (`quoted`), cut short when long."""
    if not isinstance(value, str):
        return repr(value)
    return quoted(value if len(value) <= 60 else value[:60] + "...")


def _check_name(name: str, what: str, whole: str) -> None:
    if _size(name) > MAX_NAME_BYTES:
        raise ApiError(400, f"{what} {_shown(whole)}: a name is {_size(name)} bytes long; "
                       f"at most {MAX_NAME_BYTES} are allowed", "name_too_long")  # fmt: skip


def clean_relative(value: str, what: str) -> PurePosixPath:
    """A relative path with no `..`, no absolute part, no drive and no NUL, of at most
    `MAX_DEPTH` names of at most `MAX_NAME_BYTES` each, or a 400. A `\\` separates folders,
    as a Windows client writes a subfolder."""
    value = (value or "").replace("\\", "/")
    return _checked(value, PurePosixPath(value), what)


def folded_relative(value: str, what: str) -> PurePosixPath:
    """A relative path as the editor's user files take one (`/userdata`), checked as
    `clean_relative` checks it once each `..` is folded into the name before it: the editor's
    Save As `../x` from a subfolder sends `workflows/sub/../x.json`, which is
    `workflows/x.json`, as ComfyUI saves it; a `..` above the path's start stays a 400. A `\\`
    is part of a name, as ComfyUI keeps it on Linux (`a\\b.json`, no folder `a/`)."""
    value = value or ""
    folded = posixpath.normpath(value) if value else ""
    return _checked(value, PurePosixPath("" if folded == "." else folded), what)


def _checked(value: str, path: PurePosixPath, what: str) -> PurePosixPath:
    """`path` (what the client's `value` names) if it is relative, inside its folder and of
    sizes a filesystem takes, or a 400 quoting `value`."""
    if "\x00" in value:
        raise ApiError(400, f"{what} contains a NUL byte", "invalid_path")
    if _size(value) > MAX_PATH_BYTES:
        raise ApiError(400, f"{what} {_shown(value)} is {_size(value)} bytes long; at most "
                       f"{MAX_PATH_BYTES} are allowed", "name_too_long")  # fmt: skip
    if path.is_absolute() or (value[1:2] == ":") or any(p == ".." for p in path.parts):
        raise ApiError(400, f"{what} {_shown(value)} must be a relative path inside its folder",
                       "invalid_path")  # fmt: skip
    if len(path.parts) > MAX_DEPTH:
        raise ApiError(400, f"{what} {_shown(value)} has {len(path.parts)} levels; at most "
                       f"{MAX_DEPTH} are allowed", "invalid_path")  # fmt: skip
    for name in path.parts:
        _check_name(name, what, value)
    return path


def safe_join(base: Path, *parts: str, what: str = "path") -> Path:
    """`base / parts...`, refused (400) if the result would resolve outside `base`, or if a
    folder on the way there is a file."""
    rel = PurePosixPath()
    for part in parts:
        rel = rel / clean_relative(part, what)
    return _contained(base, rel, what)


def safe_user_path(base: Path, value: str, what: str) -> Path:
    """`base / value` for the editor's user files (`folded_relative`), checked as `safe_join`
    checks a path."""
    return _contained(base, folded_relative(value, what), what)


def _contained(base: Path, rel: PurePosixPath, what: str) -> Path:
    """`base / rel` resolved, refused (400) if it leaves `base` (`paths.inside`, through a
    link too) or if a folder on the way there is a file."""
    target = inside(base, rel)
    if target is None:
        raise ApiError(400, f"{what} leaves its folder", "invalid_path")
    root = base.resolve()
    for folder in target.parents:
        if folder == root or not folder.is_relative_to(root):
            break
        if folder.exists() and not folder.is_dir():
            raise ApiError(400, f"{what} {_shown(rel.as_posix())}: "
                           f"{folder.relative_to(root).as_posix()!r} is a file, not a folder",
                           "not_a_folder")  # fmt: skip
    return target


def safe_folder(base: Path, value: str, what: str = "subfolder") -> Path:
    """`base / value` as `safe_join` checks it, refused (400) if it is an existing file."""
    folder = safe_join(base, value, what=what)
    if folder.exists() and not folder.is_dir():
        raise ApiError(400, f"{what} {_shown(value)} is a file, not a folder", "not_a_folder")
    return folder


def safe_filename(value: str, what: str = "filename") -> str:
    """A bare file name (no folders) of at most `MAX_NAME_BYTES`, shown as it is (`shown_name`),
    or a 400: the name a file a client sends is stored under."""
    name = (value or "").strip()
    if not name or "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise ApiError(400, f"{what} {_shown(value)} must be a plain file name", "invalid_filename")
    _check_name(name, what, name)
    shown_name(name, what, "invalid_filename")
    return name


def stored_path(folder: Path, subfolder: str, filename: str,
                what: str = "filename") -> PurePosixPath:  # fmt: skip
    """Where in `folder` a file someone else named is stored, relative to it: `filename` a
    plain file name (`safe_filename`), `subfolder` a relative path (`clean_relative`) that
    shows as it is (`shown_name`), neither leaving `folder` through a link; or a 400. The one
    rule for an upload's name (`/upload/image`) and for an output `latentgraph submit`
    downloads by the name the server gave it."""
    name = safe_filename(filename, what)
    shown_name(subfolder, "subfolder", "invalid_path")
    safe_join(safe_folder(folder, subfolder, what="subfolder"), name, what=what)
    return clean_relative(subfolder, "subfolder") / name


def shown_name(value: str, what: str, error_type: str) -> None:
    """Refuse (400 `error_type`) a name, or a relative path of them, for a file or folder to be
    made that would not show as it is (`graph.paths.unseen_character`: a newline, ESC, a bidi
    override), naming the character: LoadImage's list, the editor's and `ls` show it. What
    the save nodes' filename_prefix refuses too (`nodes/images.prefix_problem`)."""
    problem = unseen_problem(value.replace("\\", "/"))
    if problem is not None:
        raise ApiError(400, f"{what} {_shown(value)} {problem}", error_type)


def numbered_name(name: str, n: int) -> str:
    """`stem (n).ext`: the name a file takes beside another of its name, the stem shortened
    so it stays within `MAX_NAME_BYTES`."""
    stem, ext = os.path.splitext(name)
    if _size(f" ({n}){ext}") >= MAX_NAME_BYTES:  # an extension that long is part of the stem
        stem, ext = name, ""
    room = MAX_NAME_BYTES - _size(f" ({n}){ext}")
    stem = stem.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
    return f"{stem} ({n}){ext}"
