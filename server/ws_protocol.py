"""The websocket protocol uvicorn runs for /ws: its `websockets-sansio` implementation, with the
frames written in one event-loop turn sent to the socket together.

A run sends one frame per node (`executing` for each, as ComfyUI does). Written one by one,
each frame is a `send` system call that also wakes the client; on a 2-core machine the two
processes then take turns for every 100-byte message (30 us per frame, measured, against 6 us
written together). The hub's pump writes a whole batch of frames without yielding, so here the
transport keeps the frames of one turn and writes them at its end, or as soon as they pass
`FLUSH_BYTES`: backpressure still reaches the pump (the real transport pauses the protocol,
whose next send waits), and at most that much more is held than before. Every frame is still
its own websocket message: only the TCP segments change.

The pump's frames also skip the ASGI layers: one `websocket.send` through Starlette and
uvicorn cost 4 us a frame, most of a 201-node run's relay. The protocol offers the app a
`send_texts` (the scope extension `SEND_TEXTS`) that frames a list of messages with the
websockets library's own protocol object and writes them at once (0.8 us a frame).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

# Frames held in one turn before they are written anyway (the default high-water mark of an
# asyncio transport's buffer).
FLUSH_BYTES = 64 * 1024
# The ASGI scope extension under which the protocol offers `send_texts`.
SEND_TEXTS = "latentgraph.websocket.send_texts"

SendTexts = Callable[[list[str]], Awaitable[None]]


class TurnBufferedTransport(asyncio.Transport):
    """A transport writing what one event-loop turn wrote in one `write` of the real one.
    Everything else is the real transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is held (the end of the turn, or `FLUSH_BYTES` reached)."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._size = 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._size = 0
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class TurnBufferedWebSockets(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol over a `TurnBufferedTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # reads the addresses from the real transport
        real = cast(asyncio.Transport, transport)  # a socket's: uvicorn's HTTP protocol hands it on
        self.transport = TurnBufferedTransport(real, asyncio.get_running_loop())

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:  # accepted: the app gets a scope
            self.scope["extensions"][SEND_TEXTS] = {"send": self.send_texts}  # type: ignore[index]

    async def send_texts(self, texts: list[str]) -> None:
        """Send each text as its own message, all in one write: what `send` does for one
        `websocket.send` message, waiting for the same flow control."""
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent:
            raise RuntimeError("the websocket is not open")
        try:
            for text in texts:
                self.conn.send_text(text.encode())
        except InvalidState as exc:
            raise ClientDisconnected() from exc
        self.transport.write(b"".join(self.conn.data_to_send()))


def text_sender(websocket: Any) -> SendTexts:
    """How to send a list of texts on a Starlette websocket: the protocol's `send_texts`
    where it is ours, else (another server, a test client) one ASGI send each."""
    extension = (websocket.scope.get("extensions") or {}).get(SEND_TEXTS)
    if extension is not None:
        return extension["send"]

    async def one_by_one(texts: list[str]) -> None:
        for text in texts:
            await websocket.send_text(text)

    return one_by_one
