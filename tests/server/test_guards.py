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


def test_a_browser_opening_an_address_with_the_token_is_sent_where_it_is_not_shown(guarded):
    """A navigation that authenticated by `?token=` is redirected to its address without the
    token (the address bar and the history kept it); an API client's `?token=` on the same
    route is answered as before."""
    guarded.cookies.clear()
    api = guarded.get("/history?max_items=1&token=s3cret")
    assert api.status_code == 200 and isinstance(api.json(), dict)
    guarded.cookies.clear()
    navigate = {"sec-fetch-mode": "navigate", "sec-fetch-site": "none", "accept": "text/html"}
    r = guarded.get("/history?max_items=1&token=s3cret", headers=navigate, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "./history?max_items=1"
    assert r.headers["set-cookie"].startswith("latentgraph_auth_8188=")
    followed = guarded.get("/history?max_items=1&token=s3cret", headers=navigate)
    assert followed.status_code == 200 and isinstance(followed.json(), dict)
    assert str(followed.url) == "http://127.0.0.1:8188/history?max_items=1"
    guarded.cookies.clear()


def test_the_old_cookie_is_expired_and_its_refusal_says_why(guarded):
    """The cookie latentgraph set before (`latentgraph_token`, the token itself) is expired
    on every answer, and an editor sending only it is told to open `?token=` once more."""
    guarded.cookies.clear()
    expire = "latentgraph_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"
    old = {"cookie": "latentgraph_token=s3cret"}
    refused = guarded.get("/prompt", headers=old)
    assert refused.status_code == 401 and refused.headers.get_list("set-cookie") == [expire]
    assert "the login cookie of an earlier latentgraph is no longer accepted" in \
        refused.json()["error"]["message"]  # fmt: skip
    ok = guarded.get("/prompt", headers={**old, "authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.headers.get_list("set-cookie") == [expire]


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
