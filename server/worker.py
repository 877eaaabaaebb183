"""The one thread that runs prompts, in queue order, with the real Scheduler.

It never waits on a websocket: everything it sends goes through the Hub's thread-safe, bounded
per-client queues. History is written before the final `executing` (node: null) message, so a
client that reads /history/{id} on that message always finds the entry.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from latentgraph.graph.context import CancelToken, Settings
from latentgraph.graph.events import NodeFailed, RunStatus
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.scheduler import Scheduler

from . import store as st
from .hub import Hub
from .messages import RunTranslator, preview_frame

log = logging.getLogger("latentgraph.server")

_STATUS = {"success": st.SUCCESS, "interrupted": st.INTERRUPTED}
# A held prompt (its POST /prompt answer not sent yet) starts anyway after this long, so a lost
# release can never stall the queue.
HOLD_SECONDS = 2.0
# How long after its answer an editor's prompt starts: time for the page to handle the answer.
EDITOR_GRACE = 0.25
# Checked graphs of queued prompts kept in memory (see `Worker.prepare`).
PREPARED_GRAPHS = 4
# While the database cannot be written (a full disk), how often the worker tries again.
STORE_RETRY_SECONDS = 2.0


class Worker:
    """Runs queued prompts. `free_models` unloads every loaded model (POST /free, and after
    an out-of-memory failure): whoever builds the worker passes the node packs' function;
    without one, only the output cache is freed."""

    def __init__(self, store: st.Store, hub: Hub, registry, settings: Settings,
                 *, previews: bool = False, disk_cache: bool = True,
                 free_models: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.free_models = free_models
        self.store = store
        self.hub = hub
        self.registry = registry
        self.settings = settings
        self.previews = previews
        self.disk_cache = disk_cache
        self.current: st.PromptRecord | None = None
        self._cancel: CancelToken | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._chores: list[Callable[[], None]] = []
        self._held: dict[str, float] = {}  # prompt id -> monotonic deadline
        self._prepared: OrderedDict[str, Any] = OrderedDict()  # prompt id -> checked Graph
        self._scheduler: Scheduler | None = None
        self._thread = threading.Thread(target=self._loop, name="latentgraph-worker", daemon=True)

    # --- control (any thread) ----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.interrupt()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def hold(self, prompt_id: str) -> None:
        """Keep a prompt from starting until `release`. The editor files a run's outputs
        under the job it learns from the POST /prompt answer, and drops outputs that arrive
        before it has handled that answer: a fast run (a cached re-run, a loaded model) would
        show no image. So a prompt starts once its answer is sent, and for the editor a
        moment later (`EDITOR_GRACE`)."""
        with self._lock:
            self._held[prompt_id] = time.monotonic() + HOLD_SECONDS

    def release(self, prompt_id: str, grace: float = 0.0) -> None:
        """The answer is sent: the prompt may start, `grace` seconds from now."""
        with self._lock:
            if grace > 0:
                self._held[prompt_id] = time.monotonic() + grace
            else:
                self._held.pop(prompt_id, None)
        self._wake.set()

    def _held_for(self, prompt_id: str) -> float:
        """Seconds this prompt is still held (0 when it may start)."""
        with self._lock:
            deadline = self._held.get(prompt_id)
            if deadline is None:
                return 0.0
            left = deadline - time.monotonic()
            if left <= 0:
                del self._held[prompt_id]
            return max(left, 0.0)

    def prepare(self, prompt_id: str, graph: Any) -> None:
        """Keep the Graph POST /prompt built and validated, so the run neither converts nor
        validates the prompt again (a second pass over a 100,000-node prompt). Only the
        latest few are kept; others are rebuilt from the stored prompt when they run."""
        with self._lock:
            self._prepared[prompt_id] = graph
            while len(self._prepared) > PREPARED_GRAPHS:
                self._prepared.popitem(last=False)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Cancel the running prompt (only if it is `prompt_id`, when given)."""
        with self._lock:
            current, cancel = self.current, self._cancel
        if current is None or cancel is None:
            return False
        if prompt_id is not None and prompt_id != current.id:
            return False
        cancel.cancel()
        return True

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        """Free memory between prompts, on the worker thread (models are not thread-safe)."""
        self._chores.append(lambda: self._free(unload_models, free_memory))
        self._wake.set()

    def status(self) -> dict[str, Any]:
        return {"status": {"exec_info": {"queue_remaining": self.store.count_queued()}}}

    # --- the loop (worker thread) ------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # noqa: BLE001 - nothing may stop the worker for good
                log.exception("the worker hit an unexpected error; it goes on")
                self._stop.wait(STORE_RETRY_SECONDS)

    def _step(self) -> None:
        """Run the chores, then the next prompt that may start (or wait for one)."""
        while self._chores:
            chore = self._chores.pop(0)
            try:
                chore()
            except Exception:  # noqa: BLE001 - a failed free must not stop the worker
                log.exception("freeing memory failed")
        if not self.store.flush():  # the disk is still full: start nothing until it is not
            self._stop.wait(STORE_RETRY_SECONDS)
            return
        record = self.store.next_pending()
        if record is None:
            self._wake.wait(1.0)
            self._wake.clear()
            return
        held = self._held_for(record.id)
        if held:
            self._wake.wait(held)
            self._wake.clear()
            return
        try:
            if not self.store.mark_running(record.id):
                return  # deleted between the read and now
        except st.StoreWriteError as exc:
            log.error("prompt %s cannot start: %s; retrying in %s s", record.id, exc,
                      STORE_RETRY_SECONDS)  # fmt: skip
            self._stop.wait(STORE_RETRY_SECONDS)
            return
        with self._lock:
            self.current, self._cancel = record, CancelToken()
        try:
            self._run(record, self._cancel)
        except Exception:  # noqa: BLE001 - never let one prompt kill the worker
            log.exception("prompt %s crashed the runner", record.id)
            self.store.finish(record.id, st.ERROR, error="internal error")
        finally:
            with self._lock:
                self.current, self._cancel = None, None
        self.hub.send(record.client_id, "executing",
                      {"node": None, "display_node": None, "prompt_id": record.id})  # fmt: skip
        self.hub.broadcast("status", self.status())

    def scheduler(self) -> Scheduler:
        if self._scheduler is None:
            from latentgraph.graph.cache import default_cache

            self._scheduler = Scheduler(
                registry=self.registry,
                cache=default_cache(disk=self.disk_cache),
                settings=self.settings,
            )
        return self._scheduler

    def _run(self, record: st.PromptRecord, cancel: CancelToken) -> None:
        from latentgraph.graph.comfy_api import graph_from_prompt

        sid = record.client_id
        types = {nid: str(spec.get("class_type", "")) for nid, spec in record.prompt.items()
                 if isinstance(spec, dict)}  # fmt: skip
        method = str(record.extra_data.get("preview_method") or "").lower()
        want_previews = self.previews or method not in ("", "none")
        translator = RunTranslator(
            record.id,
            types,
            send=lambda t, d: self.hub.send(sid, t, d),
            send_preview=(lambda img, node: self._preview(record, img, node)) if want_previews else None,
            parents=_parents(record.prompt),
            targets=record.targets,
            schedule=self.hub.call_later,
        )  # fmt: skip
        pnginfo = record.extra_data.get("extra_pnginfo") or {}
        extra = {"prompt": record.prompt, "workflow": pnginfo.get("workflow"),
                 "latentgraph": pnginfo.get("latentgraph"), "prompt_id": record.id,
                 "previews": want_previews}  # fmt: skip
        ui: dict[str, Any] = {}
        status: RunStatus = "failed"
        error: str | None = None
        try:
            with self._lock:
                graph = self._prepared.pop(record.id, None)
            checked = graph is not None  # validated moments ago by POST /prompt
            if graph is None:
                graph = graph_from_prompt(record.prompt, self.registry)
            result = self.scheduler().run(
                graph, targets=record.targets or None, on_event=translator.handle,
                cancel=cancel, run_id=record.id, extra=extra, validate=not checked)  # fmt: skip
            status = result.status
            ui = dict(result.ui or translator.ui)
        except WorkflowError as exc:
            first = exc.errors[0] if exc.errors else None
            self._start_if_needed(translator)
            error = str(exc)
            translator.error(node_id=first.node_id if first else None,
                             node_type=first.node_type if first else None,
                             message=error, exception_type="WorkflowError")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - reported to the client, the worker goes on
            self._start_if_needed(translator)
            error = f"{type(exc).__name__}: {exc}"
            translator.error(node_id=None, node_type=None, message=str(exc),
                             exception_type=type(exc).__name__,
                             traceback=traceback.format_exception(exc))  # fmt: skip
        if not translator.finished:
            from latentgraph.graph.events import RunFinished

            translator.finish(RunFinished(record.id, status=status))
        if status == "failed" and error is None and translator.failure is not None:
            error = translator.failure.message
        if status == "failed" and _out_of_memory(translator.failure, error):
            # Free what the failed run held so the next prompt starts from a clean slate.
            log.warning("prompt %s ran out of memory (%s); unloading models and freeing caches",
                        record.id, error)  # fmt: skip
            self._free(unload_models=True, free_memory=True)
        recorded = self.store.finish(record.id, _STATUS.get(status, st.ERROR),
                                     ui=ui or translator.ui, messages=translator.history,
                                     error=error)  # fmt: skip
        if not recorded:  # the disk is full: the prompt is marked failed in memory
            stored = self.store.get(record.id)
            self.hub.send(sid, "execution_error", {
                "prompt_id": record.id, "node_id": None, "node_type": None,
                "exception_type": "StoreWriteError", "exception_message": stored.error
                if stored is not None else "the result could not be recorded",
                "traceback": [], "current_inputs": {}, "current_outputs": {}})  # fmt: skip

    @staticmethod
    def _start_if_needed(translator: RunTranslator) -> None:
        if not any(m[0] == "execution_start" for m in translator.history):
            from latentgraph.graph.events import now_ms

            translator.emit("execution_start",
                            {"prompt_id": translator.prompt_id, "timestamp": now_ms()})  # fmt: skip

    def _preview(self, record: st.PromptRecord, image: Any, node_id: str) -> None:
        client = self.hub.clients.get(record.client_id or "")
        if client is None:
            return
        try:
            meta = None
            if client.wants_preview_metadata:
                meta = {"node_id": node_id, "prompt_id": record.id, "display_node_id": node_id,
                        "parent_node_id": None, "real_node_id": node_id}  # fmt: skip
            self.hub.send_bytes(record.client_id, preview_frame(image, metadata=meta))
        except Exception:  # noqa: BLE001 - a bad preview never fails the run
            log.debug("preview encoding failed", exc_info=True)

    def _free(self, unload_models: bool, free_memory: bool) -> None:
        if (unload_models or free_memory) and self.free_models is not None:
            self.free_models()
        if free_memory and self._scheduler is not None:
            self._scheduler.cache.clear_memory()
        gc.collect()


def _out_of_memory(failure: NodeFailed | None, error: str | None) -> bool:
    """torch.OutOfMemoryError, or a RuntimeError saying so (older torch, MPS, cuDNN)."""
    kind = failure.exception_type if failure is not None else ""
    text = f"{failure.message if failure is not None else ''} {error or ''}".lower()
    return kind.endswith("OutOfMemoryError") or "out of memory" in text


def _parents(prompt: dict[str, Any]) -> dict[str, list[str]]:
    """Node id -> the node ids its inputs link to, from an API-format prompt."""
    out: dict[str, list[str]] = {}
    for nid, spec in prompt.items():
        inputs = spec.get("inputs") if isinstance(spec, dict) else None
        out[nid] = [str(v[0]) for v in (inputs or {}).values()
                    if isinstance(v, list) and len(v) == 2 and type(v[1]) is int]  # fmt: skip
    return out
