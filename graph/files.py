"""Writing the files a user keeps (images, converted workflows, downloads, checkpoints), the
one digest of a file's content (`file_sha256`), and which records of a node's ui are files
(`file_records`).

Atomic: data goes to a temp file in the target folder, then is renamed (or hard-linked) into
place, so a crash never leaves half a file under the final name. With the user's permissions:
the final file gets the mode a plain `open()` would give it, 0666 filtered through the umask
(0644 under 022), never `tempfile.mkstemp`'s 0600, which would hide every output from the
other users and services that may read it.

How the mode is known without a race: the temp file is created the way `open()` creates one
(`os.open(..., 0o666)`, the kernel applies the umask), and its mode is read back with `fstat`
at once. Reading the umask with `os.umask` would have to set it to read it, and another thread
creating a file in between would get the wrong permissions. The mode is put back on the temp
file after the writer is done, because some writers replace the file they are given (the
safetensors `save_file` writes its own 0600 temp file and renames it over ours).
`write_new` is the one function all atomic writes go through.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
T = TypeVar("T")


def create_temp(folder: Path, prefix: str = ".tmp-", suffix: str = ".tmp") -> tuple[int, Path]:
    """A new, empty, uniquely named file in `folder`, open for writing, with the mode
    `open()` gives: (fd, path)."""
    while True:
        path = Path(folder) / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(path, _FLAGS, 0o666), path
        except FileExistsError:
            continue


def write_new(folder: Path, save: Callable[[Path], None], place: Callable[[Path], T],
              prefix: str = ".tmp-", suffix: str = ".tmp") -> T:  # fmt: skip
    """Write one file atomically with the permissions `open()` would give it: `save(tmp)`
    fills a new temp file in `folder` (by its path; it may replace the file), then `place(tmp)`
    puts it under its final name (`os.replace`, or a hard link) and returns what the caller
    wants back. The temp file is gone afterwards, whether it was placed or something failed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(folder, prefix, suffix)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)  # 0o666 as the umask (or ACL) left it
    finally:
        os.close(fd)
    try:
        save(tmp)
        os.chmod(tmp, mode)
        return place(tmp)
    finally:
        tmp.unlink(missing_ok=True)  # placed by a link, or a writer that failed


def write_file(path: Path, save: Callable[[Path], None]) -> Path:
    """Replace `path` with the file `save(temporary path)` writes, in one step (`write_new`)."""
    path = Path(path)

    def place(tmp: Path) -> Path:
        os.replace(tmp, path)
        return path

    return write_new(path.parent, save, place, prefix=f".{path.name}.")


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one step."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_file(path, lambda tmp: tmp.write_bytes(payload))


def file_sha256(path: Path) -> str:
    """The sha256 of the file at `path`, read in 1 MiB blocks: what SaveImage records of each
    file it saves, and LoadImage's cache identity (ComfyUI hashes its inputs the same way)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_records(ui: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The files a node's ui reports, of every kind ("images", "checkpoints", ...): ComfyUI's
    file records, dicts naming a `filename` in a `subfolder` of the folder of their `type`."""
    return [record for values in (ui or {}).values() if isinstance(values, list)
            for record in values
            if isinstance(record, dict) and ("filename" in record or "subfolder" in record)]  # fmt: skip
