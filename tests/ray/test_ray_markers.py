"""The markers the Ray pool writes at start into the server's folders (the output folder,
the disk cache), which each actor reads to prove it sees the same folder: a disk that refuses
one is a clear error naming it, and no marker is left behind."""

from __future__ import annotations

import errno

import pytest

from latentgraph.graph.files import FileWriteError
from latentgraph.server.ray_workers import unseen_folders, write_markers

from ..full_disk import fill


def test_the_markers_hold_the_token_every_actor_reads(tmp_path):
    folders = (tmp_path / "out", tmp_path / "cache")
    markers = write_markers(folders, "token")
    assert unseen_folders(markers) == []
    assert sorted(markers) == sorted(str(f / ".latentgraph-shared-token") for f in folders)


def test_a_full_cache_disk_names_the_marker_and_leaves_none(tmp_path, monkeypatch):
    """Before: the bare "[Errno 28] No space left on device", and an empty marker file left
    in the cache folder (and the output folder's marker, written first, left there too)."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    out.mkdir()
    fill(monkeypatch, cache)
    with pytest.raises(FileWriteError) as raised:
        write_markers((out, cache), "token")
    assert str(raised.value) == (f"cannot write {cache / '.latentgraph-shared-token'}: the disk "
                                 "is full (No space left on device)")  # fmt: skip
    assert raised.value.errno == errno.ENOSPC
    assert list(out.iterdir()) == [] and not cache.exists()
