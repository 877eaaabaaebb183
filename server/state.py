"""The objects every route shares, kept on `app.state.lg`, and the submit step.

`ServerState.enqueue_text` (POST /prompt's body as it came) and `enqueue` (the websocket's
`queue_prompt`, POST /latentgraph/run) hand the body in one hop to a submit thread, the cyclic
collector paused there (`collector.py`). `_check_and_add` checks it (more than
`max_prompt_nodes` is 413; `prompts.check_prompt` validates it while an idle worker it would
start on converts it, `Dispatcher.convert_ahead`), stores it held (`Store.add`,
`Dispatcher.hold`) and dispatches it from that thread; the route releases the hold once its
answer is sent. The process's GIL switch interval is set at start
(`collector.GIL_SWITCH_SECONDS`)."""

from __future__ import annotations

import json
import sys
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request

from latentgraph.graph import Registry, Settings
from latentgraph.graph.problems import quoted

from . import store as st
from .collector import GIL_SWITCH_SECONDS, collector_paused, in_thread
from .config import ServerConfig, server_limit_label
from .dispatch import EDITOR_GRACE, Dispatcher
from .errors import ApiError
from .hub import Hub
from .prompt_body import body_not_an_object, node_chars_limit, read_prompt_body
from .prompts import (
    PromptRejected,
    check_extra_pnginfo,
    check_nodes,
    check_prompt,
    check_string_lengths,
    log_refusal,
    no_prompt,
)
from .workers import model_keys

# A queued prompt's record and the node_errors of its outputs that will not run.
_Queued = tuple[st.PromptRecord, dict[str, Any]]


@dataclass
class ServerState:
    config: ServerConfig
    registry: Registry
    settings: Settings
    store: st.Store
    hub: Hub
    dispatcher: Dispatcher  # queued prompts to the worker processes
    _limiter: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)

    async def enqueue(self, body: Any) -> tuple[dict[str, Any], str | None]:
        """Check and queue a parsed POST /prompt body (the websocket's `queue_prompt`, our
        /latentgraph/run): the 200 answer and the body's client_id, or ApiError /
        PromptRejected. The prompt is held (see `Dispatcher.hold`): call `release` once the
        answer is sent."""
        return await self._enqueue(self._check_and_add, body)

    async def enqueue_text(self, raw: bytes) -> tuple[dict[str, Any], str | None]:
        """`enqueue` for a body as it came (POST /prompt): parsed on the submit thread too."""
        return await self._enqueue(self._parse_check_and_add, raw)

    async def _enqueue(self, check: Callable[[Any], _Queued],
                       body: Any) -> tuple[dict[str, Any], str | None]:  # fmt: skip
        try:  # every refusal logged in one place, whatever refused it
            if self.store.count_queued() >= self.config.max_queue:
                n = self.config.max_queue
                raise ApiError(429, f"the queue is full ({n} prompt{'s' if n != 1 else ''}, "
                               f"{server_limit_label('max_queue')})", "queue_full")  # fmt: skip
            record, errors = await self._in_submit_thread(check, body)
        except (PromptRejected, ApiError) as exc:
            log_refusal(exc)
            raise
        self.hub.broadcast("status", self.dispatcher.status())
        # node_errors: the outputs that failed validation and will not run (ComfyUI's 200)
        answer = {"prompt_id": record.id, "number": record.number, "node_errors": errors}
        return answer, record.client_id

    async def _in_submit_thread(self, check: Callable[[Any], _Queued], body: Any) -> _Queued:
        """`check(body)` on the submit thread, with the collector paused; a refusal leaves
        nothing behind (`in_thread`: its frames held the body, the parsed prompt and its
        graph)."""
        return await in_thread(_collector_paused, check, body, limiter=self.submit_limiter())

    def release(self, prompt_id: str, client_id: str | None) -> None:
        """Let a queued prompt's messages go out: its answer has been sent (see
        `Dispatcher.hold`)."""
        grace = EDITOR_GRACE if self.hub.is_editor(client_id) else 0.0
        self.dispatcher.release(prompt_id, grace)

    def release_task(self, prompt_id: str, client_id: str | None) -> BackgroundTask:
        """`release` as the task of an HTTP answer: run once the answer is sent, on the event
        loop (Starlette runs a plain function's task on a threadpool thread: a hop each)."""

        async def release() -> None:
            self.release(prompt_id, client_id)

        return BackgroundTask(release)

    def _parse_check_and_add(self, raw: bytes) -> _Queued:
        parsed = read_prompt_body(raw, node_chars_limit(self.config.max_string_chars))
        return self._check_and_add(parsed.body, parsed.prompt_text)

    def _check_and_add(self, body: Any, prompt_text: str | None = None) -> _Queued:
        """`prompt_text`: the body's prompt as it came, when the reader kept it (stored as it
        is); otherwise the prompt is encoded for the store. Returns the stored record and the
        `node_errors` of the outputs that will not run."""
        if not isinstance(body, dict):
            raise body_not_an_object()
        if "prompt" not in body:  # a document sent whole is named (`no_prompt`)
            raise no_prompt(body)
        prompt = body.get("prompt")
        limit = self.config.max_prompt_nodes
        if isinstance(prompt, dict) and len(prompt) > limit:
            raise ApiError(413, f"the prompt has {len(prompt):,} nodes; this server accepts at "
                                f"most {limit:,} ({server_limit_label('max_prompt_nodes')})", "too_many_nodes",
                           nodes=len(prompt), limit=limit)  # fmt: skip
        extra = body.get("extra_data") or {}
        if not isinstance(extra, dict):
            raise ApiError(400, "extra_data must be an object", "invalid_prompt")
        check_extra_pnginfo(extra)
        client_id = body.get("client_id")
        if client_id is not None and not isinstance(client_id, str):
            raise ApiError(400, "client_id must be a string", "invalid_prompt")
        prompt_id = _prompt_id(body)
        number = body.get("number")
        if number is not None and (not isinstance(number, (int, float))
                                   or isinstance(number, bool) or abs(number) > MAX_NUMBER):  # fmt: skip
            raise ApiError(400, f"number must be a number between -{MAX_NUMBER} and "
                           f"{MAX_NUMBER}", "invalid_prompt")  # fmt: skip
        try:  # before the check, the hold and the conversion ahead, which name the prompt by id
            self.store.check_id_free(prompt_id)
        except st.PromptIdInUse as exc:
            raise ApiError(400, str(exc), "invalid_prompt") from None
        limit = self.config.max_extra_data_bytes
        if extra and len(json.dumps(extra)) > limit:
            raise ApiError(413, f"extra_data is larger than {limit:,} bytes "
                           f"({server_limit_label('max_extra_data_bytes')})", "too_large")  # fmt: skip
        check_string_lengths(
            prompt, self.config.max_string_chars, prompt_text, self.registry, self.settings
        )
        check_nodes(prompt)  # before a worker is asked to convert a prompt that is refused
        keys = model_keys(prompt, self.registry)
        if prompt_text is not None:  # its worker converts it while it is checked here
            self.dispatcher.convert_ahead(prompt_id, prompt_text, keys)
        checked, _ = check_prompt(prompt, self.registry, self.settings,
                                  body.get("partial_execution_targets"))  # fmt: skip
        record = st.PromptRecord(
            id=prompt_id,
            number=int(number) if number is not None else None,
            prompt_json=prompt_text if prompt_text is not None else json.dumps(checked.prompt),
            # the body's client_id kept in extra_data too, as ComfyUI's /queue and /history show it
            extra_data={**extra, "client_id": client_id} if "client_id" in body else extra,
            outputs=checked.targets or checked.outputs,
            client_id=client_id,
            targets=checked.targets,
        )
        # Before it is queued: a worker may take it at once.
        self.dispatcher.prepare(prompt_id, keys)
        self.dispatcher.hold(prompt_id)  # until the caller releases it: its answer is sent
        try:
            record = self.store.add(record, front=bool(body.get("front")),
                                    max_queued_bytes=self.config.max_queue_bytes)  # fmt: skip
        except BaseException as exc:
            self.dispatcher.refused(prompt_id)
            if isinstance(exc, st.QueueTooLarge):
                raise ApiError(429, str(exc), "queue_full") from None
            if isinstance(exc, st.PromptIdInUse):
                raise ApiError(400, str(exc), "invalid_prompt") from None
            raise
        self.dispatcher.dispatch()  # from this thread: the run starts while the answer is written
        return record, checked.node_errors

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


# The largest |number| a client may give. The store numbers later prompts above the highest
# |number| given (a front-of-queue one: the negative of that), so a client's must leave room below
# 2**53: every number stays a safe integer in JavaScript (the editor tells them apart).
MAX_NUMBER = 2**40


# The longest prompt_id a client may choose.
MAX_PROMPT_ID_CHARS = 200

# What a client's prompt_id must be to name its prompt in a URL path (`_unnameable`).
PROMPT_ID_EXPECTED = "expected text with no '/' and no control character, other than '.' or '..'"


def _prompt_id(body: dict[str, Any]) -> str:
    """The body's prompt_id, or a new one when it gives none (absent, null or ""). A number
    is taken as its text (12345 is "12345"), as ComfyUI's str() takes it: clients send their
    integer job ids. true, false, a list or an object name no prompt: refused, where ComfyUI
    would make "True" of one. A client's id must be one /history/{id} and /api/jobs/{id} can
    name (`_unnameable`)."""
    given = body.get("prompt_id")
    if given is None or given == "":
        return str(uuid.uuid4())
    if isinstance(given, bool) or not isinstance(given, (str, int, float)):
        shown = {dict: "an object", list: "a list"}.get(type(given)) or json.dumps(given)
        raise ApiError(400, f"prompt_id must be a string or a number, got {shown}",
                       "invalid_prompt")  # fmt: skip
    prompt_id = given if isinstance(given, str) else str(given)
    if len(prompt_id) > MAX_PROMPT_ID_CHARS:
        raise ApiError(400, f"prompt_id is {len(prompt_id):,} characters long; at most "
                       f"{MAX_PROMPT_ID_CHARS} are allowed", "invalid_prompt")  # fmt: skip
    why = _unnameable(prompt_id)
    if why:
        raise ApiError(400, f"prompt_id {quoted(prompt_id[:40])} {why}, which /history/{{id}} "
                       f"and /api/jobs/{{id}} cannot name; {PROMPT_ID_EXPECTED}",
                       "invalid_prompt")  # fmt: skip
    return prompt_id


def _unnameable(prompt_id: str) -> str | None:
    """Why a URL path segment cannot carry `prompt_id` back to this server, or None when one
    can. A '/' splits the segment; a control character is not one (the /api mount's path
    matches no newline: such a prompt ran, /history/{id} named it and /api/jobs/{id} stayed
    404 for good; an id's newline would also write lines of its own into the log); '.' and
    '..' are resolved away by clients before the request is sent."""
    if "/" in prompt_id:
        return "contains '/'"
    control = next((c for c in prompt_id if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return f"contains U+{ord(control):04X}, a control character"
    if prompt_id in (".", ".."):
        return "is a dot segment (clients resolve it away)"
    return None


def _collector_paused(check: Callable[[Any], _Queued], body: Any) -> _Queued:
    """Run a submit step (on the submit thread) with the cyclic collector paused: a
    100,000-node body parses to millions of objects (collector.py). Only the stored record,
    which holds the prompt as text, leaves: the parsed body is freed when `check` returns,
    before the collector resumes, so no collection ever walks it."""
    with collector_paused:
        return check(body)


def get_state(request: Request) -> ServerState:
    return request.app.state.lg


__all__ = ["ServerState", "get_state", "PromptRejected"]
