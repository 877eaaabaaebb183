"""A client that never finishes its request is disconnected (server/http_protocol.py): a
connection left silent, headers trickled in forever, a body that stops. Each held a file
descriptor for good, and ~1000 of them, from anyone who can reach the port, left the server
accepting nothing else. Legitimate slow traffic is not cut: a websocket left quiet, a body sent
slowly but steadily, an answer that takes long, a body the app reads late."""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from .conftest import RunningServer, WsClient, chain, free_port

DEADLINE = 0.5  # the header and body deadlines the servers here run with
BOUND = 20 * DEADLINE  # closed within this long: generous on a loaded machine
HEADERS = b"GET /queue HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def strict(tmp_path_factory, toy_workers) -> Iterator[RunningServer]:
    """The real app served as `serve` serves it, with short deadlines."""
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("slow-clients"), port=free_port(),
                          disk_cache=False, load_nodes=False, editor=False,
                          header_timeout_seconds=DEADLINE, body_stall_seconds=DEADLINE)  # fmt: skip
    running = RunningServer(config, toy_workers).start()
    yield running
    running.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=BOUND)


def closed_by_server(sock: socket.socket, trickle: bytes = b"") -> bool:
    """Whether the server closes `sock` within `BOUND`, while `trickle` (if any) is sent a byte
    at a time, ten a second. Anything the server answers first is read past."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if trickle:
            try:
                sock.send(trickle[:1])
            except OSError:
                return True
            trickle = trickle[1:] + trickle[:1]
        if select.select([sock], [], [], 0.1)[0]:
            try:
                if sock.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True
    return False


def answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes (the requests here say `Connection: close`)."""
    parts = []
    while part := sock.recv(65536):
        parts.append(part)
    return b"".join(parts)


def test_a_silent_connection_is_closed(strict):
    with connect(strict.config.port) as sock:
        assert closed_by_server(sock)


def test_headers_trickled_in_forever_are_closed(strict):
    """A byte every 0.1 s never lets the header deadline restart."""
    with connect(strict.config.port) as sock:
        sock.sendall(HEADERS)
        assert closed_by_server(sock, trickle=b"X-Slow: aaaa\r\n")


def test_a_kept_alive_connection_that_starts_a_request_and_stops_is_closed(strict):
    """After an answer, uvicorn's keep-alive timer ends at the next request's first byte."""
    with connect(strict.config.port) as sock:
        sock.sendall(HEADERS + b"\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"G")
        assert closed_by_server(sock)


def test_a_body_that_stops_is_dropped_quietly(strict):
    """The route reading it ends without an error logged (a traceback each, before)."""
    errors = Records(logging.ERROR)
    logging.getLogger("uvicorn.error").addHandler(errors)
    try:
        with connect(strict.config.port) as sock:
            sock.sendall(b"POST /prompt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Length: 1000000\r\n\r\n{\"prompt\": ")  # fmt: skip
            assert closed_by_server(sock)
        tasks = strict.server.server_state.tasks  # the request's: done once the route ended
        deadline = time.monotonic() + BOUND
        while tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not tasks
    finally:
        logging.getLogger("uvicorn.error").removeHandler(errors)
    assert errors.records == []


class Records(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_normal_request_and_a_quiet_websocket_still_work(strict):
    assert strict.http.get("/queue").status_code == 200
    client = WsClient(strict)
    try:
        time.sleep(4 * DEADLINE)  # past both deadlines
        prompt_id = strict.post_prompt(chain(3), client.client_id).json()["prompt_id"]
        done = client.until_done(prompt_id)
        assert any(m["type"] == "executed" for m in done)
    finally:
        client.close()


def test_a_body_sent_slowly_but_steadily_is_read(strict):
    """Sent over 4 header deadlines, no pause as long as one."""
    body = json.dumps({"prompt": chain(2)}).encode()
    with connect(strict.config.port) as sock:
        sock.sendall(b"POST /prompt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))  # fmt: skip
        pieces = 20
        for i in range(pieces):
            sock.sendall(body[i * len(body) // pieces : (i + 1) * len(body) // pieces])
            time.sleep(4 * DEADLINE / pieces)
        assert answer(sock).startswith(b"HTTP/1.1 200")


# The protocol's own rules, on a small ASGI app: what the server waits for is not timed.


async def slow_app(scope, receive, send) -> None:
    """/slow answers after 4 deadlines; /late-read reads its body only then; /early answers
    413 at once, its body unread."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/early":
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-length", b"0")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})
        return
    await asyncio.sleep(4 * DEADLINE)
    size = 0
    more = scope["path"] == "/late-read"
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    text = b"read %d" % size
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(text))]})  # fmt: skip
    await send({"type": "http.response.body", "body": text})


LINGER_SECONDS = 4 * DEADLINE  # the small server's bounds of its lingering close
LINGER_BYTES = 1_000_000


@pytest.fixture(scope="module")
def small_server() -> Iterator[uvicorn.Server]:
    from latentgraph.server.http_protocol import deadline_protocol

    port = free_port()
    http = deadline_protocol(DEADLINE, DEADLINE, linger_idle_seconds=DEADLINE,
                             linger_seconds=LINGER_SECONDS, linger_bytes=LINGER_BYTES)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(slow_app, host="127.0.0.1", port=port,
                                           log_level="warning", http=http))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield server
    server.should_exit = True
    thread.join(15)


def test_an_answer_that_takes_long_is_not_cut(small_server):
    with connect(small_server.config.port) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer(sock).endswith(b"read 0")


@pytest.mark.parametrize("expect", [b"", b"Expect: 100-continue\r\n"])
def test_a_body_the_app_reads_late_is_not_dropped(small_server, expect):
    """More than uvicorn buffers (it stops reading) or waiting for `100 Continue`: the client
    waits for the server, which reads the body 4 deadlines later."""
    body = b"x" * 300_000
    with connect(small_server.config.port) as sock:
        sock.sendall(b"POST /late-read HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
                     b"Content-Length: %d\r\n\r\n" % (expect, len(body)))  # fmt: skip
        if expect:
            assert sock.recv(65536).startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        assert answer(sock).endswith(b"read %d" % len(body))


# An answer sent before the body was read: what the client sends on is read and thrown away (a
# client still sending got a reset instead of the answer), within bounds. The server's FIN comes
# with the answer: the client sees its close only when a byte it sends is refused.
EARLY = b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"


def sent_until_closed(sock: socket.socket, chunk: bytes, pause: float) -> int | None:
    """How much of `chunk`, sent again and again `pause` seconds apart, the client sent
    before the server closed; None if it did not close within `BOUND`."""
    sent = 0
    deadline = time.monotonic() + BOUND
    try:
        while time.monotonic() < deadline:
            sent += sock.send(chunk)
            time.sleep(pause)
    except (ConnectionResetError, BrokenPipeError):
        return sent
    except TimeoutError:  # the server stopped reading and did not close
        pass
    return None


def answered_early(port: int, length: int = 10**12) -> socket.socket:
    """A connection whose request (its body `length` bytes long) is answered 413 before any
    of its body is sent, then 1000 bytes of it sent."""
    sock = connect(port)
    sock.sendall(EARLY % length)
    assert sock.recv(65536).startswith(b"HTTP/1.1 413")
    sock.sendall(b"x" * 1000)
    return sock


def test_a_client_sending_on_after_an_early_answer_is_closed_after_the_time_bound(small_server):
    """Never silent for as long as the idle bound, never near the byte bound: closed once
    `linger_seconds` are over. Other connections are served meanwhile."""
    with answered_early(small_server.config.port) as sock:
        with answered_early(small_server.config.port):
            pass
        assert sent_until_closed(sock, b"x", 0.1) is not None


@pytest.mark.parametrize("length", [10**12, 1000], ids=["stopped-midway", "ended"])
def test_a_client_silent_after_an_early_answer_is_closed(small_server, length):
    """A body that ended after its answer left a kept-alive connection no deadline at all:
    held for good, as the idle connections `http_protocol.py` closes were."""
    connections = small_server.server_state.connections
    with answered_early(small_server.config.port, length):
        assert connections
        deadline = time.monotonic() + BOUND
        while connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not connections


def answer_to(sock: socket.socket) -> bytes:
    """One whole answer of `/early` (its headers; it has no body)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        assert chunk, answer  # closed before its answer
        answer += chunk
    return answer


def test_a_small_body_sent_after_an_early_answer_leaves_the_connection_to_the_next_request(
    small_server,
):
    """A kept-alive request answered before its small body arrived (httpx sends the body after
    the headers: the server's corpus test saw it) is read to its end and the connection kept:
    closing it after lingering cut the client's next request, sent on it as HTTP/1.1 allows."""
    with connect(small_server.config.port) as sock:
        sock.sendall(EARLY % 2)
        first = answer_to(sock)
        assert first.startswith(b"HTTP/1.1 413") and b"connection: close" not in first.lower()
        sock.sendall(b"{}" + EARLY % 0)
        assert answer_to(sock).startswith(b"HTTP/1.1 413")


def test_an_answer_before_a_large_or_chunked_body_says_it_closes(small_server):
    """Such a connection is closed after lingering: its answer says so, or the client would
    send its next request on it."""
    chunked = b"POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    for request in (EARLY % 10**12, chunked):
        with connect(small_server.config.port) as sock:
            sock.sendall(request)
            assert b"connection: close" in answer_to(sock).lower(), request


def test_a_client_sending_fast_after_an_early_answer_is_closed_after_the_byte_bound(small_server):
    """What the server reads and throws away is bounded, not only its time: within
    `LINGER_SECONDS` a loopback client sends far more than `LINGER_BYTES` (plus what the
    sockets buffer)."""
    with answered_early(small_server.config.port) as sock:
        sent = sent_until_closed(sock, b"x" * 65536, 0)
    assert sent is not None and sent < 100 * LINGER_BYTES
