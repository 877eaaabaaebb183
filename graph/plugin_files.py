"""A folder plugin's files as their user named them: `--nodes-dir nodes` gives nodes/a.py,
where Python's code objects hold absolute paths. The loader (`plugins.py`) records each
folder plugin as it was given; whatever names a plugin's file (the loader's failures, a
declaration's place, `NodeType.declared_at`) names it through `shown_file`, so a plugin's
warnings name its files one way whoever says them."""

from __future__ import annotations

from pathlib import Path

# each folder plugin (its file, or its package's folder), resolved -> as the user gave it
_given_paths: dict[Path, Path] = {}


def remember_given(path: Path) -> None:
    """Record folder plugin `path` (a file, or a package's folder) as the user gave it."""
    _given_paths[path.resolve()] = path


def shown_file(filename: str) -> str:
    """`filename` as the user named its plugin (nodes/pack/inner.py for a package given as
    nodes/pack); any other file (no folder plugin's) as it is."""
    file = Path(filename).resolve()
    for location, given in _given_paths.items():
        if file == location:
            return str(given)
        if location in file.parents:
            return str(given / file.relative_to(location))
    return filename
