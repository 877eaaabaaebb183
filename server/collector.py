"""The server process and Python's cyclic garbage collector: paused while a large prompt is
parsed and checked, and kept off the objects of start-up.

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


def freeze_start_up_objects() -> None:
    """Move everything alive now (modules, node declarations, routes: objects that live as
    long as the process) out of the collector's sight. A full collection walks every tracked
    object while holding the GIL, so each one then stalls the event loop for as long as the
    start-up heap takes to walk; frozen, it walks only what requests and runs have made."""
    gc.collect()
    gc.freeze()
