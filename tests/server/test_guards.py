"""Token auth (header, query, cookie) and refusal of cross-origin state changes."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

WS = "ws://127.0.0.1:8188"  # TestClient's websockets ignore base_url: without it Host is "testserver"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, toy_workers):
    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("guarded"), auth_token="s3cret",
                          disk_cache=False, load_nodes=False, editor=False)  # fmt: skip
    with TestClient(create_app(config, workers=toy_workers), base_url="http://127.0.0.1:8188") as c:
        yield c


def test_token_required_everywhere(guarded):
    for path in ("/prompt", "/api/object_info", "/history", "/view?filename=x.png", "/"):
        r = guarded.get(path)
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    assert guarded.get("/prompt", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get("/prompt", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    with pytest.raises(WebSocketDisconnect), guarded.websocket_connect(WS + "/ws") as ws:
        ws.receive_json()
    with guarded.websocket_connect(WS + "/ws?token=s3cret&clientId=abc") as ws:
        assert ws.receive_json()["data"]["sid"] == "abc"


def test_query_token_sets_a_cookie_for_the_editor(guarded):
    """The cookie is named for the server's port and holds no token: every service on another
    port of this host is sent it, and must not learn the token from it."""
    r = guarded.get("/api/users?token=s3cret")
    assert r.status_code == 200
    name, value = r.headers["set-cookie"].split(";")[0].split("=", 1)
    assert name == "latentgraph_auth_8188" and len(value) == 64 and "s3cret" not in value
    assert guarded.get("/api/users").status_code == 200  # the client kept the cookie
    guarded.cookies.clear()
    # what the cookie holds is no token anywhere else
    assert (
        guarded.get("/api/users", headers={"Authorization": f"Bearer {value}"}).status_code == 401
    )
    assert guarded.get("/api/users", params={"token": value}).status_code == 401
    raw = guarded.get("/api/users", headers={"cookie": "latentgraph_auth_8188=s3cret"})
    assert raw.status_code == 401  # the token itself is no cookie


def test_cross_origin_post_refused(guarded):
    auth = {"Authorization": "Bearer s3cret"}
    evil = guarded.post("/interrupt", json={}, headers={**auth, "Origin": "http://evil.example"})
    assert evil.status_code == 403 and evil.json()["error"]["type"] == "forbidden"
    same = guarded.post("/interrupt", json={}, headers={**auth, "Origin": "http://127.0.0.1:8188"})
    assert same.status_code == 200
    assert (
        guarded.get("/prompt", headers={**auth, "Origin": "http://evil.example"}).status_code == 200
    )
    with (
        pytest.raises(WebSocketDisconnect),
        guarded.websocket_connect(
            WS + "/ws?token=s3cret", headers={"Origin": "http://evil.example"}
        ) as ws,
    ):
        ws.receive_json()
