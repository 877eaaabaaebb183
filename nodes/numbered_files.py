"""The numbered file names save nodes write, `<name>_00001_<suffix>`, ... (ComfyUI's spelling),
in one place: the writer (`images.OutputFiles`) and what `serve` removes from the temp folder
at start (`temp_folder.is_preview`) read names by the same rule, and a cached save checks the
names it kept by its counter (`images.files_unchanged`)."""

from __future__ import annotations

import re

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
