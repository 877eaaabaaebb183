"""The temp folder PreviewImage writes into (`Settings.temp_dir`: --temp-dir, default ./temp),
and the previews `latentgraph serve` removes from it when it starts.

PreviewImage's files stay where it writes them: the editor shows them from there while the
server runs, and `run` names them. ComfyUI empties its temp folder at start; `serve` removes at
start the previews in a temp folder latentgraph keeps, one marked with `MARKER`: made by
PreviewImage or `serve`, or found empty by them (`keep`). A --temp-dir that held other files
is never marked, and nothing in it is removed; nor in one that is, or lies inside, the output
or input folder (a SaveImage prefix 'preview' names its files as PreviewImage does). Only the
names PreviewImage writes are removed (`is_preview`), never anything else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from latentgraph.graph.numbered_files import number_in

PREVIEW_PREFIX = "preview"  # PreviewImage's files: preview_00001_.png, ... (`OutputFiles`)
MARKER = ".latentgraph-temp"
_MARKER_TEXT = ("latentgraph keeps its previews here (PreviewImage's preview_00001_.png, ...); "
                "`latentgraph serve` removes them when it starts. Delete this file to keep "
                "them.\n")  # fmt: skip


def keep(folder: Path) -> None:
    """Make `folder` if it is missing, and mark it (`MARKER`) when it was missing or empty: a
    folder holding nothing of the user's. One that cannot be made or marked is left to the
    write that needs it, which names the problem (`FileWriteError`)."""
    marker = folder / MARKER
    try:
        if marker.is_file():
            return
        if folder.is_dir():
            with os.scandir(folder) as entries:
                if next(entries, None) is not None:
                    return
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(_MARKER_TEXT, encoding="utf-8")
    except OSError:
        return


def is_preview(name: str) -> bool:
    """Whether `name` is one PreviewImage writes: `preview_00001_.png`, ..."""
    return number_in(name, PREVIEW_PREFIX, ".png") is not None


def remove_previews(folder: Path, apart: Iterable[Path] = ()) -> str | None:
    """At `serve`'s start: remove the previews (`is_preview`, files directly in it, no links)
    from the temp folder `folder`, made and marked first if missing or empty (`keep`), when
    it is marked and is neither one of the folders `apart` (the output and input folders) nor
    inside one. Returns a line for the log when previews were left (an unmarked folder, files
    that could not be removed), else None."""
    keep(folder)
    root = folder.resolve()
    if any(root == a.resolve() or a.resolve() in root.parents for a in apart):
        return None
    try:
        with os.scandir(folder) as entries:
            found = [e.path for e in entries
                     if is_preview(e.name) and e.is_file(follow_symlinks=False)]  # fmt: skip
    except OSError:  # a folder that cannot be read: the server says so when it writes there
        return None
    if not found:
        return None
    if not (folder / MARKER).is_file():
        left = "1 preview is" if len(found) == 1 else f"{len(found)} previews are"
        return (f"{left} left in the temp folder {folder}: latentgraph did "
                f"not make it (it has no {MARKER} file), so nothing there is removed; delete "
                "them yourself, or add that file to have serve remove them when it starts")  # fmt: skip
    failed: list[OSError] = []
    for path in found:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            failed.append(exc)
    if failed:
        return (f"{len(failed)} previews could not be removed from the temp folder {folder}: "
                f"{failed[0].strerror or failed[0]}")  # fmt: skip
    return None
