"""A real server (uvicorn in a thread, 127.0.0.1, free port) over toy nodes, and clients."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from latentgraph.graph import Registry

from .plugin.toy_nodes import toy_registry as build_toy_registry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_process(script: str, args: list[str], port: int, env: dict[str, str], *,
                   cwd: Path | None = None, own_group: bool = False,
                   wait: float = 60) -> tuple[subprocess.Popen, httpx.Client]:  # fmt: skip
    """A server started in its own process (`python -c script *args`, its stderr piped, in its
    own process group if `own_group`), and a client of it, once it answers /prompt on `port`
    (at most `wait` seconds; otherwise it is killed and the error names its stderr's end).
    Stop it with `stop_server_process`."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=own_group)  # fmt: skip
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    deadline = time.monotonic() + wait
    while True:
        try:
            if http.get("/prompt").status_code == 200:
                return proc, http
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            http.close()
            proc.kill()
            raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)


def stop_server_process(proc: subprocess.Popen, http: httpx.Client) -> None:
    """Close the client and stop `server_process`'s server: SIGTERM, SIGKILL after 30 s."""
    http.close()
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stderr.close()


class RunningServer:
    def __init__(self, config, workers) -> None:
        """`workers`: the WorkerSetup telling the worker processes how to build the nodes."""
        import uvicorn

        from latentgraph.server.app import create_app
        from latentgraph.server.run import uvicorn_options

        self.config = config
        self.app = create_app(config, workers=workers)
        self.url = f"http://127.0.0.1:{config.port}"
        self.ws_url = f"ws://127.0.0.1:{config.port}/ws"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=config.port,
                                                    log_level="warning", lifespan="on",
                                                    **uvicorn_options(config)))  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 90  # start-up imports torch: slow on a loaded 2-core machine
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.http = httpx.Client(base_url=self.url, timeout=30)
        return self

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(15)

    # helpers
    def post_prompt(self, prompt: dict, client_id: str | None = None, **extra) -> httpx.Response:
        return self.http.post("/prompt", json={"prompt": prompt, "client_id": client_id, **extra})


@pytest.fixture(scope="session")
def toy_registry() -> Registry:
    return build_toy_registry()


@pytest.fixture(scope="session")
def toy_workers():
    """Worker processes running the toy nodes."""
    from latentgraph.server.workers import WorkerSetup

    return WorkerSetup(registry=build_toy_registry)


@pytest.fixture(scope="module")
def server(tmp_path_factory, toy_workers):
    from latentgraph.server.config import ServerConfig

    data = tmp_path_factory.mktemp("server-data")
    config = ServerConfig(data_dir=data, port=free_port(), disk_cache=False, load_nodes=False,
                          editor=False, max_body_bytes=2_000_000, max_upload_bytes=500_000)  # fmt: skip
    running = RunningServer(config, toy_workers).start()
    yield running
    running.stop()


class WsClient:
    """A websockets (sync) client that records every message; `anonymous`: opened without a
    clientId, as a ComfyUI script may open it (`client_id` None: the server names it)."""

    def __init__(self, server: RunningServer, client_id: str | None = None, *,
                 anonymous: bool = False) -> None:  # fmt: skip
        from websockets.sync.client import connect

        self.client_id = None if anonymous else client_id or uuid.uuid4().hex
        query = "" if anonymous else f"?clientId={self.client_id}"
        self._open = contextlib.ExitStack()  # websockets 17.1+: a connection is a context
        self.ws = self._open.enter_context(connect(f"{server.ws_url}{query}", open_timeout=10))
        self.messages: list[dict] = []
        self.binary: list[bytes] = []
        first = self.recv(10)
        assert first["type"] == "status", first

    def recv(self, timeout: float = 30) -> dict | None:
        raw = self.ws.recv(timeout=timeout)
        if isinstance(raw, bytes):
            self.binary.append(raw)
            return {"type": "<binary>", "data": raw}
        msg = json.loads(raw)
        self.messages.append(msg)
        return msg

    def until_done(self, prompt_id: str, timeout: float = 30) -> list[dict]:
        """Messages up to and including `executing` with node None for `prompt_id`."""
        deadline = time.monotonic() + timeout
        start = len(self.messages)
        while True:
            msg = self.recv(max(0.1, deadline - time.monotonic()))
            if (msg["type"] == "executing" and msg["data"]["node"] is None
                    and msg["data"]["prompt_id"] == prompt_id):  # fmt: skip
                return self.messages[start:]

    def until(self, type_: str, prompt_id: str, timeout: float = 30) -> dict:
        """Wait for the first message of `type_` about `prompt_id`."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.1, deadline - time.monotonic()))
            data = msg.get("data")
            if (
                msg["type"] == type_
                and isinstance(data, dict)
                and data.get("prompt_id") == prompt_id
            ):
                return msg

    def send(self, type_: str, data: dict) -> None:
        self.ws.send(json.dumps({"type": type_, "data": data}))

    def close(self) -> None:
        self._open.close()


@pytest.fixture
def ws(server):
    clients: list[WsClient] = []

    def make(client_id: str | None = None) -> WsClient:
        c = WsClient(server, client_id)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def chain(value: int = 1, *, slow_steps: int = 0, delay: float = 0.01, fail: bool = False,
          prefix: str = "toy") -> dict:  # fmt: skip
    """A small API-format prompt: Number -> Add(x, x) -> [Slow] -> [Fail] -> Show."""
    p = {
        "1": {"class_type": "Number", "inputs": {"value": value}, "_meta": {"title": "n"}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["1", 0]}},
    }
    last = "2"
    if slow_steps:
        p["3"] = {"class_type": "Slow", "inputs": {"x": [last, 0], "steps": slow_steps,
                                                    "delay": delay}}  # fmt: skip
        last = "3"
    if fail:
        p["4"] = {"class_type": "Fail", "inputs": {"x": [last, 0], "why": "toy failure"}}
        last = "4"
    p["9"] = {"class_type": "Show", "inputs": {"x": [last, 0], "prefix": prefix}}
    return p


class FullDisk:
    """Stands in for the store's SQLite connection: while `full`, every write raises `error`
    (what SQLite or the OS gives on a full disk); reads pass through."""

    def __init__(self, db, error: Exception) -> None:
        self.db, self.error, self.full = db, error, False

    def execute(self, sql: str, args: tuple = ()):
        if self.full and sql.split()[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            raise self.error
        return self.db.execute(sql, args)

    def __getattr__(self, name: str):
        return getattr(self.db, name)


@contextlib.contextmanager
def user_api(config):
    """A client of the userdata and settings routes alone (`api_user`), over `config`'s
    folders: the state they read is only the config (`get_state(request).config`)."""
    from types import SimpleNamespace

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from latentgraph.server import api_user
    from latentgraph.server.errors import exception_handlers

    app = Starlette(routes=api_user.routes, exception_handlers=exception_handlers)
    app.state.lg = SimpleNamespace(config=config)
    with TestClient(app, base_url="http://127.0.0.1:8188", raise_server_exceptions=False) as c:
        yield c
