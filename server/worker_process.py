"""Inside a worker process: build the registry, import the model libraries, run jobs.

`worker_main` is the process entry (see local_workers.py). Four threads: the main one runs
jobs with the real Scheduler, one reads the server's commands (a cancel reaches the running
job's CancelToken at once), one sends what the jobs report, one runs timers (`Timers`). The
engine's events become the protocol's websocket messages here (`RunTranslator`), encoded
once, and leave in batches (`Outbox`); the server forwards them without decoding them. When
the server goes away (its end of the pipe closes) the worker exits.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import json
import logging
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentgraph.graph.cache import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES, release_memory
from latentgraph.graph.context import CancelToken, Settings
from latentgraph.graph.events import (
    Event,
    NodeFailed,
    NodeFinished,
    NodeProgress,
    NodeStarted,
    RunFinished,
    RunStatus,
)
from latentgraph.graph.model import Graph
from latentgraph.graph.problems import WorkflowError, quoted

from .collector import GIL_SWITCH_SECONDS, freeze_start_up_objects
from .devices import worker_devices
from .messages import (
    HISTORY_TYPES,
    LATENTGRAPH_MESSAGES,
    TERMINAL_TYPES,
    PromptParents,
    PromptTypes,
    RunError,
    RunTranslator,
    encode_message,
    prompt_ui_chars_limit,
    ui_chars_limit,
)
from .workers import (
    Device,
    Done,
    Freed,
    Job,
    Preview,
    Ready,
    RunMessages,
    SentImage,
    Warned,
    WorkerPool,
    WorkerSetup,
    model_keys,
)

if TYPE_CHECKING:
    from latentgraph.graph.declare import Registry
    from latentgraph.graph.plugins import PluginFailure

    from .config import ServerConfig

log = logging.getLogger("latentgraph.worker")


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process runs with, besides the shared `WorkerSetup`."""

    index: int
    settings: Settings
    # The disk cache's folder, given by the server (`ServerConfig.disk_store`), never read
    # from the worker's environment; None: no disk cache, the memory one only.
    disk_store: Path | None = None
    # The cache's bounds (`ServerConfig.cache_memory_bytes`, `cache_disk_bytes`).
    cache_memory_bytes: int = DEFAULT_MEMORY_BYTES
    cache_disk_bytes: int = DEFAULT_DISK_BYTES
    nodes_dirs: list[Path] = field(default_factory=list)  # when WorkerSetup.registry is None
    load_nodes: bool = True
    preload: bool = True  # import the model libraries before saying Ready
    threads: int | None = None  # torch CPU threads (None: torch's default)

    @classmethod
    def of(cls, config: ServerConfig, index: int, settings: Settings, threads: int | None,
           nodes_dirs: list[Path]) -> WorkerSpec:  # fmt: skip
        """Worker `index` of a server started with `config`: the cache and node loading as
        the server was told, for a local worker process and a Ray actor alike."""
        return cls(index=index, settings=settings, disk_store=config.disk_store,
                   cache_memory_bytes=config.cache_memory_bytes,
                   cache_disk_bytes=config.cache_disk_bytes, nodes_dirs=nodes_dirs,
                   load_nodes=config.load_nodes, preload=config.preload, threads=threads)  # fmt: skip


# Commands from the server (tuples: picklable, cheap).
RUN, CANCEL, FREE, STOP, CONVERT = "run", "cancel", "free", "stop", "convert"


class RunnerPool(WorkerPool):
    """A pool whose workers are JobRunners: a job, a cancel and a free are commands it sends
    them (how: `_send`, the local pipe or a Ray actor call)."""

    @abstractmethod
    def _send(self, worker_id: int, command: tuple) -> None: ...

    def submit(self, worker_id: int, job: Job) -> None:
        self._send(worker_id, (RUN, job))

    def cancel(self, worker_id: int, prompt_id: str) -> None:
        self._send(worker_id, (CANCEL, prompt_id))

    def convert_ahead(self, worker_id: int, prompt_id: str, prompt_json: str) -> None:
        self._send(worker_id, (CONVERT, prompt_id, prompt_json))

    def free(self, worker_id: int, unload_models: bool, free_memory: bool) -> None:
        self._send(worker_id, (FREE, unload_models, free_memory))


def worker_main(setup: WorkerSetup, spec: WorkerSpec, conn: Connection,
                running: RunningNode | None = None) -> None:  # fmt: skip
    """The worker process: set up, say Ready, then run what the server sends (`running`:
    where it writes the node it starts, for the server to read if it dies)."""
    # Ctrl-C is the server's to handle. SIGTERM is not ignored: multiprocessing stops its
    # daemon children with it when a process exits; a SIGTERM the whole process group got is
    # told from a crash by the pool (`LocalWorkerPool.shutting_down`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING,
                        format=f"%(asctime)s %(levelname)s worker-{spec.index}: %(message)s")  # fmt: skip
    JobRunner(setup, spec, conn, running).serve()


class RunningNode:
    """The node a local worker process is running, in memory it shares with the server, which
    reads it once the process is dead (`LocalWorkerPool`). A node that ends its process at
    once (os._exit, a crash in native code) may die before the batch announcing it leaves
    (`Outbox`); this lets its prompt fail at that node instead of looking not begun and
    being requeued onto another worker. Written as each node starts, a copy of a few bytes
    (no system call); an id longer than `SIZE` - 1 bytes is not kept (the node the batches
    last named is told then)."""

    SIZE = 256  # a length byte, then the node id in UTF-8

    def __init__(self) -> None:
        self._memory = multiprocessing.RawArray("B", self.SIZE)  # zeros: no node
        self._view = memoryview(self._memory).cast("B")  # ctypes' "<B" takes no slices

    def __getstate__(self) -> Any:  # handed to the worker process as it is spawned
        return self._memory

    def __setstate__(self, memory: Any) -> None:
        self._memory, self._view = memory, memoryview(memory).cast("B")

    def started(self, node_id: str) -> None:
        """Node `node_id` starts. Two writes, the length last (a process killed between them
        leaves bytes of two ids: the server takes only an id of the prompt's)."""
        data = node_id.encode()
        view = self._view
        try:
            view[1 : 1 + len(data)] = data
            view[0] = len(data)
        except ValueError:  # too long to keep
            view[0] = 0

    def ended(self) -> None:
        """No node runs: the run ended (a death from now on is no node's of it)."""
        self._view[0] = 0

    def node(self) -> str | None:
        """The node last started (None: none runs, or it is not known)."""
        size = self._view[0]
        return bytes(self._view[1 : 1 + size]).decode(errors="replace") if size else None


# A running prompt's messages leave in one pipe message per this many seconds ...
BATCH_SECONDS = 0.002
# ... or per this many messages, whichever comes first. A message that starts a run
# (`execution_start`, `execution_cached`) or is not a run message (`Ready`, `Done`) leaves at
# once, with what is before it; a run's last message waits for the `Done` put right after it.
# A batch found due when a message is put leaves from the putting thread (the run's): the
# sender thread would first have to take the GIL from it, up to GIL_SWITCH_SECONDS before the
# pickling and again after the write. Waking the sender, a 201-node fan sent 252 of its 305
# messages after its run ended (docs/benchmarks.md, sixth pass).
BATCH_MESSAGES = 1000


@dataclass
class _Batch:
    """The run messages waiting to be sent, built in place until the sender takes them."""

    prompt_id: str
    opened: float
    messages: list[tuple[str, Any]] = field(default_factory=list)
    history: list[list[Any]] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    node: str | None = None
    progress_of: str | None = None  # the node whose progress is the last message

    def sent(self) -> RunMessages:
        return RunMessages(self.prompt_id, self.messages, self.history, self.executed, self.node)


class Outbox:
    """What the worker says to the server, in order.

    A prompt's websocket messages arrive here encoded (the server forwards them as they are)
    and leave in batches (`BATCH_SECONDS`, `BATCH_MESSAGES`): one pipe message, one wake-up of
    the server for hundreds of nodes. A progress step waiting to be sent is replaced by a later
    step of the same node (keeping the latest preview) while its batch is young, or while a
    send under way holds it back, so a slow reader never slows the denoise loop; a step a batch
    later sends the one before it first, without waiting (`_due_step_waiting`). Other messages
    (`Done`, `Ready`) leave at once, after what was put before them.
    Each pipe message is a list: what was put since the last one, in order. They and a batch
    found due when a message is put leave from the putting thread (`BATCH_MESSAGES`); the
    sender thread sends a run's start and what comes due while the run is quiet (a long
    node). The server's reader never waits on a client, so the pipe does not hold up the run."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._items: deque[Any] = deque()  # WorkerMessage or _Batch
        self._count = 0  # run messages waiting
        self._urgent = False
        # Taken bare on a run's path (a Condition's `with` is a Python-level call).
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._sending = threading.Lock()  # taking what is waiting and sending it: in order
        threading.Thread(target=self._send_loop, name="worker-send", daemon=True).start()

    def put(self, message: Any) -> None:
        """A message to send now, from this thread (with everything before it): a run's `Done`
        leaves as the run ends, not once the sender has taken the GIL from it."""
        with self._lock:
            self._items.append(message)
            self._urgent = True
        self._send()

    def message(self, prompt_id: str, type_: str, data: dict[str, Any]) -> None:
        """A websocket message of the running prompt."""
        text = encode_message(type_, data)
        if type_ == "progress" and self._due_step_waiting(prompt_id, data["node"]):
            self._send(wait=False)  # the step before leaves; this one begins the next batch
        with self._lock:
            # The sender is woken when its state changes (a batch begins, becomes urgent or
            # full), not for every message: it re-reads that state before it waits again.
            wake = self._count == 0
            batch = self._batch(prompt_id)
            if type_ == "progress":
                node = data["node"]
                if batch.progress_of == node:  # supersedes the unsent step before it: put
                    batch.messages[-1] = (type_, text)  # less than a batch ago, or held
                    return  # back by a send under way (`_due_step_waiting`)
                batch.progress_of = node
            else:
                batch.progress_of = None
                if type_ == "executing":
                    batch.node = data["node"]
                elif type_ in HISTORY_TYPES:
                    batch.history.append([type_, data])
                    if type_ not in TERMINAL_TYPES:
                        wake = wake or not self._urgent
                        self._urgent = True
            batch.messages.append((type_, text))
            self._count += 1
            if wake or self._count == BATCH_MESSAGES:
                self._ready.notify()
            due = not self._urgent and self._batch_due_in() <= 0
        if due:
            self._send(wait=False)

    def _due_step_waiting(self, prompt_id: str, node: str) -> bool:
        """Whether a progress step of `node` would replace that node's unsent step in a batch
        already due (`BATCH_SECONDS` old, or urgent). Steps closer together than a batch are
        coalesced; one a batch later is not: the step before it is sent first. The sender
        thread may not have had its turn (the run holds the GIL, the CPU is busy): replacing
        that step then lost a step a client keeping up should get."""
        with self._lock:
            last = self._items[-1] if self._items else None
            return (type(last) is _Batch and last.prompt_id == prompt_id
                    and last.progress_of == node
                    and (self._urgent or self._batch_due_in() <= 0))  # fmt: skip

    def preview(self, prompt_id: str, jpeg: bytes, node_id: str) -> None:
        """A preview image of the step just put: it goes before that step's message, so a
        later step replacing that message keeps it; a later preview replaces it."""
        item = ("preview", Preview(node_id, jpeg))
        with self._lock:
            batch = self._batch(prompt_id)
            messages = batch.messages
            if batch.progress_of != node_id:  # its step already left: on its own
                messages.append(item)
                batch.progress_of = None
                self._count += 1
            elif (len(messages) >= 2 and messages[-2][0] == "preview"
                  and messages[-2][1].node_id == node_id):  # fmt: skip
                messages[-2] = item
            else:
                messages.insert(len(messages) - 1, item)
                self._count += 1

    def image(self, prompt_id: str, node_id: str, png: bytes) -> None:
        """An image the running node sends to the prompt's client (SaveImageWebsocket), after
        what was put before it: never replaced, and no later progress step replaces it."""
        with self._lock:
            wake = self._count == 0
            batch = self._batch(prompt_id)
            batch.messages.append(("image", SentImage(node_id, png)))
            batch.progress_of = None
            self._count += 1
            if wake or self._count == BATCH_MESSAGES:
                self._ready.notify()

    def note(self, prompt_id: str, type_: str, data: dict[str, Any]) -> None:
        """A history entry of the running prompt that is no websocket message (a node's
        warning): the server keeps it and logs it."""
        with self._lock:
            self._batch(prompt_id).history.append([type_, data])

    def executed(self, prompt_id: str, node_id: str) -> None:
        """A node of the running prompt ran (was not served from cache)."""
        with self._lock:
            self._batch(prompt_id).executed.append(node_id)

    def _batch(self, prompt_id: str) -> _Batch:
        last = self._items[-1] if self._items else None
        if type(last) is _Batch and last.prompt_id == prompt_id:
            return last
        batch = _Batch(prompt_id, time.monotonic())
        self._items.append(batch)
        return batch

    def _send_loop(self) -> None:
        while True:
            with self._ready:
                while not self._urgent:
                    if not self._items:
                        self._ready.wait()
                        continue
                    wait = self._batch_due_in()
                    if wait <= 0:
                        break
                    self._ready.wait(wait)
            self._send()

    def _batch_due_in(self) -> float:
        """Seconds until the run messages waiting must leave (0 or less: now): when the batch
        is full or its first message `BATCH_SECONDS` old. Under `_lock`, with something
        waiting (while nothing is urgent, the first item is a batch)."""
        if self._count >= BATCH_MESSAGES:
            return 0.0
        return self._items[0].opened + BATCH_SECONDS - time.monotonic()

    def _send(self, wait: bool = True) -> None:
        """Send everything waiting, as one pipe message. Without `wait` only if no send is
        under way: a run never waits behind a slow one (its progress is coalesced meanwhile,
        and the sender sends it next)."""
        if not self._sending.acquire(blocking=wait):
            return
        try:
            with self._lock:
                if not self._items:
                    return
                items = [item.sent() if type(item) is _Batch else item for item in self._items]
                self._items.clear()
                self._count, self._urgent = 0, False
            try:  # one pipe message, one wake-up of the server's reader: a run's last
                self._conn.send(items)  # messages, its Done and the worker's state together
            except (OSError, EOFError):
                os._exit(0)  # the server is gone
        finally:
            self._sending.release()


class Timers:
    """Calls functions after a delay, all on one thread that lives as long as the worker: a
    run arms a timer for its last node states when it goes quiet (`ProgressStates`), and a
    thread started for each run cost that run 0.3 ms of a 100-node chain's 2.9 ms."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[], None]]] = []  # a heap: soonest first
        self._count = itertools.count()  # equal times keep their order; fns never compared
        self._changed = threading.Condition(threading.Lock())
        threading.Thread(target=self._loop, name="worker-timers", daemon=True).start()

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Call `fn` on the timer thread `delay` seconds from now."""
        entry = (time.monotonic() + delay, next(self._count), fn)
        with self._changed:
            heapq.heappush(self._due, entry)
            if self._due[0] is entry:  # sooner than what the thread waits for
                self._changed.notify()

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                fn = heapq.heappop(self._due)[2]
            try:
                fn()
            except Exception:  # noqa: BLE001 - one failing callback must not stop the others
                log.exception("a timer callback failed")


@dataclass
class _Converted:
    """A prompt parsed and converted before its job came (`JobRunner.convert_ahead`)."""

    prompt_id: str
    prompt_json: str
    prompt: dict[str, Any]
    graph: Graph


class JobRunner:
    def __init__(self, setup: WorkerSetup, spec: WorkerSpec, conn: Connection,
                 running: RunningNode | None = None) -> None:  # fmt: skip
        self.setup = setup
        self.spec = spec
        self.conn = conn
        self.running = running  # where the node starting is written (a local worker's)
        self.outbox = Outbox(conn)
        self.timers = Timers()
        self.jobs: queue.Queue[tuple] = queue.Queue()
        self.lock = threading.Lock()
        self.current: str | None = None
        self.cancel: CancelToken | None = None
        self.cancelled: set[str] = set()  # cancelled before they started
        self.ahead: _Converted | None = None  # the last prompt converted ahead of its job
        self.loaded: set[str] = set()  # model keys of the prompts run since the last free
        self.host = socket.gethostname()
        self.registry = self._build_registry()
        # The plugins that failed to load as this worker started (its registry's, as built: a
        # later load into the same registry, `latentgraph.run` in this process, replaces the
        # registry's and not these): named when a prompt needs a node type they would have
        # declared (`_why_not_loaded`), never loaded again to say so.
        self.plugin_failures: tuple[PluginFailure, ...] = self.registry.plugin_failures
        self._import_model_libraries()
        from latentgraph.graph.cache import Cache
        from latentgraph.graph.scheduler import Scheduler

        # A disk store that cannot be written (full) is told the server once by this worker;
        # the server logs it once, however many workers tell it (`WarnedOnce`).
        cache = Cache(spec.cache_memory_bytes, spec.disk_store, spec.cache_disk_bytes,
                      on_disk_error=lambda text: self.outbox.put(Warned(text)))  # fmt: skip
        self.scheduler = Scheduler(registry=self.registry, cache=cache, settings=spec.settings)
        # torch, diffusers and transformers leave 440,000 objects for the collector: each full
        # pass walked them for 0.22 s, with the GIL held, in the middle of a run (measured).
        freeze_start_up_objects()

    def _build_registry(self) -> Registry:
        """This worker's registry, the plugins failing to load kept as its `plugin_failures`
        (`plugins.load_plugins`, here or in the setup's builder): they go with its Ready, and
        the server logs those its own process did not have (it has said its own failures: a
        worker does not warn them again)."""
        if self.setup.registry is not None:
            return self.setup.registry()
        from latentgraph.graph.declare import default_registry
        from latentgraph.graph.plugins import load_plugins

        if self.spec.load_nodes or self.spec.nodes_dirs:
            load_plugins(self.spec.nodes_dirs, entry_points=self.spec.load_nodes, errors=[])
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
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        threading.Thread(target=self._read_commands, name="worker-commands", daemon=True).start()
        self.say_ready()
        while True:
            command = self.jobs.get()
            if command[0] == STOP:
                return
            if command[0] == FREE:
                self.free(*command[1:])
                self.outbox.put(Freed(self._resident()))
            elif command[0] == RUN:
                self.run(command[1])  # its Done says the worker is idle again
                continue
            elif command[0] == CONVERT:
                self.convert_ahead(*command[1:])
                continue
            self.say_ready()  # idle again: the devices' memory as it is now

    def convert_ahead(self, prompt_id: str, prompt_json: str) -> None:
        """Parse and convert a prompt the server is still checking, its likely next job: the
        0.4-0.6 ms a 201-node prompt takes here then overlaps the server's check, not the
        run. A prompt that does not convert is left for its run, which reports why."""
        from latentgraph.graph.comfy_api import graph_from_prompt

        self.ahead = None
        try:
            prompt = json.loads(prompt_json)
            graph = graph_from_prompt(prompt, self.registry)
        except Exception:  # noqa: BLE001 - the run converts it again and reports the error
            return
        self.ahead = _Converted(prompt_id, prompt_json, prompt, graph)

    def _prompt_and_graph(self, job: Job) -> tuple[dict[str, Any], Graph | None]:
        """The job's prompt, and its Graph if that very text was converted ahead (a refused
        prompt's id may come again with another prompt)."""
        ahead, self.ahead = self.ahead, None
        if (ahead is not None and ahead.prompt_id == job.prompt_id
                and ahead.prompt_json == job.prompt_json):  # fmt: skip
            return ahead.prompt, ahead.graph
        return json.loads(job.prompt_json), None

    def say_ready(self) -> None:
        self.outbox.put(Ready(os.getpid(), self._resident(), self._devices(), self.host,
                              tuple(str(failure) for failure in self.plugin_failures)))  # fmt: skip

    def _devices(self) -> tuple[Device, ...]:
        return worker_devices(self.spec.settings.device)

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
        pid, outbox = job.prompt_id, self.outbox
        prompt, graph = self._prompt_and_graph(job)
        translator = RunTranslator(
            pid, PromptTypes(prompt), send=functools.partial(outbox.message, pid),
            send_preview=functools.partial(outbox.preview, pid),
            parents=PromptParents(prompt), targets=job.targets, schedule=self.timers.schedule,
            note=functools.partial(outbox.note, pid),
            own_messages=bool(job.extra_data.get(LATENTGRAPH_MESSAGES)),
            ui_limit=ui_chars_limit(self.scheduler.settings.max_string_chars),
            prompt_ui_limit=prompt_ui_chars_limit(self.scheduler.settings.max_string_chars),
        )  # fmt: skip
        pnginfo = job.extra_data.get("extra_pnginfo") or {}
        # SaveImage's text chunks: the workflow, our document, and any other entry an API
        # client sent (None without one: the cache key of a run without is as it was)
        others = {k: v for k, v in pnginfo.items() if k not in ("workflow", "latentgraph")}
        extra = {"prompt": prompt, "workflow": pnginfo.get("workflow"),
                 "latentgraph": pnginfo.get("latentgraph"), "pnginfo": others or None,
                 "prompt_id": pid,
                 "previews": job.previews,
                 "send_image": functools.partial(outbox.image, pid)}  # fmt: skip
        status: RunStatus = "failed"
        ui: dict[str, Any] = {}
        error: str | None = None
        running = self.running

        def on_event(event: Event) -> None:
            if type(event) is NodeFinished:
                if not event.cached:
                    outbox.executed(pid, event.node_id)
            elif type(event) is NodeStarted and running is not None:
                running.started(event.node_id)  # before its code runs, which may end us
            elif isinstance(event, NodeProgress) and event.preview is not None:
                jpeg = _preview_bytes(event.preview) if job.previews else None
                event = dataclasses.replace(event, preview=jpeg)
            translator.handle(event)

        try:
            targets = job.targets or None
            if not job.checked:
                graph, targets = self._check(prompt, targets)
            elif graph is None:
                graph = graph_from_prompt(prompt, self.registry)
            self.loaded |= model_keys(prompt, self.registry)
            result = self.scheduler.run(graph, targets=targets, on_event=on_event, cancel=token,
                                        run_id=pid, extra=extra, validate=False)  # fmt: skip
            status, ui = result.status, translator.kept_ui(result.ui or {})
        except WorkflowError as exc:
            if job.checked:
                exc = self._not_loaded_here(exc)
            first = exc.errors[0] if exc.errors else None
            error = str(exc)
            translator.start_if_needed()
            translator.error(RunError(error, "WorkflowError", first.node_id if first else None,
                                      first.node_type if first else None, user_error=True))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - reported to the client, the worker goes on
            error = f"{type(exc).__name__}: {exc}"
            translator.start_if_needed()
            translator.error(
                RunError(str(exc), type(exc).__name__, traceback=traceback.format_exception(exc))
            )
        finally:
            with self.lock:
                self.current, self.cancel = None, None
            if running is not None:
                running.ended()
        if not translator.finished:  # the engine ended without its RunFinished
            translator.finish(RunFinished(pid, status=status))
        failure = translator.failure
        if status == "failed" and error is None and failure is not None:
            error = failure.message
        if status == "failed" and _out_of_memory(failure, error):
            # Free what the failed run held so the next prompt starts from a clean slate.
            log.warning("prompt %s ran out of memory (%s); unloading models and freeing caches",
                        pid, error)  # fmt: skip
            self.free(unload_models=True, free_memory=True)
        outbox.put(Done(pid, status, ui or dict(translator.ui), error, self._resident(),
                        self._devices()))  # fmt: skip

    def _check(self, prompt: dict[str, Any], targets: list[str] | None) -> tuple[Graph, list[str]]:
        """Validate a job POST /prompt did not check in this server (one queued before a
        restart) as POST /prompt does: each output with what it needs. The graph and the
        outputs that passed; WorkflowError when none did."""
        from latentgraph.graph.comfy_api import check_outputs, graph_from_prompt
        from latentgraph.graph.problems import Problem
        from latentgraph.graph.validate import output_nodes

        graph = graph_from_prompt(prompt, self.registry)
        outputs = targets or output_nodes(graph, self.registry)
        if not outputs:
            raise WorkflowError([Problem("prompt_no_outputs", "the prompt has no output node")])
        check = check_outputs(graph, self.registry, self.scheduler.settings, outputs)
        if not check.good:
            raise WorkflowError(check.errors)
        return graph, check.good

    def _not_loaded_here(self, exc: WorkflowError) -> WorkflowError:
        """A checked job's node types this worker lacks (the server validated them with its
        own registry): each named with this worker and why its plugins are not the server's,
        not as a typo in the prompt. The prompt fails here; another worker is not tried."""
        lacking = [p for p in exc.errors if p.code == "unknown_node_type"]
        if not lacking:
            return exc
        where = f"worker {self.spec.index} (pid {os.getpid()} on {self.host})"
        why = self._why_not_loaded()
        return WorkflowError([dataclasses.replace(
            p, message=f"node type {quoted(p.node_type)} is not loaded in {where}, though the "
                       f"server has it: every worker needs the server's node plugins; {why}")
            for p in lacking])  # fmt: skip

    def _why_not_loaded(self) -> str:
        """Why this worker's plugins lack a node type: the plugins that failed to load as it
        started (a folder not there, an import error), else which ones it loaded."""
        from latentgraph.graph.plugins import unloaded_plugins

        said = unloaded_plugins(self.plugin_failures)
        if said:
            return "here, " + said
        if self.spec.nodes_dirs:
            folders = ", ".join(str(d) for d in self.spec.nodes_dirs)
            return (f"no plugin of --nodes-dir {folders} here declares it (the same folder, "
                    "and latentgraph version, as the server's?)")  # fmt: skip
        return ("no plugin pack installed here declares it (install the server's packs and "
                "latentgraph version on every machine)")  # fmt: skip

    def free(self, unload_models: bool, free_memory: bool) -> None:
        try:
            unload = (unload_models or free_memory) and self.setup.free_models is not None
            release_memory(self.setup.free_models if unload else None,
                           [self.scheduler.cache] if free_memory else [])  # fmt: skip
            if unload:
                self.loaded.clear()
        except Exception:  # noqa: BLE001 - a failed free must not stop the worker
            log.exception("freeing memory failed")


def _preview_bytes(image: Any) -> bytes | None:
    from .messages import encode_preview

    try:
        return encode_preview(image)
    except Exception:  # noqa: BLE001 - a bad preview never fails the run
        log.debug("preview encoding failed", exc_info=True)
        return None


def _out_of_memory(failure: NodeFailed | None, error: str | None) -> bool:
    """torch.OutOfMemoryError, or a RuntimeError saying so (older torch, MPS, cuDNN)."""
    kind = failure.exception_type if failure is not None else ""
    text = f"{failure.message if failure is not None else ''} {error or ''}".lower()
    return kind.endswith("OutOfMemoryError") or "out of memory" in text
