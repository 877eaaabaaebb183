"""The numbered file names save nodes write, `<name>_00001_<suffix>`, ... (ComfyUI's spelling),
in one place: the writers (a save node's `nodes/images.OutputFiles`, and `latentgraph submit`
giving a downloaded file a free name beside the user's: `link_numbered`, the next free number,
never over a file that is there), what `serve` removes from the temp folder at start
(`temp_folder.is_preview`), and a cached save checking the names it kept by their counter
(`images.files_unchanged`)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

# The counter between a name and its suffix as file names are read (`numbered_name` writes 5
# digits; more once a folder holds 99,999).
COUNTER = r"_(\d{5,})_"


def numbered_name(name: str, counter: int, suffix: str) -> str:
    """The file name of the `counter`th file of `name`: `cat_00001_.png`."""
    return f"{name}_{counter:05d}_{suffix}"


def number_in(filename: str, name: str, suffix: str) -> int | None:
    """The counter in `filename` when it is one of `name`'s numbered files, else None."""
    found = re.fullmatch(re.escape(name) + COUNTER + re.escape(suffix), filename)
    return int(found.group(1)) if found else None


def name_and_suffix(filename: str) -> tuple[str, str]:
    """The name and suffix `filename`'s numbered siblings share: `cat` and `.png` for
    `cat_00004_.png` (its last counter), `cat` and `.png` for a file named otherwise
    (`cat.png`: its siblings `cat_00001_.png`, ...)."""
    found = re.fullmatch(f"(.*){COUNTER}(.*)", filename, flags=re.S)
    if found:
        return found.group(1), found.group(3)
    stem, suffix = os.path.splitext(filename)
    return stem, suffix


def next_number(filenames: Iterable[str], name: str, suffix: str) -> int:
    """The counter the next file of `name` gets among `filenames` (a folder's): past the
    highest there, so a newer file never takes the number of one deleted before it."""
    return max((n for f in filenames if (n := number_in(f, name, suffix)) is not None),
               default=0) + 1  # fmt: skip


def link_numbered(file: Path, folder: Path, name: str, suffix: str, counter: int) -> int:
    """Give `file` the first free numbered name of `name` in `folder`, from `counter` on, and
    return that name's counter. A hard link, which never replaces a file: two writers into one
    folder never clobber each other's files, nor one the user keeps (a name taken meanwhile:
    the next)."""
    while True:
        try:
            os.link(file, Path(folder) / numbered_name(name, counter, suffix))
            return counter
        except FileExistsError:
            counter += 1
