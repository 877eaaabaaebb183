"""The /ws endpoint: status on connect (and the node running now, to a client reconnecting
during its run), feature flags, queueing by message, run messages out."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .errors import ApiError, parse_json
from .prompts import PromptRejected
from .store import StoreWriteError

SERVER_FLAGS = {"supports_preview_metadata": True, "max_upload_size": 0}


async def websocket_endpoint(websocket: WebSocket) -> None:
    state = websocket.app.state.lg
    await websocket.accept()
    sid = websocket.query_params.get("clientId") or None
    if sid is not None and len(sid) > 200:
        await websocket.close(code=1008, reason="clientId too long")
        return
    client = state.hub.connect(websocket, sid)
    status = state.dispatcher.status()
    status["sid"] = client.sid
    state.hub.reply(client, "status", status)
    for prompt_id, node in state.dispatcher.running_nodes(client.sid):  # a reconnect mid-run
        state.hub.reply(client, "executing", {"node": node, "display_node": node,
                                              "prompt_id": prompt_id})  # fmt: skip
    pump = state.hub.start_pump(client)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                continue
            reply = await _handle(state, client, text)
            if reply is not None:
                state.hub.reply(client, *reply)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        state.hub.disconnect(client)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump


async def _handle(state, client, text: str) -> tuple[str, dict[str, Any]] | None:
    try:
        message = parse_json(text, "the websocket message")
    except ApiError as exc:
        return "error", {"message": f"{exc.message}; messages must be JSON {{type, data}}"}
    if not isinstance(message, dict):
        return "error", {"message": "websocket messages must be JSON {type, data}"}
    kind, data = message.get("type"), message.get("data")
    if kind == "feature_flags":
        client.flags = data if isinstance(data, dict) else {}
        flags = dict(SERVER_FLAGS, max_upload_size=state.config.max_upload_bytes)
        return "feature_flags", flags
    if kind == "queue_prompt":
        body = dict(data) if isinstance(data, dict) else {}
        body.setdefault("client_id", client.sid)
        try:
            answer, client_id = await state.enqueue(body)
            # the reply and the run's messages share this socket, in order
            state.release(answer["prompt_id"], client_id)
            return "prompt_queued", answer
        except PromptRejected as exc:
            return "prompt_error", exc.body
        except ApiError as exc:
            return "prompt_error", _refusal(exc.type, exc.message)
        except StoreWriteError as exc:  # a full disk: the socket stays open
            return "prompt_error", _refusal("insufficient_storage", str(exc))
    return None


def _refusal(type_: str, message: str) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, "details": "", "extra_info": {}},
            "node_errors": {}}  # fmt: skip


routes = [WebSocketRoute("/ws", websocket_endpoint)]
