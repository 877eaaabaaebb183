"""Status messages are coalesced: the first goes out at once, a burst ends with its latest."""

from __future__ import annotations

import asyncio
import json
import threading

from latentgraph.server import hub as hub_mod


def _status(n: int) -> dict:
    return {"status": {"exec_info": {"queue_remaining": n}}}


def test_status_burst_sends_first_and_latest_only_and_keeps_run_message_order():
    async def scenario() -> list[dict]:
        hub = hub_mod.Hub()
        hub.bind(asyncio.get_running_loop())
        client = hub.connect(websocket=FakeSocket(), sid="a")

        def worker() -> None:  # the worker thread: 100 queue changes, then a run message
            for n in range(100):
                hub.broadcast("status", _status(n))
            hub.send("a", "executing", {"node": None, "prompt_id": "p"})

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        await asyncio.sleep(0)  # the hops run: the first status goes out, the rest wait
        assert len(client.outbox) == 2 and hub._status_timer is not None
        for _ in range(500):  # the held status is sent, then the hub is quiet again
            if hub._status_timer is None:
                break
            await asyncio.sleep(0.01)
        assert hub._status_timer is None
        hub.broadcast("status", _status(7))  # quiet again: sent at once
        await asyncio.sleep(0)
        out = []
        while client.outbox:
            out.append(json.loads(client.outbox.popleft()))
        return out

    msgs = asyncio.run(scenario())
    kinds = [(m["type"], m["data"].get("status", {}).get("exec_info", {}).get("queue_remaining"))
             for m in msgs]  # fmt: skip
    assert kinds == [("status", 0), ("executing", None), ("status", 99), ("status", 7)]


class FakeSocket:
    """Stands in for a starlette WebSocket: records frames; `stalled` never finishes a write."""

    scope = {"type": "websocket"}  # no extensions: the hub sends one message at a time

    def __init__(self, stalled: bool = False) -> None:
        self.stalled = stalled
        self.frames: list[str] = []
        self.closed: tuple[int, str] | None = None

    async def send_text(self, text: str) -> None:
        if self.stalled:
            await asyncio.Event().wait()
        await asyncio.sleep(0)  # a write that completes: other tasks run meanwhile
        self.frames.append(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


async def _until(condition, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_a_client_that_keeps_reading_gets_every_message_of_a_burst():
    async def scenario() -> tuple[FakeSocket, hub_mod.Client]:
        hub = hub_mod.Hub()
        hub.bind(asyncio.get_running_loop())
        sock = FakeSocket()
        client = hub.connect(sock, "a")
        hub.start_pump(client)
        sender = threading.Thread(target=lambda: [
            hub.send("a", "executing", {"node": str(i), "prompt_id": "p"}) for i in range(20_000)])  # fmt: skip
        sender.start()
        sender.join()  # the worker's side never waits on the socket
        await _until(lambda: len(sock.frames) == 20_000)
        return sock, client

    sock, client = asyncio.run(scenario())
    assert [json.loads(f)["data"]["node"] for f in sock.frames] == [str(i) for i in range(20_000)]
    assert sock.closed is None and not client.closed and client.dropped == 0


def test_a_stalled_client_is_closed_with_a_reason():
    async def scenario() -> tuple[FakeSocket, hub_mod.Hub]:
        hub = hub_mod.Hub(stall_seconds=0.2)
        hub.bind(asyncio.get_running_loop())
        sock = FakeSocket(stalled=True)
        hub.start_pump(hub.connect(sock, "a"))
        for i in range(10):
            hub.send("a", "executing", {"node": str(i), "prompt_id": "p"})
        await _until(lambda: sock.closed is not None)
        return sock, hub

    sock, hub = asyncio.run(scenario())
    code, reason = sock.closed
    assert code == 1008 and "stopped reading" in reason and "0.2 s" in reason
    assert "a" not in hub.clients


def test_a_client_whose_backlog_passes_the_bound_is_closed_and_progress_goes_first():
    async def scenario() -> tuple[FakeSocket, hub_mod.Client]:
        hub = hub_mod.Hub(max_bytes=64 * 1024, stall_seconds=60)
        hub.bind(asyncio.get_running_loop())
        sock = FakeSocket(stalled=True)
        client = hub.connect(sock, "a")
        for i in range(200):  # ~1 KB each; progress is dropped once a quarter is waiting
            hub.send("a", "progress" if i % 2 else "executed",
                     {"node": str(i), "output": {"text": ["x" * 1000]}})  # fmt: skip
        await _until(lambda: sock.closed is not None)
        return sock, client

    sock, client = asyncio.run(scenario())
    assert sock.closed[0] == 1008 and "too slow" in sock.closed[1]
    assert client.dropped > 0 and client.closed and not client.outbox


def test_sent_images_are_never_dropped_for_a_slow_client_and_count_in_its_byte_bound():
    """SaveImageWebsocket's frames ("image") are the run's result: a client behind loses
    previews, not them; only the memory bound closes it."""

    async def scenario() -> tuple[FakeSocket, hub_mod.Client, list[bytes]]:
        hub = hub_mod.Hub(max_bytes=64 * 1024, stall_seconds=60)
        hub.bind(asyncio.get_running_loop())
        sock = FakeSocket(stalled=True)
        client = hub.connect(sock, "a")  # no pump: nothing is written, the backlog grows
        for i in range(30):  # 2 KB each, 60 KB in all: previews dropped past 16 KB waiting
            kind = "image" if i % 2 else "preview"
            hub.send_bytes("a", kind.encode() + bytes([i]) * 2048, kind)
        await _until(lambda: not hub._inbox)
        kept = list(client.outbox)
        for _ in range(10):  # past 64 KB waiting: closed as too slow
            hub.send_bytes("a", b"image" * 1024, "image")
        await _until(lambda: sock.closed is not None)
        return sock, client, kept

    sock, client, kept = asyncio.run(scenario())
    images = [frame for frame in kept if frame.startswith(b"image")]
    assert [frame[5] for frame in images] == list(range(1, 30, 2))  # every one, in order
    assert client.dropped > 0 and len(kept) < 30  # previews went
    assert sock.closed[0] == 1008 and "too slow" in sock.closed[1]


def test_messages_for_every_socket_keep_each_clients_bounds_and_framing():
    """A prompt queued without a client_id reaches every socket (sid None), as ComfyUI sends
    it: each client keeps its own bound (one behind loses progress, not the others), a frame
    is made for each as it asked, and only `status` is coalesced."""

    async def scenario() -> tuple[hub_mod.Client, hub_mod.Client]:
        hub = hub_mod.Hub(max_bytes=64 * 1024, stall_seconds=60)
        hub.bind(asyncio.get_running_loop())
        behind, keeping_up = hub.connect(FakeSocket(), "a"), hub.connect(FakeSocket(), "b")
        keeping_up.flags["supports_preview_metadata"] = True
        behind.outbox.append("x" * 20_000)  # 20 KB unsent: past a quarter of 64 KB
        behind.backlog = 20_000
        hub.send_encoded(None, [("progress", '{"type": "progress"}'),
                                ("executing", '{"type": "executing"}')])  # fmt: skip
        hub.send_bytes(None, lambda c: b"meta" if c.wants_preview_metadata else b"plain", "image")
        hub.broadcast("status", _status(1))
        hub.broadcast("status", _status(2))  # held: coalesced with what follows
        await _until(lambda: not hub._inbox)
        return behind, keeping_up

    behind, keeping_up = asyncio.run(scenario())
    assert list(behind.outbox)[1:] == ['{"type": "executing"}', b"plain", _encoded_status(1)]
    assert behind.dropped == 1
    assert list(keeping_up.outbox) == ['{"type": "progress"}', '{"type": "executing"}', b"meta",
                                       _encoded_status(1)]  # fmt: skip


def _encoded_status(n: int) -> str:
    from latentgraph.server.messages import encode_message

    return encode_message("status", _status(n))


def test_progress_states_are_coalesced_bounded_and_flushed_at_the_end():
    from latentgraph.server.messages import ProgressStates

    sent: list[dict] = []
    timers: list[tuple[float, object]] = []
    states = ProgressStates("p", lambda t, d: sent.append(d), lambda delay, fn: timers.append(
        (delay, fn)), interval=60, limit=3)  # fmt: skip
    for i in range(10):
        states.set(str(i), "running", 0, 1)
        states.set(str(i), "finished", 1, 1)
    assert len(sent) == 1 and list(sent[0]["nodes"]) == ["0"]  # the first change: at once
    assert sent[0]["nodes"]["0"]["state"] == "running" and sent[0]["prompt_id"] == "p"
    assert len(timers) == 1 and 0 < timers[0][0] <= 60  # the rest wait for one timer
    timers[0][1]()
    assert list(sent[1]["nodes"]) == ["7", "8", "9"]  # the latest, at most `limit`
    assert all(n["state"] == "finished" for n in sent[1]["nodes"].values())
    states.set("x", "running", 0, 1)  # held again (the interval has not passed) ...
    states.close()  # ... until the run ends
    assert list(sent[2]["nodes"]) == ["8", "9", "x"] and len(timers) == 2
    timers[1][1]()  # a timer due after the end sends nothing
    assert len(sent) == 3


def test_sockets_sharing_a_client_id_stay_open_and_the_newest_gets_its_messages():
    """The editor reconnects with its clientId: closing the older socket (as this server did)
    made two editors sharing one id close each other in a loop."""

    async def scenario() -> None:
        hub = hub_mod.Hub()
        hub.bind(asyncio.get_running_loop())
        old_sock, new_sock, other_sock = FakeSocket(), FakeSocket(), FakeSocket()
        old = hub.connect(old_sock, "a")
        new = hub.connect(new_sock, "a")
        other = hub.connect(other_sock, "b")
        for client in (old, new, other):
            hub.start_pump(client)
        hub.send("a", "executing", {"node": "1", "prompt_id": "p"})
        hub.broadcast("status", _status(3))
        await _until(lambda: len(new_sock.frames) == 2 and len(other_sock.frames) == 1)
        await asyncio.sleep(0.05)
        assert not old.closed and old_sock.closed is None
        assert [json.loads(f)["type"] for f in old_sock.frames] == ["status"]
        assert [json.loads(f)["type"] for f in new_sock.frames] == ["executing", "status"]

        hub.disconnect(old)  # the older one closing later leaves the newer one registered
        hub.send("a", "executing", {"node": "2", "prompt_id": "p"})
        await _until(lambda: len(new_sock.frames) == 3)
        assert hub.clients["a"] is new and list(hub.sockets) == [new, other]

        again = hub.connect(FakeSocket(), "a")
        hub.disconnect(again)  # the newest closing hands the id back to the newest still open
        assert hub.clients["a"] is new
        hub.disconnect(new)
        assert "a" not in hub.clients and list(hub.sockets) == [other]

    asyncio.run(scenario())
