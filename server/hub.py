"""Websocket clients and the bounded queues that keep the worker from ever waiting on them.

The worker thread calls `send`/`broadcast` from any thread; delivery hops onto the event loop
with `call_soon_threadsafe` and lands in the client's own bounded queue. A per-client task
drains that queue into the socket. Progress and previews are dropped first when a client falls
behind; a client whose queue is full of messages that matter is disconnected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("latentgraph.server")

# Messages that may be dropped for a slow client: the next one supersedes them.
DROPPABLE = frozenset({"progress", "progress_state", "preview"})
# `status` goes out at once, then at most once per interval (the latest value): a burst of
# 200 queued prompts would otherwise send 200 status frames to every one of 50 sockets.
STATUS_INTERVAL = 0.05


@dataclass
class Client:
    sid: str
    websocket: Any
    queue: asyncio.Queue
    flags: dict[str, Any] = field(default_factory=dict)
    closed: bool = False
    dropped: int = 0

    @property
    def wants_preview_metadata(self) -> bool:
        return bool(self.flags.get("supports_preview_metadata"))


class Hub:
    """All connected websocket clients, by sid."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = max(4, queue_size)
        self.clients: dict[str, Client] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._status: str | None = None  # latest status not yet sent (event loop only)
        self._status_timer: asyncio.TimerHandle | None = None

    def is_editor(self, sid: str | None) -> bool:
        """The web editor announces feature flags when it connects; API clients do not."""
        client = self.clients.get(sid) if sid else None
        return client is not None and bool(client.flags)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called on the event loop's own thread."""
        self.loop = loop
        self._loop_thread = threading.get_ident()

    # --- connection lifecycle (event loop) ---------------------------------------------

    def connect(self, websocket: Any, sid: str | None) -> Client:
        sid = sid or uuid.uuid4().hex
        old = self.clients.get(sid)
        if old is not None:  # a reconnect with the same id replaces the old socket
            self._drop(old)
        client = Client(sid, websocket, asyncio.Queue(maxsize=self.queue_size))
        self.clients[sid] = client
        return client

    def disconnect(self, client: Client) -> None:
        client.closed = True
        if self.clients.get(client.sid) is client:
            del self.clients[client.sid]

    async def pump(self, client: Client) -> None:
        """Send the client's queued messages until it goes away."""
        while not client.closed:
            item = await client.queue.get()
            if item is None:
                break
            if isinstance(item, bytes):
                await client.websocket.send_bytes(item)
            else:
                await client.websocket.send_text(item)

    # --- sending (any thread) ----------------------------------------------------------

    def send(self, sid: str | None, type_: str, data: dict[str, Any]) -> None:
        """Queue a JSON message for one client (ignored if it is not connected)."""
        if sid is None:
            return
        self._later(self._deliver_to, sid, type_, _encode(type_, data))

    def send_bytes(self, sid: str | None, payload: bytes) -> None:
        if sid is None:
            return
        self._later(self._deliver_to, sid, "preview", payload)

    def broadcast(self, type_: str, data: dict[str, Any]) -> None:
        if type_ == "status":
            self._later(self._status_changed, _encode(type_, data))
        else:
            self._later(self._deliver_all, type_, _encode(type_, data))

    def _later(self, fn, *args) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            if threading.get_ident() == self._loop_thread:  # a route: no self-pipe wake-up
                loop.call_soon(fn, *args)
            else:
                loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop shutting down
            pass

    # --- delivery (event loop) ---------------------------------------------------------

    def _deliver_to(self, sid: str, type_: str, payload: str | bytes) -> None:
        client = self.clients.get(sid)
        if client is not None:
            self._put(client, type_, payload)

    def _status_changed(self, payload: str) -> None:
        if self._status_timer is None:  # quiet until now: send it, then hold later ones
            self._deliver_all("status", payload)
            self._status_timer = self._arm_status_timer()
        else:
            self._status = payload

    def _arm_status_timer(self) -> asyncio.TimerHandle | None:
        return self.loop.call_later(STATUS_INTERVAL, self._status_due) if self.loop else None

    def _status_due(self) -> None:
        payload, self._status = self._status, None
        if payload is None:
            self._status_timer = None
        else:
            self._deliver_all("status", payload)
            self._status_timer = self._arm_status_timer()

    def _deliver_all(self, type_: str, payload: str) -> None:
        for client in list(self.clients.values()):
            self._put(client, type_, payload)

    def _put(self, client: Client, type_: str, payload: str | bytes) -> None:
        q = client.queue
        if type_ in DROPPABLE and q.qsize() >= self.queue_size // 2:
            client.dropped += 1
            return
        try:
            q.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("websocket client %s is not reading; disconnecting it", client.sid)
            self._drop(client)

    def _drop(self, client: Client) -> None:
        self.disconnect(client)
        # Unblock the pump and close the socket without waiting for a stuck peer.
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(None)
        if self.loop is not None:
            self.loop.create_task(_close_quietly(client.websocket))


def _encode(type_: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": type_, "data": data}, default=str)


async def _close_quietly(websocket: Any) -> None:
    try:
        await asyncio.wait_for(websocket.close(code=1008), timeout=2)
    except Exception:  # noqa: BLE001 - the peer may already be gone
        pass
