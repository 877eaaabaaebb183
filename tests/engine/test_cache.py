"""The cache on its own: keys, codecs, memory LRU by bytes, disk store robustness."""

from __future__ import annotations

import os
import threading
from dataclasses import replace

import pytest

from latentgraph.graph import INT, Int, NodeType, Output, Settings
from latentgraph.graph.cache import (
    DEFAULT_DISK_BYTES,
    LIMIT_FILE,
    Cache,
    Codec,
    DiskCache,
    MemoryCache,
    codec_for,
    node_key,
    register_codec,
)

T = NodeType("T", fn=lambda ctx: 0, inputs=(Int("a", 0),), outputs=(Output("v", INT),))
S = Settings()


def test_node_key_changes_with_each_part():
    base = node_key(T, {"a": 1, "b": "x"}, {"x": "k1:0"}, S)
    assert base == node_key(T, {"b": "x", "a": 1}, {"x": "k1:0"}, S)  # order of keys is irrelevant
    assert len(base) == 64 and int(base, 16) >= 0
    variants = {
        node_key(T, {"a": 2, "b": "x"}, {"x": "k1:0"}, S),
        node_key(T, {"a": 1, "b": "x"}, {"x": "k1:1"}, S),  # other output of the same parent
        node_key(T, {"a": 1, "b": "x"}, {"x": "k2:0"}, S),
        node_key(T, {"a": 1, "b": "x"}, {"y": "k1:0"}, S),  # same parent on another input
        node_key(replace(T, version=2), {"a": 1, "b": "x"}, {"x": "k1:0"}, S),
        node_key(replace(T, name="U"), {"a": 1, "b": "x"}, {"x": "k1:0"}, S),
        node_key(
            replace(T, identity=lambda lits, settings: "file@1"),
            {"a": 1, "b": "x"},
            {"x": "k1:0"},
            S,
        ),
        node_key(T, {"a": 1.0, "b": "x"}, {"x": "k1:0"}, S),  # 1 and 1.0 are different literals
    }
    assert base not in variants and len(variants) == 8


def test_node_key_identity_reads_the_settings_it_is_given(tmp_path):
    """An identity hook sees the run's settings (e.g. the input folder a file is read from)."""
    folder = replace(T, identity=lambda lits, settings: str(settings.input_dir))
    one = node_key(folder, {"a": 1}, {}, Settings(input_dir=tmp_path / "one"))
    assert one == node_key(folder, {"a": 1}, {}, Settings(input_dir=tmp_path / "one"))
    assert one != node_key(folder, {"a": 1}, {}, Settings(input_dir=tmp_path / "two"))


def test_memory_lru_evicts_least_recently_used_by_bytes():
    m = MemoryCache(max_bytes=300)
    m.put("a", ("A",), None, size=100)
    m.put("b", ("B",), None, size=100)
    m.put("c", ("C",), None, size=100)
    assert m.get("a") == (("A",), None, ())  # a is now most recent; b is the oldest
    m.put("d", ("D",), None, size=100)
    assert m.get("b") is None
    assert [m.get(k) is not None for k in "acd"] == [True, True, True]
    assert m.bytes == 300 and m.evictions == 1
    assert m.put("huge", ("H",), None, size=301) is False  # larger than the bound: not kept
    assert m.get("a") is not None and m.bytes == 300


def test_cache_sizes_values_with_their_codec():
    register_codec(
        Codec("fixed-size-test", handles=lambda v: isinstance(v, bytearray), size=lambda v: 1000)
    )
    c = Cache(memory_bytes=2500)
    for i in range(3):
        c.put(f"{i:064x}", (bytearray(1),), None)
    assert c.memory.bytes == 2000 and c.get(f"{0:064x}") is None
    assert c.stats["misses"] == 1


def test_later_codec_registration_wins():
    first = Codec("pick-a", handles=lambda v: isinstance(v, complex), size=lambda v: 1)
    second = Codec("pick-b", handles=lambda v: isinstance(v, complex), size=lambda v: 2)
    register_codec(first)
    register_codec(second)
    assert codec_for(1j) is second
    assert codec_for([1, "a", {"b": None}]).name == "json"
    assert codec_for({1: "int keys"}) is None  # not plain JSON: memory only


def test_disk_roundtrip_and_second_instance_hits(tmp_path):
    key = "ab" + "0" * 62
    Cache(disk_dir=tmp_path).put(key, (1, "two", [3.5, None]), {"images": [{"filename": "x"}]}, ())
    assert (tmp_path / "ab" / key).is_file()
    other = Cache(disk_dir=tmp_path)
    assert other.get(key) == ((1, "two", [3.5, None]), {"images": [{"filename": "x"}]}, ())
    assert other.stats == {"hits": 1, "misses": 0, "disk_hits": 1, "puts": 0, "disk_errors": 0}
    assert other.get(key) is not None and other.stats["disk_hits"] == 1  # now from memory


def test_memory_only_values_never_reach_disk(tmp_path):
    c = Cache(disk_dir=tmp_path)
    c.put("cd" + "0" * 62, (object(),), None)
    c.put("ce" + "0" * 62, (1,), {"not json": object()})
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    assert c.get("cd" + "0" * 62) is not None  # memory still has it


def test_corrupt_or_truncated_entries_are_misses_and_removed(tmp_path):
    c = Cache(disk_dir=tmp_path)
    keys = [f"{i:02x}" + "1" * 62 for i in range(4)]
    for k in keys:
        c.put(k, ([1, 2, 3], "some text"), None)
    paths = [tmp_path / k[:2] / k for k in keys]
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[:-3])  # truncated
    paths[1].write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # flipped bits in a blob
    paths[2].write_bytes(b"garbage")
    paths[3].write_bytes(b"")
    fresh = Cache(disk_dir=tmp_path)
    assert [fresh.get(k) for k in keys] == [None] * 4
    assert not any(p.exists() for p in paths)
    assert fresh.stats["misses"] == 4


def test_unknown_codec_on_disk_is_a_miss(tmp_path):
    register_codec(
        Codec(
            "gone-later",
            handles=lambda v: isinstance(v, bytes),
            size=len,
            encode=lambda v: v,
            decode=lambda b: b,
        )  # fmt: skip
    )
    c = Cache(disk_dir=tmp_path)
    key = "ef" + "2" * 62
    c.put(key, (b"raw",), None)
    path = tmp_path / "ef" / key
    path.write_bytes(path.read_bytes().replace(b"gone-later", b"gone-xxxxx"))
    assert Cache(disk_dir=tmp_path).get(key) is None and not path.exists()


def test_disk_bound_trims_least_recently_used(tmp_path):
    d = DiskCache(tmp_path, max_bytes=None)
    keys = [f"{i:02x}" + "3" * 62 for i in range(6)]
    for i, k in enumerate(keys):
        d.put(k, ("x" * 1000,), None)
        os.utime(d.path(k), (1000 + i, 1000 + i))
    entry = d.path(keys[0]).stat().st_size
    d.get(keys[0])  # touched: now the most recent
    bounded = DiskCache(tmp_path, max_bytes=entry * 4)
    bounded.put("ff" + "3" * 62, ("x" * 1000,), None)
    left = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert left == {keys[0], keys[4], keys[5], "ff" + "3" * 62, LIMIT_FILE}
    assert bounded.total_bytes() <= entry * 4


def test_bad_key_cannot_escape_the_directory(tmp_path):
    d = DiskCache(tmp_path / "store")
    for key in ["../../etc/passwd", "", "AB" * 32]:
        try:
            d.path(key)
        except ValueError:
            continue
        raise AssertionError(f"accepted {key!r}")


def test_cache_is_safe_from_several_threads(tmp_path):
    """Each thread reads back exactly what it wrote, from memory or (once evicted) from disk."""
    c = Cache(memory_bytes=5_000, disk_dir=tmp_path)
    errors = []

    def work(t):
        try:
            for i in range(200):
                k = f"{t:02x}{i % 50:062x}"  # this thread's own keys, each rewritten 4 times
                c.put(k, ([t, i],), None)
                assert c.get(k) == (([t, i],), None, ())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert c.memory.bytes == sum(s for *_, s in c.memory._items.values())
    assert c.memory.bytes <= 5_000 and c.memory.evictions > 0
    for t in range(4):  # the last write of every key, most of them evicted to disk by now
        assert [c.get(f"{t:02x}{j:062x}") for j in range(50)] == [
            (([t, 150 + j],), None, ()) for j in range(50)
        ]
    assert c.stats["disk_hits"] > 0


def test_a_failing_codec_does_not_fail_the_put(tmp_path):
    def boom(v):
        raise RuntimeError("encoder bug")

    register_codec(Codec("broken", handles=lambda v: isinstance(v, frozenset), size=len,
                         encode=boom, decode=lambda b: frozenset()))  # fmt: skip
    c = Cache(disk_dir=tmp_path)
    c.put("aa" + "4" * 62, (frozenset({1}),), None)
    assert c.get("aa" + "4" * 62) == ((frozenset({1}),), None, ()) and c.stats["disk_errors"] == 1
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # no temp file left behind


@pytest.mark.parametrize("given", [{"memory_bytes": -5}, {"memory_bytes": 0},
                                   {"disk_bytes": -1}, {"memory_bytes": 1.5},
                                   {"disk_bytes": True}])  # fmt: skip
def test_cache_refuses_a_bound_below_one_as_settings_does(tmp_path, given):
    """A bound is a limit like Settings' (`context.limit_value`): a ValueError naming it."""
    name, value = next(iter(given.items()))
    with pytest.raises(ValueError, match=rf"^Cache {name}: expected an integer of at least 1, "
                       rf"got {value!r}$"):  # fmt: skip
        Cache(disk_dir=tmp_path, **given)
    assert Cache(memory_bytes=1, disk_dir=tmp_path, disk_bytes=None).disk.max_bytes is None


def test_a_disk_that_cannot_be_written_is_told_once_naming_the_folder_and_reason(tmp_path):
    """A full disk skips the store (the run goes on, memory keeps the values), and the first
    failure is told once, with the folder and the OS's reason, not once per entry."""
    told: list[str] = []
    c = Cache(disk_dir=tmp_path / "store", on_disk_error=told.append)

    def full(key, values, ui, said):
        raise OSError(28, "No space left on device")

    c.disk.put = full
    for i in range(5):
        c.put(f"{i:02x}" + "5" * 62, ([i],), None)
    assert c.stats["disk_errors"] == 5 and c.get("03" + "5" * 62) == (([3],), None, ())
    assert told == [f"the disk cache at {tmp_path / 'store'} cannot be written (No space left "
                    "on device); results are kept in memory only, not for later runs (said "
                    "once)"]  # fmt: skip


def test_the_store_records_the_bound_it_was_written_with(tmp_path):
    """`latentgraph cache` reads the bound a store was last written with (LIMIT_FILE)."""
    store = DiskCache(tmp_path, max_bytes=5 << 20)
    assert store.recorded_limit() == (False, None)
    store.put("ab" + "6" * 62, ([1],), None)
    assert DiskCache(tmp_path).recorded_limit() == (True, 5 << 20)
    DiskCache(tmp_path, max_bytes=None).put("ac" + "6" * 62, ([1],), None)
    assert DiskCache(tmp_path).recorded_limit() == (True, None)
    store.clear()
    assert list(tmp_path.iterdir()) == [tmp_path / LIMIT_FILE]


def test_the_bound_recorded_stays_through_a_clear_while_its_writer_goes_on(tmp_path):
    """`serve --cache-disk-mb 500` records its bound once; `cache clear` (another process)
    removed the record, and `latentgraph cache` then reported the default 10 GiB while the
    server went on writing with 500 MiB. The record stays through a clear."""
    serving = DiskCache(tmp_path, max_bytes=500 << 20)
    serving.put("ab" + "7" * 62, ([1],), None)
    DiskCache(tmp_path, max_bytes=DEFAULT_DISK_BYTES).clear()  # `latentgraph cache clear`
    serving.put("ac" + "7" * 62, ([2],), None)
    assert DiskCache(tmp_path).recorded_limit() == (True, 500 << 20)
