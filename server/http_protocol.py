"""The HTTP protocol uvicorn runs: its httptools one, with deadlines for what a client owes.

uvicorn (0.55) closes a kept-alive connection left idle after a response (`timeout_keep_alive`),
but never one whose request is not all there: a connection opened and left silent, headers sent
a byte at a time, a body that stops halfway under a large Content-Length. Each would hold a
file descriptor for good, and anyone who can reach the port can open them (no token is read
before the headers are complete), until the server accepts nothing else. uvicorn has no
setting for this (its `--limit-concurrency` answers 503 to requests once that many
connections are open, idle ones counted, and keeps accepting), so this subclass adds two
timers:

- a request's headers must all arrive within `header_seconds` of the connection opening (or,
  on a kept-alive one, of the request's first byte), however steadily they trickle in;
- a body must not stop for `body_stall_seconds` while the app waits for it.

Not timed: an upgraded websocket (its own protocol, with pings), the answer (a long run's GET,
a big download), a body the app is not reading yet (uvicorn paused reading it, or the client
waits for its `100 Continue`): there the server is the one waiting. A client past a deadline
is disconnected without an answer, as uvicorn's keep-alive timeout does.

An answer sent before its request's body was all read (413 from a Content-Length over
`--max-body-mb`, or a chunked body cut at the limit; 401, 403) ends the connection with a
lingering close, so a client still sending (urllib, nginx: `Connection: close`) gets the answer,
not a reset of a socket closed with its body unread: the answer is sent, the sending side shut
(the client sees the answer end), and what the client still sends is read and thrown away until
it stops for `linger_idle_seconds`, for at most `linger_seconds` and `linger_bytes`, then the
socket is closed. Nothing read is kept, and the event loop only counts bytes meanwhile. A
request whose body is chunked or over `keep_alive_discard_bytes` is answered with `Connection:
close` while its body is still coming (so a client never sends another request on a connection
about to close), and closed after lingering so. A kept-alive request with a smaller body stays
open when answered early, as HTTP/1.1 has it: the client may send its next request once its
body is sent (httpx does, and a small body often arrives just after the answer). uvicorn
parses the rest of the body and drops it; then the connection is idle and the next request's
headers are owed within `header_seconds` (uvicorn arms no keep-alive timer there).

What of uvicorn (0.55) this relies on. Its request cycle closes the connection once an answer
is sent when keep-alive is off (`RequestResponseCycle.send`), through the transport the
protocol was given in `connection_made`: that is `_CloseAsked`, whose `close` asks us first, and
uvicorn treats one whose `is_closing()` is true as closed (the asyncio transport contract; the
websocket protocol an upgrade hands the connection to gets it too, where both are the
socket's). And the per-connection state the deadlines read:
`cycle.response_complete`, `cycle.waiting_for_100_continue`, `flow` (its `FlowControl`),
`timeout_keep_alive_task`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CloseAsked:
    """The transport uvicorn is given: the socket's, except that closing it is the protocol's
    decision (`DeadlineHttpProtocol.close_asked`), and it reads as closing while the protocol
    lingers, so uvicorn writes nothing more and arms no keep-alive timer."""

    def __init__(self, transport: asyncio.Transport, protocol: DeadlineHttpProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.write = transport.write  # the hot path: not through __getattr__

    def close(self) -> None:
        self._protocol.close_asked()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class DeadlineHttpProtocol(HttpToolsProtocol):
    """uvicorn's `HttpToolsProtocol`, closing a connection whose request headers are late or
    whose body stalls, and lingering before closing one whose answer came before its body was
    read. Give uvicorn `deadline_protocol(...)`, which sets the times."""

    header_seconds: float = 10.0
    body_stall_seconds: float = 30.0
    linger_idle_seconds: float = 2.0
    linger_seconds: float = 30.0
    linger_bytes: int = 1 << 30
    keep_alive_discard_bytes: int = 1 << 20

    _deadline: asyncio.TimerHandle | None = None
    _in_headers = False  # the headers' deadline runs (set once per request, not per byte)
    _in_body = False  # a body the app may be waiting for: its stall deadline runs
    _was_apps_turn = False  # the last stall check found the app's turn (not the client's)
    _socket: asyncio.Transport  # the socket's own transport (uvicorn has `_CloseAsked`)
    lingering = False  # answered early: what the client sends is read and thrown away
    _linger_end = 0.0  # the loop's time the lingering ends at the latest
    _linger_left = 0  # bytes still read before the close
    _body_left: int | None = None  # of the request's Content-Length, not yet received
    _keep_alive_after_body: bool | None = None  # the request's keep-alive, while its body comes

    def _set_deadline(self, seconds: float, expired: Callable[[], None]) -> None:
        self._clear_deadline()
        self._deadline = self.loop.call_later(seconds, expired)

    def _clear_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expect_headers(self) -> None:
        if not self._in_headers:
            self._in_headers, self._in_body = True, False
            self._set_deadline(self.header_seconds, self._headers_late)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._socket = transport
        super().connection_made(cast(asyncio.Transport, _CloseAsked(transport, self)))
        self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:  # thrown away unparsed: no request is read after an early answer
            self._linger_left -= len(data)
            if self._linger_left < 0:
                self._socket.close()
            else:
                self._linger_deadline()
            return
        if self.timeout_keep_alive_task is not None and not self._in_body:
            self._expect_headers()  # idle after an answer: a request begins
        elif self._in_body:
            self._set_deadline(self.body_stall_seconds, self._body_stalled)
        super().data_received(data)

    def on_message_begin(self) -> None:  # also a pipelined request, read while one runs
        super().on_message_begin()
        self._expect_headers()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._clear_deadline()
        if not (self.parser.should_upgrade() and self._should_upgrade()):  # a websocket: untimed
            self._in_body, self._was_apps_turn = True, False
            self._body_left = _content_length(self.headers)
            self._set_deadline(self.body_stall_seconds, self._body_stalled)
        super().on_headers_complete()
        left = self._body_left
        if self._in_body and (left is None or left > self.keep_alive_discard_bytes):
            # Answered before this body is read, the connection closes (after lingering), and
            # the answer must say so: `Connection: close`, or the client sends its next request
            # on it. Kept alive again once the body is all read before the answer starts.
            self._keep_alive_after_body = self.cycle.keep_alive
            self.cycle.keep_alive = False

    def on_body(self, body: bytes) -> None:
        if self._body_left is not None:
            self._body_left -= len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._clear_deadline()
        if self._keep_alive_after_body is not None:
            if not self.cycle.response_started:
                self.cycle.keep_alive = self._keep_alive_after_body
            self._keep_alive_after_body = None
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:
            # A kept-alive request answered before its body was all read: uvicorn dropped its
            # keep-alive timer when the rest came and arms none now. The connection is idle:
            # the next request's headers are owed as on a new connection.
            self._in_headers = False
            self._expect_headers()

    def close_asked(self) -> None:
        """uvicorn (or a deadline here) closes the connection: at once, unless the answer came
        before the body, which the client may still be sending; then after lingering."""
        if not self._lingered():
            self._socket.close()

    def _lingered(self) -> bool:
        """Start lingering if the answer is sent whole while its request's body is still
        coming (and the socket open); whether it did."""
        early = self._in_body and self.cycle is not None and self.cycle.response_complete
        if not early or self._socket.is_closing():
            return False
        self.lingering, self._in_body = True, False
        self._linger_end = self.loop.time() + self.linger_seconds
        self._linger_left = self.linger_bytes
        if self._socket.can_write_eof():  # not over TLS
            self._socket.write_eof()  # once the answer is out: the client may stop sending
        self.flow.resume_reading()  # uvicorn paused reading a body it held for the app
        self._linger_deadline()
        return True

    def _linger_deadline(self) -> None:
        """Closed once the client stops sending for `linger_idle_seconds`, or lingering ends."""
        left = self._linger_end - self.loop.time()
        self._set_deadline(min(self.linger_idle_seconds, left), self._socket.close)

    def _headers_late(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # an answer still runs: closed once it is sent
        elif not self.transport.is_closing():
            self.transport.close()

    def _body_stalled(self) -> None:
        self._deadline = None
        apps_turn = self.flow.read_paused or self.cycle.waiting_for_100_continue
        if apps_turn or self._was_apps_turn:
            # The client's time starts when the app's turn ends: a turn that ended just before
            # this check (the app asked for the body, `100 Continue` sent a moment ago) gives
            # the client one more whole period, not what was left of this one.
            self._was_apps_turn = apps_turn
            self._set_deadline(self.body_stall_seconds, self._body_stalled)
        elif not self.transport.is_closing():
            self.transport.close()


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's length its headers declare (0: none); None for a chunked (or unparsable)
    one."""
    length: int | None = 0
    for name, value in headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
    return length


def deadline_protocol(
    header_seconds: float,
    body_stall_seconds: float,
    *,
    linger_idle_seconds: float = DeadlineHttpProtocol.linger_idle_seconds,
    linger_seconds: float = DeadlineHttpProtocol.linger_seconds,
    linger_bytes: int = DeadlineHttpProtocol.linger_bytes,
) -> type[DeadlineHttpProtocol]:
    """`DeadlineHttpProtocol` with these deadlines and bounds of its lingering close, for
    `uvicorn.Config(http=...)`."""
    return type("DeadlineHttpProtocol", (DeadlineHttpProtocol,),
                {"header_seconds": header_seconds, "body_stall_seconds": body_stall_seconds,
                 "linger_idle_seconds": linger_idle_seconds, "linger_seconds": linger_seconds,
                 "linger_bytes": linger_bytes})  # fmt: skip
