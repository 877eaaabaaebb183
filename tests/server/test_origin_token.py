"""The guard in front of every route, on its own: which Origin/Host pairs are the same site,
and how a token is accepted (header, query with a cookie set, cookie)."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from latentgraph.server.hosts import HostGuard
from latentgraph.server.middleware import GuardMiddleware

TOKEN = "s3cret-token"


def guarded(token: str | None = None, scheme: str = "http") -> TestClient:
    async def ok(request):
        return PlainTextResponse("ok", headers={"x-app": "kept"})

    async def ws(websocket):
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    app = Starlette(routes=[Route("/", ok, methods=["GET", "POST"]), WebSocketRoute("/ws", ws)])
    hosts = HostGuard("127.0.0.1", allowed=["site.example", "testserver"])
    guard = GuardMiddleware(app, max_body_bytes=1000, auth_token=token, hosts=hosts)
    return TestClient(guard, base_url=f"{scheme}://testserver")


@pytest.mark.parametrize(
    "scheme, origin, host, allowed",
    [
        ("http", None, "127.0.0.1:8188", True),
        ("http", "null", "127.0.0.1:8188", False),  # sandboxed frames, file:// pages
        ("http", "http://127.0.0.1:8188", "127.0.0.1:8188", True),
        ("http", "http://evil.example:8188", "127.0.0.1:8188", False),
        ("http", "http://127.0.0.1:8189", "127.0.0.1:8188", False),
        ("http", "http://localhost", "localhost:80", True),  # default ports on either side
        ("http", "http://localhost:80", "localhost", True),
        ("https", "https://site.example", "site.example:443", True),
        ("https", "https://site.example:443", "site.example", True),
        ("http", "https://site.example", "site.example", False),  # not this request's scheme
        ("https", "http://site.example", "site.example", False),
        ("http", "http://Site.EXAMPLE:8188", "site.example:8188", True),  # names ignore case
        ("http", "http://site.example:8188", "SITE.example:8188", True),
        ("http", "http://[::1]:8188", "[::1]:8188", True),  # IPv6: colons in [] are no port
        ("http", "http://[::1]", "[::1]", True),
        ("http", "http://[::1]", "[::1]:80", True),
        ("http", "http://[::1]:8188", "[::1]", False),
        ("http", "http://127.0.0.1:notaport", "127.0.0.1", False),  # malformed: refused
    ],
)  # fmt: skip
def test_state_changing_requests_must_come_from_the_same_site(scheme, origin, host, allowed):
    headers = {"host": host} | ({"origin": origin} if origin is not None else {})
    client = guarded(scheme=scheme)
    r = client.post("/", headers=headers)
    assert r.status_code == (200 if allowed else 403), r.text
    if not allowed:
        assert r.json()["error"]["type"] == "forbidden"
    assert client.get("/", headers=headers).status_code == 200  # reading is not guarded


@pytest.mark.parametrize(
    "how, ok, sets_cookie",
    [
        ({"headers": {"authorization": f"Bearer {TOKEN}"}}, True, False),
        ({"headers": {"authorization": f"bearer   {TOKEN} "}}, True, False),
        ({"headers": {"authorization": f"Basic {TOKEN}"}}, False, False),
        ({"headers": {"authorization": "Bearer wrong"}}, False, False),
        ({"params": {"token": TOKEN}}, True, True),
        ({"params": {"a": "1", "token": TOKEN}}, True, True),
        ({"params": {"token": "wrong"}}, False, False),
        ({"headers": {"cookie": f"latentgraph_token={TOKEN}"}}, True, False),
        ({"headers": {"cookie": f"other=1; latentgraph_token={TOKEN}"}}, True, False),
        ({"headers": {"cookie": 'latentgraph_token="unterminated'}}, False, False),
        ({"headers": {"cookie": f"latentgraph_tokenx={TOKEN}"}}, False, False),
        # another local app's cookies (shared by every port of the host) that http.cookies
        # rejects whole: ours is still read
        ({"headers": {"cookie": f"other app=1; latentgraph_token={TOKEN}"}}, True, False),
        ({"headers": {"cookie": f"flag; x=1;; latentgraph_token={TOKEN}"}}, True, False),
        ({"headers": {"cookie": "latentgraph_token=; other=1"}}, False, False),
        ({}, False, False),
    ],
)  # fmt: skip
def test_token_from_header_query_or_cookie(how, ok, sets_cookie):
    r = guarded(TOKEN).get("/", **how)
    assert r.status_code == (200 if ok else 401), r.text
    if not ok:
        assert r.json()["error"]["type"] == "unauthorized"
        return
    cookies = r.headers.get_list("set-cookie")
    assert r.headers["x-app"] == "kept"  # the app's own headers survive the cookie
    if sets_cookie:
        assert cookies == [f"latentgraph_token={TOKEN}; Path=/; HttpOnly; SameSite=Strict"]
    else:
        assert cookies == []


def test_no_token_configured_lets_everyone_read_and_sets_no_cookie():
    r = guarded(None).get("/", params={"token": "anything"})
    assert r.status_code == 200 and r.headers.get_list("set-cookie") == []


def test_a_body_sent_in_pieces_is_counted_whole():
    """Each piece under the limit, their sum over it: refused all the same."""
    import asyncio

    from latentgraph.server.errors import ApiError

    pieces = [{"type": "http.request", "body": b"x" * 600, "more_body": True},
              {"type": "http.request", "body": b"x" * 600, "more_body": False}]  # fmt: skip

    async def receive():
        return pieces.pop(0)

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass

    guard = GuardMiddleware(app, max_body_bytes=1000, auth_token=None,
                            hosts=HostGuard("127.0.0.1"))  # fmt: skip
    scope = {"type": "http", "method": "POST", "headers": [(b"host", b"127.0.0.1")],
             "query_string": b"", "scheme": "http"}  # fmt: skip
    with pytest.raises(ApiError) as refused:
        asyncio.run(guard(scope, receive, lambda message: None))
    assert (refused.value.status, refused.value.message, refused.value.type) == (
        413, "request body larger than 1000 bytes (the server's --max-body-mb)", "too_large")  # fmt: skip


def refusal(r, status: int, type_: str) -> str:
    """The refusal's JSON body, in the shape every error of the server has; its message."""
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json()
    assert set(body) == {"error"} and body["error"]["type"] == type_
    assert (body["error"]["details"], body["error"]["extra_info"]) == ("", {})
    return body["error"]["message"]


def test_each_refusal_is_json_and_says_why():
    client = guarded(TOKEN)
    auth = {"authorization": f"Bearer {TOKEN}"}
    message = refusal(client.get("/", headers={"host": "evil.example"}), 403, "forbidden_host")
    assert message == ("Host 'evil.example' is not a name of this server (start it with "
                       "--allow-host evil.example to accept it)")  # fmt: skip
    assert refusal(client.get("/"), 401, "unauthorized") == (
        "a valid token is required (Authorization: Bearer TOKEN or ?token=TOKEN)")  # fmt: skip
    cross = client.post("/", headers={**auth, "origin": "http://evil.example"})
    assert refusal(cross, 403, "forbidden") == "cross-origin request refused"
    big = client.post("/", headers=auth, content=b"x" * 1001)
    assert refusal(big, 413, "too_large") == \
        "request body larger than 1000 bytes (the server's --max-body-mb)"  # fmt: skip
    assert client.post("/", headers=auth, content=b"x" * 1000).status_code == 200


def test_a_refused_websocket_is_closed_with_policy_violation():
    client = guarded(TOKEN)
    with client.websocket_connect("/ws", headers={"authorization": f"Bearer {TOKEN}"}) as ws:
        assert ws.receive_text() == "hello"
    for headers in ({}, {"authorization": f"Bearer {TOKEN}", "origin": "http://evil.example"}):
        with pytest.raises(WebSocketDisconnect) as closed:
            with client.websocket_connect("/ws", headers=headers) as ws:
                ws.receive_text()
        assert closed.value.code == 1008 and closed.value.reason


async def app_called(scope, receive, send):
    await send({"type": "app.called"})


def call(scope: dict, token: str | None = TOKEN, app=app_called) -> list[dict]:
    """The messages the guard (in front of `app`) sends for a bare ASGI scope."""
    import asyncio

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    guard = GuardMiddleware(app, max_body_bytes=1000, auth_token=token,
                            hosts=HostGuard("127.0.0.1"))  # fmt: skip
    asyncio.run(guard(scope, receive, send))
    return sent


@pytest.mark.parametrize(("origin", "allowed"), [
    (b"https://127.0.0.1:8188", True), (b"http://127.0.0.1:8188", False),
    (b"https://127.0.0.1:443", False),
])  # fmt: skip
def test_a_secure_websocket_is_same_origin_with_its_https_page(origin, allowed):
    scope = {"type": "websocket", "scheme": "wss", "path": "/ws",
             "headers": [(b"host", b"127.0.0.1:8188"), (b"origin", origin)]}  # fmt: skip
    sent = call(scope, token=None)
    assert (sent == [{"type": "app.called"}]) is allowed, sent


def test_a_secure_websocket_on_the_default_port():
    scope = {"type": "websocket", "scheme": "wss", "path": "/ws",
             "headers": [(b"host", b"127.0.0.1"), (b"origin", b"https://127.0.0.1:443")]}  # fmt: skip
    assert call(scope, token=None) == [{"type": "app.called"}]


def test_scope_keys_asgi_lets_a_server_leave_out():
    """A websocket scope may leave out `query_string` (default b"") and an HTTP/1.0 request
    has no Host: the guard applies its rules, it does not fail."""
    sent = call({"type": "websocket", "scheme": "ws", "path": "/ws", "headers": []})
    assert sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008
    ok = call({"type": "websocket", "scheme": "ws", "path": "/ws",
               "headers": [(b"Authorization", f"Bearer {TOKEN}".encode())]})  # fmt: skip
    assert ok == [{"type": "app.called"}]  # header names read case-insensitively
    assert call({"type": "http", "path": "/", "query_string": b"", "headers": []},
                token=None) == [{"type": "app.called"}]  # fmt: skip


def test_a_websocket_close_reason_fits_a_control_frame():
    """A close frame's reason is at most 123 bytes: the guard's message is cut to 120."""
    long_host = ("a" * 200 + ".example").encode()
    sent = call({"type": "websocket", "scheme": "ws", "path": "/ws",
                 "headers": [(b"host", long_host)]})  # fmt: skip
    assert sent[0]["type"] == "websocket.close" and len(sent[0]["reason"]) == 120
    assert sent[0]["reason"].startswith("Host 'aaa")


def http(headers: list[tuple[bytes, bytes]], method: str = "GET", query: bytes = b"") -> dict:
    return {"type": "http", "method": method, "path": "/", "query_string": query,
            "scheme": "http", "headers": headers}  # fmt: skip


def test_header_names_the_guard_sends_are_lower_case_as_asgi_requires():
    start, body = call(http([(b"host", b"127.0.0.1")]))  # no token: refused
    assert start["status"] == 401 and start["headers"] == [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body["body"])).encode()),
    ]

    async def bare(scope, receive, send):  # ASGI lets a response start without headers
        await send({"type": "http.response.start", "status": 200})

    cookie = f"latentgraph_token={TOKEN}; Path=/; HttpOnly; SameSite=Strict".encode()
    sent = call(http([(b"host", b"127.0.0.1")], query=f"token={TOKEN}".encode()), app=bare)
    assert sent == [{"type": "http.response.start", "status": 200,
                     "headers": [(b"set-cookie", cookie)]}]  # fmt: skip


def test_a_refused_host_names_what_to_allow():
    start, body = call(http([(b"host", b"EVIL.example:8188")]), token=None)
    message = json.loads(body["body"])["error"]["message"]
    assert start["status"] == 403
    assert message == ("Host 'EVIL.example:8188' is not a name of this server (start it with "
                       "--allow-host evil.example to accept it)")  # fmt: skip


def guard_refusal(sent: list[dict], kind: str) -> str:
    """The guard's refusal message from what it sent: an HTTP 403's JSON error, or a
    websocket's 1008 close reason."""
    if kind == "http":
        assert sent[0]["status"] == 403
        return json.loads(sent[1]["body"])["error"]["message"]
    assert sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008
    return sent[0]["reason"]


@pytest.mark.parametrize("host", [b"localhost#x", b"[::1", b"a/b:8188", b"me@localhost",
                                  b"local host", b"a,b", b"a;b:8188", b"local\\host"])  # fmt: skip
@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_a_malformed_host_is_said_to_be_so(host, kind):
    """`Host: localhost#x` was answered 'start it with --allow-host localhost#x', which
    accepts nothing: the advice names only a name that could be allowed."""
    message = guard_refusal(call(http([(b"host", host)]) | {"type": kind}, token=None), kind)
    assert message == (f"the Host header '{host.decode()}' is malformed: expected a host name "
                       "or address and port, e.g. localhost:8188")  # fmt: skip
    assert "--allow-host" not in message  # and a backslash is shown as sent, one (not repr's two)


@pytest.mark.parametrize("host", [b"", b"  ", b":18932", b" :8188 ", b":"])
@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_a_host_without_a_name_is_said_to_have_none(host, kind):
    """An empty `Host:` got 'start it with --allow-host  to accept it' (an empty name), a port
    alone 'start it with --allow-host :18932' (which accepts nothing): one rule for both."""
    message = guard_refusal(call(http([(b"host", host)]) | {"type": kind}, token=None), kind)
    assert message.startswith("the Host header has no name: a request must name this server "
                              "in Host (localhost, a loopback address, its --host")  # fmt: skip
    assert "--allow-host  " not in message and "--allow-host :" not in message


@pytest.mark.parametrize("origin", [b"http://127.0.0.1", b"http://xxxx", b"null"])
def test_an_origin_without_a_host_is_cross_origin(origin):
    """HTTP/1.0 may leave Host out (the guard lets it through), but then no Origin is ours."""
    start, body = call(http([(b"origin", origin)], method="POST"), token=None)
    assert start["status"] == 403
    assert json.loads(body["body"])["error"]["type"] == "forbidden"
    assert call(http([], method="POST"), token=None) == [{"type": "app.called"}]
