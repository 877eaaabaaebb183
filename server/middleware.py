"""Guards in front of every route: Host check, token auth, refusal of other sites' requests,
body size; and no answer may be framed by another page.

Written as plain ASGI middleware so they cover the websocket and the static editor too.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
from typing import Any
from urllib.parse import parse_qs, quote, unquote_plus, urlsplit

from starlette.requests import cookie_parser
from starlette.types import Scope

from latentgraph.graph.problems import printable, quoted

from .config import server_limit_label
from .errors import ApiError, error_response
from .hosts import HostGuard, host_refusal

log = logging.getLogger("latentgraph.server")

COOKIE = "latentgraph_auth"  # the editor's cookie, named per port: `cookie_name`
# The cookie latentgraph set before `cookie_name`: the raw token, sent to every port of the host.
# Never read; expired on every answer to a request that still carries it.
OLD_COOKIE = "latentgraph_token"
_EXPIRE_OLD_COOKIE = (b"set-cookie",
                      f"{OLD_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict".encode())  # fmt: skip
TOKEN_PARAMETER = "token"  # ?token=TOKEN (its decoded name: also %74oken=)
_STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
_OTHER_SITES = {"cross-site", "same-site"}  # Sec-Fetch-Site: another port of this host is same-site
# On every HTTP answer: no page of another origin may frame one (clickjacking: a framed
# editor's own requests are same-origin, so no Origin check refuses the clicks it is tricked
# into). The editor frames none of its own pages.
_NOT_FRAMED = [(b"x-frame-options", b"DENY"),
               (b"content-security-policy", b"frame-ancestors 'none'")]  # fmt: skip


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _deny(scope, send, status: int, message: str, type_: str) -> None:
    """Refuse the request with `status` and the JSON error every answer has. A websocket is
    refused the same way, before its handshake, where the server offers ASGI's denial response
    (`websocket.http.response`: uvicorn's websocket implementations, Starlette's test client):
    a close before accepting became a bare 403 without a body, which told a client (the
    editor, a ComfyUI script, a reverse proxy's log) nothing of why. Elsewhere it is closed
    with 1008 and the message as the reason (a close frame holds at most 123 bytes)."""
    body = error_response(status, message, type_).body  # every error body is built one way
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    if scope["type"] == "websocket":
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [*headers, *_NOT_FRAMED]})  # fmt: skip
        await send({"type": "websocket.http.response.body", "body": body})
        return
    # (`send` adds _NOT_FRAMED: the guard wraps it before any refusal)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    def __init__(self, app, *, max_body_bytes: int, auth_token: str | None,
                 hosts: HostGuard) -> None:  # fmt: skip
        self.app = app
        self.max_body = max_body_bytes
        self.token = auth_token
        self.cookie = cookie_value(auth_token) if auth_token else None
        self.hosts = hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        # Leniently, as browsers do: cookies are shared by every port of a host, so another
        # local app's cookie that http.cookies rejects must not hide ours.
        cookies = cookie_parser(headers.get("cookie", ""))
        old_cookie = OLD_COOKIE in cookies
        if scope["type"] == "http":
            send = _adding(send, [*_NOT_FRAMED, *([_EXPIRE_OLD_COOKIE] if old_cookie else [])])
        host = headers.get("host")
        if not self.hosts.allows(host):  # (a request without Host is allowed: not a browser)
            assert host is not None
            _log_refusal(scope, "forbidden_host", host_refusal(host))
            await _deny(scope, send, 403, host_refusal(host), "forbidden_host")
            return
        set_cookie = False
        if self.token:
            ok, from_query, given = self._authorized(scope, headers, cookies)
            if not ok:
                why = _unauthorized(old_cookie, given)
                if _navigation(scope, headers):
                    await _token_page(send, why, reload=_site(headers) in _OTHER_SITES)
                else:
                    await _deny(scope, send, 401, why, "unauthorized")
                return
            set_cookie = from_query and scope["type"] == "http"
        refused = _from_another_site(headers, scope)
        if refused is not None:
            _log_refusal(scope, "forbidden", refused)
            await _deny(scope, send, 403, refused, "forbidden")
            return
        if scope["type"] == "http":
            length = headers.get("content-length")
            if length and length.isdigit() and int(length) > self.max_body:
                await _deny(scope, send, 413, _too_large(scope, self.max_body), "too_large")
                return
            receive = self._limited(scope, receive)
        if set_cookie:
            assert self.cookie is not None
            cookie = f"{cookie_name(scope)}={self.cookie}; Path=/; HttpOnly; SameSite=Strict"
            send = _adding(send, [(b"set-cookie", cookie.encode())])
            if _navigation(scope, headers):
                await _redirect(send, _without_token(scope))
                return
        await self.app(scope, receive, send)

    def _authorized(self, scope, headers: dict[str, str],
                    cookies: dict[str, str]) -> tuple[bool, bool, bool]:  # fmt: skip
        """(authorized, by `?token=`, whether a token was given in the request itself: a
        Bearer header or `?token=`)."""
        assert self.token is not None
        auth = headers.get("authorization", "")
        bearer = auth.lower().startswith("bearer ")
        if bearer and _same(auth[7:].strip(), self.token):
            return True, False, True
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if any(_same(t, self.token) for t in query.get(TOKEN_PARAMETER, [])):
            return True, True, True
        # The cookie holds `cookie_value`, never the token, and is the only place that value
        # is accepted.
        assert self.cookie is not None
        cookie = cookies.get(cookie_name(scope))
        given = bearer or TOKEN_PARAMETER in query
        return (cookie is not None and _same(cookie, self.cookie)), False, given

    def _limited(self, scope, receive):
        seen = 0
        limit = self.max_body

        async def wrapped() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise ApiError(413, _too_large(scope, limit), "too_large")
            return message

        return wrapped


def _unauthorized(old_cookie: bool, given: bool) -> str:
    """The refusal of a request without a valid token; one that gave a token (`?token=`, a
    Bearer header) is told that one is not this server's, and one that carries only the cookie
    an earlier latentgraph set (the token itself, no longer read) is told why its editor, which
    worked before the upgrade, is refused now."""
    message = "a valid token is required (Authorization: Bearer TOKEN or ?token=TOKEN)"
    if given:
        message += "; the token given is not this server's"
    if old_cookie:
        message += ("; the login cookie of an earlier latentgraph is no longer accepted: "
                    "open the editor with ?token=TOKEN once more")  # fmt: skip
    return message


_TOKEN_PAGE = """<!doctype html><html><head><meta charset="utf-8">{reload}
<title>latentgraph: token required</title></head><body>
<h1>This latentgraph server needs its token</h1>
<p>Open it with <code>?token=TOKEN</code> at the end of its address (<code>/?token=TOKEN</code>),
TOKEN being the token <code>latentgraph serve --auth-token</code> (or
<code>LATENTGRAPH_AUTH_TOKEN</code>) was given. This browser then keeps a cookie, and opens the
editor without it. If it has opened the editor with its token before, reload this page.</p>
<p><small>{message}</small></p>
</body></html>"""


async def _token_page(send, message: str, *, reload: bool) -> None:
    """A browser's refused navigation is answered 401 with a page a person reads, not JSON.
    From another site's page (`reload`), the cookie may well be set but unsent: browsers send
    no SameSite=Strict cookie on a navigation another site began. The page then reloads itself
    once: that navigation is our own page's (`same-origin`), so the cookie goes with it and a
    logged-in user lands in the editor; one without it gets this page again, without the
    reload (a meta refresh: the CSP we send names frames only)."""
    refresh = '<meta http-equiv="refresh" content="0">' if reload else ""
    body = _TOKEN_PAGE.format(reload=refresh, message=html.escape(message)).encode()
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"cache-control", b"no-store"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _site(headers: dict[str, str]) -> str:
    """Where a browser says a request comes from (Sec-Fetch-Site, lowercased; "" when none)."""
    return headers.get("sec-fetch-site", "").strip().lower()


def _navigation(scope, headers: dict[str, str]) -> bool:
    """A browser's GET navigation (a link, a typed address): `Sec-Fetch-Mode: navigate`, or,
    from a browser that sends no Sec-Fetch-Mode (plain http under a name not loopback), an
    `Accept` naming text/html. API clients (`*/*`, application/json) make none."""
    if scope["type"] != "http" or scope.get("method", "GET") != "GET":
        return False
    mode = headers.get("sec-fetch-mode")
    if mode is not None:
        return mode.strip().lower() == "navigate"
    return "text/html" in headers.get("accept", "").lower()


def _without_token(scope) -> str:
    """This request's address without its `?token=` (by its decoded name, as `parse_qs` reads
    it), relative to the request (`./NAME?QUERY`, so a proxy's path prefix is kept), its other
    parameters as they came."""
    raw = scope.get("raw_path") or quote(scope.get("path", "/")).encode()
    last = raw.split(b"?", 1)[0].decode("latin-1").rsplit("/", 1)[-1]
    query = scope.get("query_string", b"").decode("latin-1")
    kept = [p for p in query.split("&")
            if p and unquote_plus(p.split("=", 1)[0]) != TOKEN_PARAMETER]  # fmt: skip
    return f"./{last}" + (f"?{'&'.join(kept)}" if kept else "")


async def _redirect(send, location: str) -> None:
    """303 to `location` (what `send` adds, the cookie, goes with it): the browser asks again
    without the token, which leaves the address bar and its history."""
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")),
                            (b"cache-control", b"no-store"), (b"content-length", b"0")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b""})


def _adding(send, headers: list[tuple[bytes, bytes]]):
    """`send`, adding `headers` to the response's start."""

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", []), *headers]
        await send(message)

    return wrapped


def cookie_name(scope: Scope, prefix: str = COOKIE) -> str:
    """A cookie of ours on the port this request came to (`latentgraph_auth_8188`): a
    browser sends a host's cookies to every port of it, so servers on two ports of one host
    shared one cookie and each `?token=` overwrote the other's."""
    server = scope.get("server")  # ASGI: [host, port], port None on a unix socket
    port = server[1] if server else None
    return prefix if port is None else f"{prefix}_{port}"


def cookie_value(token: str) -> str:
    """What the editor's cookie holds: HMAC-SHA256 of a fixed text under the token, not the
    token. Every service on this host's other ports is sent the cookie; from it they do not
    learn the token (for `submit --auth-token`, a Bearer header or `?token=`). Replayed as the
    cookie it still authenticates: docs/reliability.md says what that leaves open."""
    return hmac.new(token.encode(), b"latentgraph cookie", hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# The schemes of a page that can be this server's (its editor, or a proxy's https in front).
_PAGE_SCHEMES = {"http": 80, "https": 443}
# Where the refusal of another origin's request sends an operator behind a reverse proxy.
_PROXY_ADVICE = ('behind a reverse proxy, pass on the Host the browser sent (nginx: '
                 'proxy_set_header Host $http_host;): docs/reliability.md, "Behind a reverse proxy"')  # fmt: skip


def _from_another_site(headers: dict[str, str], scope) -> str | None:
    """Why the guard refuses a request a page of another origin made, or None. The one rule:
    - a state-changing request or a websocket whose Origin is not ours (`_cross_origin`);
    - any other request a browser says came from another site (Sec-Fetch-Site `cross-site`,
      or `same-site`: another port of this host), except a GET navigation (a link to the
      editor). Another site's `<img src=.../view?...>` learned which outputs exist and their
      sizes, and had previews encoded. A browser's requests from our own pages
      (`same-origin`), typed addresses (`none`) and clients that send no Sec-Fetch-Site
      (scripts, curl, `submit`) pass."""
    method = scope.get("method", "GET")
    if scope["type"] == "websocket" or method in _STATE_CHANGING:
        refused = _cross_origin(headers)
        if refused is not None:
            return refused
    site = _site(headers)
    if site in _OTHER_SITES and not _navigation(scope, headers):
        return f"request from another site refused (Sec-Fetch-Site: {site})"
    return None


def _cross_origin(headers: dict[str, str]) -> str | None:
    """Why a request's Origin is not this server, or None (no Origin: not a browser's page).
    The refusal names the Origin and the Host compared, and what a reverse proxy must pass."""
    origin = headers.get("origin")
    if not origin:
        return None
    host = headers.get("host")
    if host is None:
        return f"cross-origin request refused: Origin {quoted(origin)} came without a Host header"
    if _same_origin(origin, host):
        return None
    return (f"cross-origin request refused: Origin {quoted(origin)} is not this server's Host "
            f"{quoted(host)}; {_PROXY_ADVICE}")  # fmt: skip


def _same_origin(origin: str, host: str) -> bool:
    """Whether a page at `origin` is this server as the request's `Host` header names it: the
    same host name, and the same port when Host names one (an Origin without a port has its
    scheme's, 80 or 443). ComfyUI's rule for the proxies its users run: a Host without a port
    (nginx's `proxy_set_header Host $host`, or a server on port 80 or 443) is matched by
    name alone, and the scheme is not compared (a TLS proxy that sends no X-Forwarded-Proto
    passes an https page's requests on as http; one port of one host serves one of them).
    A page of another host, or of another port where Host names one, is refused; so are
    Origins of other schemes (`null`, `ftp://`) and malformed ones."""
    try:
        page = urlsplit(origin)
        ours = urlsplit("//" + host)
        page_port, our_port = page.port, ours.port
    except ValueError:
        return False
    if page.scheme not in _PAGE_SCHEMES or not page.hostname or not ours.hostname:
        return False
    if page.hostname.rstrip(".") != ours.hostname.rstrip("."):
        return False
    return our_port is None or (page_port or _PAGE_SCHEMES[page.scheme]) == our_port


def _log_refusal(scope, type_: str, message: str) -> None:
    """A guard's refusal in the server's log, once per request, with the request and its
    client: `POST /prompt from 127.0.0.1:50412 refused (forbidden): ...` (uvicorn's own line
    says only `403`, and a websocket's 403 says nothing of why to whoever opened it)."""
    what = scope.get("method", "POST") if scope["type"] == "http" else "WebSocket"
    client = scope.get("client")
    log.warning("%s %s%s refused (%s): %s", what, printable(scope.get("path", "")),
                f" from {client[0]}:{client[1]}" if client else "", type_, message)  # fmt: skip


def _too_large(scope, limit: int) -> str:
    """The refusal of a body over `limit` bytes, naming the flag that sets it; logged as a
    refused prompt is (`prompts.log_refusal`: what, TYPE, the reason), with the request and
    its client (it left only uvicorn's access line: a prompt refused for its size said
    nothing of why)."""
    message = f"request body larger than {limit} bytes ({server_limit_label('max_body_bytes')})"
    _log_refusal(scope, "too_large", message)
    return message
