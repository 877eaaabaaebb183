"""The dispatcher: queued prompts to idle workers, worker reports to clients and history.

Two locks. `_state` (re-entrant) guards the dispatch state (running prompts, workers,
withheld messages, the choice of work), held by whichever thread works on it: the
dispatcher's own (its timers, and what routes post to its inbox), the worker pool's reader (a
worker's messages are handled where they are read) and POST /prompt's submit thread (a prompt
it queued starts at once). Each hop to another thread cost a 100-node run a tenth of a
millisecond or more. None of them waits on a websocket (the Hub's bounded queues) nor on a
model (the workers). `_lock` guards the tables routes and the submit thread reach without
`_state` (`_held`, `_prepared`, `_running_ids`: `hold`, `release`, `prepare`, `refused`,
`interrupt`, `worker_of`), for a few lines that call out to nothing.
Lock order: `_state`, then `_lock`. `_lock` may be taken while `_state` is held, never
`_state` (nor anything that takes it) while `_lock` is: the two cannot deadlock.
History is written before the final `executing` (node: null) message, so a client that reads
/history/{id} on that message finds the entry.
A prompt starts as soon as it is queued, but its client hears of it only once its POST
/prompt answer is sent (`hold`, `release`): until then its messages are withheld, in order.

Dispatch: in queue order, each prompt goes to the idle worker already holding its models
(`model_keys`); if none does but a busy one does that no earlier prompt waits for, the
prompt waits for that one while at most `MAX_PASSES` later prompts start before it (the
fairness bound). One prompt waits per busy worker: the others take an idle worker, which
loads their models (after a worker restart, the fresh one holds nothing). Interrupt: the
worker is asked to cancel; if the prompt has not ended `interrupt_grace` seconds later, the
worker is killed (and replaced) and the prompt ends interrupted.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from latentgraph.graph import Registry
from latentgraph.graph.events import RunFinished, RunStatus
from latentgraph.graph.files import WRITE_FAILED
from latentgraph.graph.problems import node_name

from . import store as st
from .hub import Client, Hub
from .messages import (
    JPEG,
    NODE_ERROR,
    NODE_WARNING,
    PNG,
    PromptText,
    PromptTypes,
    RunError,
    RunTranslator,
    encode_message,
    preview_frame,
    sent_to,
    shown_error,
    shown_paths,
)
from .workers import (
    Device,
    Died,
    Done,
    Freed,
    Job,
    Lost,
    Preview,
    Ready,
    RunMessages,
    SentImage,
    Warned,
    WarnedOnce,
    WorkerMessage,
    WorkerPool,
    model_keys,
)

log = logging.getLogger("latentgraph.server")

_STATUS = {"success": st.SUCCESS, "interrupted": st.INTERRUPTED}
# A held prompt's messages (its POST /prompt answer not sent yet) go out anyway after this
# long, so a lost release can never keep a client waiting.
HOLD_SECONDS = 2.0
# How long after its answer an editor hears of its prompt: time for the page to handle it.
EDITOR_GRACE = 0.25
# How many later prompts may start before one waiting for the worker holding its models (no
# more than one prompt waits for each busy worker: `Dispatcher._worker_for`).
MAX_PASSES = 3
# How far down the queue dispatch looks for a prompt suiting an idle worker.
WINDOW = 32
# Queued prompts remembered as checked by POST /prompt (see `Dispatcher.prepare`).
PREPARED_PROMPTS = 10_000
# While the database cannot be written (a full disk), how often dispatch tries again.
STORE_RETRY_SECONDS = 2.0


@dataclass
class _Running:
    record: st.PromptRecord
    worker: int
    translator: RunTranslator  # the server's copy: ends the run itself if the worker dies
    node: str | None = None  # the node running now
    began: bool = False  # the worker has reported on it, or died in one of its nodes
    interrupted_at: float | None = None  # monotonic time of the cancel request
    killed: bool = False
    # the worker's execution_error as it came, for the server's log: the message and history
    # get it with the server's folders as a web client knows them (`_errors_shown`)
    error_as_sent: dict[str, Any] | None = None


@dataclass
class _Worker:
    name: str  # its pool's name for it (`WorkerInfo.name`), for the log; kept when replaced
    ready: bool = False
    pid: int | None = None
    prompt: str | None = None
    resident: frozenset[str] = field(default_factory=frozenset)
    devices: tuple[Device, ...] = ()
    host: str = ""  # where it runs, as its Ready said


class Dispatcher:
    def __init__(self, store: st.Store, hub: Hub, registry: Registry, pool: WorkerPool, *,
                 previews: bool = False, interrupt_grace: float = 10.0,
                 folders: Mapping[str, str] | None = None) -> None:  # fmt: skip
        """`folders`: the server's folders by absolute path, as a run's error shows them to
        web clients (`messages.user_folders`); the server's log keeps the full paths."""
        self.store = store
        self.folders = dict(folders or {})
        self.interrupt_grace = interrupt_grace  # ServerConfig.interrupt_grace_seconds
        self.hub = hub
        self.registry = registry
        self.pool = pool
        self.previews = previews
        self._inbox: queue.Queue[tuple] = queue.Queue()
        # Held by whichever thread works on the dispatch state (the module docstring says
        # which). Re-entrant: a pool may deliver a message from inside a call made under it.
        self._state = threading.RLock()
        self._lock = threading.Lock()  # _held and _running_ids (read by routes)
        self._held: dict[str, float] = {}  # prompt id -> monotonic deadline
        # a held prompt's messages, as sends to make once its hold ends (under _state)
        self._withheld: dict[str, list[Callable[[], None]]] = {}
        self._running_ids: dict[str, int] = {}  # prompt id -> worker
        # checked prompts (see `prepare`): id -> model keys
        self._prepared: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._running: dict[str, _Running] = {}  # this and what follows: under _state
        self._workers: list[_Worker] = []
        self._passed: dict[str, int] = {}
        self._keys: dict[str, frozenset[str]] = {}
        self._deaths: dict[str, int] = {}  # prompt id -> workers that died under it
        self.frees = 0  # POST /free requests the workers have carried out
        self._warned = WarnedOnce(log)  # the workers' warnings, each said once in the log
        self._store_retry_at = 0.0  # monotonic time before which nothing starts (full disk)
        self._store_refused = False  # a prompt could not be marked running: said once, till one is
        self._stop = threading.Event()
        # The pool lost every worker for good (`Lost`): why, and who stops the server then
        # (`serve` sets it: as a signal does, in order).
        self.lost: str | None = None
        self.on_lost: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._loop, name="latentgraph-dispatch",
                                        daemon=True)  # fmt: skip

    # --- control (any thread) ----------------------------------------------------------

    def start(self) -> None:
        infos = self.pool.workers()
        self._workers = [_Worker(info.name) for info in infos]
        self.pool.start(self._deliver)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._inbox.put(("wake",))
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.pool.stop()
        self._record_shutdown()

    def _record_shutdown(self) -> None:
        """The prompts still running once the workers are stopped end as an orderly shutdown's
        errors, as a dead worker's do (`_end_here`: at the node it was running, after the nodes
        that finished), written now (the database is right without a restart); queued prompts
        stay pending, to run after the next start."""
        with self._state:
            runs = list(self._running.values())
            for run in runs:
                self._end_here(run, RunError(st.SHUTDOWN, "Shutdown", node_id=run.node))
        if runs:
            log.warning("recorded %d running prompt(s) as interrupted by shutdown", len(runs))

    def wake(self) -> None:
        self._inbox.put(("wake",))

    def shutting_down(self) -> None:
        """The server got its stop signal (see `WorkerPool.shutting_down`)."""
        self.pool.shutting_down()

    def dispatch(self) -> None:
        """Start what can start, on the calling thread (POST /prompt's submit thread, once it
        queued a prompt): waking the dispatcher's thread for it cost a 100-node run 0.1-0.25 ms."""
        with self._state:
            self._guarded(self._dispatch)

    def _deliver(self, worker_id: int, message: WorkerMessage) -> None:
        """A worker's message, handled on the pool's thread that read it, not passed on to the
        dispatcher's thread (a wake-up less at every run's end). A worker that is free now is
        the dispatcher thread's to give work: workers coming up together get one pass."""
        with self._state:
            self._guarded(self._on_message, worker_id, message)
        if not isinstance(message, RunMessages):
            self.wake()

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception:  # noqa: BLE001 - the dispatcher outlives any one failure
            log.exception("dispatching failed in %s", step.__name__)

    def hold(self, prompt_id: str) -> None:
        """Withhold a prompt's messages from its client until `release`. The editor files a
        run's outputs under the job it learns from the POST /prompt answer, and drops outputs
        that arrive before it has handled that answer: a fast run (a cached re-run, a loaded
        model) would show no image. So the client hears of its prompt once the answer is sent,
        and the editor a moment later (`EDITOR_GRACE`). The prompt itself starts at once: its
        worker reads it while the answer is written (a 100-node chain's run then ended 0.47 ms
        sooner: docs/benchmarks.md, fifth pass)."""
        with self._lock:
            self._held[prompt_id] = time.monotonic() + HOLD_SECONDS

    def release(self, prompt_id: str, grace: float = 0.0) -> None:
        """The answer is sent: the prompt's messages may go out, `grace` seconds from now."""
        with self._lock:
            if grace > 0:
                self._held[prompt_id] = time.monotonic() + grace
            else:
                self._held.pop(prompt_id, None)
        self.wake()

    def prepare(self, prompt_id: str, keys: frozenset[str]) -> None:
        """Remember that POST /prompt validated this prompt, so the worker converts it without
        validating it again (a second pass over a 100,000-node prompt), and its model keys
        (`model_keys`), so dispatch never parses the prompt's text. Handing the worker
        the checked Graph itself cost more than converting again: pickled, it is twice the
        prompt's size and slower to load than to rebuild. A prompt queued before a restart is
        validated again when it runs (the node packs may have changed)."""
        with self._lock:
            self._prepared[prompt_id] = keys
            while len(self._prepared) > PREPARED_PROMPTS:
                self._prepared.popitem(last=False)

    def refused(self, prompt_id: str) -> None:
        """The store refused a prompt `prepare` and `hold` had taken note of (a full queue, a
        database that cannot be written): forget both."""
        with self._lock:
            self._prepared.pop(prompt_id, None)
        self.release(prompt_id)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Stop the running prompt `prompt_id` (every running prompt when None)."""
        with self._lock:
            running = list(self._running_ids)
        targets = running if prompt_id is None else [p for p in running if p == prompt_id]
        if not targets:
            return False
        self._inbox.put(("interrupt", targets))
        return True

    def convert_ahead(self, prompt_id: str, prompt_json: str, keys: frozenset[str]) -> None:
        """POST /prompt is about to check this prompt: if nothing is queued before it and it
        would start on an idle worker now, that worker parses and converts it meanwhile (the
        conversion then overlaps the check instead of delaying the run: docs/benchmarks.md,
        sixth pass). Nothing is lost if it is refused or starts elsewhere."""
        with self._state:
            idle = self._idle()
            if not idle or self.store.pending():
                return
            worker = self._worker_for(prompt_id, keys, idle, self._busy())
        if worker is not None:
            self.pool.convert_ahead(worker, prompt_id, prompt_json)

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        """Free memory in every worker, between its prompts."""
        self._inbox.put(("free", unload_models, free_memory))

    def status(self) -> dict[str, Any]:
        return {"status": {"exec_info": {"queue_remaining": self.store.count_queued()}}}

    def running_nodes(self, client_id: str) -> list[tuple[str, str]]:
        """(prompt id, node id) of each of `client_id`'s running prompts that has begun a node:
        a socket reconnecting with that id is told which node runs now, as ComfyUI tells it, so
        a reloaded editor marks it again before the node's next message (a model load or a VAE
        decode sends none till it ends). A prompt whose messages are withheld (`hold`) is left
        out: its client has not heard of it yet."""
        with self._state:
            return [(run.record.id, run.node) for run in self._running.values()
                    if run.node is not None and run.record.client_id == client_id
                    and run.record.id not in self._withheld]  # fmt: skip

    def worker_pids(self) -> list[int | None]:
        """The process ids of the workers, as last reported ready (None while starting)."""
        return [w.pid if w.ready else None for w in self._workers]

    def worker_of(self, prompt_id: str) -> int | None:
        """The worker running `prompt_id` (None when it is not running)."""
        with self._lock:
            return self._running_ids.get(prompt_id)

    def resident(self) -> list[frozenset[str]]:
        return [w.resident for w in self._workers]

    def devices(self) -> list[Device]:
        """The devices the workers last reported, each once (CPU workers share the CPU)."""
        found: dict[tuple[str, int | None], Device] = {}
        for worker in list(self._workers):
            for device in worker.devices:
                found.setdefault((device.type, device.index), device)
        return list(found.values())

    # --- the loop (the dispatcher's thread) --------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._inbox.get(timeout=self._timeout())
            except queue.Empty:
                item = None
            while item is not None:
                with self._state:
                    self._guarded(self._handle, item)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    item = None
            with self._state:
                self._guarded(self._send_released)
                self._guarded(self._kill_overdue)
                self._guarded(self._dispatch)

    def _timeout(self) -> float:
        now = time.monotonic()
        with self._state:
            due = [r.interrupted_at + self.interrupt_grace - now for r in self._running.values()
                   if r.interrupted_at is not None and not r.killed]  # fmt: skip
        with self._lock:
            due += [d - now for d in self._held.values()]
        if self._store_retry_at > now:
            due.append(self._store_retry_at - now)
        return min([1.0, *(max(d, 0.01) for d in due)])

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "interrupt":
            for prompt_id in item[1]:
                run = self._running.get(prompt_id)
                if run is not None:
                    if run.interrupted_at is None:
                        run.interrupted_at = time.monotonic()
                    self.pool.cancel(run.worker, prompt_id)
        elif kind == "free":
            for i, worker in enumerate(self._workers):
                if worker.ready:
                    self.pool.free(i, item[1], item[2])

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for run in self._running.values():
            if run.interrupted_at is not None and not run.killed:
                if now - run.interrupted_at >= self.interrupt_grace:
                    log.warning("prompt %s did not stop within %.1f s; killing its worker",
                                run.record.id, self.interrupt_grace)  # fmt: skip
                    run.killed = True
                    self.pool.kill(run.worker)

    def _on_message(self, worker_id: int, message: WorkerMessage) -> None:
        if isinstance(message, Lost):
            self._on_lost(message.reason)
            return
        worker = self._workers[worker_id]
        if isinstance(message, RunMessages):
            run = self._running.get(message.prompt_id)
            if run is not None and run.worker == worker_id:
                self._relay(run, message)
        elif isinstance(message, Ready):
            if message.pid != worker.pid:  # a new process: started, or replacing one that died
                on = ", ".join(device.name for device in message.devices)
                log.info("worker %d (pid %d) is ready%s", worker_id, message.pid,
                         f" on {on}" if on else "")  # fmt: skip
                self._log_plugin_failures(worker_id, message)
            worker.ready, worker.pid, worker.resident = True, message.pid, message.resident
            worker.devices, worker.host = message.devices, message.host
        elif isinstance(message, Done):
            worker.prompt, worker.resident = None, message.resident
            if message.devices is not None:
                worker.devices = message.devices
            run = self._running.get(message.prompt_id)
            if run is not None:
                self._finish(run, message.status, message.ui, message.error)
        elif isinstance(message, Freed):
            worker.resident = message.resident
            self.frees += 1
        elif isinstance(message, Died):
            self._on_death(worker_id, message.reason, message.node)
        elif isinstance(message, Warned):
            self._warned(message)

    def _log_plugin_failures(self, worker_id: int, ready: Ready) -> None:
        """A new worker process's plugin failures that the server's own did not have (a
        plugin importing in the server, not in the worker: another machine's or device's
        environment), one warning each as it starts: else nobody heard of it until a prompt
        needed one of its node types. The server's own were said as it started."""
        said = {str(failure) for failure in self.registry.plugin_failures}
        where = f"pid {ready.pid} on {ready.host}" if ready.host else f"pid {ready.pid}"
        for failure in ready.plugin_failures:
            if failure not in said:
                log.warning("worker %d (%s): %s", worker_id, where, failure)

    def _relay(self, run: _Running, batch: RunMessages) -> None:
        """Forward a worker's encoded messages to the prompt's client, previews and sent images
        framed for it; log the nodes' warnings and each node's failure as it fails (ComfyUI's
        one `execution_error` names only the first), with the server's own paths."""
        run.began = True
        if batch.node is not None:
            run.node = batch.node
        for type_, data in batch.history:
            if type_ == NODE_WARNING:
                log.warning("prompt %s: warning from %s: %s", run.record.id,
                            node_name(data["node_id"], data["node_type"]), data["message"])  # fmt: skip
            elif type_ == NODE_ERROR:
                _log_failure(run.record.id, data, None)
        if self.folders and any(t in _ERRORS for t, _ in batch.history):
            run.error_as_sent = next((d for t, d in batch.history if t == "execution_error"),
                                     run.error_as_sent)  # fmt: skip
            batch = _errors_shown(batch, self.folders, run.record.prompt_json)
        run.translator.relayed(batch.history, batch.executed)
        self._to_client(run.record.id, functools.partial(self._forward, run.record, batch))

    def _forward(self, record: st.PromptRecord, batch: RunMessages) -> None:
        sid = _audience(record)
        texts: list[tuple[str, str]] = []
        for type_, payload in batch.messages:
            if isinstance(payload, Preview):
                self.hub.send_encoded(sid, texts)
                texts = []
                self._preview(record, payload.jpeg, payload.node_id)
            elif isinstance(payload, SentImage):
                self.hub.send_encoded(sid, texts)
                texts = []
                self._preview(record, payload.png, payload.node_id, PNG, "image")
            else:
                texts.append((type_, payload))
        self.hub.send_encoded(sid, texts)

    def _send(self, record: st.PromptRecord, type_: str, data: dict[str, Any]) -> None:
        """One message to the prompt's client (encoded now: withheld, it stays as it is now)."""
        sid, text = _audience(record), encode_message(type_, data)
        self._to_client(record.id, lambda: self.hub.send_encoded(sid, [(type_, text)]))

    def _to_client(self, prompt_id: str, send: Callable[[], None]) -> None:
        """Make one of a prompt's sends, after what is withheld of it: now unless it is held."""
        self._withheld.setdefault(prompt_id, []).append(send)
        self._send_released()

    def _send_released(self) -> None:
        """Make the withheld sends of the prompts whose hold has ended, in order."""
        now = time.monotonic()
        with self._lock:
            for prompt_id in [p for p, deadline in self._held.items() if deadline <= now]:
                del self._held[prompt_id]
            released = [p for p in self._withheld if p not in self._held]
        for prompt_id in released:
            for send in self._withheld.pop(prompt_id):
                send()

    def _on_death(self, worker_id: int, reason: str, node: str | None = None) -> None:
        """A worker died (`node`: the node it was running then, when its pool can tell). Its
        prompt fails at the node it was running; one it had not started a node of (killed
        just then, not by the prompt) goes back to the queue once, and as often as the pool
        retries (`_redispatches`)."""
        worker = self._workers[worker_id]
        prompt_id = worker.prompt
        self._workers[worker_id] = _Worker(worker.name)  # not ready until its replacement says so
        run = self._running.get(prompt_id) if prompt_id else None
        if run is None:
            return
        if node is not None and node in run.translator.node_types:
            # a node's code ended the process before a batch told of it (`RunningNode`): the
            # prompt had begun, and the death is that node's
            run.node, run.began = node, True
        record = run.record
        deaths = self._deaths.get(record.id, 0)
        if run.interrupted_at is None and deaths < _redispatches(self.pool, run.began):
            # Back to its place in the queue: sent to a worker that died before it said a
            # word (killed just then), or a pool that retries (Ray: nodes already computed
            # are cache hits). A prompt that keeps killing workers fails below.
            self._deaths[record.id] = deaths + 1
            self._forget(run)
            if self.store.requeue(record.id):
                types = run.translator.node_types
                at = f" at {node_name(run.node, types.get(run.node))}" if run.node else ""
                log.warning("prompt %s goes back to the queue: its worker died%s (%s)",
                            record.id, at, reason)  # fmt: skip
                return
        translator = run.translator
        if run.interrupted_at is not None:
            translator.finish(RunFinished(run.record.id, status="interrupted",
                                          interrupted_node=run.node))  # fmt: skip
            self._finish(run, "interrupted", {}, None)
            return
        self._end_here(run, RunError(reason, "WorkerDied", node_id=run.node))

    def _on_lost(self, reason: str) -> None:
        """No worker comes back (a Ray cluster stopped): the prompts running go back to the
        queue, not failed (the nodes they finished are disk-cache hits when they run again),
        nothing starts any more, and the server is asked to stop (`on_lost`). One line says
        why and that the prompts are kept for the next start."""
        running = list(self._running.values())
        for run in running:
            self._forget(run)
            self.store.requeue(run.record.id)
        self._workers = [_Worker(w.name) for w in self._workers]  # none ready: nothing is sent
        self.lost = reason
        log.error("%s: the server stops; its %d prompt(s) queued or running are kept, to run "
                  "at its next start", reason, len(self.store.pending()))  # fmt: skip
        if self.on_lost is not None:
            self.on_lost()

    def _end_here(self, run: _Running, failure: RunError) -> None:
        """End a run its worker will not end (it died, or the server stops) with `failure`,
        from the server's copy of its translator: its history is what the worker sent, the
        error listing the nodes it saw finish (`executed`), as the worker's own would."""
        run.translator.start_if_needed()
        run.translator.error(failure)
        self._finish(run, "failed", {}, failure.message)

    def _finish(self, run: _Running, status: RunStatus, ui: dict[str, Any],
                error: str | None) -> None:  # fmt: skip
        record, translator = run.record, run.translator
        if not translator.finished:
            translator.finish(RunFinished(record.id, status=status))
        ended = run.error_as_sent or _last_error(translator.history)
        if status == "failed" and not _logged(translator.history, ended):
            _log_failure(record.id, ended, error)  # the log keeps the server's own paths
        if status == "failed" and error is None and translator.failure is not None:
            error = translator.failure.message
        try:
            # A full disk: the end is kept in memory and written once it fits (`Store.flush`).
            # The client has heard it from the worker already; nothing contradicts it.
            failed = translator.failure.node_id if translator.failure is not None else run.node
            shown = (shown_paths(error, self.folders,
                                 sent_to(PromptText(record.prompt_json), failed))
                     if error is not None else None)  # fmt: skip
            self.store.finish(record.id, _STATUS.get(status, st.ERROR), ui=ui or translator.ui,
                              messages=translator.history, error=shown)  # fmt: skip
        except Exception:  # noqa: BLE001 - the client still hears the end; the next runs
            log.exception("could not record the end of prompt %s", record.id)
        finally:
            self._forget(run)
            self._passed.pop(record.id, None)
            self._keys.pop(record.id, None)
            self._deaths.pop(record.id, None)
        self._send(record, "executing", {"node": None, "display_node": None,
                                         "prompt_id": record.id})  # fmt: skip
        self.hub.broadcast("status", self.status())

    def _forget(self, run: _Running) -> None:
        """The prompt no longer runs on its worker."""
        self._running.pop(run.record.id, None)
        with self._lock:
            self._running_ids.pop(run.record.id, None)
        if self._workers[run.worker].prompt == run.record.id:
            self._workers[run.worker].prompt = None

    # --- choosing work -------------------------------------------------------------------

    def _model_keys(self, record: st.PromptRecord) -> frozenset[str]:
        keys = self._keys.get(record.id)
        if keys is None:
            with self._lock:
                keys = self._prepared.get(record.id)
            if keys is None:  # queued before a restart
                keys = model_keys(json.loads(record.prompt_json), self.registry)
            self._keys[record.id] = keys
        return keys

    def _idle(self) -> list[int]:
        return [i for i, w in enumerate(self._workers) if w.ready and w.prompt is None]

    def _busy(self) -> list[int]:
        return [i for i, w in enumerate(self._workers) if w.prompt is not None]

    def _worker_for(self, prompt_id: str, keys: frozenset[str], idle: list[int],
                    busy: list[int]) -> int | None:  # fmt: skip
        """The idle worker to start a prompt on: the one holding most of its models; None
        when none does but a busy one in `busy` (those no earlier prompt waits for) does: it
        waits for that one, taken out of `busy`, until `MAX_PASSES` later prompts passed it.
        Without that limit of one waiting prompt per busy worker, prompts all wanting the
        model of the one busy worker would wait for it one by one, none passing another, while
        an idle worker (a restarted one, holding nothing) got no work."""
        worker = max(idle, key=lambda i: len(self._workers[i].resident & keys))
        if self._workers[worker].resident & keys:
            return worker
        if keys and self._passed.get(prompt_id, 0) < MAX_PASSES:
            holder = next((i for i in busy if self._workers[i].resident & keys), None)
            if holder is not None:
                busy.remove(holder)
                return None  # its models' worker will be free soon
        # a worker holding nothing (or the least) keeps the others' models loaded
        return min(idle, key=lambda i: len(self._workers[i].resident))

    def _dispatch(self) -> None:
        idle = self._idle()
        if not idle or time.monotonic() < self._store_retry_at:
            return
        if not self.store.flush():  # the disk is still full: start nothing until it is not
            self._store_retry_at = time.monotonic() + STORE_RETRY_SECONDS
            return
        busy = self._busy()  # those no prompt waits for yet (`_worker_for` takes them out)
        waiting: list[str] = []
        for record in self.store.pending()[:WINDOW]:
            if not idle:
                break
            worker = self._worker_for(record.id, self._model_keys(record), idle, busy)
            if worker is None:
                waiting.append(record.id)
                continue
            try:
                if not self.store.mark_running(record.id):
                    continue  # deleted between the read and now
            except st.StoreWriteError as exc:  # said once, not at every retry
                if not self._store_refused:
                    log.error("prompt %s cannot start: %s; no prompt starts until the database "
                              "can be written again", record.id, exc.strerror)  # fmt: skip
                self._store_refused = True
                self._store_retry_at = time.monotonic() + STORE_RETRY_SECONDS
                return
            if self._store_refused:
                log.warning("the queue database can be written again: prompt %s starts", record.id)
                self._store_refused = False
            idle.remove(worker)
            for passed in waiting:
                self._passed[passed] = self._passed.get(passed, 0) + 1
            self._start(record, worker)

    def _start(self, record: st.PromptRecord, worker_id: int) -> None:
        method = str(record.extra_data.get("preview_method") or "").lower()
        want_previews = self.previews or method not in ("", "none")
        translator = RunTranslator(record.id, PromptTypes(PromptText(record.prompt_json)),
                                   send=functools.partial(self._send, record))  # fmt: skip
        self._running[record.id] = _Running(record, worker_id, translator)
        with self._lock:
            self._running_ids[record.id] = worker_id
            checked = self._prepared.pop(record.id, None) is not None
        worker = self._workers[worker_id]
        worker.prompt = record.id
        log.info("prompt %s starts on worker %d (%s, pid %s on %s)", record.id, worker_id,
                 worker.name, worker.pid, worker.host or "?")  # fmt: skip
        job = Job(record.id, record.prompt_json, record.extra_data, record.targets, want_previews,
                  checked)  # fmt: skip
        self.pool.submit(worker_id, job)

    def _preview(self, record: st.PromptRecord, data: bytes, node_id: str,
                 image_format: int = JPEG, type_: str = "preview") -> None:  # fmt: skip
        """A node's image, for whoever gets the prompt's messages (`_audience`), each client's
        frame as it asked for it: a preview (JPEG, droppable) or a SaveImageWebsocket "image"."""
        if not isinstance(data, bytes):
            return
        meta = {"node_id": node_id, "prompt_id": record.id, "display_node_id": node_id,
                "parent_node_id": None, "real_node_id": node_id}  # fmt: skip
        frame = functools.partial(_framed, data, image_format, meta)
        self.hub.send_bytes(_audience(record), frame, type_)


def _audience(record: st.PromptRecord) -> str | None:
    """Who gets a prompt's run messages, previews and sent images, as the hub addresses them:
    the websocket of the client_id it was queued with, or every open socket (None) for a
    prompt queued without one, as ComfyUI sends them (its send with no sid broadcasts)."""
    return record.client_id


def _framed(data: bytes, image_format: int, meta: dict[str, Any], client: Client) -> bytes:
    """A node's image as one client takes it: with the metadata header (naming the node and the
    prompt) when it announced `supports_preview_metadata` (the editor), else ComfyUI's
    classic frame."""
    return preview_frame(data, image_format=image_format,
                         metadata=meta if client.wants_preview_metadata else None)  # fmt: skip


# The messages and history entries saying a failure, as web clients see them (`_errors_shown`).
_ERRORS = frozenset({"execution_error", NODE_ERROR})


def _errors_shown(batch: RunMessages, folders: Mapping[str, str], prompt_json: str) -> RunMessages:
    """`batch` with its failures (`execution_error`, each node's `node_error`) as web clients
    see them (`messages.shown_error`): in the messages sent and in the history kept, the failed
    node's values as the client sent them. Only failures are decoded here (and the prompt, for
    the failed nodes' inputs); every other message is forwarded as the worker encoded it. (A
    `node_error` is a history entry even when no message: the two may leave in two batches.)"""
    prompt = PromptText(prompt_json)

    def shown(data: dict[str, Any]) -> dict[str, Any]:
        return shown_error(data, folders, sent_to(prompt, data.get("node_id")))

    history = [[t, shown(d) if t in _ERRORS else d] for t, d in batch.history]
    messages = [(t, encode_message(t, shown(json.loads(text)["data"])) if t in _ERRORS else text)
                for t, text in batch.messages]  # fmt: skip
    return dataclasses.replace(batch, history=history, messages=messages)


def _last_error(history: list[list[Any]]) -> dict[str, Any]:
    """The run's last `execution_error`, as history holds it ({} when it has none)."""
    return next((d for t, d in reversed(history) if t == "execution_error"), {})


def _logged(history: list[list[Any]], ended: dict[str, Any]) -> bool:
    """Whether the run's failure (its `execution_error`, `ended`) is a node's whose `node_error`
    was logged as it failed (`_relay`): no second line for it. A failure at no node (a
    workflow refused, a worker that died, the server stopping) has none."""
    said = (ended.get("node_id"), ended.get("exception_type"))
    return bool(said[0]) and any(t == NODE_ERROR and (d.get("node_id"), d.get("exception_type"))
                                 == said for t, d in history)  # fmt: skip


def _log_failure(prompt_id: str, data: dict[str, Any], error: str | None) -> None:
    """A failed run's line in the server's log (the editor's Logs panel): the node that
    failed, from the run's `execution_error` `data`, and why (`error`, the server's own
    reason, or the message's); a crash's traceback after it, as ComfyUI's console shows it (a
    user error, `InputError`, has none, nor has a file the disk refused: `WRITE_FAILED`)."""
    node, node_type = data.get("node_id"), data.get("node_type")
    where = f" at {node_name(node, node_type)}" if node else ""  # "": no node was running
    why = error or data.get("exception_message") or "no reason given"
    bug = not data.get("user_error") and data.get("exception_type") != WRITE_FAILED
    crash = "".join(data.get("traceback") or []).rstrip() if bug else ""
    log.error("prompt %s failed%s: %s%s", prompt_id, where, why, f"\n{crash}" if crash else "")


def _redispatches(pool: WorkerPool, began: bool) -> int:
    """How many worker deaths a prompt goes back to the queue after: once if its worker died
    before it began (no message of it relayed, none of its nodes started: the death was not
    its doing), and as often as the pool retries (`redispatch_after_death`)."""
    return max(pool.redispatch_after_death, 0 if began else 1)
