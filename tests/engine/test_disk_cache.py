"""The disk store over time: silent corruption, its byte budget, concurrent rewrites, and the
temp files writes killed mid-way leave."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from latentgraph.graph.cache import LIMIT_FILE, Cache, DiskCache, Held
from latentgraph.graph.files import STALE_PARTIAL_SECONDS

from .conftest import build


def entry_files(root) -> list:
    """The entries (`<key[:2]>/<key>`), not the store's record of its bound (LIMIT_FILE)."""
    return sorted(p for p in root.glob("??/*") if p.is_file())


def corrupt_same_length(path, old: bytes, new: bytes) -> None:
    raw = path.read_bytes()
    assert raw.count(old) == 1, raw
    path.write_bytes(raw.replace(old, new))
    assert len(path.read_bytes()) == len(raw)


@pytest.mark.parametrize(
    "values, ui, old, new",
    [
        (([1, 2, 3],), None, b"[1,2,3]", b"[7,2,3]"),  # still valid JSON: only the CRC can tell
        ((5,), {"images": ["a.png"]}, b"a.png", b"b.png"),  # the ui lives in the header
    ],
)
def test_same_length_change_is_caught_by_the_checksum(tmp_path, values, ui, old, new):
    key = "ab" + "5" * 62
    DiskCache(tmp_path).put(key, values, ui)
    [path] = entry_files(tmp_path)
    corrupt_same_length(path, old, new)
    assert DiskCache(tmp_path).get(key) is None
    assert not path.exists()  # dropped


def test_corrupted_entries_are_recomputed_by_the_next_run(toys, tmp_path):
    graph = build({"c": ("Const", {"value": 123}), "e": ("Echo", {"x": "@c"})})
    first = toys.scheduler(Cache(disk_dir=tmp_path)).run(graph)
    assert first.ok and toys.calls == {"c": 1, "e": 1}
    files = entry_files(tmp_path)
    assert len(files) == 2
    for path in files:  # Const's value, Echo's value and Echo's ui all hold "123"
        raw = path.read_bytes()
        path.write_bytes(raw.replace(b"123", b"723"))
    toys.calls.clear()
    again = toys.scheduler(Cache(disk_dir=tmp_path)).run(graph)
    assert again.output("e") == 123 and again.ui["e"] == {"value": ["123"]}
    assert toys.calls == {"c": 1, "e": 1}  # both ran again
    toys.calls.clear()
    third = toys.scheduler(Cache(disk_dir=tmp_path)).run(graph)  # rewritten entries are good
    assert third.output("e") == 123 and toys.calls == {}


def test_budget_holds_across_many_puts_on_one_instance(tmp_path):
    """The running byte estimate, not only the first scan, keeps the store within budget."""
    probe = DiskCache(tmp_path / "probe")
    probe.put("00" + "0" * 62, ("x" * 500,), None)
    entry = probe.total_bytes()
    budget = entry * 5
    store = DiskCache(tmp_path / "store", max_bytes=budget)
    keys = [f"{i:064x}" for i in range(40)]
    for n, key in enumerate(keys):
        store.put(key, ("x" * 500,), None)
        os.utime(store.path(key), ns=(n * 10**9, n * 10**9))  # strictly increasing age order
        assert store.total_bytes() <= budget, n
    left = {p.name for p in entry_files(tmp_path / "store")}
    assert keys[-1] in left and len(left) >= 4  # trimmed to the budget, not emptied
    assert left <= set(keys[-5:])  # the least recently used went first


def test_a_reader_never_sees_a_partial_or_missing_entry_during_rewrites(tmp_path):
    """One thread rewrites a key with values of very different sizes; another reads it."""
    key = "cd" + "6" * 62
    big, small = "b" * 2_000_000, "s" * 10
    writer_store, reader_store = DiskCache(tmp_path), DiskCache(tmp_path)
    writer_store.put(key, (small,), None)
    stop = threading.Event()
    seen: list = []

    def read() -> None:
        while not stop.is_set():
            got = reader_store.get(key)
            seen.append(None if got is None else got[0][0][:1] + str(len(got[0][0])))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(30):
            writer_store.put(key, (big if i % 2 == 0 else small,), None)
    finally:
        stop.set()
        reader.join()
    assert len(seen) > 10
    assert set(seen) <= {"b2000000", "s10"}, {s for s in seen if s not in ("b2000000", "s10")}
    assert writer_store.get(key) == ((small,), None, ())  # the last write, whole


KEY = "bd" + "8" * 62


def aged(path, seconds: float, size: int = 1000) -> None:
    """A temp file as a write killed `seconds` ago left it (half an entry)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"LGC1" + b"\0" * (size - 4))
    then = time.time() - seconds
    os.utime(path, (then, then))


def killed_writes(root) -> dict[str, object]:
    """The temp files (`write_file`'s `.NAME.<16 hex>.tmp`) writes killed at different times
    left in a store at `root`, and files named like them that are none of its."""
    stale, fresh = STALE_PARTIAL_SECONDS + 60, STALE_PARTIAL_SECONDS - 60
    files = {
        "stale": [root / "bd" / f".{KEY}.0123456789abcdef.tmp",
                  root / f".{LIMIT_FILE}.0123456789abcdef.tmp"],
        "fresh": [root / "bd" / f".{KEY}.fedcba9876543210.tmp"],
        "not ours": [root / "bd" / ".notes.txt.0123456789abcdef.tmp",  # not an entry's
                     root / "bd" / f".{'ce' + KEY[2:]}.0123456789abcdef.tmp",  # not this folder's
                     root / f".{KEY}.0123456789abcdef.tmp",  # not in its key's folder
                     root / "bd" / f".{KEY}.0123456789abcdef.tmp.bak",
                     root / "models" / f".{LIMIT_FILE}.0123456789abcdef.tmp"],
    }  # fmt: skip
    for path in files["stale"] + files["not ours"]:
        aged(path, stale)
    for path in files["fresh"]:
        aged(path, fresh)
    return files


def test_a_store_written_to_removes_the_partial_files_killed_writes_left_over_an_hour_ago(
    tmp_path, caplog
):
    """`kill -9` while an entry (or the bound's record) is written leaves its temp file, up to
    a whole entry, which nothing removed: the first write of a store, bounded or not, removes
    those over an hour old (the output folder's rule); a younger one may be a live writer's."""
    for bound in (None, 10 << 20):
        files = killed_writes(tmp_path)
        store = DiskCache(tmp_path, max_bytes=bound)
        assert (store.usage().partials, store.usage().partial_bytes) == (3, 3000)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="latentgraph.files"):
            store.put(f"a{bound is None:d}" + "1" * 62, ([1],), None)
        assert not any(p.exists() for p in files["stale"])
        assert all(p.exists() for p in files["fresh"] + files["not ours"])
        assert (store.usage().partials, store.usage().partial_bytes) == (1, 1000)
        assert sorted(r.getMessage() for r in caplog.records) == [
            f"removed 1 partial file(s) a killed cache write left in {tmp_path / 'bd'}: "
            f"{files['stale'][0].name}",
            f"removed 1 partial file(s) a killed cache write left in {tmp_path}: "
            f"{files['stale'][1].name}"]  # fmt: skip


def test_trimming_removes_the_stale_partial_files_too(tmp_path):
    store = DiskCache(tmp_path, max_bytes=10 << 20)
    store.put("aa" + "1" * 62, ([1],), None)  # its first write is behind it
    files = killed_writes(tmp_path)
    store.trim(10 << 20)
    assert not any(p.exists() for p in files["stale"])
    assert all(p.exists() for p in files["fresh"] + files["not ours"])


def test_clear_removes_every_partial_file_and_says_so(tmp_path):
    """`cache clear` said it emptied the store and left the temp files (and their folder):
    it removes them all, younger ones too (asked for, and a just-killed run's is young)."""
    store = DiskCache(tmp_path)
    store.put("aa" + "1" * 62, ([1],), None)
    entry = store.path("aa" + "1" * 62).stat().st_size
    files = killed_writes(tmp_path)
    assert store.clear().removed == Held(entries=1, bytes=entry, partials=3, partial_bytes=3000)
    assert not any(p.exists() for p in files["stale"] + files["fresh"])
    assert all(p.exists() for p in files["not ours"])
    assert not (tmp_path / "aa").exists()
    (tmp_path / "bd" / ".notes.txt.0123456789abcdef.tmp").unlink()
    (tmp_path / "bd" / f".{'ce' + KEY[2:]}.0123456789abcdef.tmp").unlink()
    (tmp_path / "bd" / f".{KEY}.0123456789abcdef.tmp.bak").unlink()
    aged(tmp_path / "bd" / f".{KEY}.0123456789abcdef.tmp", 0)
    assert store.clear().removed == Held(entries=0, bytes=0, partials=1, partial_bytes=1000)
    assert not (tmp_path / "bd").exists()  # the folder a partial file alone kept


def test_clear_counts_only_what_it_removed_and_says_why_it_left_the_rest(tmp_path, monkeypatch):
    """A store that refuses removals (a read-only mount) was said to be emptied: `clear`
    counted every entry it found, removed or not. It counts those it removed, gives the ones it
    could not with why in words, and counts none another process removed first (two clears at
    once each counted every entry)."""
    import errno

    store = DiskCache(tmp_path)
    keys = {name: name * 32 for name in ("aa", "bb", "cc")}  # refused, gone meanwhile, removed
    for key in keys.values():
        store.put(key, ([key],), None)
    size = {name: store.path(key).stat().st_size for name, key in keys.items()}
    aged(tmp_path / "aa" / f".{keys['aa']}.0123456789abcdef.tmp", 0, size=700)
    unlink = os.unlink

    def machine(path, *args, **kwargs):
        if os.path.basename(path).startswith(".") or keys["aa"] in str(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        if keys["bb"] in str(path):
            unlink(path)  # another clear's, between this one's listing and its removal
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", machine)
    cleared = store.clear()
    assert cleared.removed == Held(entries=1, bytes=size["cc"], partials=0, partial_bytes=0)
    assert cleared.left == Held(entries=1, bytes=size["aa"], partials=1, partial_bytes=700)
    assert cleared.why == "the folder is on a read-only file system (Read-only file system)"
    assert [p.name for p in entry_files(tmp_path)] == [f".{keys['aa']}.0123456789abcdef.tmp",
                                                        keys["aa"]]  # fmt: skip
    monkeypatch.undo()
    again = store.clear()
    assert again.left == Held(entries=0, bytes=0, partials=0, partial_bytes=0) and again.why is None
    assert again.removed == Held(entries=1, bytes=size["aa"], partials=1, partial_bytes=700)


def test_a_bound_the_store_cannot_be_trimmed_to_is_said_once_and_not_written_past(tmp_path,
                                                                                monkeypatch):  # fmt: skip
    """On a store whose entries cannot be removed (a read-only mount: `os.unlink` refused) the
    trim counted each entry it tried as gone, so the cache believed the store under its bound
    and wrote on past it, silently. It counts only what it removed and stops at the first
    refusal; the cache keeps the rest in memory and says so once, as for a store it cannot
    write."""
    import errno

    probe = DiskCache(tmp_path / "probe")
    probe.put("00" + "0" * 62, ("x" * 500,), None)
    entry = probe.total_bytes()
    store = tmp_path / "store"
    told: list[str] = []
    cache = Cache(disk_dir=store, disk_bytes=entry * 2, on_disk_error=told.append)
    keys = [f"{i:064x}" for i in range(6)]
    cache.put(keys[0], ("x" * 500,), None)
    cache.put(keys[1], ("x" * 500,), None)
    unlink = os.unlink

    def machine(path, *args, **kwargs):  # the OS refusing the entries' removal, only that
        if os.path.basename(path) in keys:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", machine)
    assert DiskCache(store, max_bytes=1).trim(0) == 2 * entry  # none removed, none counted
    for key in keys[2:]:
        cache.put(key, ("x" * 500,), None)
    assert told == [f"the disk cache at {store} is over its bound and its entries cannot be "
                    "removed (Read-only file system); results are kept in memory only, not for "
                    "later runs (said once)"]  # fmt: skip
    assert [p.name for p in entry_files(store)] == keys[:3]  # the one whose write found it out
    assert cache.stats["disk_errors"] == 4
    assert all(cache.get(key) == (("x" * 500,), None, ()) for key in keys)
