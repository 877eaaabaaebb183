"""The HTTP protocol uvicorn runs: its httptools one, with deadlines for what a client owes.

uvicorn (0.55) closes a kept-alive connection left idle after a response (`timeout_keep_alive`),
but never one whose request is not all there: a connection opened and left silent, headers sent
a byte at a time, a body that stops halfway under a large Content-Length. Each held a file
descriptor for good, and anyone who can reach the port can open them (no token is read before
the headers are complete): 1100 idle connections used up a 1024-descriptor limit and the server
accepted nothing else, its token holders included. uvicorn has no setting for this (its
`--limit-concurrency` answers 503 to requests once that many connections are open, idle ones
counted, and keeps accepting), so this subclass adds two timers:

- a request's headers must all arrive within `header_seconds` of the connection opening (or,
  on a kept-alive one, of the request's first byte), however steadily they trickle in;
- a body must not stop for `body_stall_seconds` while the app waits for it.

Not timed: an upgraded websocket (its own protocol, with pings), the answer (a long run's GET,
a big download), a body the app is not reading yet (uvicorn paused reading it, or the client
waits for its `100 Continue`): there the server is the one waiting. A client past a deadline
is disconnected without an answer, as uvicorn's keep-alive timeout does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DeadlineHttpProtocol(HttpToolsProtocol):
    """uvicorn's `HttpToolsProtocol`, closing a connection whose request headers are late or
    whose body stalls. Give uvicorn `deadline_protocol(...)`, which sets the two times."""

    header_seconds: float = 10.0
    body_stall_seconds: float = 30.0

    _deadline: asyncio.TimerHandle | None = None
    _in_headers = False  # the headers' deadline runs (set once per request, not per byte)
    _in_body = False  # a body the app may be waiting for: its stall deadline runs
    _was_apps_turn = False  # the last stall check found the app's turn (not the client's)

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
        super().connection_made(transport)
        self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.timeout_keep_alive_task is not None:  # idle after an answer: a request begins
            self._expect_headers()
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
            self._set_deadline(self.body_stall_seconds, self._body_stalled)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._clear_deadline()
        super().on_message_complete()

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


def deadline_protocol(
    header_seconds: float, body_stall_seconds: float
) -> type[DeadlineHttpProtocol]:
    """`DeadlineHttpProtocol` with these deadlines, for `uvicorn.Config(http=...)`."""
    return type("DeadlineHttpProtocol", (DeadlineHttpProtocol,),
                {"header_seconds": header_seconds, "body_stall_seconds": body_stall_seconds})  # fmt: skip
