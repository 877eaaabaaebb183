"""The /ws transport: frames written in one event-loop turn reach the socket in one write, in
order, at the end of the turn; a turn writing more than FLUSH_BYTES writes as it goes (so the
real transport's backpressure still reaches the writer); close sends what is held first."""

from __future__ import annotations

import asyncio
import json

from latentgraph.server.ws_protocol import FLUSH_BYTES, TurnBufferedTransport


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0


def test_a_turns_frames_leave_in_one_write_at_its_end():
    async def scenario():
        real = Recording()
        buffered = TurnBufferedTransport(real, asyncio.get_running_loop())
        for i in range(100):
            buffered.write(b"frame%d;" % i)
        held = (list(real.writes), buffered.get_write_buffer_size())
        await asyncio.sleep(0)  # the turn ends
        buffered.write(b"next")
        await asyncio.sleep(0)
        return held, real.writes

    (before, held_bytes), writes = asyncio.run(scenario())
    assert before == [] and held_bytes == sum(len(b"frame%d;" % i) for i in range(100))
    assert writes == [b"".join(b"frame%d;" % i for i in range(100)), b"next"]


def test_a_large_turn_writes_as_it_goes_and_close_sends_the_rest_first():
    async def scenario():
        real = Recording()
        buffered = TurnBufferedTransport(real, asyncio.get_running_loop())
        chunk = b"x" * 1000
        for _ in range(FLUSH_BYTES // 1000 + 5):
            buffered.write(chunk)
        written_in_turn = list(real.writes)
        buffered.write(b"tail")
        buffered.close()
        return written_in_turn, real

    written_in_turn, real = asyncio.run(scenario())
    assert len(written_in_turn) == 1 and len(written_in_turn[0]) >= FLUSH_BYTES
    assert real.writes[-1].endswith(b"tail") and real.closed
    assert sum(map(len, real.writes)) == (FLUSH_BYTES // 1000 + 5) * 1000 + 4


def test_abort_drops_what_is_held():
    async def scenario():
        real = Recording()
        buffered = TurnBufferedTransport(real, asyncio.get_running_loop())
        buffered.write(b"lost")
        buffered.abort()
        await asyncio.sleep(0)
        return real

    real = asyncio.run(scenario())
    assert real.aborted and real.writes == []


def test_the_server_runs_on_uvloop_with_the_httptools_parser(server):
    """What `uvicorn_options` chooses is what serves: uvloop's loop (the hub is bound to the
    serving loop at start-up) and httptools' parser, not asyncio's and h11's (uvicorn's
    protocol for it, with our deadlines: `http_protocol.py`)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from latentgraph.server.http_protocol import DeadlineHttpProtocol

    assert server.http.get("/queue").status_code == 200
    assert type(server.app.state.lg.hub.loop).__module__.startswith("uvloop")
    assert issubclass(server.server.config.http_protocol_class, DeadlineHttpProtocol)
    assert issubclass(DeadlineHttpProtocol, HttpToolsProtocol)


def test_the_hub_writes_a_burst_through_the_protocols_send_texts(server, ws):
    """On our uvicorn protocol the hub's pump frames a burst with the protocol's `send_texts`
    (one write, no ASGI layers per message), and each text still arrives as its own message,
    in order."""
    from latentgraph.server.ws_protocol import TurnBufferedWebSockets

    client = ws()
    hub = server.app.state.lg.hub
    sender = hub.clients[client.client_id].send_texts
    assert isinstance(sender.__self__, TurnBufferedWebSockets)  # a bound method of it
    texts = [json.dumps({"type": "executing", "data": {"node": str(i), "prompt_id": "p"}})
             for i in range(3000)]  # fmt: skip
    hub.send_encoded(client.client_id, [("executing", t) for t in texts])
    assert [client.recv()["data"]["node"] for _ in texts] == [str(i) for i in range(3000)]


def test_send_texts_refuses_a_socket_that_is_closing():
    """After the close frame went out no data frame may follow: `send_texts` says so instead
    of writing (as uvicorn's own send does)."""
    import pytest

    from latentgraph.server.ws_protocol import TurnBufferedWebSockets

    protocol = TurnBufferedWebSockets.__new__(TurnBufferedWebSockets)
    protocol.writable = asyncio.Event()
    protocol.writable.set()
    protocol.disconnected, protocol.handshake_complete, protocol.close_sent = False, True, True
    with pytest.raises(RuntimeError, match="not open"):
        asyncio.run(protocol.send_texts(["late"]))
