"""Cache keys and the two-tier output cache (memory LRU bounded in bytes + on-disk store).

A node's key is built from its own literals and its parents' keys only, so keys cost O(1) per
node however deep the graph. Values reach disk only through a `Codec` that can encode them;
everything else (loaded models, handles) lives in memory only. Other packages register codecs
for their value types (latents, conditioning, images) with `register_codec`.

Disk entry layout (one file per node, all its outputs together):

    b"LGC1" | u32 header length | header JSON | blob 0 | blob 1 | ...

with header {"codecs": [name per output], "sizes": [bytes per blob], "crc": crc32 of the ui
(canonical JSON), the warnings (when there are any) and the blobs, "ui": ui dict or null,
"warnings": [[origin key or null, message], ...], only when there are any}. A file that does not
parse, is short, or fails its CRC is a miss and is deleted. An entry written before warnings
were kept has none, and its CRC is the same as then.

An entry keeps, beside its values and ui, the warnings behind them (`Said`): what the node and
the nodes it was computed from said when they ran (`Context.warn`), so a run served from the
cache says them again (the scheduler's `_Run.replay`).
"""

from __future__ import annotations

import copy
import ctypes
import gc
import hashlib
import json
import logging
import os
import stat
import sys
import threading
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import Settings, limit_value
from .declare import NodeType
from .files import os_error_words, remove_stale_partials, write_file, write_temp_target
from .socket_checks import size_limits

_MAGIC = b"LGC1"
# The warnings behind a cached entry: (the cache key of the node that said it, or None when
# that node had none, its message), in the order said, each once.
Said = tuple[tuple[str | None, str], ...]
# The file in a disk store's folder recording the bound it was last written with (JSON
# {"max_bytes": N or null}), so `latentgraph cache` can show the limit the store keeps to.
LIMIT_FILE = "limit.json"


@dataclass(frozen=True)
class Codec:
    """How one kind of value is sized, serialized and content-hashed.

    `encode`/`decode` None means memory-only. `digest` gives a content hash used as the
    downstream key of non-deterministic nodes (so an identical output still hits).
    """

    name: str
    handles: Callable[[Any], bool]
    size: Callable[[Any], int]
    encode: Callable[[Any], bytes] | None = None
    decode: Callable[[bytes], Any] | None = None
    digest: Callable[[Any], str] | None = None


_codecs: list[Codec] = []
_codecs_by_name: dict[str, Codec] = {}
_codec_lock = threading.Lock()


def register_codec(codec: Codec) -> None:
    """Add a codec; later registrations win over earlier ones (and over a same-named one)."""
    with _codec_lock:
        _codecs[:] = [c for c in _codecs if c.name != codec.name]
        _codecs.insert(0, codec)
        _codecs_by_name[codec.name] = codec


def codec_for(value: Any) -> Codec | None:
    """The most recently registered codec that handles `value`, or None."""
    for codec in _codecs:
        try:
            if codec.handles(value):
                return codec
        except Exception:  # a broken `handles` must not break a run
            continue
    return None


_IMMUTABLE = frozenset({int, float, str, bool, bytes, type(None)})


def handed_out(value: Any) -> Any:
    """`value` as given to a caller outside the engine: a copy of what a codec can write to disk
    (a tensor, a latent, JSON data; in a list, tuple or dict too), so changing it in place
    leaves what the cache holds, and later runs are served, as it was. Memory-only values
    (loaded models, handles) are the shared objects themselves: too big to copy, read-only."""
    if type(value) in _IMMUTABLE:  # the common case, asked of every input a plugin node gets
        return value
    codec = codec_for(value)
    if codec is not None:
        return copy.deepcopy(value) if codec.encode is not None else value
    if isinstance(value, (list, tuple)):
        return type(value)(handed_out(v) for v in value)
    if isinstance(value, dict):
        return {k: handed_out(v) for k, v in value.items()}
    return value


def codec_named(name: str) -> Codec | None:
    return _codecs_by_name.get(name)


def value_size(value: Any) -> int:
    """Bytes `value` holds in memory: from its codec, else sys.getsizeof."""
    codec = codec_for(value)
    if codec is not None:
        try:
            return int(codec.size(value))
        except Exception:
            pass
    try:
        return sys.getsizeof(value)
    except Exception:
        return 64


def value_digest(value: Any) -> str | None:
    """A content hash of `value` prefixed with its codec name, or None if no codec can hash it."""
    codec = codec_for(value)
    if codec is None or codec.digest is None:
        return None
    return f"{codec.name}:{codec.digest(value)}"


# --- the built-in JSON codec ----------------------------------------------------------------


_SCALARS = (type(None), bool, int, float, str)


def _is_plain(value: Any) -> bool:
    """None/bool/int/float/str, and lists/dicts (str keys) of those. Iterative: no recursion."""
    if type(value) in _SCALARS:
        return True
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) in _SCALARS:
            continue
        if type(v) is list:
            stack.extend(v)
        elif type(v) is dict:
            for k, item in v.items():
                if type(k) is not str:
                    return False
                stack.append(item)
        else:
            return False
    return True


_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# Keys must not fail on odd literals (paths, tuples): repr is stable enough for those.
_CANON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)


def _json_dumps(value: Any) -> str:
    return _JSON.encode(value)


def _json_size(value: Any) -> int:
    if type(value) in _SCALARS:
        return sys.getsizeof(value)
    return sys.getsizeof(value) + len(_json_dumps(value))


JSON_CODEC = Codec(
    name="json",
    handles=_is_plain,
    size=_json_size,
    encode=lambda v: _json_dumps(v).encode(),
    decode=lambda b: json.loads(b.decode()),
    digest=lambda v: hashlib.sha256(_json_dumps(v).encode()).hexdigest(),
)
register_codec(JSON_CODEC)


# --- keys -----------------------------------------------------------------------------------


def link_key(parent_key: str, output_index: int) -> str:
    """What `node_key` expects per linked input: the parent's key and the output it reads."""
    return f"{parent_key}:{output_index}"


def node_key(
    node_type: NodeType,
    literals: dict,
    parent_keys: dict[str, str],
    settings: Settings,
    extra: dict | None = None,
    code: str | None = None,
) -> str:
    """sha256 over type, version, the digest of its code (`code`: the run's digest of
    `NodeType.code`, taken once per run per type; by default taken here), canonical
    literals (canonical JSON of `NodeType.key_literals`: an input declaring `canonical` in
    the form its hook gives, so every spelling of one file is one key), the identity hook
    (given the literals as written; it reads files from the folders `settings` name), the
    entries of the run's `extra` the node embeds (`NodeType.embeds`) and linked inputs.

    `parent_keys` maps each linked input name to `link_key(parent key, output index)`.
    Parts are joined with NUL, which canonical JSON never contains unescaped.
    """
    keyed = _CANON.encode(node_type.key_literals(literals, settings)) if literals else "{}"
    if code is None:
        code = node_type.code.digest()
    parts = [node_type.name, str(node_type.version), code, keyed]
    if node_type.identity is not None:
        parts.append("\x01identity=" + str(node_type.identity(literals, settings)))
    if node_type.embeds:
        embedded = {k: (extra or {}).get(k) for k in node_type.embeds}
        parts.append("\x01embeds=" + _CANON.encode(embedded))
    limits = size_limits(node_type, settings)
    if limits:
        parts.append("\x01limits=" + _CANON.encode(limits))
    for name in sorted(parent_keys):
        parts.append(f"{name}={parent_keys[name]}")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def content_key(digests: list[str]) -> str:
    """Downstream key of a non-deterministic node, from its outputs' content digests."""
    h = hashlib.sha256(b"content\0")
    for d in digests:
        h.update(d.encode())
        h.update(b"\0")
    return h.hexdigest()


# --- memory tier ----------------------------------------------------------------------------


class MemoryCache:
    """LRU of (values, ui, warnings) by key, bounded by the summed byte size of the values."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[tuple, dict | None, Said, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0
        _memory_caches.add(self)

    def discard(self, holds: Callable[[Any], bool]) -> int:
        """Drop the entries with a value for which `holds(value)` is true; how many."""
        with self._lock:
            gone = [k for k, (values, *_) in self._items.items() if any(map(holds, values))]
            for k in gone:
                self.bytes -= self._items.pop(k)[3]
        return len(gone)

    def get(self, key: str) -> tuple[tuple, dict | None, Said] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0], item[1], item[2]

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: str, values: tuple, ui: dict | None, said: Said = (),
            size: int | None = None) -> bool:  # fmt: skip
        """Store unless the entry alone exceeds the bound; evict least recently used to fit."""
        if size is None:
            size = sum(value_size(v) for v in values)
        if size > self.max_bytes:
            return False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[3]
            self._items[key] = (values, ui, said, size)
            self.bytes += size
            while self.bytes > self.max_bytes and self._items:
                _, (_, _, _, s) = self._items.popitem(last=False)
                self.bytes -= s
                self.evictions += 1
        return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


_memory_caches: weakref.WeakSet[MemoryCache] = weakref.WeakSet()


def forget_values(holds: Callable[[Any], bool]) -> int:
    """Drop, from every memory cache in this process, the entries holding a value for which
    `holds(value)` is true. The model manager calls it when it unloads a model: a cached
    loader output (a model handle) would otherwise keep the unloaded weights alive."""
    return sum(c.discard(holds) for c in list(_memory_caches))


# --- disk tier ------------------------------------------------------------------------------


# One file of a disk store: (mtime, size, path).
_Found = tuple[float, int, Path]


@dataclass(frozen=True)
class Held:
    """What a disk store holds (`DiskCache.usage`), or what `DiskCache.clear` removed: its
    entries and their bytes, and its partial files (the temp file of a write to it, left by a
    process killed while it wrote, or a live writer's) and theirs. Read by name: `cache` and
    `cache clear` (app/) print it."""

    entries: int
    bytes: int
    partials: int
    partial_bytes: int


@dataclass(frozen=True)
class StoreCleared:
    """What `DiskCache.clear` did: the entries and partial files this call removed
    (`removed`), and those it could not (`left`: a read-only mount, a folder the user may not
    write), with why in words (`why`, the first refusal's, `files.os_error_words`; None when
    nothing was left). A file another process removed meanwhile (a clear run at the same time)
    is in neither: this call did not remove it."""

    removed: Held
    left: Held
    why: str | None = None


class StoreOverBound(OSError):
    """A bounded store's trim could not remove an entry (a read-only mount, a folder the user
    may not write), with the OS's error: the store cannot be kept to its bound, so the
    `DiskCache` writes no more to it (`Cache` keeps results in memory, said once, as for a
    store it cannot write)."""


class DiskCache:
    """One file per key under `<dir>/<key[:2]>/<key>`, written atomically, trimmed by mtime.

    Safe to share between processes: writes go through a temp file and os.replace, readers
    treat anything unparsable as a miss. `max_bytes` None means unbounded.

    A process killed while it writes (`kill -9`, a worker past its interrupt grace) leaves its
    temp file (`write_file`'s `.<key>.<16 hex>.tmp`, up to a whole entry). They are the store's
    partial files (`_scan`): removed once an hour old, by the rule of the output and input
    folders' (`files.remove_stale_partials`), at an instance's first write and at each trim;
    `clear` removes them all, `usage` counts them. The bound counts entries only: a younger
    partial file is a live writer's (soon an entry) or one killed within the hour.

    A store whose entries cannot be removed cannot be kept to its bound: the first trim that
    meets one stops there, and every later `put` raises its `StoreOverBound` unwritten.
    """

    def __init__(self, directory: Path, max_bytes: int | None = None) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self._bytes: int | None = None  # estimate, computed on first write
        self._lock = threading.Lock()
        self._written = False  # this instance wrote to the store: `_first_write` was done
        # (errno, strerror, path) of the entry a trim could not remove, `_refuse_over_bound`
        self._over_bound: tuple[int | None, str | None, str] | None = None

    def _first_write(self) -> None:
        """Once, at this instance's first write: write `LIMIT_FILE` (the store then says the
        bound it keeps to, `recorded_limit`, whichever command last wrote to it) and remove
        the partial files killed writes left over an hour ago (`_scan`), bounded or not; the
        entries' bytes found then start the bound's count (`_account`)."""
        if self._written:
            return
        self._written = True
        text = json.dumps({"max_bytes": self.max_bytes}).encode()
        write_file(self.dir / LIMIT_FILE, lambda tmp: tmp.write_bytes(text))
        entries, _ = self._scan(sweep=True)
        if self.max_bytes is not None:
            with self._lock:
                if self._bytes is None:
                    self._bytes = sum(size for _, size, _ in entries)

    def recorded_limit(self) -> tuple[bool, int | None]:
        """(found, bound) from `LIMIT_FILE`: the bound the store was last written with (None:
        unbounded); (False, None) when no readable record is there."""
        try:
            bound = json.loads((self.dir / LIMIT_FILE).read_text())["max_bytes"]
        except (OSError, ValueError, TypeError, KeyError):
            return False, None
        if bound is None or (type(bound) is int and bound >= 1):
            return True, bound
        return False, None

    def path(self, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"bad cache key {key!r}: expected lowercase hex")
        return self.dir / key[:2] / key

    @staticmethod
    def encodable(values: tuple, ui: dict | None) -> list[Codec] | None:
        codecs = []
        for v in values:
            codec = codec_for(v)
            if codec is None or codec.encode is None or codec.decode is None:
                return None
            codecs.append(codec)
        if ui is not None and not _is_plain(ui):
            return None
        return codecs

    def put(self, key: str, values: tuple, ui: dict | None, said: Said = ()) -> bool:
        self._refuse_over_bound()
        codecs = self.encodable(values, ui)
        if codecs is None:
            return False
        blobs = [c.encode(v) for c, v in zip(codecs, values, strict=True)]  # type: ignore[misc]
        fields: dict[str, Any] = {
            "codecs": [c.name for c in codecs],
            "sizes": [len(b) for b in blobs],
            "crc": _checksum(ui, said, blobs),
            "ui": ui,
        }
        if said:
            fields["warnings"] = [list(w) for w in said]
        header = json.dumps(fields).encode()

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                f.write(_MAGIC)
                f.write(len(header).to_bytes(4, "big"))
                f.write(header)
                for b in blobs:
                    f.write(b)

        self._first_write()
        write_file(self.path(key), save)
        written = 8 + len(header) + sum(len(b) for b in blobs)
        self._account(written)
        return True

    def get(self, key: str) -> tuple[tuple, dict | None, Said] | None:
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            result = self._parse(data)
        except Exception:
            result = None
        if result is None:
            self._remove(path)
            return None
        try:
            os.utime(path)  # LRU by mtime
        except OSError:
            pass
        return result

    @staticmethod
    def _parse(data: bytes) -> tuple[tuple, dict | None, Said] | None:
        if len(data) < 8 or data[:4] != _MAGIC:
            return None
        n = int.from_bytes(data[4:8], "big")
        header = json.loads(data[8 : 8 + n].decode())
        pos = 8 + n
        sizes = header["sizes"]
        if len(data) != pos + sum(sizes) or len(sizes) != len(header["codecs"]):
            return None
        said = tuple((origin, message) for origin, message in header.get("warnings", ()))
        if _checksum(header["ui"], said, [data[pos:]]) != header["crc"]:
            return None
        values = []
        for name, size in zip(header["codecs"], sizes, strict=True):
            codec = codec_named(name)
            if codec is None or codec.decode is None:
                return None
            values.append(codec.decode(data[pos : pos + size]))
            pos += size
        return tuple(values), header["ui"], said

    def _remove(self, path: Path) -> OSError | None:
        """Remove one file of the store: None when removed, else the `OSError` that stopped it
        (a `FileNotFoundError`: another process removed it first)."""
        try:
            path.unlink()
        except OSError as exc:
            return exc
        return None

    def _scan(self, sweep: bool = False) -> tuple[list[_Found], list[_Found]]:
        """(entries, partial files) the store holds. An entry is a file named by its key in
        the folder named by the key's first two characters (`path`); a partial file is the
        temp file a write of one (there) or of `LIMIT_FILE` (in the store's folder) left
        (`_partial_in`). Nothing else is either, so trimming and clearing leave other files
        alone (a `--cache-dir` given the cache root holds the built tiny models beside the
        entries). `sweep`: the partial files over an hour old are removed first, and logged
        (`files.remove_stale_partials`, the one rule for partial files)."""
        entries: list[_Found] = []
        partials: list[_Found] = []
        for folder, prefix in self._folders():
            try:
                names = os.listdir(folder)
            except OSError:  # gone meanwhile (another process's clear)
                continue
            partial = _partial_in(prefix)
            gone: set[str] = set()
            if sweep:
                gone = set(remove_stale_partials(folder, names, partial=partial,
                                                 left_by="a killed cache write"))  # fmt: skip
            for name in names:
                path = folder / name
                try:
                    if prefix is not None and _is_entry(name, prefix):
                        st = path.stat()
                        entries.append((st.st_mtime, st.st_size, path))
                    elif name not in gone and partial(name):
                        st = path.lstat()
                        if stat.S_ISREG(st.st_mode):
                            partials.append((st.st_mtime, st.st_size, path))
                except OSError:
                    continue
        return entries, partials

    def _folders(self) -> list[tuple[Path, str | None]]:
        """The store's folder (prefix None) and each folder named by a key's first two
        characters (prefix: its name), where `_scan` looks."""
        if not self.dir.is_dir():
            return []
        found: list[tuple[Path, str | None]] = [(self.dir, None)]
        try:
            for sub in self.dir.iterdir():
                if len(sub.name) == 2 and _is_key(sub.name) and sub.is_dir():
                    found.append((sub, sub.name))
        except OSError:
            pass
        return found

    def total_bytes(self) -> int:
        return self.usage().bytes

    def usage(self) -> Held:
        """What the store holds (`latentgraph cache`): its entries and partial files, each
        with their bytes. Nothing is removed."""
        return _held(*self._scan())

    def _account(self, written: int) -> None:
        if self.max_bytes is None:
            return
        with self._lock:
            if self._bytes is None:
                self._bytes = self.total_bytes()
            else:
                self._bytes += written
            if self._bytes > self.max_bytes:
                self._bytes = self.trim(self.max_bytes)
            self._refuse_over_bound()

    def _refuse_over_bound(self) -> None:
        """Raise `StoreOverBound` once a trim could not remove an entry (`trim`): a new one each
        time, as one raised again would keep every earlier raise's traceback."""
        if self._over_bound is not None:
            raise StoreOverBound(*self._over_bound)

    def trim(self, max_bytes: int) -> int:
        """Delete least recently used entries until the store holds at most `max_bytes`, and
        the partial files over an hour old (`_scan`); return the bytes its entries hold then.
        An entry that cannot be removed stops it (the next would fail alike, a read-only
        store's each): it is counted as held, and recorded for `put` (`StoreOverBound`)."""
        entries = sorted(self._scan(sweep=True)[0], key=lambda e: e[0])
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= max_bytes:
                break
            failed = self._remove(path)
            if failed is not None and not isinstance(failed, FileNotFoundError):
                self._over_bound = (failed.errno, failed.strerror, str(path))
                break
            total -= size  # removed, or by another process first: the store holds it no more
        return total

    def clear(self) -> StoreCleared:
        """Delete every entry and every partial file (only those: `_scan`), of any age, and
        each two-hex-digit folder this left empty; return what was removed and what could not
        be, with why (`StoreCleared`). Counts are of files this call removed, not found, so a
        read-only store or a concurrent clear is never over-counted.

        `LIMIT_FILE` stays: its writers record their bound once (`_first_write`). A live
        writer whose partial file goes keeps its entry in memory only and warns once."""
        entries, partials = self._scan()
        removed: tuple[list[_Found], list[_Found]] = ([], [])
        left: tuple[list[_Found], list[_Found]] = ([], [])
        why = None
        for kind, found in enumerate((entries, partials)):
            for item in found:
                failed = self._remove(item[2])
                if failed is None:
                    removed[kind].append(item)
                elif not isinstance(failed, FileNotFoundError):
                    left[kind].append(item)
                    why = why or os_error_words(failed)
        for folder in {path.parent for _, _, path in entries + partials} - {self.dir}:
            try:
                folder.rmdir()  # only an empty folder goes
            except OSError:
                pass
        with self._lock:
            self._bytes = None
        return StoreCleared(_held(*removed), _held(*left), why)


def _held(entries: list[_Found], partials: list[_Found]) -> Held:
    """The `Held` of these entries and partial files (`_scan`'s)."""
    return Held(entries=len(entries), bytes=sum(size for _, size, _ in entries),
                partials=len(partials), partial_bytes=sum(size for _, size, _ in partials))  # fmt: skip


def _is_entry(name: str, prefix: str) -> bool:
    """Whether `name`, in the folder named `prefix`, is an entry's: a key starting so."""
    return _is_key(name) and name.startswith(prefix)


def _partial_in(prefix: str | None) -> Callable[[str], bool]:
    """Which names in a store's folder (`prefix` None) or in the folder named `prefix` are
    partial files: the temp file `write_file` writes (`files.write_temp_target`) of
    `LIMIT_FILE`, or of an entry that folder holds."""

    def partial(name: str) -> bool:
        target = write_temp_target(name)
        if target is None:
            return False
        return target == LIMIT_FILE if prefix is None else _is_entry(target, prefix)

    return partial


def _is_key(name: str) -> bool:
    """A cache key's characters (lowercase hex), as `DiskCache.path` takes them."""
    return bool(name) and all(c in "0123456789abcdef" for c in name)


def _checksum(ui: dict | None, said: Said, blobs: list[bytes]) -> int:
    """CRC32 of the ui (canonical JSON: it lives in the header), the warnings (when there are
    any: an entry without is checked as before they were kept) and the blobs."""
    crc = zlib.crc32(_json_dumps(ui).encode())
    if said:
        crc = zlib.crc32(_json_dumps([list(w) for w in said]).encode(), crc)
    for b in blobs:
        crc = zlib.crc32(b, crc)
    return crc


# --- both tiers -----------------------------------------------------------------------------


# The bounds of a cache made without others: the memory tier's values, and the disk store's
# files (None: unbounded). Past them the least recently used entries go.
DEFAULT_MEMORY_BYTES = 2 << 30
DEFAULT_DISK_BYTES = 10 << 30


_log = logging.getLogger("latentgraph.cache")


class Cache:
    """Memory LRU in front of an optional disk store. Safe to use from several threads.

    The bounds are limits as `Settings`' are (an integer of at least 1, else ValueError;
    `disk_bytes` None: unbounded). A disk store that cannot be written (a full disk), or kept to
    its bound (its entries cannot be removed, `StoreOverBound`), does not fail the run: the
    entry stays in memory, `stats["disk_errors"]` counts it, and the first failure is told once
    to `on_disk_error` (default: this module's logger), naming the folder and the reason: the
    command or server says it once, not per entry.
    """

    def __init__(
        self,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        disk_dir: Path | None = None,
        disk_bytes: int | None = DEFAULT_DISK_BYTES,
        on_disk_error: Callable[[str], None] | None = None,
    ) -> None:
        memory_bytes = limit_value("Cache memory_bytes", memory_bytes)
        if disk_bytes is not None:
            disk_bytes = limit_value("Cache disk_bytes", disk_bytes)
        self.memory = MemoryCache(memory_bytes)
        self.disk = DiskCache(Path(disk_dir), disk_bytes) if disk_dir is not None else None
        self.stats: dict[str, int] = {"hits": 0, "misses": 0, "disk_hits": 0, "puts": 0,
                                      "disk_errors": 0}  # fmt: skip
        self._stats_lock = threading.Lock()
        self._on_disk_error = on_disk_error or _log.warning

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def get(self, key: str) -> tuple[tuple, dict | None, Said] | None:
        """(values, ui, warnings) for `key`, from memory or disk (promoted to memory), or None."""
        found = self.memory.get(key)
        if found is not None:
            self._count("hits")
            return found
        if self.disk is not None:
            found = self.disk.get(key)
            if found is not None:
                self._count("hits")
                self._count("disk_hits")
                self.memory.put(key, *found)
                return found
        self._count("misses")
        return None

    def put(self, key: str, values: tuple, ui: dict | None, said: Said = ()) -> None:
        """Store a node's values and ui with the warnings behind them (`Said`)."""
        self._count("puts")
        self.memory.put(key, values, ui, said)
        if self.disk is not None:
            try:
                self.disk.put(key, values, ui, said)
            except Exception as exc:  # a full disk or a codec bug must not fail the run
                self._disk_failed(exc)

    def _disk_failed(self, exc: Exception) -> None:
        with self._stats_lock:
            self.stats["disk_errors"] += 1
            first = self.stats["disk_errors"] == 1
        if first:
            reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror
                      else f"{type(exc).__name__}: {exc}")  # fmt: skip
            what = ("is over its bound and its entries cannot be removed"
                    if isinstance(exc, StoreOverBound) else "cannot be written")  # fmt: skip
            assert self.disk is not None
            self._on_disk_error(f"the disk cache at {self.disk.dir} {what} ({reason}); "
                                "results are kept in memory only, not for later runs (said once)")  # fmt: skip

    def clear_memory(self) -> None:
        """Empty the memory tier. A loaded model stays loaded (the model manager holds it):
        `release_memory` unloads them too."""
        self.memory.clear()


def release_memory(free_models: Callable[[], None] | None, caches: Iterable[Cache] = ()) -> None:
    """What POST /free does in a server worker and `latentgraph.free()` in a script: every
    model unloaded (`free_models`, the nodes' model manager's, handed in: graph/ imports no
    nodes), the memory tier of `caches` emptied, then the garbage collected and the heap's
    free pages given back to the OS, so the process's memory use drops."""
    if free_models is not None:
        free_models()
    for cache in caches:
        cache.clear_memory()
    gc.collect()
    try:  # glibc keeps freed heap pages until told
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


def disk_store_dir(given: Path | None = None) -> Path:
    """The folder of the disk store: `given` (`--cache-dir DIR`: the entries go directly in
    DIR), else `outputs` in the cache root ($LATENTGRAPH_CACHE_DIR or the user cache folder,
    which also holds the built tiny models beside it). The one rule for `run` and `cache`."""
    if given is not None:
        return Path(given)
    from .paths import cache_dir

    return cache_dir() / "outputs"


def default_cache(disk: bool = True) -> Cache:
    """A cache with the default memory bound and, if `disk`, the user cache dir's store."""
    if not disk:
        return Cache()
    return Cache(disk_dir=disk_store_dir())
