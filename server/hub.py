"""Websocket clients and their outboxes: the worker never waits on a socket, a client that keeps
reading is never dropped, and one that stops reading is closed with a reason.

Any thread calls `send`/`send_encoded`/`send_bytes`/`broadcast`. The message is encoded on that
thread (or arrives encoded: a worker's run messages) and appended to one inbox; the event loop,
woken once per batch rather than once per message, moves the batch into the clients' outboxes,
in order. Each client's `pump` task writes its outbox to its socket. A message is for one sid,
or for every open socket (sid None: ComfyUI's send with no sid, e.g. the run messages of a
prompt queued without a client_id); either way each client's bounds below apply to it.

A client that falls behind (unsent backlog above a quarter of `max_bytes`) loses the messages a
later one supersedes (progress, progress_state, previews). It is closed only when it truly
stalls: one write has waited `stall_seconds` for the peer to read, or its backlog passed
`max_bytes` (the memory bound). The close frame carries the reason.

Several sockets may share a clientId (the editor reconnects with the same one, and a duplicated
tab shares it): the newest open one gets that client's messages, older ones stay open and get
what every socket gets (`status`, broadcasts). Closing one leaves the others as they were; when
the newest closes, the newest still open takes its messages over. Closing an older socket for a
new one (as this server did) made two editors with one clientId close each other in a loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .messages import encode_message
from .ws_protocol import FLUSH_BYTES, SendTexts, text_sender

log = logging.getLogger("latentgraph.server")

# Messages that may be dropped for a slow client: the next one supersedes them. An "image"
# frame (SaveImageWebsocket's result) supersedes nothing and is never dropped: a client too slow
# for it is closed by the byte bound, as for any message that must arrive.
DROPPABLE = frozenset({"progress", "progress_state", "preview"})
# `status` goes out at once, then at most once per interval (the latest value): a burst of
# 200 queued prompts would otherwise send 200 status frames to every one of 50 sockets.
STATUS_INTERVAL = 0.05
# Inbox items moved per event-loop callback: a burst of 100,000 messages is spread over many
# callbacks so HTTP requests and pings are served between them.
BATCH = 1000
CLOSE_STALLED = 1008  # policy violation; the reason says what happened


@dataclass(eq=False)  # compared by identity: sockets of one clientId are different clients
class Client:
    sid: str
    websocket: Any
    send_texts: SendTexts  # how the pump writes text messages (`ws_protocol.text_sender`)
    flags: dict[str, Any] = field(default_factory=dict)
    closed: bool = False
    dropped: int = 0  # droppable messages not sent because the client was behind
    outbox: deque = field(default_factory=deque)  # str (JSON) or bytes (binary frames)
    backlog: int = 0  # bytes in `outbox`
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    writing_since: float | None = None  # loop time of the write in progress, if any
    close_reason: str | None = None
    pump: asyncio.Task | None = None

    @property
    def wants_preview_metadata(self) -> bool:
        return bool(self.flags.get("supports_preview_metadata"))


# A binary frame made for the client it goes to (a node's image, with the header that client
# asked for: `Client.wants_preview_metadata`), on the event loop as it is put in its outbox.
FrameFor = Callable[[Client], bytes]
Payload = str | bytes | FrameFor  # a message as the inbox holds it


class Hub:
    """All connected websocket clients: `sockets` every open one, `clients` the one that gets
    each sid's messages (its newest)."""

    def __init__(self, max_bytes: int = 64 * 2**20, stall_seconds: float = 15.0) -> None:
        self.max_bytes = max(64 * 1024, max_bytes)
        self.stall_seconds = stall_seconds
        self.clients: dict[str, Client] = {}
        self.sockets: dict[Client, None] = {}  # in the order they connected
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # (sid or None for everyone, [(type, payload), ...])
        self._inbox: deque[tuple[str | None, list[tuple[str, Payload]]]] = deque()
        self._draining = False  # a `_drain` is scheduled on the loop
        self._status: str | None = None  # latest status not yet sent (event loop only)
        self._status_timer: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def is_editor(self, sid: str | None) -> bool:
        """The web editor announces feature flags when it connects; API clients do not."""
        client = self.clients.get(sid) if sid else None
        return client is not None and bool(client.flags)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called on the event loop's own thread."""
        self.loop = loop
        self._loop_thread = threading.get_ident()
        self._watchdog = loop.call_later(self._watch_interval(), self._watch)

    # --- connection lifecycle (event loop) ---------------------------------------------

    def connect(self, websocket: Any, sid: str | None) -> Client:
        sid = sid or uuid.uuid4().hex
        client = Client(sid, websocket, text_sender(websocket))
        self.sockets[client] = None
        self.clients[sid] = client  # an older socket of this sid stays open, for broadcasts
        return client

    def disconnect(self, client: Client) -> None:
        client.closed = True
        client.ready.set()  # wakes the pump, which then ends
        self.sockets.pop(client, None)
        if self.clients.get(client.sid) is client:
            del self.clients[client.sid]
            newest = next((c for c in reversed(self.sockets) if c.sid == client.sid), None)
            if newest is not None:
                self.clients[client.sid] = newest

    def reply(self, client: Client, type_: str, data: dict[str, Any]) -> None:
        """Queue a message for a client from the event loop (answers on its own socket)."""
        self._put(client, type_, encode_message(type_, data))

    def start_pump(self, client: Client) -> asyncio.Task:
        """Start writing the client's outbox to its socket (a task the hub may cancel)."""
        client.pump = asyncio.get_running_loop().create_task(self._pump(client))
        return client.pump

    async def _pump(self, client: Client) -> None:
        """Write the client's outbox to its socket until it goes away."""
        loop = asyncio.get_running_loop()
        ws = client.websocket
        while not client.closed:
            if not client.outbox:
                client.ready.clear()
                await client.ready.wait()
                continue
            client.writing_since = loop.time()
            if isinstance(client.outbox[0], bytes):
                payload = client.outbox.popleft()
                client.backlog -= len(payload)
                await ws.send_bytes(payload)
            else:
                await client.send_texts(_texts(client))
            client.writing_since = None

    # --- sending (any thread) ----------------------------------------------------------

    def send(self, sid: str | None, type_: str, data: dict[str, Any]) -> None:
        """Queue a JSON message for client `sid` (ignored if it is not connected), or for every
        open socket when `sid` is None."""
        self._post(sid, [(type_, encode_message(type_, data))])

    def send_encoded(self, sid: str | None, messages: list[tuple[str, str]]) -> None:
        """Queue messages already encoded as JSON text, (type, text) each, as `send` does."""
        if messages:
            self._post(sid, messages)

    def send_bytes(self, sid: str | None, frame: bytes | FrameFor, type_: str = "preview") -> None:
        """Queue a binary frame as `send` does: a "preview" (droppable) or an "image"; the
        frame itself, or how to frame it for each client that gets it (`FrameFor`)."""
        self._post(sid, [(type_, frame)])

    def broadcast(self, type_: str, data: dict[str, Any]) -> None:
        """A message for every open socket (`status` coalesced: `STATUS_INTERVAL`)."""
        self._post(None, [(type_, encode_message(type_, data))])

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` on the event loop `delay` seconds from now (from any thread)."""
        self._call_soon(self._call_later_on_loop, delay, fn)

    def _call_later_on_loop(self, delay: float, fn: Callable[[], None]) -> None:
        if self.loop is not None:
            self.loop.call_later(delay, fn)

    def _post(self, sid: str | None, messages: list[tuple[str, Payload]]) -> None:
        self._inbox.append((sid, messages))
        if not self._draining:  # one wake-up per batch; `_drain` resets the flag first
            self._draining = True
            if not self._call_soon(self._drain):
                self._draining = False

    def _call_soon(self, fn, *args) -> bool:
        loop = self.loop
        if loop is None or loop.is_closed():
            return False
        try:
            if threading.get_ident() == self._loop_thread:  # a route: no self-pipe wake-up
                loop.call_soon(fn, *args)
            else:
                loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop shutting down
            return False
        return True

    # --- delivery (event loop) ---------------------------------------------------------

    def _drain(self) -> None:
        self._draining = False
        inbox = self._inbox
        moved = 0
        while inbox and moved < BATCH:
            sid, messages = inbox.popleft()
            moved += len(messages)
            if sid is not None:
                client = self.clients.get(sid)
                if client is not None:
                    for type_, payload in messages:
                        self._put(client, type_, payload)
                continue
            for type_, payload in messages:
                if type_ == "status":
                    self._status_changed(payload)  # type: ignore[arg-type]
                else:
                    self._deliver_all(type_, payload)
        if inbox and not self._draining:  # more left: continue after other callbacks
            self._draining = True
            self._call_soon(self._drain)

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

    def _deliver_all(self, type_: str, payload: Payload) -> None:
        for client in list(self.sockets):
            self._put(client, type_, payload)

    def _put(self, client: Client, type_: str, payload: Payload) -> None:
        if client.closed:
            return
        if type_ in DROPPABLE and client.backlog > self.max_bytes // 4:
            client.dropped += 1
            return
        if callable(payload):
            payload = payload(client)
        if client.backlog + len(payload) > self.max_bytes:
            self._drop(client, f"this client is too slow: {client.backlog // 2**20} MB of "
                               "messages are waiting to be sent to it")  # fmt: skip
            return
        client.outbox.append(payload)
        client.backlog += len(payload)
        client.ready.set()

    def _watch_interval(self) -> float:
        return min(1.0, max(0.05, self.stall_seconds / 4))

    def _watch(self) -> None:
        """Close the clients whose current write has waited longer than `stall_seconds`."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        now = loop.time()
        for client in list(self.sockets):
            since = client.writing_since
            if since is not None and now - since > self.stall_seconds:
                self._drop(client, f"this client stopped reading: a message waited more than "
                                   f"{self.stall_seconds:g} s to be sent to it")  # fmt: skip
        self._watchdog = loop.call_later(self._watch_interval(), self._watch)

    def _drop(self, client: Client, reason: str) -> None:
        log.warning("closing websocket client %s: %s", client.sid, reason)
        client.close_reason = reason
        self.disconnect(client)
        client.outbox.clear()
        client.backlog = 0
        if client.pump is not None:  # a write stuck on the peer would hold up the close
            client.pump.cancel()
        if self.loop is not None:
            self.loop.create_task(_close(client.websocket, reason))


def _texts(client: Client) -> list[str]:
    """The text messages at the head of the client's outbox, taken out: up to the first binary
    one, and about `FLUSH_BYTES` (written together; flow control applies between writes)."""
    outbox, texts, size = client.outbox, [], 0
    while outbox and size < FLUSH_BYTES and type(outbox[0]) is str:
        text = outbox.popleft()
        texts.append(text)
        size += len(text)
    client.backlog -= size
    return texts


async def _close(websocket: Any, reason: str) -> None:
    """Close with a reason (at most 123 bytes in a close frame), never waiting long on a peer
    that does not read."""
    try:
        await asyncio.wait_for(websocket.close(code=CLOSE_STALLED, reason=reason[:120]), 5)
    except Exception:  # noqa: BLE001 - the peer may already be gone
        pass
