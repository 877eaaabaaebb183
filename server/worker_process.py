"""Inside a worker process: build the registry, import the model libraries, run jobs.

`worker_main` is the process entry (see local_workers.py). Three threads: the main one runs
jobs with the real Scheduler, one reads the server's commands (a cancel reaches the running
job's CancelToken at once), one sends what the jobs report. Progress events waiting to be sent
are coalesced: a newer step of the same node replaces an unsent older one, so a slow reader
never slows the denoise loop and order is kept. When the server goes away (its end of the pipe
closes) the worker exits.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import logging
import os
import queue
import signal
import sys
import threading
import traceback
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from latentgraph.graph.context import CancelToken, Settings
from latentgraph.graph.events import Event, NodeFailed, NodeProgress, RunStatus
from latentgraph.graph.problems import WorkflowError

from .workers import (
    Done,
    Freed,
    Job,
    Ready,
    RunError,
    RunEvent,
    WorkerPool,
    WorkerSetup,
    model_keys,
)

log = logging.getLogger("latentgraph.worker")


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process runs with, besides the shared `WorkerSetup`."""

    index: int
    settings: Settings
    disk_cache: bool = True
    nodes_dirs: list[Path] = field(default_factory=list)  # when WorkerSetup.registry is None
    load_nodes: bool = True
    preload: bool = True  # import the model libraries before saying Ready
    threads: int | None = None  # torch CPU threads (None: torch's default)


# Commands from the server (tuples: picklable, cheap).
RUN, CANCEL, FREE, STOP = "run", "cancel", "free", "stop"


class RunnerPool(WorkerPool):
    """A pool whose workers are JobRunners: a job, a cancel and a free are commands it sends
    them (how: `_send`, the local pipe or a Ray actor call)."""

    @abstractmethod
    def _send(self, worker_id: int, command: tuple) -> None: ...

    def submit(self, worker_id: int, job: Job) -> None:
        self._send(worker_id, (RUN, job))

    def cancel(self, worker_id: int, prompt_id: str) -> None:
        self._send(worker_id, (CANCEL, prompt_id))

    def free(self, worker_id: int, unload_models: bool, free_memory: bool) -> None:
        self._send(worker_id, (FREE, unload_models, free_memory))


def worker_main(setup: WorkerSetup, spec: WorkerSpec, conn: Connection) -> None:
    """The worker process: set up, say Ready, then run what the server sends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    logging.basicConfig(level=logging.WARNING,
                        format=f"%(asctime)s %(levelname)s worker-{spec.index}: %(message)s")  # fmt: skip
    JobRunner(setup, spec, conn).serve()


class Outbox:
    """Messages for the server, sent in order by one thread; unsent progress coalesced."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._items: deque[Any] = deque()
        self._ready = threading.Condition()
        threading.Thread(target=self._send_loop, name="worker-send", daemon=True).start()

    def put(self, message: Any) -> None:
        with self._ready:
            last = self._items[-1] if self._items else None
            if _same_progress(last, message):
                old, new = last.event, message.event
                if new.preview is None and old.preview is not None:  # keep the latest preview
                    message = RunEvent(message.prompt_id,
                                       dataclasses.replace(new, preview=old.preview))  # fmt: skip
                self._items[-1] = message
            else:
                self._items.append(message)
            self._ready.notify()

    def _send_loop(self) -> None:
        while True:
            with self._ready:
                while not self._items:
                    self._ready.wait()
                message = self._items.popleft()
            try:
                self._conn.send(message)
            except (OSError, EOFError):
                os._exit(0)  # the server is gone


def _same_progress(a: Any, b: Any) -> bool:
    return (isinstance(a, RunEvent) and isinstance(b, RunEvent)
            and isinstance(a.event, NodeProgress) and isinstance(b.event, NodeProgress)
            and a.prompt_id == b.prompt_id and a.event.node_id == b.event.node_id)  # fmt: skip


class JobRunner:
    def __init__(self, setup: WorkerSetup, spec: WorkerSpec, conn: Connection) -> None:
        self.setup = setup
        self.spec = spec
        self.conn = conn
        self.outbox = Outbox(conn)
        self.jobs: queue.Queue[tuple] = queue.Queue()
        self.lock = threading.Lock()
        self.current: str | None = None
        self.cancel: CancelToken | None = None
        self.cancelled: set[str] = set()  # cancelled before they started
        self.loaded: set[str] = set()  # model keys of the prompts run since the last free
        self.registry = self._build_registry()
        self._import_model_libraries()
        from latentgraph.graph.cache import default_cache
        from latentgraph.graph.scheduler import Scheduler

        self.scheduler = Scheduler(registry=self.registry, cache=default_cache(disk=spec.disk_cache),
                                   settings=spec.settings)  # fmt: skip

    def _build_registry(self):
        if self.setup.registry is not None:
            return self.setup.registry()
        from latentgraph.graph.declare import default_registry
        from latentgraph.graph.plugins import load_plugins

        if self.spec.load_nodes or self.spec.nodes_dirs:
            load_plugins(self.spec.nodes_dirs, entry_points=self.spec.load_nodes)
        return default_registry

    def _import_model_libraries(self) -> None:
        from .warmup import import_model_libraries, needs_model_libraries

        if self.spec.preload and needs_model_libraries(self.registry):
            for failure in import_model_libraries():
                log.warning("could not import %s", failure)
        torch = sys.modules.get("torch")
        if torch is not None and self.spec.threads:
            torch.set_num_threads(self.spec.threads)

    # --- commands (reader thread) ----------------------------------------------------------

    def _read_commands(self) -> None:
        while True:
            try:
                command = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the server is gone: nobody to run for
            if command[0] == CANCEL:
                with self.lock:
                    if self.current == command[1] and self.cancel is not None:
                        self.cancel.cancel()
                    else:
                        self.cancelled.add(command[1])
            else:
                self.jobs.put(command)

    # --- jobs (main thread) ------------------------------------------------------------------

    def serve(self) -> None:
        threading.Thread(target=self._read_commands, name="worker-commands", daemon=True).start()
        self.outbox.put(Ready(os.getpid(), self._resident()))
        while True:
            command = self.jobs.get()
            if command[0] == STOP:
                return
            if command[0] == FREE:
                self.free(*command[1:])
                self.outbox.put(Freed(self._resident()))
            elif command[0] == RUN:
                self.run(command[1])

    def _resident(self) -> frozenset[str]:
        if self.setup.resident_models is not None and not self.setup.resident_models():
            self.loaded.clear()  # the model manager let everything go
        return frozenset(self.loaded)

    def run(self, job: Job) -> None:
        from latentgraph.graph.comfy_api import graph_from_prompt

        with self.lock:
            token = CancelToken()
            if job.prompt_id in self.cancelled:
                self.cancelled.discard(job.prompt_id)
                token.cancel()
            self.current, self.cancel = job.prompt_id, token
        send = self.outbox.put
        pnginfo = job.extra_data.get("extra_pnginfo") or {}
        extra = {"prompt": job.prompt, "workflow": pnginfo.get("workflow"),
                 "latentgraph": pnginfo.get("latentgraph"), "prompt_id": job.prompt_id,
                 "previews": job.previews}  # fmt: skip
        status: RunStatus = "failed"
        ui: dict[str, Any] = {}
        error: str | None = None
        failure: NodeFailed | None = None

        def on_event(event: Event) -> None:
            nonlocal failure
            if isinstance(event, NodeFailed) and failure is None:
                failure = event
            if isinstance(event, NodeProgress) and event.preview is not None:
                event = dataclasses.replace(event, preview=_preview_bytes(event.preview)
                                            if job.previews else None)  # fmt: skip
            send(RunEvent(job.prompt_id, event))

        try:
            graph = job.graph  # checked moments ago by POST /prompt
            if graph is None:
                graph = graph_from_prompt(job.prompt, self.registry)
            self.loaded |= model_keys(job.prompt, self.registry)
            result = self.scheduler.run(graph, targets=job.targets or None, on_event=on_event,
                                        cancel=token, run_id=job.prompt_id, extra=extra,
                                        validate=job.graph is None)  # fmt: skip
            status, ui = result.status, dict(result.ui or {})
        except WorkflowError as exc:
            first = exc.errors[0] if exc.errors else None
            error = str(exc)
            send(RunError(job.prompt_id, error, "WorkflowError",
                          node_id=first.node_id if first else None,
                          node_type=first.node_type if first else None))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - reported to the client, the worker goes on
            error = f"{type(exc).__name__}: {exc}"
            send(RunError(job.prompt_id, str(exc), type(exc).__name__,
                          traceback=traceback.format_exception(exc)))  # fmt: skip
        finally:
            with self.lock:
                self.current, self.cancel = None, None
        if status == "failed" and error is None and failure is not None:
            error = failure.message
        if status == "failed" and _out_of_memory(failure, error):
            # Free what the failed run held so the next prompt starts from a clean slate.
            log.warning("prompt %s ran out of memory (%s); unloading models and freeing caches",
                        job.prompt_id, error)  # fmt: skip
            self.free(unload_models=True, free_memory=True)
        send(Done(job.prompt_id, status, ui, error, self._resident()))

    def free(self, unload_models: bool, free_memory: bool) -> None:
        try:
            if (unload_models or free_memory) and self.setup.free_models is not None:
                self.setup.free_models()
                self.loaded.clear()
            if free_memory:
                self.scheduler.cache.clear_memory()
            gc.collect()
            _return_memory_to_os()
        except Exception:  # noqa: BLE001 - a failed free must not stop the worker
            log.exception("freeing memory failed")


def _preview_bytes(image: Any) -> bytes | None:
    from .messages import encode_preview

    try:
        return encode_preview(image)
    except Exception:  # noqa: BLE001 - a bad preview never fails the run
        log.debug("preview encoding failed", exc_info=True)
        return None


def _return_memory_to_os() -> None:
    """glibc keeps freed heap pages; give them back so the RSS drops after a free."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


def _out_of_memory(failure: NodeFailed | None, error: str | None) -> bool:
    """torch.OutOfMemoryError, or a RuntimeError saying so (older torch, MPS, cuDNN)."""
    kind = failure.exception_type if failure is not None else ""
    text = f"{failure.message if failure is not None else ''} {error or ''}".lower()
    return kind.endswith("OutOfMemoryError") or "out of memory" in text
