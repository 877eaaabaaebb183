"""Loaded models: each loaded once per process, shared, evicted least-recently-used.

Models are not node outputs to serialize. Loader nodes ask the manager for a key (source
identity + component + `runtime.model_identity`: device, dtype, model-changing options); the
first ask loads, later asks, from any node or run, get the same objects.

Budgets: one for RAM (CPU and MPS models, and CPU-offloaded ones), three quarters of the
machine's RAM unless the `ram_budget_gb` option says, one per CUDA device, sized from
`torch.cuda.mem_get_info` minus a headroom left for activations (`vram_headroom`). Room is
made BEFORE a load (from the caller's estimate, and until the GPU really has that much free),
so the old and the new model are never resident together; after the load, the real size is
checked again. Unloading (eviction, `free()`) also drops the handles that output caches hold
(`graph.cache.forget_values`), collects them, and only then empties torch's CUDA or MPS cache
(`empty_cache`): else the weights would stay alive, referenced by a cached loader output.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_VRAM_HEADROOM = 1 << 30  # bytes kept free on each GPU for activations, VAE decode...
RAM_SHARE = 3 / 4  # of the machine's RAM for models; the rest for the system and activations
UNKNOWN_RAM_BUDGET = 16 << 30  # where the system does not say how much RAM it has (Windows)


@dataclass
class Entry:
    value: Any
    size: int
    device: str


def module_bytes(*modules: Any) -> int:
    """Parameter + buffer bytes of torch modules (None entries, a model's missing part such
    as SD's second text encoder, ignored)."""
    total = 0
    for m in modules:
        if m is None:
            continue
        for t in list(m.parameters()) + list(m.buffers()):
            total += t.numel() * t.element_size()
    return total


def machine_ram() -> int | None:
    """Bytes of RAM this machine has (on a Mac also the GPU's: MPS memory is unified), or
    None where the system does not say (no `os.sysconf` on Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def default_ram_budget() -> int:
    """The RAM budget when the `ram_budget_gb` option does not set it: `RAM_SHARE` of the
    machine's RAM, so an 8 GB Mac evicts a model before it swaps and a 64 GB workstation
    keeps several."""
    total = machine_ram()
    return int(total * RAM_SHARE) if total else UNKNOWN_RAM_BUDGET


def pool(device: str) -> str:
    """Which budget a device counts against: "ram" for CPU and MPS (unified memory), else the
    CUDA device itself ("cuda:0", "cuda:1", ...: each GPU has its own)."""
    return device if device.startswith("cuda") else "ram"


class ModelManager:
    def __init__(self, ram_budget: int | None = None,
                 vram_headroom: int = DEFAULT_VRAM_HEADROOM) -> None:  # fmt: skip
        self.ram_budget = default_ram_budget() if ram_budget is None else ram_budget
        self.vram_headroom = vram_headroom
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0  # how many times a loader actually ran (tests and stats)

    def get(self, key: str, load: Callable[[], Any], device: str = "cpu",
            size: Callable[[Any], int] | None = None, expect: int = 0) -> Any:  # fmt: skip
        """The value for `key`, loading it with `load()` the first time, after making room for
        `expect` bytes (the caller's estimate) on `device`'s budget."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry.value
            self._make_room(pool(device), expect, keep=None)
            value = load()
            self.loads += 1
            nbytes = size(value) if size is not None else 0
            self._entries[key] = Entry(value, nbytes, device)
            self._make_room(pool(device), 0, keep=key)
            return value

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        return list(self._entries)

    def used(self, where: str) -> int:
        """Bytes of the entries counted against budget `where` ("ram" or "cuda:N")."""
        return sum(e.size for e in self._entries.values() if pool(e.device) == where)

    def budget(self, where: str) -> int:
        """RAM: `ram_budget`. A GPU: its total memory minus the headroom."""
        if where == "ram":
            return self.ram_budget
        import torch

        _, total = torch.cuda.mem_get_info(where)
        return max(total - self.vram_headroom, 0)

    def _fits(self, where: str, need: int) -> bool:
        if self.used(where) + need > self.budget(where):
            return False
        if where == "ram":
            return True
        import torch  # other processes share the GPU: what is really free counts too

        free, _ = torch.cuda.mem_get_info(where)
        return free >= need + self.vram_headroom

    def _make_room(self, where: str, need: int, keep: str | None) -> None:
        """Evict least recently used entries of budget `where` until `need` more bytes fit."""
        for key in list(self._entries):
            if self._fits(where, need):
                return
            if key != keep and pool(self._entries[key].device) == where:
                del self._entries[key]
                self._release([key])

    def free(self, key: str | None = None) -> None:
        """Unload one entry, or everything."""
        with self._lock:
            keys = list(self._entries) if key is None else [key]
            for k in keys:
                self._entries.pop(k, None)
            self._release(keys)

    @staticmethod
    def _release(keys: list[str]) -> None:
        """Drop cached handles of `keys`, collect, then give the GPU's cached blocks back."""
        from latentgraph.graph.cache import forget_values

        from .values import holds_model

        gone = set(keys)
        forget_values(lambda v: holds_model(v, gone))
        gc.collect()
        empty_cache()


def empty_cache() -> None:
    """Give the device memory torch's caching allocator keeps for reuse back to the system:
    CUDA's, or on a Mac MPS's (unified memory, which other apps then get). Until then freed
    weights stay reserved by this process. Every GPU kind this torch has is emptied, since
    offloaded models (counted against RAM) ran there too; a CPU-only build has none, and
    without torch imported nothing was ever cached."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if torch.backends.mps.is_available():
        torch.mps.empty_cache()


_manager = ModelManager()


def manager() -> ModelManager:
    """The process-wide model manager."""
    return _manager


def budgeted(settings: Any) -> ModelManager:
    """The process-wide model manager with the budget options of the run's `settings` in
    force (`ram_budget_gb`, `vram_headroom_gb`; one not given leaves the manager's own): the
    loaders ask it before each load."""
    ram, headroom = settings.option("ram_budget_gb"), settings.option("vram_headroom_gb")
    if ram is not None:
        _manager.ram_budget = int(ram * 2**30)
    if headroom is not None:
        _manager.vram_headroom = int(headroom * 2**30)
    return _manager


def resident_models() -> list[str]:
    """The keys of the models this process holds (a server worker reports them)."""
    return _manager.keys()


def free_models() -> None:
    """Unload every model this process holds (the server's worker calls it on POST /free)."""
    _manager.free()
