"""Loaded models: each loaded once per process, shared, evicted least-recently-used.

Models are not node outputs to serialize. Loader nodes ask the manager for a key (source
identity + component + dtype + device + options that change the module); the first ask loads,
later asks, from any node or run, get the same objects. A byte budget (RAM for CPU models,
VRAM for GPU ones, one budget each) evicts the least recently used entries; `free()` drops all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Entry:
    value: Any
    size: int
    device: str


def module_bytes(*modules: Any) -> int:
    """Parameter + buffer bytes of torch modules (None entries ignored)."""
    total = 0
    for m in modules:
        if m is None or not hasattr(m, "parameters"):
            continue
        for t in list(m.parameters()) + list(m.buffers()):
            total += t.numel() * t.element_size()
    return total


class ModelManager:
    def __init__(self, ram_budget: int = 16 * 2**30, vram_budget: int = 8 * 2**30) -> None:
        self.ram_budget = ram_budget
        self.vram_budget = vram_budget
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0  # how many times a loader actually ran (tests and stats)

    def get(self, key: str, load: Callable[[], Any], device: str = "cpu",
            size: Callable[[Any], int] | None = None) -> Any:  # fmt: skip
        """The value for `key`, loading it with `load()` the first time."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry.value
            value = load()
            self.loads += 1
            nbytes = size(value) if size is not None else 0
            self._entries[key] = Entry(value, nbytes, device)
            self._evict(keep=key)
            return value

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        return list(self._entries)

    def used(self, gpu: bool) -> int:
        return sum(e.size for e in self._entries.values() if (e.device != "cpu") == gpu)

    def _evict(self, keep: str) -> None:
        for gpu, budget in ((False, self.ram_budget), (True, self.vram_budget)):
            for key in list(self._entries):
                if self.used(gpu) <= budget:
                    break
                entry = self._entries[key]
                if key != keep and (entry.device != "cpu") == gpu:
                    del self._entries[key]

    def free(self, key: str | None = None) -> None:
        """Drop one entry, or everything; release cached GPU memory if torch is loaded."""
        import sys

        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


_manager = ModelManager()


def manager() -> ModelManager:
    """The process-wide model manager."""
    return _manager


def free_models() -> None:
    """Unload every model this process holds (the server's worker calls it on POST /free)."""
    _manager.free()
