"""The server behind a reverse proxy, on a real uvicorn: the Origin check as the proxies
ComfyUI users run pass Host on (nginx's `Host $host` drops the port; a TLS proxy may send no
X-Forwarded-Proto), a websocket refusal that says why, and `--forwarded-allow-ips`."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from .conftest import RunningServer, free_port

PROXY = "127.0.0.2"  # a proxy connecting from another address (another machine, a Docker bridge)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, toy_workers):
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("proxied"), port=free_port(),
                          disk_cache=False, load_nodes=False, editor=False,
                          allow_hosts=["studio.test"], forwarded_allow_ips=[PROXY])  # fmt: skip
    running = RunningServer(config, toy_workers).start()
    yield running
    running.stop()


def refused_as(r: httpx.Response) -> str:
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden", r.text
    return r.json()["error"]["message"]


@pytest.mark.parametrize(("host", "origin", "allowed"), [
    ("studio.test", "http://studio.test:18462", True),  # nginx `Host $host`: no port
    ("studio.test:18462", "http://studio.test:18462", True),  # `Host $http_host`
    ("studio.test:18463", "https://studio.test:18463", True),  # TLS, no X-Forwarded-Proto
    ("studio.test", "https://studio.test", True),
    ("studio.test:18463", "http://studio.test:18462", False),  # another port of the host
    ("studio.test", "http://evil.example:18462", False),  # another host
    ("studio.test", "http://studio.test.evil.example", False),
])  # fmt: skip
def test_the_proxies_comfyui_users_run_are_answered_other_pages_are_not(proxied, host, origin,
                                                                        allowed):  # fmt: skip
    r = proxied.http.post("/interrupt", json={}, headers={"Host": host, "Origin": origin})
    if allowed:
        assert r.status_code == 200, r.text
        return
    assert refused_as(r) == (
        f"cross-origin request refused: Origin '{origin}' is not this server's Host '{host}'; "
        "behind a reverse proxy, pass on the Host the browser sent (nginx: proxy_set_header "
        'Host $http_host;): docs/reliability.md, "Behind a reverse proxy"')  # fmt: skip


def test_a_rebound_page_is_refused_by_its_host_without_a_port_too(proxied):
    """A Host without a port is matched to the Origin by name alone, but only once the Host
    check (DNS rebinding) has found the name to be this server's."""
    r = proxied.http.post("/interrupt", json={}, headers={"Host": "evil.example",
                                                          "Origin": "http://evil.example:18462"})  # fmt: skip
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden_host", r.text


def test_a_refused_websocket_is_answered_with_why(proxied):
    """uvicorn turned a websocket closed before its handshake into a bare 403 without a body:
    the editor retried forever, a ComfyUI script raised `Handshake status 403 Forbidden` and
    nobody learned why. Now the refusal is the guard's JSON answer."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(proxied.ws_url + "?clientId=x", origin="http://evil.example", open_timeout=10)
    response = refused.value.response
    assert response.status_code == 403
    error = json.loads(response.body)["error"]
    assert error["type"] == "forbidden" and error["message"].startswith(
        "cross-origin request refused: Origin 'http://evil.example' is not this server's Host "
        f"'127.0.0.1:{proxied.config.port}'; behind a reverse proxy")  # fmt: skip
    origin = f"http://127.0.0.1:{proxied.config.port}"  # its own page's websocket is opened
    with connect(proxied.ws_url + "?clientId=y", origin=origin, open_timeout=10) as ws:
        assert json.loads(ws.recv(10))["type"] == "status"


def test_a_proxys_forwarded_headers_are_believed_from_the_addresses_allowed(proxied, caplog):
    """`serve --forwarded-allow-ips`: uvicorn believes X-Forwarded-For and X-Forwarded-Proto
    only from these addresses (its default: 127.0.0.1 and ::1, and nothing of ours said so); a
    proxy connecting from another address had its headers ignored. What the server then knows
    of the client shows in its log lines."""
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    ours = f"https://127.0.0.1:{proxied.config.port}"
    for source, client in ((PROXY, "203.0.113.7:0"), ("127.0.0.3", "127.0.0.3:")):
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=proxied.url, transport=transport, timeout=30) as http:
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
                r = http.post("/interrupt", json={},
                              headers={**forwarded, "Origin": "https://evil.example"})  # fmt: skip
            refused_as(r)
            (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
            assert line.startswith(f"POST /interrupt from {client}"), line
            # an https page of this server, through its TLS proxy, is answered
            r = http.post("/interrupt", json={}, headers={**forwarded, "Origin": ours})
            assert r.status_code == 200, r.text
