"""The disk store over time: silent corruption, its byte budget, and concurrent rewrites."""

from __future__ import annotations

import os
import threading

import pytest

from latentgraph.graph.cache import Cache, DiskCache

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
