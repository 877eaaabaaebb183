"""The local `WorkerPool`: one process per worker on this machine ('spawn', so no state of the
server is inherited), each with its own pipe. One reader thread waits on every pipe and every
process sentinel, so messages reach the dispatcher in the order each worker sent them and a
death (any signal, any exit) is seen the moment it happens, with the node the worker was
running (`RunningNode`, memory the two share); the dead worker is replaced.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from latentgraph.graph.context import Settings

from .config import ServerConfig
from .worker_process import STOP, RunnerPool, RunningNode, WorkerSpec, worker_main
from .workers import Died, Ready, WorkerInfo, WorkerMessage, WorkerSetup

log = logging.getLogger("latentgraph.server")

_spawn = multiprocessing.get_context("spawn")


@dataclass
class _Slot:
    spec: WorkerSpec
    process: Any = None  # multiprocessing Process
    conn: Connection | None = None
    send_lock: Any = None
    early_deaths: int = 0  # deaths in a row before saying Ready (a broken setup)
    running: RunningNode | None = None  # the node its process runs, read when it dies


def visible_gpus() -> list[str]:
    """CUDA devices this process may use, found without importing torch:
    CUDA_VISIBLE_DEVICES when set, else the /dev/nvidiaN device files."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip() and not v.strip().startswith("-")]
        return [f"cuda:{i}" for i in range(len(ids))]
    count = sum(1 for p in Path("/dev").glob("nvidia*") if re.fullmatch(r"nvidia\d+", p.name))
    return [f"cuda:{i}" for i in range(count)]


def worker_specs(config: ServerConfig, settings: Settings) -> list[WorkerSpec]:
    """One worker per device (`--devices`, else each visible GPU, else `--device`), or
    `--workers N` spread over those devices in turn. CPU workers share the cores."""
    devices = list(config.devices)
    if not devices:
        auto = config.device in ("auto", "cuda")
        devices = (visible_gpus() if auto else []) or [config.device]
    count = config.workers or len(devices)
    cpu_workers = sum(1 for i in range(count) if not devices[i % len(devices)].startswith("cuda"))
    threads = max(1, (os.cpu_count() or 1) // cpu_workers) if cpu_workers > 1 else None
    return [WorkerSpec.of(config, i, dataclasses.replace(settings, device=devices[i % len(devices)]),
                          threads, list(config.nodes_dirs))
            for i in range(count)]  # fmt: skip


def death_reason(exitcode: int | None) -> str:
    """The reason a worker died: "worker process died: signal 9", or "... exit code N"."""
    if exitcode is not None and exitcode < 0:
        return f"worker process died: signal {-exitcode}"
    return f"worker process died: exit code {exitcode}"


# How long a worker's death by SIGTERM waits for the server's own stop signal before it is
# reported as a crash (a SIGTERM sent to that worker alone).
SIGTERM_GRACE_SECONDS = 2.0


class LocalWorkerPool(RunnerPool):
    def __init__(self, setup: WorkerSetup, specs: list[WorkerSpec]) -> None:
        self.setup = setup
        self._slots = [_Slot(spec, send_lock=threading.Lock()) for spec in specs]
        self._deliver: Callable[[int, WorkerMessage], None] | None = None
        self._stopping = threading.Event()
        self._signalled = threading.Event()  # the server got SIGTERM/Ctrl-C (shutting_down)
        self._lock = threading.Lock()  # the slots' process and conn
        self._wake_r, self._wake_w = _spawn.Pipe(duplex=False)
        self._reader = threading.Thread(target=self._read_loop, name="latentgraph-workers",
                                        daemon=True)  # fmt: skip

    def start(self, deliver: Callable[[int, WorkerMessage], None]) -> None:
        self._deliver = deliver
        for i in range(len(self._slots)):
            self._spawn(i)
        self._reader.start()

    def _spawn(self, i: int) -> None:
        slot = self._slots[i]
        ours, theirs = _spawn.Pipe(duplex=True)
        running = RunningNode()
        process = _spawn.Process(target=worker_main,
                                 args=(self.setup, slot.spec, theirs, running),
                                 name=f"latentgraph-worker-{i}", daemon=True)  # fmt: skip
        process.start()
        theirs.close()
        with self._lock:
            slot.process, slot.conn, slot.running = process, ours, running
        self._wake_w.send(None)  # the reader waits on the new pipe from now on

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            return [WorkerInfo(i, f"latentgraph-worker-{i}", s.spec.settings.device,
                               s.process.pid if s.process is not None else None)
                    for i, s in enumerate(self._slots)]  # fmt: skip

    def _send(self, i: int, command: tuple) -> None:
        slot = self._slots[i]
        with slot.send_lock:
            try:
                if slot.conn is not None:
                    slot.conn.send(command)
            except (OSError, EOFError, BrokenPipeError):
                pass  # it is dying: the reader reports it

    def shutting_down(self) -> None:
        self._signalled.set()

    def kill(self, worker_id: int) -> None:
        with self._lock:
            process = self._slots[worker_id].process
        if process is not None and process.pid is not None:
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 2.0) -> None:
        """Idle workers exit when asked; one still starting or running is killed after
        `timeout` (a prompt it was running is then failed: `Dispatcher.stop`)."""
        self._stopping.set()
        for i in range(len(self._slots)):
            self._send(i, (STOP,))
        self._wake_w.send(None)
        for slot in self._slots:
            if slot.process is not None:
                slot.process.join(timeout)
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join(2)
        if self._reader.is_alive():
            self._reader.join(timeout)

    # --- the reader thread -------------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                by_conn = {s.conn: i for i, s in enumerate(self._slots) if s.conn is not None}
                by_sentinel = {s.process.sentinel: i for i, s in enumerate(self._slots)
                               if s.process is not None}  # fmt: skip
            ready = wait([self._wake_r, *by_conn, *by_sentinel])
            for obj in ready:
                if obj is self._wake_r:
                    self._wake_r.recv()
                elif obj in by_conn:
                    self._receive(by_conn[obj], obj)
            for obj in ready:
                if obj in by_sentinel and not self._stopping.is_set():
                    self._replace(by_sentinel[obj])

    def _receive(self, i: int, conn: Connection) -> None:
        """Every message waiting on a worker's pipe (all of them before its death is handled).
        Each pipe message is a list of worker messages (see `Outbox`)."""
        try:
            while conn.poll():
                for message in conn.recv():
                    if isinstance(message, Ready):
                        self._slots[i].early_deaths = 0
                    self._deliver(i, message)
        except (EOFError, OSError):
            pass  # the sentinel reports the death
        except Exception:  # noqa: BLE001 - one bad message must not stop the reader
            log.exception("reading from worker %d failed", i)

    def _replace(self, i: int) -> None:
        slot = self._slots[i]
        with self._lock:
            process, conn, running = slot.process, slot.conn, slot.running
            slot.process, slot.conn, slot.running = None, None, None
        if conn is not None:
            self._receive(i, conn)  # what it sent before dying comes first
            conn.close()
        process.join(1)
        if self._stopped_with_the_server(process.exitcode):
            return  # not a crash: the prompt it ran ends as the server's shutdown records it
        reason = death_reason(process.exitcode)
        self._deliver(i, Died(reason, running.node() if running is not None else None))
        # One that dies while starting (a plugin that fails to load, no memory) is retried
        # with a growing delay, so a broken setup does not spin.
        delay = min(30.0, 0.5 * 2**slot.early_deaths) if slot.early_deaths else 0.0
        slot.early_deaths += 1
        log.warning("%s (pid %s); starting a new one%s", reason, process.pid,
                    f" in {delay:.1f} s" if delay else "")  # fmt: skip
        if delay:
            timer = threading.Timer(delay, self._respawn, args=(i,))
            timer.daemon = True
            timer.start()
        else:
            self._spawn(i)

    def _stopped_with_the_server(self, exitcode: int | None) -> bool:
        """A worker killed by SIGTERM while the server is being stopped by it: the whole
        process group got it (systemd's stop, `kill -- -PGID`), and this reader may see the
        worker go before the server's own handler has run, so it waits for that a moment."""
        if self._stopping.is_set():
            return True
        if exitcode != -signal.SIGTERM:
            return False
        return self._signalled.wait(SIGTERM_GRACE_SECONDS) or self._stopping.is_set()

    def _respawn(self, i: int) -> None:
        if not self._stopping.is_set():
            self._spawn(i)
