"""What a run's settings must allow before any node runs: an output folder that is one (or can
be made) and a device this machine has. Found at the end instead, they cost the whole run's
work (SaveImage is the last node). `latentgraph run` and `latentgraph.run` both ask here, and
`latentgraph serve` asks about its folders and devices here too, before any worker starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from latentgraph.graph.context import Settings
from latentgraph.graph.files import os_error_words


def folder_problem(folder: Path, *, create: bool = True, written: bool = True) -> str | None:
    """Why `folder`, named by a flag, cannot be the folder it names, or None; the one rule for
    every folder flag of `run` and `serve`. `create`: it may be made (an output, data or temp
    folder): it is a folder, or its nearest existing parent is a folder we may write in (a
    folder made there and removed at once); nothing is left behind, so a run refused later
    leaves no trace. Else (a models folder, only read) it must be a folder already. `written`
    False (`run`'s input and temp folders, used only by the nodes reading or writing there,
    LoadImage, PreviewImage): it may be missing and is not written to here, but a file where
    it or a folder above it should be is refused, as it would fail those nodes at the end. A
    name the OS refuses to look up (too long) is said in `os_error_words`' words."""
    try:
        return _folder_problem(Path(folder).absolute(), create, written)
    except OSError as exc:
        return os_error_words(exc)


def cache_folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be the cache folder, or None. The one rule: it is refused only when
    it is not a folder and cannot be made one (a file there, or a missing folder whose parent
    cannot be written: HOME=/nonexistent). A folder that is there is taken even when it cannot
    be written, so a read-only mount or image holding the built models stays usable: what it
    holds is read, results are kept in memory only, and only a built-in model it lacks fails
    (at its LoadModel)."""
    try:
        if Path(folder).is_dir():
            return None
    except OSError as exc:  # a name too long
        return os_error_words(exc)
    return folder_problem(folder)


def _folder_problem(path: Path, create: bool, written: bool = True) -> str | None:
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        if not existing.is_file():  # a device, a socket, ...
            return "not a folder" if existing == path else f"{existing} is not a folder"
        there = "a file is there" if existing == path else f"{existing} is a file"
        return f"{there}; expected a folder"
    if not create:
        return None if existing == path else "no such folder"
    if not written:
        return None
    try:  # asked by doing: root passes `os.access` everywhere, /proc refuses every mkdir
        os.rmdir(tempfile.mkdtemp(prefix=".latentgraph-check-", dir=existing))
    except OSError as exc:
        return f"cannot write in {existing} ({exc.strerror or exc})"
    return None


def file_problem(path: Path, *, replace: bool = True) -> str | None:
    """Why a command cannot write a file at `path` (named by an argument or flag: convert's
    DEST, tiny-model --single-file), or None; checked before the work that makes it. A folder
    or a device there is refused; a file is replaced, unless `replace` is False (tiny-model's
    checkpoint, which replaced a file of any kind silently: only with its --force); the folder
    it goes in is held to `folder_problem`'s rule, as it may be made: "afile is a file;
    expected a folder"."""
    path = Path(path)
    try:
        if path.is_dir():
            return "a folder is there; name the file to write"
        exists = path.exists()
    except OSError as exc:  # a name too long
        return os_error_words(exc)
    if exists and not path.is_file():  # replaced by the write: /dev/null, a socket...
        return "not a regular file; name the file to write"
    if not replace and (exists or path.is_symlink()):  # a link to nothing is no place either
        return "a file is there; give --force to replace it, or name a new file"
    # its nearest existing parent is the folder the write makes its folders in
    return folder_problem(path.parent if exists else path)


def device_problem(settings: Settings) -> str | None:
    """Why the settings' device is not on this machine, or None. `auto` and `cpu` always
    are, and need no torch import to say so."""
    if settings.device in ("auto", "cpu"):
        return None
    from latentgraph.nodes.runtime import device_name

    try:
        device_name(settings)
    except RuntimeError as exc:
        return str(exc)
    return None


# A child Python asking `device_problems` (`isolated=True`): prints {device: problem} as JSON.
_ASK = (
    "import json, sys\n"
    "from latentgraph.preflight import device_problems\n"
    "print(json.dumps(device_problems(sys.argv[1:])))\n"
)


def device_problems(devices: Iterable[str], *, isolated: bool = False) -> dict[str, str]:
    """`device_problem` of each of `devices` (names as `check_device` reads them): the ones
    this machine lacks, with why. The one rule for `run --device` and `serve --device` and
    `--devices`. `isolated`: asked in a child Python, so the caller never imports torch (the
    server's process, docs/architecture.md); the child is started only for a device other
    than `auto` and `cpu`, which every machine has."""
    asked = [d for d in dict.fromkeys(devices) if d not in ("auto", "cpu")]
    if not asked:
        return {}
    if not isolated:
        found = {d: device_problem(Settings(device=d)) for d in asked}
        return {d: problem for d, problem in found.items() if problem}
    try:
        out = subprocess.run([sys.executable, "-c", _ASK, *asked], capture_output=True,
                             text=True, timeout=300)  # fmt: skip
        lines = out.stdout.strip().splitlines()
        if out.returncode == 0 and lines:
            return json.loads(lines[-1])
        why = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
    except subprocess.TimeoutExpired:
        why = "no answer in 300 s"
    return {d: f"device {d!r}: could not ask torch whether this machine has it ({why})"
            for d in asked}  # fmt: skip
