"""The objects every route shares, kept on `app.state.lg`."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import Request

from latentgraph.graph.context import Settings

from . import store as st
from .collector import collector_paused
from .config import ServerConfig
from .dispatch import EDITOR_GRACE, Dispatcher
from .errors import ApiError
from .hub import Hub
from .prompts import PromptRejected, check_prompt, check_string_lengths

# A run's messages pass between threads of this process (the submit thread, the dispatcher, the
# worker pool's reader, the event loop). CPython lets a busy thread keep the GIL for the switch
# interval (5 ms by default) before a waiting one runs, so each hop at a run's end could wait
# that long while the event loop writes frames. At 1 ms, 1,000-node runs through the server
# took 5-15% less time, alternated side by side; no change measured at 10,000 and more
# (docs/benchmarks.md).
GIL_SWITCH_SECONDS = 0.001


@dataclass
class ServerState:
    config: ServerConfig
    registry: Any
    settings: Settings
    store: st.Store
    hub: Hub
    worker: Dispatcher  # queued prompts to the worker processes
    _limiter: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)

    async def enqueue(self, body: Any) -> dict[str, Any]:
        """Check and queue a POST /prompt body. Returns the 200 answer or raises PromptRejected.

        The prompt is held (see `Dispatcher.hold`): call `release` once the answer is sent."""
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object with a 'prompt'", "invalid_prompt")
        if self.store.count_queued() >= self.config.max_queue:
            raise ApiError(429, f"the queue is full ({self.config.max_queue} prompts)",
                           "queue_full")  # fmt: skip
        prompt = body.get("prompt")
        limit = self.config.max_prompt_nodes
        if isinstance(prompt, dict) and len(prompt) > limit:
            raise ApiError(413, f"the prompt has {len(prompt):,} nodes; this server accepts at "
                                f"most {limit:,} (serve --max-prompt-nodes)", "too_many_nodes",
                           nodes=len(prompt), limit=limit)  # fmt: skip
        extra = body.get("extra_data") or {}
        if not isinstance(extra, dict):
            raise ApiError(400, "extra_data must be an object", "invalid_prompt")
        client_id = body.get("client_id")
        if client_id is not None and not isinstance(client_id, str):
            raise ApiError(400, "client_id must be a string", "invalid_prompt")
        prompt_id = body.get("prompt_id") or str(uuid.uuid4())
        if not isinstance(prompt_id, str) or len(prompt_id) > 200:
            raise ApiError(400, "prompt_id must be a string", "invalid_prompt")
        number = body.get("number")
        if number is not None and (not isinstance(number, (int, float))
                                   or isinstance(number, bool) or abs(number) > MAX_NUMBER):  # fmt: skip
            number = _BAD_NUMBER
        front = bool(body.get("front"))
        self.worker.hold(prompt_id)  # the caller releases it once its answer is sent
        try:
            record = await anyio.to_thread.run_sync(
                self._check_and_add, prompt_id, number, prompt,
                body.get("partial_execution_targets"), extra, client_id, front,
                limiter=self.submit_limiter())  # fmt: skip
        except BaseException:
            self.worker.release(prompt_id)
            raise
        self.worker.wake()
        self.hub.broadcast("status", self.worker.status())
        return {"prompt_id": record.id, "number": record.number, "node_errors": {}}

    def release(self, prompt_id: str, client_id: str | None) -> None:
        """Let a queued prompt start: its answer has been sent (see `Dispatcher.hold`)."""
        grace = EDITOR_GRACE if self.hub.is_editor(client_id) else 0.0
        self.worker.release(prompt_id, grace)

    def _check_and_add(self, prompt_id: str, number: Any, prompt: Any, targets: Any,
                       extra: dict[str, Any], client_id: str | None,
                       front: bool) -> st.PromptRecord:  # fmt: skip
        """The SQLite and validation part of `enqueue`, in one hop to the submit thread."""
        if self.store.exists(prompt_id):
            raise ApiError(400, f"prompt_id {prompt_id!r} is already used", "invalid_prompt")
        if number is _BAD_NUMBER:
            raise ApiError(400, f"number must be a number between -{MAX_NUMBER} and "
                           f"{MAX_NUMBER}", "invalid_prompt")  # fmt: skip
        limit = self.config.max_extra_data_bytes
        if extra and len(json.dumps(extra)) > limit:
            raise ApiError(413, f"extra_data is larger than {limit:,} bytes (the server's "
                           "--max-extra-data-mb)", "too_large")  # fmt: skip
        check_string_lengths(prompt, self.config.max_string_chars)
        with collector_paused:  # millions of objects for a large prompt: see collector.py
            checked, _ = check_prompt(prompt, self.registry, self.settings, targets)
        record = st.PromptRecord(
            id=prompt_id,
            number=int(number) if number is not None else None,
            prompt=checked.prompt,
            extra_data=extra,
            outputs=checked.targets or checked.outputs,
            client_id=client_id,
            targets=checked.targets,
        )
        try:
            record = self.store.add(record, front=front,
                                    max_queued_bytes=self.config.max_queue_bytes)  # fmt: skip
        except st.QueueTooLarge as exc:
            raise ApiError(429, str(exc), "queue_full") from None
        self.worker.prepare(record.id)
        return record

    def on_start(self) -> None:
        """Event-loop set-up before the first request. The first CapacityLimiter imports
        anyio's backend: on the first POST, under load, that import held the loop 0.25 s."""
        self.submit_limiter()
        sys.setswitchinterval(GIL_SWITCH_SECONDS)

    def submit_limiter(self) -> anyio.CapacityLimiter:
        """One thread checks and stores submitted prompts: a burst of POSTs then competes
        with the event loop for the GIL from one thread, not from the whole threadpool."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return self._limiter


_BAD_NUMBER = object()
# The largest |number| a client may give: a safe integer in JavaScript (the editor), and far
# inside SQLite's 64-bit integers (front-of-queue numbers count down from the lowest).
MAX_NUMBER = 2**53 - 1


def get_state(request: Request) -> ServerState:
    return request.app.state.lg


__all__ = ["ServerState", "get_state", "PromptRejected"]
