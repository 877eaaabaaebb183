"""`latentgraph submit` and the environment's proxy (`http_proxy`, `HTTP_PROXY`, ...): a server
on this machine is reached directly, never through a proxy (the proxy saw every request, the
token in its Authorization header, and a dead proxy made a local server unreachable); any other
host through the proxy, as the network asks, unless NO_PROXY names it (`submit.proxy_for`); a
proxy that cannot be reached is named as such, not the server."""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
from collections.abc import Iterator

import pytest

from latentgraph.server.submit import proxy_for

from ..server.conftest import RunningServer, free_port
from ..server.plugin.toy_nodes import toy_registry
from .test_submit_cli import WORKFLOW, _running

REMOTE = "lg-remote.test"  # a name no resolver answers (.test, RFC 2606): the proxy maps it


@pytest.fixture
def proxy_env(monkeypatch):
    """No proxy variable from the environment the tests run in; returns the setter."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


@pytest.fixture(scope="module")
def remote_server(tmp_path_factory) -> Iterator[RunningServer]:
    """A server over the toy nodes that also answers to the name `REMOTE` (`--allow-host`)."""
    yield from _running(tmp_path_factory, "proxy-server", toy_registry, allow_hosts=[REMOTE])


class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that records each request's head and carries it on, to
    127.0.0.1 for `REMOTE` (the name resolves nowhere else), as a tunnel for CONNECT."""

    def __init__(self) -> None:
        self.heads: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, rest = data.split(b"\r\n\r\n", 1)
            self.heads.append(head.decode("latin-1"))
            lines = head.split(b"\r\n")
            method, target, version = lines[0].decode().split(" ")
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
            else:
                parts = urllib.parse.urlsplit(target)
                host, port = parts.hostname, parts.port
                lines[0] = f"{method} {parts.path}?{parts.query} {version}".encode()
            address = ("127.0.0.1" if host == REMOTE else host, int(port))
            with socket.create_connection(address) as up:
                if method == "CONNECT":
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    up.sendall(rest)
                else:
                    up.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + rest)
                back = threading.Thread(target=_pipe, args=(up, client), daemon=True)
                back.start()
                _pipe(client, up)
                back.join(30)

    def close(self) -> None:
        self.listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    running = RecordingProxy()
    yield running
    running.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_local_server_is_reached_directly_when_the_proxy_is_dead(remote_server, cli, tmp_path,
                                                                   proxy_env, host):  # fmt: skip
    """With HTTP_PROXY at a port nothing listens on, submit to a local server failed: `cannot
    reach the server at http://127.0.0.1:PORT: [Errno 111] Connection refused`, exit 3."""
    dead = f"http://127.0.0.1:{free_port()}"
    proxy_env(HTTP_PROXY=dead, http_proxy=dead)
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    url = f"http://{host}:{remote_server.config.port}"
    code, _, err = cli("submit", "wf.yaml", "--server", url, "-q")
    assert code == 0, err


def test_the_proxy_carries_another_hosts_requests_never_a_local_ones(remote_server, cli, tmp_path,
                                                                     proxy_env, proxy,
                                                                     monkeypatch):  # fmt: skip
    """The proxy saw every request to 127.0.0.1 (the websocket's CONNECT, the POST, the
    downloads), each with `Authorization: Bearer TOKEN`; a server named otherwise is still
    reached through it, as a corporate network needs."""
    proxy_env(HTTP_PROXY=proxy.url)
    monkeypatch.setenv("LATENTGRAPH_AUTH_TOKEN", "never-to-the-proxy-0123456789")
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    port = remote_server.config.port
    code, _, err = cli("submit", "wf.yaml", "--server", f"http://127.0.0.1:{port}", "-q")
    assert code == 0, err
    assert proxy.heads == []

    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN")
    code, _, err = cli("submit", "wf.yaml", "--server", f"http://{REMOTE}:{port}", "-q")
    assert code == 0, err
    firsts = [head.split("\r\n")[0] for head in proxy.heads]
    assert firsts[0] == f"CONNECT {REMOTE}:{port} HTTP/1.1"  # the websocket, opened first
    assert f"POST http://{REMOTE}:{port}/latentgraph/run HTTP/1.1" in firsts
    assert any(f.startswith(f"GET http://{REMOTE}:{port}/view?") for f in firsts), firsts


def test_a_proxy_that_cannot_be_reached_is_named_not_the_server(remote_server, cli, tmp_path,
                                                                proxy_env):  # fmt: skip
    """It said `cannot reach the server at http://HOST:PORT: [Errno 111] Connection refused`:
    the server blamed for the proxy's absence. The proxy's password is not shown."""
    dead = free_port()
    proxy_env(http_proxy=f"http://user:pa55word@127.0.0.1:{dead}")
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    url = f"http://{REMOTE}:{remote_server.config.port}"
    code, out, err = cli("submit", "wf.yaml", "--server", url)
    assert code == 3, err
    assert err.startswith(
        f"latentgraph: error: cannot reach the proxy http://127.0.0.1:{dead} (from $http_proxy) "
        f"on the way to the server at {url}: [Errno 111] Connection refused; "
        f"NO_PROXY={REMOTE} connects to it directly"
    ), err
    assert "pa55word" not in err and out == ""


@pytest.mark.parametrize("url", ["http://127.0.0.1:8188", "http://127.4.5.6:1", "http://localhost:8188",
                                 "http://LOCALHOST.:8188", "http://app.localhost:8188",
                                 "http://[::1]:8188", "https://127.0.0.1:8443/comfy"])  # fmt: skip
def test_a_server_on_this_machine_is_never_reached_through_a_proxy(proxy_env, url):
    proxy_env(HTTP_PROXY="http://proxy.lan:3128", HTTPS_PROXY="http://proxy.lan:3128")
    assert proxy_for(url) is None


def test_another_host_takes_the_proxy_of_its_scheme_unless_no_proxy_names_it(proxy_env):
    proxy_env(http_proxy="http://proxy.lan:3128", HTTPS_PROXY="secure.lan:8080")
    assert proxy_for("http://gpu-box.lan:8188") == "http://proxy.lan:3128"
    assert proxy_for("https://gpu-box.lan/comfy") == "http://secure.lan:8080"  # no scheme: http
    assert proxy_for("http://10.0.0.7:8188") == "http://proxy.lan:3128"
    proxy_env(NO_PROXY="other.lan,.lan")
    assert proxy_for("http://gpu-box.lan:8188") is None
    assert proxy_for("http://10.0.0.7:8188") == "http://proxy.lan:3128"
    proxy_env(NO_PROXY="", no_proxy="", http_proxy="")
    assert proxy_for("http://gpu-box.lan:8188") is None  # no proxy set: directly
