"""Pausing Python's cyclic garbage collector while a large prompt is parsed and checked.

Parsing and checking a 100,000-node prompt allocates millions of small objects; with the
collector on, each full collection walks all of them again, a third or more of the time of
those steps (docs/benchmarks.md). Nothing built there needs cycles collected early, so the
collector pauses for them and resumes after. Several threads may overlap: the collector
resumes when the last one leaves, and only if it was on when the first one came.
"""

from __future__ import annotations

import gc
import threading
from types import TracebackType


class CollectorPause:
    """`with collector_paused:` runs its block with the cyclic collector off."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._resume:
                gc.enable()


collector_paused = CollectorPause()
