"""The Ray `WorkerPool`: each worker is a named Ray actor running the same `JobRunner` as a
local worker process (its own registry, Scheduler and model manager), on this machine or any
node of a Ray cluster (joined by `ray_connect.py`). Optional: Ray comes with `pip install
'latentgraph[ray]'` and is imported only when a pool is made.

Inside an actor the JobRunner talks to the actor through an in-process pipe, exactly as it
talks to the server through a process pipe locally; the server holds one `receive` call open
per actor (a long poll) and reads what arrived, in order. Ray restarts an actor that dies
(`max_restarts`): the pool reports `Died` (the dispatcher sends its prompt back to the queue,
`redispatch_after_death` times) and the new incarnation says `Ready`. Commands carry the
incarnation (its pid) they were meant for, so a job sent to an actor that died meanwhile is
never run twice.

Storage: the disk cache and the input, output and temp folders must be the same paths on every node (one
machine, or shared storage such as NFS: docs/scale-out.md). The pool checks it when it
starts: each actor reads a marker the server wrote into those folders.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latentgraph.graph import paths
from latentgraph.graph.context import Settings
from latentgraph.graph.files import FileWriteError, write_atomic

from .config import ServerConfig
from .ray_connect import (
    NAMESPACE,
    RayUnavailable,
    cluster_address,
    connect,
    import_ray,
    joined_text,
    reach_cluster,
    resources_text,
)
from .worker_process import JobRunner, RunnerPool, WorkerSpec
from .workers import Died, Lost, Ready, WorkerInfo, WorkerMessage, WorkerSetup

log = logging.getLogger("latentgraph.server")

# How long one `receive` call waits for a message before returning empty (the long poll).
POLL_SECONDS = 0.5
# How long the cluster may take to place and start the actors at start (an autoscaler adding
# nodes), and after how long the start says what it waits for (docs/scale-out.md).
PLACEMENT_SECONDS = 300.0
PLACEMENT_NOTICE_SECONDS = 10.0
# Times Ray restarts one actor (-1: always); the pool makes a new one if it ever gives up.
MAX_RESTARTS = -1
# While the pool runs, it asks every HEALTH_SECONDS whether the cluster's GCS still answers
# (`reach_cluster`, with that timeout); one that has not answered for LOST_SECONDS is a lost
# cluster (`ray stop` on its head, its machine gone), and the server stops in order. Ray's own
# core ends the process without a word 60 s after it lost the GCS (Ray 2.60:
# `gcs_rpc_server_reconnect_timeout_s`, "Failed to connect to GCS within 60 seconds").
HEALTH_SECONDS = 2.0
LOST_SECONDS = 10.0


@dataclass(frozen=True)
class ActorShape:
    """What each actor asks the cluster for, and how many there are."""

    count: int
    num_cpus: float = 1.0
    num_gpus: float = 0.0


def actor_shape(config: ServerConfig) -> ActorShape:
    """`--ray-workers N` actors (default: one per GPU the cluster offers), each with
    `ray_gpus_per_actor` GPUs when the cluster has GPUs and the device is not the CPU."""
    ray = import_ray()
    gpus = float(ray.cluster_resources().get("GPU", 0)) if config.device != "cpu" else 0.0
    per_gpu = config.ray_gpus_per_actor if gpus else 0.0
    count = config.ray_workers or (int(gpus // per_gpu) if per_gpu else 0)
    if count < 1:
        raise RayUnavailable("the Ray cluster offers no GPU: give the number of CPU workers "
                             "with --ray-workers N")  # fmt: skip
    return ActorShape(count, num_cpus=config.ray_cpus_per_actor, num_gpus=per_gpu)


# --- inside the actor --------------------------------------------------------------------------


class WorkerActor:
    """One worker as a Ray actor (made remote by the pool: Ray is optional). A JobRunner runs
    on a thread of the actor and talks through an in-process pipe; `send` and `receive` are
    that pipe's two directions, each in its own concurrency group so a long poll never holds a
    command back and commands keep their order."""

    def __init__(self, setup: WorkerSetup, spec: WorkerSpec) -> None:
        self._conn, theirs = multiprocessing.Pipe(duplex=True)
        threading.Thread(target=_serve, args=(setup, spec, theirs), name="worker-jobs",
                         daemon=True).start()  # fmt: skip

    def send(self, command: tuple, incarnation: int) -> None:
        """Pass a command to the JobRunner, unless it was meant for an earlier incarnation
        (sent while this actor was being restarted): its job is already back in the queue."""
        if incarnation == os.getpid():
            self._conn.send(command)

    def receive(self, timeout: float) -> list[WorkerMessage]:
        """What the JobRunner sent, in order, waiting up to `timeout` for the first."""
        messages = []
        if self._conn.poll(timeout):
            while self._conn.poll():
                messages.extend(self._conn.recv())  # a list per pipe message (`Outbox`)
        return messages

    def where(self) -> tuple[str, int]:
        return socket.gethostname(), os.getpid()

    def missing_folders(self, markers: dict[str, str]) -> list[str]:
        return unseen_folders(markers)


def write_markers(folders: tuple[Path, ...], token: str) -> dict[str, str]:
    """A marker file holding `token` in each folder (path -> token), for every actor to read
    (`unseen_folders`). Written atomically: a folder the disk refuses (full, read-only) is a
    `FileWriteError` naming its marker and why in words, and no marker is left behind."""
    markers: dict[str, str] = {}
    try:
        for folder in folders:
            marker = folder / f".latentgraph-shared-{token}"
            write_atomic(marker, token)
            markers[str(marker)] = token
    except BaseException:
        for marker in markers:
            Path(marker).unlink(missing_ok=True)
        raise
    return markers


def unseen_folders(markers: dict[str, str]) -> list[str]:
    """The folders whose marker file (path -> content) this node cannot read as the server
    wrote it: not the same folder, or not there at all."""
    missing = []
    for path, token in markers.items():
        try:
            if Path(path).read_text() == token:
                continue
        except OSError:
            pass
        missing.append(str(Path(path).parent))
    return missing


def _serve(setup: WorkerSetup, spec: WorkerSpec, conn: Any) -> None:
    try:
        JobRunner(setup, spec, conn).serve()
    except Exception:  # noqa: BLE001 - a setup that cannot start: Ray restarts the actor
        log.exception("worker %d could not start", spec.index)
        time.sleep(5.0)  # so a broken setup does not restart in a tight loop
        os._exit(1)


# --- the server's side -------------------------------------------------------------------------


@dataclass
class _Actor:
    name: str
    spec: WorkerSpec
    handle: Any = None
    incarnation: int = 0  # the pid its last Ready came from
    host: str | None = None
    dead: bool = False  # a call failed and no receive has succeeded since


class RayWorkerPool(RunnerPool):
    """Named actors `latentgraph-<pool>-worker-<i>`; one reader thread keeps one `receive`
    open per actor and delivers what comes back, in order."""

    # A prompt whose actor dies goes back to the queue this many times; then it fails.
    redispatch_after_death = 2

    def __init__(self, setup: WorkerSetup, specs: list[WorkerSpec], shape: ActorShape, *,
                 owns_runtime: bool = False, shared_folders: tuple[Path, ...] = (),
                 cluster: str | None = None,
                 announce: Callable[[str], None] = log.info) -> None:  # fmt: skip
        """`cluster`: the address whose answer says the cluster is there (`cluster_address`;
        None: not watched). `announce` is told what a slow start waits for."""
        self._ray = import_ray()
        self.setup = setup
        self.shape = shape
        self._owns_runtime = owns_runtime
        self.cluster = cluster
        self._announce = announce
        self.lost = False  # the cluster stopped answering: no actor comes back
        pool_id = uuid.uuid4().hex[:6]
        self._actors = [_Actor(f"latentgraph-{pool_id}-worker-{s.index}", s) for s in specs]
        # The one setting read from the environment (never the server's own: its auth token):
        # the cache root, where the built tiny models and shipped configs go, as this process
        # builds them. The disk cache's folder is not read from it: each spec carries it.
        self._env = {"LATENTGRAPH_CACHE_DIR": str(paths.cache_dir().resolve())}
        self._deliver: Callable[[int, WorkerMessage], None] | None = None
        self._stopping = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="latentgraph-ray",
                                        daemon=True)  # fmt: skip
        self._watcher = threading.Thread(target=self._watch, name="latentgraph-ray-health",
                                         daemon=True)  # fmt: skip
        groups = {"commands": 1, "events": 1}  # one thread each: in order, never blocking
        self._remote = self._ray.remote(concurrency_groups=groups)(WorkerActor)
        for i in range(len(self._actors)):
            self._create(i)
        self._check_shared(shared_folders)

    def _create(self, i: int) -> None:
        actor = self._actors[i]
        actor.handle = self._remote.options(
            name=actor.name, namespace=NAMESPACE, max_restarts=MAX_RESTARTS, max_task_retries=0,
            num_cpus=self.shape.num_cpus, num_gpus=self.shape.num_gpus,
            scheduling_strategy="SPREAD",  # over the cluster's nodes, not packed on one
            runtime_env={"env_vars": self._env},
        ).remote(self.setup, actor.spec)  # fmt: skip

    def _check_shared(self, folders: tuple[Path, ...]) -> None:
        """Every actor must see `folders` (the output folder, the disk cache) as the server
        does: the same path on shared storage. Checked with a marker file in each."""
        try:
            markers = write_markers(folders, uuid.uuid4().hex)
        except FileWriteError:  # a full or read-only disk: said so, before any run
            self.stop()
            raise
        ray = self._ray
        try:
            refs = [a.handle.missing_folders.remote(markers) for a in self._actors]
            if not self._started(refs):
                free = self._free()  # asked before `stop`, which may end this Ray runtime
                self.stop()
                raise RayUnavailable(
                    f"the Ray cluster did not start {len(self._actors)} actor(s) of "
                    f"{self._each()} within {PLACEMENT_SECONDS:g} s (it has {free} free): give "
                    "fewer --ray-workers or add nodes")  # fmt: skip
            answers = ray.get(refs)
            places = ray.get([a.handle.where.remote() for a in self._actors])
        finally:
            for marker in markers:
                Path(marker).unlink(missing_ok=True)
        for actor, missing, (host, _pid) in zip(self._actors, answers, places, strict=True):
            actor.host = host
            if missing:
                self.stop()
                raise RayUnavailable(
                    f"Ray worker {actor.name} on {host} does not see the server's folder(s) "
                    f"{', '.join(missing)}: every node needs them at the same path (shared "
                    "storage, docs/scale-out.md)")  # fmt: skip

    def _started(self, refs: list[Any]) -> bool:
        """Whether every actor answered `refs` within PLACEMENT_SECONDS; after
        PLACEMENT_NOTICE_SECONDS without all of them, one line says what the start waits for."""
        ray, deadline = self._ray, time.monotonic() + PLACEMENT_SECONDS
        notice = min(PLACEMENT_NOTICE_SECONDS, PLACEMENT_SECONDS)
        _, waiting = ray.wait(refs, num_returns=len(refs), timeout=notice)
        if not waiting:
            return True
        self._announce(f"waiting for the Ray cluster to place and start {len(waiting)} of "
                       f"{len(refs)} actor(s) (each needs {self._each()}; it has "
                       f"{self._free()} free), up to {PLACEMENT_SECONDS:g} s")  # fmt: skip
        left = max(0.0, deadline - time.monotonic())
        _, waiting = ray.wait(refs, num_returns=len(refs), timeout=left)
        return not waiting

    def _each(self) -> str:
        return resources_text(self.shape.num_cpus, self.shape.num_gpus)

    def _free(self) -> str:
        """The cluster's free CPUs and GPUs, as messages say them: "0 CPU and 0 GPU"."""
        free = self._ray.available_resources()
        return resources_text(free.get("CPU", 0), free.get("GPU", 0))

    # --- WorkerPool ------------------------------------------------------------------------

    def start(self, deliver: Callable[[int, WorkerMessage], None]) -> None:
        self._deliver = deliver
        self._reader.start()
        if self.cluster is not None:
            self._watcher.start()

    def workers(self) -> list[WorkerInfo]:
        return [WorkerInfo(i, a.name, a.spec.settings.device, a.incarnation or None)
                for i, a in enumerate(self._actors)]  # fmt: skip

    def _send(self, i: int, command: tuple) -> None:
        actor = self._actors[i]
        # one thread for commands: they arrive in order (a dead actor: the reader says so)
        actor.handle.send.options(concurrency_group="commands").remote(command, actor.incarnation)

    def kill(self, worker_id: int) -> None:
        """Kill the actor's process; Ray restarts it."""
        self._ray.kill(self._actors[worker_id].handle, no_restart=False)

    def stop(self, timeout: float = 2.0) -> None:
        """The actors are killed (a prompt still running is then failed: `Dispatcher.stop`); a
        local runtime this pool started is shut down."""
        self._stopping.set()
        for actor in self._actors if not self.lost else ():  # lost: gone with their cluster
            if actor.handle is not None:
                try:
                    self._ray.kill(actor.handle, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        for thread in (self._reader, self._watcher):
            if thread.is_alive():
                thread.join(timeout)
        if self._owns_runtime:
            self._ray.shutdown()

    # --- the reader thread -----------------------------------------------------------------

    def _read_loop(self) -> None:
        ray = self._ray
        polls = {self._poll(i): i for i in range(len(self._actors))}
        while not self._stopping.is_set() and not self.lost:  # lost: nothing more comes
            done, _ = ray.wait(list(polls), num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                i = polls.pop(ref)
                self._collect(i, ref)
                if not self._stopping.is_set():
                    polls[self._poll(i)] = i

    def _poll(self, i: int) -> Any:
        receive = self._actors[i].handle.receive.options(concurrency_group="events")
        return receive.remote(POLL_SECONDS)

    def _collect(self, i: int, ref: Any) -> None:
        ray, actor = self._ray, self._actors[i]
        try:
            messages = ray.get(ref)
        except ray.exceptions.ActorDiedError as exc:  # Ray gave up on it: make a new one
            self._died(i, exc)
            if not self._stopping.is_set() and self._cluster_answers():
                log.warning("Ray will not restart %s; creating it again", actor.name)
                self._create(i)
            return
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            self._died(i, exc)  # Ray restarts it; the next receive waits for that
            return
        actor.dead = False
        for message in messages:
            if isinstance(message, Ready):
                actor.incarnation = message.pid
            try:
                self._deliver(i, message)
            except Exception:  # noqa: BLE001 - one bad message must not stop the reader
                log.exception("delivering a message of %s failed", actor.name)

    def _died(self, i: int, exc: BaseException) -> None:
        actor = self._actors[i]
        if actor.dead or self._stopping.is_set():
            return  # one death, one report
        actor.dead, actor.incarnation = True, 0
        reason = f"Ray worker {actor.name} died ({type(exc).__name__})"
        if self._cluster_answers():
            log.warning("%s; Ray restarts it", reason)
        else:  # no promise: the cluster itself may be gone (`_watch` decides)
            log.warning("%s, and the Ray cluster at %s does not answer", reason, self.cluster)
        self._deliver(i, Died(reason))

    # --- the cluster's health --------------------------------------------------------------

    def _cluster_answers(self) -> bool:
        """Whether the cluster's GCS answers now (always, when it is not watched)."""
        if self.cluster is None:
            return True
        if self.lost:
            return False
        try:
            reach_cluster(self.cluster, timeout=HEALTH_SECONDS)
        except RayUnavailable:
            return False
        return True

    def _watch(self) -> None:
        """Every HEALTH_SECONDS, whether the cluster answers; one silent for LOST_SECONDS is
        lost: said once (`Lost`), before Ray's core ends this process, so the server stops in
        order. Its actors are not made again nor killed: they went with it."""
        answered = time.monotonic()
        while not self._stopping.wait(HEALTH_SECONDS):
            if self._cluster_answers():
                answered = time.monotonic()
            elif time.monotonic() - answered >= LOST_SECONDS:
                self.lost = True
                self._deliver(0, Lost(f"the Ray cluster at {self.cluster} stopped answering "
                                      f"(for {LOST_SECONDS:g} s)"))  # fmt: skip
                return


def ray_pool(config: ServerConfig, setup: WorkerSetup, settings: Settings,
             announce: Callable[[str], None] = log.info) -> RayWorkerPool:  # fmt: skip
    """The pool `latentgraph serve --ray ...` runs on: connect (or start the local runtime),
    size the actors, check the shared folders. `announce` is told which cluster was joined
    (not for "local"), once the actors' count is known that they are starting (the seconds
    until they are placed and checked say nothing otherwise), and what a start slower than
    PLACEMENT_NOTICE_SECONDS waits for."""
    local_cpus = math.ceil((config.ray_workers or 1) * config.ray_cpus_per_actor)
    owns = connect(config.ray, num_cpus=max(1, local_cpus))
    try:
        if config.ray != "local":  # which one, of those a machine may run
            announce(joined_text(cluster_address(config.ray)))
        shape = actor_shape(config)
        device = "cuda" if shape.num_gpus else "cpu"
        threads = max(1, int(shape.num_cpus)) if not shape.num_gpus else None
        # absolute: an actor's working folder is not the server's
        settings = dataclasses.replace(
            settings, device=device, output_dir=Path(settings.output_dir).resolve(),
            input_dir=Path(settings.input_dir).resolve(),
            temp_dir=Path(settings.temp_dir).resolve(),
            models_dirs=[paths.resolved_models_dir(d) for d in settings.models_dirs])  # fmt: skip
        nodes_dirs = [Path(d).resolve() for d in config.nodes_dirs]
        specs = [
            WorkerSpec.of(config, i, settings, threads, nodes_dirs) for i in range(shape.count)
        ]
        shared = [settings.output_dir, settings.input_dir, settings.temp_dir]
        if config.disk_store is not None:
            shared.append(config.disk_store)
        announce(f"starting {shape.count} Ray worker(s) "
                 f"({resources_text(shape.num_cpus, shape.num_gpus)} each)...")  # fmt: skip
        return RayWorkerPool(setup, specs, shape, owns_runtime=owns, shared_folders=tuple(shared),
                             cluster=cluster_address(config.ray), announce=announce)  # fmt: skip
    except BaseException:
        if owns:
            import_ray().shutdown()
        raise
