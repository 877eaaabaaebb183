"""The guard in front of every route, on its own: which Origin/Host pairs are the same site,
and how a token is accepted (header, query with a cookie set, cookie)."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse

from latentgraph.server.hosts import HostGuard, host_refusal
from latentgraph.server.middleware import GuardMiddleware, cookie_value

TOKEN = "s3cret-token"
# What the editor's cookie holds (HMAC-SHA256 of "latentgraph cookie" under the token), and
# its name on the test client's port (80: http://testserver)
COOKIE_VALUE = "a954f25e11dc403ad818e9cfaef873811e10c0d33453e639eb9f88bd24b25035"
OURS = "latentgraph_auth_80"
# The refusal of a page of another origin (`{origin}`, `{host}`: the headers compared).
CROSS_ORIGIN = ("cross-origin request refused: Origin '{origin}' is not this server's Host "
                "'{host}'; behind a reverse proxy, pass on the Host the browser sent (nginx: "
                'proxy_set_header Host $http_host;): docs/reliability.md, "Behind a reverse proxy"')  # fmt: skip
NOT_FRAMED = [(b"x-frame-options", b"DENY"),
              (b"content-security-policy", b"frame-ancestors 'none'")]  # fmt: skip


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
        # the scheme alone refuses nothing: a TLS proxy without X-Forwarded-Proto
        ("http", "https://site.example", "site.example", True),
        ("https", "http://site.example", "site.example", True),
        ("http", "https://site.example:18463", "site.example:18463", True),
        ("http", "https://site.example", "site.example:443", True),
        ("http", "http://site.example", "site.example:443", False),  # port 80's page
        ("http", "ftp://site.example", "site.example", False),  # pages are http or https
        # a proxy passing Host without its port (nginx's `Host $host`): names alone compared
        ("http", "http://site.example:18462", "site.example", True),
        ("http", "http://127.0.0.1:18462", "127.0.0.1", True),
        ("http", "http://evil.example:18462", "site.example", False),  # another host still not
        ("http", "https://evil.example", "site.example", False),
        ("http", "http://site.example.evil.example", "site.example", False),
        ("http", "null", "site.example", False),
        # Host with its port: a page on another port of this host is refused
        ("http", "http://site.example:18462", "site.example:18463", False),
        ("http", "http://site.example", "site.example:8188", False),
        ("http", "http://Site.EXAMPLE:8188", "site.example:8188", True),  # names ignore case
        ("http", "http://site.example:8188", "SITE.example:8188", True),
        ("http", "http://[::1]:8188", "[::1]:8188", True),  # IPv6: colons in [] are no port
        ("http", "http://[::1]", "[::1]", True),
        ("http", "http://[::1]", "[::1]:80", True),
        ("http", "http://[::1]:8188", "[::1]", True),
        ("http", "http://[::1]:8188", "[::1]:8189", False),
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
        ({"headers": {"cookie": f"{OURS}={COOKIE_VALUE}"}}, True, False),
        ({"headers": {"cookie": f"other=1; {OURS}={COOKIE_VALUE}"}}, True, False),
        ({"headers": {"cookie": f'{OURS}="unterminated'}}, False, False),
        ({"headers": {"cookie": f"{OURS}x={COOKIE_VALUE}"}}, False, False),
        # another local app's cookies (shared by every port of the host) that http.cookies
        # rejects whole: ours is still read
        ({"headers": {"cookie": f"other app=1; {OURS}={COOKIE_VALUE}"}}, True, False),
        ({"headers": {"cookie": f"flag; x=1;; {OURS}={COOKIE_VALUE}"}}, True, False),
        ({"headers": {"cookie": f"{OURS}=; other=1"}}, False, False),
        ({}, False, False),
        # the cookie holds the derived value, never the token; and it is named for its port
        ({"headers": {"cookie": f"{OURS}={TOKEN}"}}, False, False),
        ({"headers": {"cookie": f"latentgraph_token={TOKEN}"}}, False, False),  # the old cookie
        ({"headers": {"cookie": f"latentgraph_auth_8188={COOKIE_VALUE}"}}, False, False),
        # the derived value is no token anywhere but in the cookie
        ({"headers": {"authorization": f"Bearer {COOKIE_VALUE}"}}, False, False),
        ({"params": {"token": COOKIE_VALUE}}, False, False),
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
        assert cookies == [f"{OURS}={COOKIE_VALUE}; Path=/; HttpOnly; SameSite=Strict"]
        assert TOKEN not in cookies[0]
    else:
        assert cookies == []


def test_the_cookie_holds_an_hmac_of_the_token():
    import hashlib
    import hmac

    assert cookie_value(TOKEN) == COOKIE_VALUE == hmac.new(
        TOKEN.encode(), b"latentgraph cookie", hashlib.sha256).hexdigest()  # fmt: skip


def test_servers_on_two_ports_of_one_host_keep_their_own_cookies():
    """Browsers send a host's cookies to every port of it: each server names its cookie for
    its port, so opening one with ?token= no longer overwrites the other's (and one token's
    cookie is not read by the other)."""
    first, second = guarded(TOKEN), guarded("an0ther-token")
    r1 = first.get("http://testserver:8188/", params={"token": TOKEN})
    r2 = second.get("http://testserver:8189/", params={"token": "an0ther-token"})
    assert r1.headers["set-cookie"].startswith(f"latentgraph_auth_8188={COOKIE_VALUE};")
    assert r2.headers["set-cookie"].startswith(
        f"latentgraph_auth_8189={cookie_value('an0ther-token')};")  # fmt: skip
    both = {"cookie": f"latentgraph_auth_8188={COOKIE_VALUE}; "
                      f"latentgraph_auth_8189={cookie_value('an0ther-token')}"}  # fmt: skip
    assert first.get("http://testserver:8188/", headers=both).status_code == 200
    assert second.get("http://testserver:8189/", headers=both).status_code == 200
    mine_elsewhere = {"cookie": f"latentgraph_auth_8189={COOKIE_VALUE}"}
    assert first.get("http://testserver:8188/", headers=mine_elsewhere).status_code == 401


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
    assert refusal(cross, 403, "forbidden") == CROSS_ORIGIN.format(
        origin="http://evil.example", host="testserver")  # fmt: skip
    big = client.post("/", headers=auth, content=b"x" * 1001)
    assert refusal(big, 413, "too_large") == \
        "request body larger than 1000 bytes (the server's --max-body-mb)"  # fmt: skip
    assert client.post("/", headers=auth, content=b"x" * 1000).status_code == 200


def test_a_refused_websocket_is_answered_with_its_status_and_why():
    """A websocket refused before its handshake was closed (uvicorn then answers a bare 403
    with no body: the editor, a ComfyUI script or a proxy's log learned nothing of why). Where
    the server offers ASGI's denial response (uvicorn does, as the test client), the refusal
    is the HTTP answer any request gets: its status and JSON error."""
    client = guarded(TOKEN)
    with client.websocket_connect("/ws", headers={"authorization": f"Bearer {TOKEN}"}) as ws:
        assert ws.receive_text() == "hello"
    cases = [({}, 401, "unauthorized", "a valid token is required (Authorization: Bearer TOKEN "
              "or ?token=TOKEN)"),
             ({"authorization": f"Bearer {TOKEN}", "origin": "http://evil.example"}, 403,
              "forbidden", CROSS_ORIGIN.format(origin="http://evil.example", host="testserver"))]  # fmt: skip
    for headers, status, type_, message in cases:
        with pytest.raises(WebSocketDenialResponse) as refused:
            with client.websocket_connect("/ws", headers=headers) as ws:
                ws.receive_text()
        assert refusal(refused.value, status, type_) == message
        assert [
            (k, refused.value.headers[k.decode()].encode()) for k, _ in NOT_FRAMED
        ] == NOT_FRAMED


def test_a_websocket_refused_where_no_denial_response_is_offered_is_closed_with_why():
    """Without ASGI's `websocket.http.response` extension the refusal is a close frame: 1008
    (policy violation), the message its reason."""
    scope = {"type": "websocket", "scheme": "ws", "path": "/ws", "extensions": {},
             "headers": [(b"host", b"127.0.0.1:8188"), (b"origin", b"http://evil.example")]}  # fmt: skip
    (closed,) = call(scope, token=None)
    assert closed == {"type": "websocket.close", "code": 1008,
                      "reason": CROSS_ORIGIN.format(origin="http://evil.example",
                                                    host="127.0.0.1:8188")[:120]}  # fmt: skip


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_a_cross_origin_refusal_is_logged_once_naming_the_origin_and_host(kind, caplog):
    """The log said only `"POST /prompt HTTP/1.1" 403` or `connection rejected (403
    Forbidden)`: an operator behind a proxy could not tell which Origin and Host were
    compared, nor what to change."""
    headers = [(b"host", b"127.0.0.1:18461"), (b"origin", b"http://studio.test:18462")]
    scope = http(headers, method="POST") | {"type": kind, "client": ("10.0.0.7", 50412),
                                            "extensions": {"websocket.http.response": {}}}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        sent = call(scope, token=None)
    message = CROSS_ORIGIN.format(origin="http://studio.test:18462", host="127.0.0.1:18461")
    assert guard_refusal(sent, "http") == message
    what = "POST" if kind == "http" else "WebSocket"
    assert [r.getMessage() for r in caplog.records] == [
        f"{what} / from 10.0.0.7:50412 refused (forbidden): {message}"]  # fmt: skip


def test_a_refused_host_is_logged_naming_it_and_the_flag(caplog):
    """A server reached by a name it was not started with (a reverse proxy, a LAN name, a
    rebinding attack) said only `403` in its log: the admin who forgot `--allow-host` could
    not tell why."""
    scope = http([(b"host", b"studio.test:18461")]) | {"client": ("10.0.0.7", 50412)}
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        call(scope, token=None)
    assert [r.getMessage() for r in caplog.records] == [
        f"GET / from 10.0.0.7:50412 refused (forbidden_host): {host_refusal('studio.test:18461')}"
    ]


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
    (b"https://127.0.0.1:8188", True), (b"http://127.0.0.1:8188", True),  # the same host and port
    (b"https://127.0.0.1:443", False), (b"https://127.0.0.1", False),
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
        *NOT_FRAMED,
    ]

    async def bare(scope, receive, send):  # ASGI lets a response start without headers
        await send({"type": "http.response.start", "status": 200})

    cookie = f"latentgraph_auth_8188={COOKIE_VALUE}; Path=/; HttpOnly; SameSite=Strict".encode()
    scope = http([(b"host", b"127.0.0.1")], query=f"token={TOKEN}".encode())
    sent = call(scope | {"server": ("127.0.0.1", 8188)}, app=bare)
    assert sent == [{"type": "http.response.start", "status": 200,
                     "headers": [(b"set-cookie", cookie), *NOT_FRAMED]}]  # fmt: skip
    # a unix socket has no port (ASGI: [path, None]): the cookie is named without one
    sent = call(scope | {"server": ("/run/lg.sock", None)}, app=bare)
    assert sent[0]["headers"][0] == (b"set-cookie", cookie.replace(b"_auth_8188=", b"_auth="))


def test_a_refused_host_names_what_to_allow():
    start, body = call(http([(b"host", b"EVIL.example:8188")]), token=None)
    message = json.loads(body["body"])["error"]["message"]
    assert start["status"] == 403
    assert message == ("Host 'EVIL.example:8188' is not a name of this server (start it with "
                       "--allow-host evil.example to accept it)")  # fmt: skip


def guard_refusal(sent: list[dict], kind: str) -> str:
    """The guard's refusal message from what it sent: a 403's JSON error (an HTTP answer, or a
    websocket's denial response), or a websocket's 1008 close reason."""
    if kind == "http":
        assert sent[0]["status"] == 403 and sent[0]["type"].endswith("http.response.start")
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


def test_no_answer_may_be_framed_by_another_page():
    """Clickjacking: a page framing the editor gets the user to click Run or Delete, and the
    framed editor's requests are same-origin. Every HTTP answer, the app's and each refusal,
    forbids framing (X-Frame-Options for old browsers, CSP frame-ancestors)."""
    client = guarded(TOKEN)
    auth = {"authorization": f"Bearer {TOKEN}"}
    answers = [client.get("/", headers=auth), client.get("/"),
               client.get("/", headers={"host": "evil.example"}),
               client.post("/", headers={**auth, "origin": "http://evil.example"}),
               client.post("/", headers=auth, content=b"x" * 1001)]  # fmt: skip
    assert [r.status_code for r in answers] == [200, 401, 403, 403, 413]
    for r in answers:
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert answers[0].headers["x-app"] == "kept"


@pytest.mark.parametrize(
    "method, site, mode, allowed",
    [
        ("GET", None, None, True),  # scripts, curl, `submit`: no Sec-Fetch-Site
        ("GET", "same-origin", "cors", True),  # the editor's own requests
        ("GET", "same-origin", "no-cors", True),
        ("GET", "none", "navigate", True),  # a typed address, a bookmark
        ("GET", "cross-site", "navigate", True),  # a link to the editor from another site
        ("GET", "same-site", "navigate", True),
        ("GET", "cross-site", "no-cors", False),  # <img src=.../view?...> on another site
        ("GET", "same-site", "no-cors", False),  # another port of this host
        ("GET", "cross-site", "cors", False),  # fetch() from another site
        ("GET", "Cross-Site", "no-cors", False),
        ("HEAD", "cross-site", "navigate", False),  # navigations are GETs
        ("POST", "cross-site", "navigate", False),  # a form another site posts
        ("POST", "same-origin", "cors", True),
    ],
)  # fmt: skip
def test_requests_another_sites_pages_make_are_refused(method, site, mode, allowed):
    """Another site's page could load `/view?filename=...` as an image: which outputs exist,
    their sizes, previews encoded at will. A request a browser marks as from another site is
    refused on every route, but a navigation to the editor is not."""
    headers = {"sec-fetch-site": site} if site else {}
    headers |= {"sec-fetch-mode": mode} if mode else {}
    r = guarded().request(method, "/", headers=headers)
    assert r.status_code == (200 if allowed else 403), r.text
    if not allowed and method != "HEAD":  # (a HEAD answer has no body)
        assert refusal(r, 403, "forbidden") == \
            f"request from another site refused (Sec-Fetch-Site: {site.lower()})"  # fmt: skip


@pytest.mark.parametrize("site", [b"cross-site", b"same-site"])
def test_a_websocket_from_another_site_is_refused_whatever_its_origin_says(site):
    scope = {"type": "websocket", "scheme": "ws", "path": "/ws",
             "headers": [(b"host", b"127.0.0.1:8188"), (b"origin", b"http://127.0.0.1:8188"),
                         (b"sec-fetch-site", site), (b"sec-fetch-mode", b"websocket")]}  # fmt: skip
    sent = call(scope, token=None)
    assert sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008


OLD = f"latentgraph_token={TOKEN}"  # the cookie latentgraph set before `cookie_name`: the token
EXPIRE_OLD = "latentgraph_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"


@pytest.mark.parametrize(
    "token, how, status",
    [
        (TOKEN, {"headers": {"authorization": f"Bearer {TOKEN}"}}, 200),
        (TOKEN, {"headers": {"cookie": f"{OURS}={COOKIE_VALUE}"}}, 200),
        (TOKEN, {"params": {"token": TOKEN}}, 200),  # ours set, the old one expired
        (TOKEN, {}, 401),
        (TOKEN, {"headers": {"host": "evil.example"}}, 403),
        (None, {}, 200),  # a server without a token expires it too: it holds a token
    ],
)  # fmt: skip
def test_the_old_cookie_is_expired_on_every_answer(token, how, status):
    """`latentgraph_token` held the raw token, and browsers send it to every port of the
    host: whatever the answer, a request still carrying it is told to drop it."""
    how = {**how, "headers": {**how.get("headers", {}), "cookie": "; ".join(
        c for c in (OLD, how.get("headers", {}).get("cookie")) if c)}}  # fmt: skip
    r = guarded(token).get("/", **how)
    assert r.status_code == status, r.text
    cookies = r.headers.get_list("set-cookie")
    assert sorted(cookies) == [*([f"{OURS}={COOKIE_VALUE}; Path=/; HttpOnly; SameSite=Strict"]
                                 if "params" in how else []), EXPIRE_OLD]  # fmt: skip
    # without it, nothing is expired
    assert guarded(token).get("/", headers={"authorization": f"Bearer {TOKEN}"}).headers.get_list(
        "set-cookie") == []  # fmt: skip


def test_a_refusal_of_the_old_cookie_says_it_is_no_longer_accepted():
    """The editor opened before the upgrade sends only the old cookie: its 401 says why."""
    message = refusal(guarded(TOKEN).get("/", headers={"cookie": OLD}), 401, "unauthorized")
    assert message == ("a valid token is required (Authorization: Bearer TOKEN or ?token=TOKEN)"
                       "; the login cookie of an earlier latentgraph is no longer accepted: "
                       "open the editor with ?token=TOKEN once more")  # fmt: skip
    assert "no longer" not in refusal(guarded(TOKEN).get("/"), 401, "unauthorized")


@pytest.mark.parametrize("given", [{"params": {"token": "wrong"}},
                                   {"headers": {"authorization": "Bearer wrong"}}])  # fmt: skip
def test_a_refusal_of_a_wrong_token_says_the_token_given_is_not_this_servers(given):
    """`/?token=WRONG` was told only to open the editor with ?token=TOKEN: what it had done."""
    message = refusal(guarded(TOKEN).get("/history", **given), 401, "unauthorized")
    assert message.endswith("; the token given is not this server's")
    assert "given" not in refusal(guarded(TOKEN).get("/history"), 401, "unauthorized")


NAVIGATE = {"sec-fetch-mode": "navigate", "sec-fetch-site": "none",
            "accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # fmt: skip


@pytest.mark.parametrize(
    "address, location",
    [
        ("/?token=T", "./"),
        ("/?a=1&token=T&b=x%20y+z", "./?a=1&b=x%20y+z"),  # the others as they came
        ("/?token=T&template=default", "./?template=default"),
        ("/?%74oken=T&token=wrong", "./"),  # by its decoded name, every one
        ("/sub/page?token=T", "./page"),  # relative: a proxy's path prefix is kept
        ("/sub/?token=T&x", "./?x"),
        ("/a:b?token=T", "./a:b"),  # never read as a scheme
    ],
)  # fmt: skip
def test_a_navigation_with_the_token_is_sent_to_its_address_without_it(address, location):
    """`/?token=...` stayed in the address bar and the history: a browser navigation that
    authenticated by `?token=` is answered 303 to the same address without it, the cookie
    set on that answer, so the next request needs no token in the address."""
    client = guarded(TOKEN)
    r = client.get(address.replace("=T", f"={TOKEN}"), headers=NAVIGATE, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == location
    assert r.headers.get_list("set-cookie") == [
        f"{OURS}={COOKIE_VALUE}; Path=/; HttpOnly; SameSite=Strict"]  # fmt: skip
    assert r.headers["x-frame-options"] == "DENY" and r.content == b""
    followed = client.get(f"/?a=1&token={TOKEN}", headers=NAVIGATE)  # by the cookie
    assert followed.status_code == 200 and followed.text == "ok"
    assert str(followed.url) == "http://testserver/?a=1" and len(followed.history) == 1


@pytest.mark.parametrize(
    "method, headers, redirected",
    [
        ("GET", {"accept": "text/html"}, True),  # a browser that sends no Sec-Fetch-Mode
        ("GET", {"sec-fetch-mode": "navigate", "accept": "*/*"}, True),
        ("GET", {}, False),  # API clients: their answer, as before (httpx: Accept */*)
        ("GET", {"accept": "application/json"}, False),
        ("GET", {"sec-fetch-mode": "cors", "accept": "text/html"}, False),  # a page's fetch()
        ("HEAD", NAVIGATE, False),
        ("POST", NAVIGATE, False),  # a form: its body would be lost
    ],
)  # fmt: skip
def test_only_a_browsers_get_navigation_is_redirected(method, headers, redirected):
    r = guarded(TOKEN).request(method, "/", params={"token": TOKEN}, headers=headers,
                               follow_redirects=False)  # fmt: skip
    assert r.status_code == (303 if redirected else 200), r.text
    assert r.headers.get_list("set-cookie") == [
        f"{OURS}={COOKIE_VALUE}; Path=/; HttpOnly; SameSite=Strict"]  # fmt: skip
    if not redirected:
        assert r.headers["x-app"] == "kept"


@pytest.mark.parametrize(
    "site, reloads",
    [
        ("cross-site", True),  # a link on another site's page: the Strict cookie was not sent
        ("same-site", True),  # another port of this host
        ("same-origin", False),  # that reload, or our own page's link: the cookie was sent
        ("none", False),  # a typed address, a bookmark
        (None, False),  # a browser that sends no Sec-Fetch-Site (Accept: text/html)
    ],
)  # fmt: skip
def test_a_refused_navigation_gets_a_page_that_reloads_once_when_another_site_began_it(
    site, reloads
):
    """A browser's navigation without a valid token is answered 401 with an HTML page saying
    how to open the server with its token; if another site's page began it (its SameSite=Strict
    cookie withheld), the page reloads itself, a same-origin navigation that carries it."""
    headers = {"accept": "text/html,*/*;q=0.8"} | ({"sec-fetch-site": site,
                                                    "sec-fetch-mode": "navigate"} if site else {})  # fmt: skip
    r = guarded(TOKEN).get("/", headers={**headers, "cookie": OLD})
    assert r.status_code == 401 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-frame-options"] == "DENY"  # a refusal as any other
    assert r.headers.get_list("set-cookie") == [EXPIRE_OLD]
    assert "<code>?token=TOKEN</code>" in r.text and "latentgraph serve --auth-token" in r.text
    assert "no longer accepted" in r.text  # the refusal's own words too
    assert ('<meta http-equiv="refresh" content="0">' in r.text) is reloads
    assert TOKEN not in r.text and COOKIE_VALUE not in r.text


@pytest.mark.parametrize(
    "method, headers",
    [
        ("GET", {}),  # httpx, curl, `submit`
        ("GET", {"accept": "application/json", "sec-fetch-site": "cross-site"}),
        ("GET", {"sec-fetch-mode": "cors", "sec-fetch-site": "same-origin"}),  # the editor's fetch
        ("GET", {"sec-fetch-mode": "no-cors", "sec-fetch-site": "cross-site"}),  # another's <img>
        ("POST", NAVIGATE),  # a form
    ],
)  # fmt: skip
def test_a_refused_api_request_keeps_its_json_answer(method, headers):
    r = guarded(TOKEN).request(method, "/", headers=headers)
    assert r.headers["content-type"] == "application/json"
    assert refusal(r, 401, "unauthorized").startswith("a valid token is required")
