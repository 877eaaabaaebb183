"""The server's processes and Python's cyclic garbage collector: paused while a large prompt
is parsed and checked, and kept off the objects of start-up; and their GIL switch interval
(`GIL_SWITCH_SECONDS`).

Parsing and checking a 100,000-node prompt allocates millions of small objects; with the
collector on, each full collection walks all of them again, a third or more of the time of
those steps (docs/benchmarks.md). Nothing built there needs cycles collected early, so the
collector pauses for them and resumes after. Several threads may overlap: the collector
resumes when the last one leaves, and only if it was on when the first one came.

Every call the server makes on a worker thread goes through `in_thread`, which leaves no cycle
behind when the call raises.
"""

from __future__ import annotations

import gc
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import anyio

T = TypeVar("T")

# How long a busy thread may keep the GIL while another waits (CPython's switch interval, 5 ms
# by default), in the server process and in each worker, both set at start. The server's
# threads hand a run's messages on (the submit thread, the dispatcher, the worker pool's
# reader, the event loop), and each hop at a run's end could wait that long: at 1 ms,
# 1,000-node runs through the server took 5-15% less time, alternated side by side; no change
# measured at 10,000 and more. A worker's run held the GIL while its sender waited: at 5 ms, a
# whole 100-node run's messages left after it ended, and the server and the client relayed and
# read them one after the other instead of meanwhile (docs/benchmarks.md).
GIL_SWITCH_SECONDS = 0.001


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


async def in_thread(func: Callable[..., T], *args: Any,
                    limiter: anyio.CapacityLimiter | None = None) -> T:  # fmt: skip
    """`func(*args)` on one of anyio's worker threads (as Starlette's `run_in_threadpool`), on
    `limiter`'s (by default anyio's 40). What it raises leaves with its traceback's frames
    cleared: anyio keeps the exception in a future that a frame of the exception's own
    traceback holds, a cycle only the collector's rare full passes free, and the frames'
    locals are the request's data (a refused workflow's text, its graph: each refusal of a
    15 MB prompt left 390 MB). Starlette's exception handlers break it by dropping the
    traceback, but a route catching the exception itself (a refusal answered with its
    problems) kept it. Cleared, it is freed as the refusal is answered."""
    try:
        return await anyio.to_thread.run_sync(func, *args, limiter=limiter)
    except BaseException as exc:
        traceback.clear_frames(exc.__traceback__)  # all but this running one
        raise
