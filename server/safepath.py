"""Joining user-supplied names onto a base folder without ever leaving it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from .errors import ApiError


def clean_relative(value: str, what: str) -> PurePosixPath:
    """A relative path with no `..`, no absolute part, no drive and no NUL, or a 400."""
    value = (value or "").replace("\\", "/")
    if "\x00" in value:
        raise ApiError(400, f"{what} contains a NUL byte", "invalid_path")
    path = PurePosixPath(value)
    if path.is_absolute() or (value[1:2] == ":") or any(p == ".." for p in path.parts):
        raise ApiError(400, f"{what} {value!r} must be a relative path inside its folder",
                       "invalid_path")  # fmt: skip
    return path


def safe_join(base: Path, *parts: str, what: str = "path") -> Path:
    """`base / parts...`, refused (400) if the result would resolve outside `base`."""
    rel = PurePosixPath()
    for part in parts:
        rel = rel / clean_relative(part, what)
    root = base.resolve()
    target = (root / rel).resolve()
    if target != root and not target.is_relative_to(root):
        raise ApiError(400, f"{what} leaves its folder", "invalid_path")
    return target


def safe_filename(value: str, what: str = "filename") -> str:
    """A bare file name (no folders), or a 400."""
    name = (value or "").strip()
    if not name or "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise ApiError(400, f"{what} {value!r} must be a plain file name", "invalid_filename")
    return name
