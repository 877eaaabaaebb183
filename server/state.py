"""The objects every route shares, kept on `app.state.lg`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from latentgraph.graph.context import Settings

from . import store as st
from .config import ServerConfig
from .errors import ApiError
from .hub import Hub
from .prompts import PromptRejected, check_prompt
from .worker import Worker


@dataclass
class ServerState:
    config: ServerConfig
    registry: Any
    settings: Settings
    store: st.Store
    hub: Hub
    worker: Worker

    async def enqueue(self, body: Any) -> dict[str, Any]:
        """Check and queue a POST /prompt body. Returns the 200 answer or raises PromptRejected."""
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object with a 'prompt'", "invalid_prompt")
        if self.store.count_queued() >= self.config.max_queue:
            raise ApiError(429, f"the queue is full ({self.config.max_queue} prompts)",
                           "queue_full")  # fmt: skip
        extra = body.get("extra_data") or {}
        if not isinstance(extra, dict):
            raise ApiError(400, "extra_data must be an object", "invalid_prompt")
        client_id = body.get("client_id")
        if client_id is not None and not isinstance(client_id, str):
            raise ApiError(400, "client_id must be a string", "invalid_prompt")
        prompt_id = body.get("prompt_id") or str(uuid.uuid4())
        if not isinstance(prompt_id, str) or len(prompt_id) > 200:
            raise ApiError(400, "prompt_id must be a string", "invalid_prompt")
        if await run_in_threadpool(self.store.exists, prompt_id):  # SQLite: off the loop
            raise ApiError(400, f"prompt_id {prompt_id!r} is already used", "invalid_prompt")
        number = body.get("number")
        if number is not None and (
            not isinstance(number, (int, float)) or isinstance(number, bool)
        ):
            raise ApiError(400, "number must be a number", "invalid_prompt")
        checked, _graph = await run_in_threadpool(
            check_prompt, body.get("prompt"), self.registry, self.settings,
            body.get("partial_execution_targets"))  # fmt: skip
        record = st.PromptRecord(
            id=prompt_id,
            number=int(number) if number is not None else None,
            prompt=checked.prompt,
            extra_data=extra,
            outputs=checked.targets or checked.outputs,
            client_id=client_id,
            targets=checked.targets,
        )
        await run_in_threadpool(self.store.add, record, front=bool(body.get("front")))
        self.worker.wake()
        self.hub.broadcast("status", self.worker.status())
        return {"prompt_id": record.id, "number": record.number, "node_errors": {}}


def get_state(request: Request) -> ServerState:
    return request.app.state.lg


__all__ = ["ServerState", "get_state", "PromptRejected"]
