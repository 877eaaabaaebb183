"""Writing the files a user keeps (images, converted workflows, downloads, checkpoints).

Atomic: data goes to a temp file in the target folder, then is renamed (or hard-linked) into
place, so a crash never leaves half a file under the final name. With the user's permissions:
`tempfile.mkstemp` creates 0600 files whatever the umask, which would hide every output from
the other users and services that a plain `open()` lets read it. So the temp file is created
the way `open()` does it, mode 0666 filtered by the kernel through the umask (0644 under 022).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def create_temp(folder: Path, prefix: str = ".tmp-", suffix: str = ".tmp") -> tuple[int, Path]:
    """A new, empty, uniquely named file in `folder`, open for writing: (fd, path)."""
    while True:
        path = Path(folder) / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(path, _FLAGS, 0o666), path
        except FileExistsError:
            continue


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
