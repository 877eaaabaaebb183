"""A disk that fills up, for tests: files opened for writing under one folder take `room`
bytes in all, and the write that would pass it raises `OSError(ENOSPC)`, where a real full disk
fails (not when the temp file is made, nor at the final rename or link). Tests may run as
root without tmpfs mounts, so the disk is simulated at the file objects the writers use
(`open()` and `io.open`: Pillow's `save`, `Path.write_bytes`)."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any


class FullDisk:
    """`room` bytes left under `folder`; `written` counts what was written there."""

    def __init__(self, folder: Path, room: int) -> None:
        self.folder, self.room, self.written = Path(folder).resolve(), room, 0
        self.real_open = builtins.open

    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = self.real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        if writing and isinstance(file, str | os.PathLike):
            if self.folder in Path(os.fspath(file)).resolve().parents:
                return _Filling(fh, self)
        return fh


class _Filling:
    """A file object on the full disk: its writes count against the room left."""

    def __init__(self, fh: Any, disk: FullDisk) -> None:
        self._fh, self._disk = fh, disk

    def write(self, data: Any) -> int:
        # text counted as UTF-8 (diffusers writes its configs in text mode)
        size = len(data.encode()) if isinstance(data, str) else len(memoryview(data).cast("B"))
        if self._disk.written + size > self._disk.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._disk.written += size
        return self._fh.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> _Filling:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._fh.close()


def fill(monkeypatch: Any, folder: Path, room: int = 0) -> FullDisk:
    """Make the disk under `folder` full after `room` more bytes, for this test."""
    disk = FullDisk(folder, room)
    monkeypatch.setattr(builtins, "open", disk.open)
    monkeypatch.setattr(io, "open", disk.open)
    return disk
