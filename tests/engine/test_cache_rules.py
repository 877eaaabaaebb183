"""The cache's smaller rules, each pinned by a survivor of a mutation run (docs/testing.md):
codec choice and fallbacks, digests, content keys, the memory LRU's accounting, disk parsing."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace

import pytest

from latentgraph.graph import INT, Int, NodeType, Output, Settings
from latentgraph.graph.cache import (
    DEFAULT_DISK_BYTES,
    Cache,
    Codec,
    DiskCache,
    MemoryCache,
    codec_for,
    content_key,
    default_cache,
    forget_values,
    node_key,
    register_codec,
    value_digest,
    value_size,
)

T = NodeType("T", fn=lambda ctx: 0, inputs=(Int("a", 0),), outputs=(Output("v", INT),))
KEY = "ab" + "7" * 62


def bytes_codec(name: str = "raw-bytes-test") -> Codec:
    return Codec(name, handles=lambda v: isinstance(v, bytes), size=len, encode=lambda v: v,
                 decode=lambda b: bytes(b))  # fmt: skip


def test_a_later_codec_wins_over_the_built_in_json_one():
    mine = Codec("int-lists-test", handles=lambda v: type(v) is list, size=lambda v: 1)
    register_codec(mine)
    assert codec_for([1, 2]) is mine and codec_for({"a": 1}).name == "json"


def test_a_registered_codec_decodes_from_disk_in_a_fresh_cache(tmp_path):
    register_codec(bytes_codec())
    Cache(disk_dir=tmp_path).put(KEY, (b"\x00\x01",), {"k": [1]})
    fresh = Cache(disk_dir=tmp_path)
    assert fresh.get(KEY) == ((b"\x00\x01",), {"k": [1]}, ()) and fresh.stats["disk_hits"] == 1
    assert fresh.get(KEY) == ((b"\x00\x01",), {"k": [1]}, ())  # promoted to memory with its ui
    assert fresh.stats["disk_hits"] == 1


def test_value_size_from_codec_else_getsizeof_else_a_guess():
    class NoSize:
        def __sizeof__(self):
            raise TypeError("unsized")

    thing = object()
    assert value_size(thing) == sys.getsizeof(thing)
    assert value_size(NoSize()) == 64
    assert value_size("abc") == sys.getsizeof("abc")
    assert value_size([1, 2, 3]) == sys.getsizeof([1, 2, 3]) + len("[1,2,3]")
    assert value_size(b"12345") == sys.getsizeof(b"12345")  # no codec for bytes by default


def test_value_digest_names_the_codec_and_hashes_the_content():
    assert value_digest([1, 2]) == "json:" + hashlib.sha256(b"[1,2]").hexdigest()
    assert value_digest({"b": 1, "a": 2}) == value_digest({"a": 2, "b": 1})
    assert value_digest(object()) is None
    register_codec(bytes_codec())  # no digest function
    assert value_digest(b"x") is None


def test_content_key_depends_on_every_digest_and_their_boundaries():
    assert content_key(["a", "b"]) == content_key(["a", "b"])
    keys = {content_key(d) for d in (["a", "b"], ["b", "a"], ["ab"], ["a", "b", ""], [])}
    assert len(keys) == 5 and all(len(k) == 64 for k in keys)


def test_identity_hook_sees_the_literals_and_settings(tmp_path):
    seen = []

    def identity(literals, settings):
        seen.append((dict(literals), settings.output_dir))
        return f"{literals['a']}@token"

    node_type = replace(T, identity=identity)
    settings = Settings(output_dir=tmp_path)
    key = node_key(node_type, {"a": 1}, {}, settings)
    assert seen == [({"a": 1}, tmp_path)]
    other = replace(T, identity=lambda literals, s: "1@other")
    assert key != node_key(other, {"a": 1}, {}, settings)


def test_memory_lru_accounting():
    m = MemoryCache(max_bytes=100)
    assert m.put("a", ("A",), None, size=100) is True  # exactly the bound: kept
    assert "a" in m and "b" not in m and m.bytes == 100
    assert m.put("a", ("A2",), {"u": 1}, size=40) is True  # rewriting a key replaces its size
    assert len(m) == 1 and m.bytes == 40 and m.get("a") == (("A2",), {"u": 1}, ())
    m.put("b", ("B",), None, size=60)  # a + b = 100: fits
    m.put("c", ("C",), None, size=60)  # evicts a (still 120), then b
    assert m.evictions == 2 and m.bytes == 60
    m.put("d", ("D",), None, size=60)  # evicts c
    assert m.evictions == 3 and m.bytes == 60 and m.get("d") is not None
    m.clear()
    assert (len(m), m.bytes, m.get("d")) == (0, 0, None)


class Handle:
    """A stand-in for a loaded model's handle held in a cached output."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_forgetting_a_value_drops_every_entry_holding_it_in_every_memory_cache():
    first, second = MemoryCache(max_bytes=1000), MemoryCache(max_bytes=1000)
    first.put("model", (Handle("unet"),), None, size=100)
    first.put("pair", ("text", Handle("unet")), {"u": 1}, size=30)  # one of its values
    first.put("other", (Handle("vae"),), None, size=20)
    second.put("model", (Handle("unet"),), None, size=7)
    second.put("plain", (1, 2), None, size=5)

    def is_unet(value) -> bool:
        return isinstance(value, Handle) and value.name == "unet"

    assert forget_values(is_unet) == 3
    assert ("model" in first, "pair" in first, "other" in first) == (False, False, True)
    assert ("model" in second, "plain" in second) == (False, True)
    assert (first.bytes, second.bytes) == (20, 5)  # the dropped entries' sizes given back
    assert first.discard(is_unet) == 0 and forget_values(is_unet) == 0


def test_a_header_that_does_not_parse_is_a_miss_and_removed(tmp_path):
    store = DiskCache(tmp_path)
    path = store.path(KEY)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"LGC1" + (5).to_bytes(4, "big") + b"{nope" + b"[1]")
    assert store.get(KEY) is None and not path.exists()


def test_disk_clear_and_the_byte_budget_given_to_cache(tmp_path):
    probe = DiskCache(tmp_path / "probe")
    probe.put(KEY, ("x" * 300,), None)
    entry = probe.total_bytes()
    probe.clear()
    assert probe.total_bytes() == 0 and not probe.path(KEY).exists()
    bounded = Cache(disk_dir=tmp_path / "bounded", disk_bytes=entry * 2)
    for i in range(5):
        bounded.put(f"{i:064x}", ("x" * 300,), None)
    assert bounded.disk.total_bytes() <= entry * 2


def test_default_cache_lives_in_the_user_cache_dir(cache_dir):
    assert default_cache(disk=False).disk is None
    cache = default_cache()
    assert cache.disk.dir == cache_dir / "outputs" and cache.disk.max_bytes == DEFAULT_DISK_BYTES


def test_a_disk_cache_in_a_folder_of_ones_own_is_bounded_as_the_default_is(tmp_path):
    """`run --cache-dir DIR` and `latentgraph.run(cache=Cache(disk_dir=DIR))` grew without
    bound, while the user cache dir's store keeps to DEFAULT_DISK_BYTES."""
    assert Cache(disk_dir=tmp_path / "mine").disk.max_bytes == DEFAULT_DISK_BYTES
    assert Cache(disk_dir=tmp_path / "all", disk_bytes=None).disk.max_bytes is None


def test_a_codec_whose_handles_raises_is_skipped_not_fatal():
    def broken(value):
        raise RuntimeError("buggy handles")

    register_codec(Codec("broken-handles-test", handles=broken, size=lambda v: 1))
    assert codec_for([1]).name == "json"


def test_only_plain_json_all_the_way_down_is_json():
    for value in ([object(), 1], [1, [2, object()]], {"a": object()}, {"a": {"b": {1: 2}}}):
        assert codec_for(value) is None, value
    assert codec_for([1, [2.5, None], {"a": {"b": "c"}}]).name == "json"


def test_disk_keys_are_lowercase_hex_only(tmp_path):
    store = DiskCache(tmp_path)
    for key in ("X" * 64, "AB" * 32, "g" * 64):
        with pytest.raises(ValueError, match="expected lowercase hex"):
            store.path(key)


def test_disk_put_says_what_it_stored(tmp_path):
    store = DiskCache(tmp_path)
    write_only = Codec("write-only-test", handles=lambda v: isinstance(v, bytes), size=len,
                       encode=lambda v: v)  # fmt: skip
    read_only = Codec("read-only-test", handles=lambda v: isinstance(v, bytearray), size=len,
                      decode=bytearray)  # fmt: skip
    register_codec(write_only)
    register_codec(read_only)
    assert store.put(KEY, (b"x",), None) is False  # could never be read back
    assert store.put(KEY, (bytearray(b"x"),), None) is False
    assert store.put(KEY, (1,), {"not json": object()}) is False
    assert list(tmp_path.rglob("*")) == []
    assert store.put(KEY, (1,), {"ok": [1]}) is True and store.get(KEY) == ((1,), {"ok": [1]}, ())


def test_a_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    import os

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        DiskCache(tmp_path).put(KEY, ([1, 2],), None)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_memory_keeps_the_ui_without_a_disk():
    cache = Cache()
    cache.put(KEY, (1,), {"images": ["a.png"]})
    assert cache.get(KEY) == ((1,), {"images": ["a.png"]}, ())
