"""Deep and wide graphs through the server: traffic linear in the node count, every node's
`executing` still sent, a client that reads is never dropped, one that stops reading is closed
with a reason while the run goes on, and prompts over the node limit are refused (413).

Behaviour only: the speed targets are measured by bench/server.py, never timed here.
"""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from latentgraph.graph import Int, NodeResult, Output, Registry, Socket, String, node
from latentgraph.server.messages import PROGRESS_STATE_NODES

from .conftest import RunningServer, free_port

TEXT = "TEXT"
BYTES_PER_NODE = 1000  # all websocket traffic of a run, per node
STALL_SECONDS = 1.0


def _registry() -> Registry:
    reg = Registry()

    @node("Text", inputs=[String("value", "")], outputs=[Output("text", TEXT)], registry=reg)
    def text(ctx, value):
        return value

    @node("Pass", inputs=[Socket("text", TEXT), String("suffix", "")],
          outputs=[Output("text", TEXT)], registry=reg)  # fmt: skip
    def pass_(ctx, text, suffix):
        return text + suffix

    @node("Show", inputs=[Socket("text", TEXT)], output_node=True, registry=reg)
    def show(ctx, text):
        return NodeResult((), ui={"text": [text]})

    @node("Big", inputs=[Socket("text", TEXT), Int("size", 1000, min=1, max=10**7)],
          output_node=True, registry=reg)  # fmt: skip
    def big(ctx, text, size):
        return NodeResult((), ui={"text": [text * (size // max(1, len(text)))]})

    return reg


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("large"), port=free_port(),
                          disk_cache=False, load_nodes=False, editor=False,
                          client_stall_seconds=STALL_SECONDS,
                          # room for the stalled client's 24 MB of outputs: the default's caps on
                          # a prompt's ui outputs (docs/reliability.md) would keep 22 of its 60
                          max_string_chars=1_000_000)  # fmt: skip
    running = RunningServer(config, WorkerSetup(registry=_registry)).start()
    yield running
    running.stop()


def chain(n: int) -> dict:
    """Text -> (n - 2) x Pass -> Show; a new source string each time, so nothing is cached."""
    p = {"0": {"class_type": "Text", "inputs": {"value": uuid.uuid4().hex}}}
    for i in range(1, n - 1):
        p[str(i)] = {"class_type": "Pass", "inputs": {"text": [str(i - 1), 0]}}
    p[str(n - 1)] = {"class_type": "Show", "inputs": {"text": [str(n - 2), 0]}}
    return p


def fan(branches: int, output: str = "Show", **inputs) -> dict:
    """One Text -> branches x (Pass -> output node)."""
    p = {"s": {"class_type": "Text", "inputs": {"value": uuid.uuid4().hex}}}
    for i in range(branches):
        p[f"a{i}"] = {"class_type": "Pass", "inputs": {"text": ["s", 0], "suffix": str(i)}}
        p[f"o{i}"] = {"class_type": output, "inputs": {"text": [f"a{i}", 0], **inputs}}
    return p


def connect(server: RunningServer, **kw):
    from websockets.sync.client import connect as ws_connect

    cid = uuid.uuid4().hex
    ws = ws_connect(f"{server.ws_url}?clientId={cid}", open_timeout=10, max_size=None, **kw)
    ws.__enter__()  # websockets 17.1+ wants a connection entered; the caller's close() ends it
    assert json.loads(ws.recv(timeout=10))["type"] == "status"
    return ws, cid


def run_and_read(server: RunningServer, prompt: dict) -> tuple[list[dict], int, object]:
    """Queue `prompt` and read every message as fast as possible until its final `executing`.
    Returns the messages, the websocket bytes they took, and the still open socket."""
    ws, cid = connect(server)
    r = server.post_prompt(prompt, cid)
    assert r.status_code == 200, r.text
    pid = r.json()["prompt_id"]
    messages, size = [], 0
    while True:
        raw = ws.recv(timeout=120)
        size += len(raw)
        msg = json.loads(raw)
        if msg["data"].get("prompt_id") == pid:
            messages.append(msg)
            if msg["type"] == "executing" and msg["data"]["node"] is None:
                return messages, size, ws


@pytest.mark.parametrize("prompt", [chain(2000), fan(500)], ids=["chain-2000", "fan-500"])
def test_traffic_stays_linear_and_every_node_is_announced(server, prompt):
    messages, size, ws = run_and_read(server, prompt)
    ws.close()
    kinds = [m["type"] for m in messages]
    assert kinds[-2:] == ["execution_success", "executing"]
    assert size <= BYTES_PER_NODE * len(prompt), f"{size / len(prompt):.0f} bytes per node"
    executing = [m["data"]["node"] for m in messages if m["type"] == "executing"]
    assert sorted(executing[:-1]) == sorted(prompt)  # every node, each once
    states = [m["data"]["nodes"] for m in messages if m["type"] == "progress_state"]
    assert states and all(len(s) <= PROGRESS_STATE_NODES for s in states)
    # the last state goes out before the end and shows the run's last node finished
    assert kinds.index("progress_state") < kinds.index("execution_success")
    final = states[-1]
    assert all(s["state"] == "finished" for s in final.values())
    assert executing[-2] in final


def test_a_client_reading_as_fast_as_it_can_is_never_dropped(server):
    prompt = chain(10_000)
    messages, _, ws = run_and_read(server, prompt)
    try:
        executing = [m["data"]["node"] for m in messages if m["type"] == "executing"]
        assert len(executing) == 10_001 and executing[-1] is None
        assert ws.ping().wait(10)  # the socket is still open and answered
    finally:
        ws.close()


class StalledClient:
    """A websocket client that reads only when told to: websockets' sans-I/O protocol over a
    plain socket with a small receive buffer, so the server's writes really wait for it."""

    def __init__(self, server: RunningServer) -> None:
        from websockets.client import ClientProtocol
        from websockets.protocol import State
        from websockets.uri import parse_uri

        self.client_id = uuid.uuid4().hex
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", server.config.port))
        self.sock.settimeout(30)
        self.ws = ClientProtocol(parse_uri(f"{server.ws_url}?clientId={self.client_id}"),
                                 max_size=None)  # fmt: skip
        self.ws.send_request(self.ws.connect())
        self._flush()
        while self.ws.state is State.CONNECTING:
            self._read()

    def _flush(self) -> None:
        for data in self.ws.data_to_send():
            if data:
                self.sock.sendall(data)

    def _read(self) -> bool:
        data = self.sock.recv(1 << 16)
        if data:
            self.ws.receive_data(data)
        else:
            self.ws.receive_eof()
        self._flush()  # answers pings and the close handshake
        return bool(data)

    def read_until_closed(self) -> tuple[int | None, str]:
        """Read what the server sent, up to its close frame: (close code, reason)."""
        while self._read():
            self.ws.events_received()
        return self.ws.close_code, self.ws.close_reason

    def close(self) -> None:
        self.sock.close()


def test_a_stalled_client_is_closed_with_a_reason_and_the_run_completes(server):
    client = StalledClient(server)
    try:
        prompt = fan(60, "Big", size=400_000)  # 24 MB of `executed` text: more than any buffer
        pid = server.post_prompt(prompt, client.client_id).json()["prompt_id"]
        deadline = time.monotonic() + 120
        while not server.http.get(f"/history/{pid}").json():  # the run never waits for it
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.1)
        entry = server.http.get(f"/history/{pid}").json()[pid]
        assert entry["status"]["status_str"] == "success" and len(entry["outputs"]) == 60
        deadline = time.monotonic() + 60
        while client.client_id in server.app.state.lg.hub.clients:  # until it counts as stalled
            assert time.monotonic() < deadline, "the stalled client was never closed"
            time.sleep(0.1)
        code, reason = client.read_until_closed()  # reading again: what was sent, the close
        assert code == 1008 and "stopped reading" in reason, (code, reason)
    finally:
        client.close()


def test_prompts_over_the_node_limit_are_refused_with_413(server, monkeypatch):
    monkeypatch.setattr(server.config, "max_prompt_nodes", 50)
    r = server.post_prompt(chain(51))
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["type"] == "too_many_nodes" and "51 nodes" in error["message"]
    assert "at most 50" in error["message"] and error["extra_info"]["limit"] == 50
    assert server.post_prompt(chain(50)).status_code == 200
