"""Guards in front of every route: Host check, token auth, cross-origin refusal, body size.

Written as plain ASGI middleware so they cover the websocket and the static editor too.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import cookie_parser

from latentgraph.graph.problems import printable

from .config import server_limit_label
from .errors import ApiError, error_response
from .hosts import HostGuard, host_refusal

log = logging.getLogger("latentgraph.server")

COOKIE = "latentgraph_token"
TOKEN_PARAMETER = "token"  # ?token=TOKEN (its decoded name: also %74oken=)
_STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _deny(scope, send, status: int, message: str, type_: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = error_response(status, message, type_).body  # every error body is built one way
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    def __init__(self, app, *, max_body_bytes: int, auth_token: str | None,
                 hosts: HostGuard) -> None:  # fmt: skip
        self.app = app
        self.max_body = max_body_bytes
        self.token = auth_token
        self.hosts = hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get("host")
        if not self.hosts.allows(host):  # (a request without Host is allowed: not a browser)
            assert host is not None
            await _deny(scope, send, 403, host_refusal(host), "forbidden_host")
            return
        set_cookie = False
        if self.token:
            ok, from_query = self._authorized(scope, headers)
            if not ok:
                await _deny(scope, send, 401, "a valid token is required "
                            "(Authorization: Bearer TOKEN or ?token=TOKEN)", "unauthorized")  # fmt: skip
                return
            set_cookie = from_query and scope["type"] == "http"
        method = scope.get("method", "GET")
        if (scope["type"] == "websocket" or method in _STATE_CHANGING) and _cross_origin(
            headers, scope
        ):
            await _deny(scope, send, 403, "cross-origin request refused", "forbidden")
            return
        if scope["type"] == "http":
            length = headers.get("content-length")
            if length and length.isdigit() and int(length) > self.max_body:
                await _deny(scope, send, 413, _too_large(scope, self.max_body), "too_large")
                return
            receive = self._limited(scope, receive)
        if set_cookie:
            send = self._with_cookie(send)
        await self.app(scope, receive, send)

    def _authorized(self, scope, headers: dict[str, str]) -> tuple[bool, bool]:
        assert self.token is not None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and _same(auth[7:].strip(), self.token):
            return True, False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if any(_same(t, self.token) for t in query.get(TOKEN_PARAMETER, [])):
            return True, True
        # Leniently, as browsers do: cookies are shared by every port of a host, so another
        # local app's cookie that http.cookies rejects must not hide ours.
        cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE)
        return (cookie is not None and _same(cookie, self.token)), False

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

    def _with_cookie(self, send):
        value = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode()

        async def wrapped(message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"set-cookie", value)]
            await send(message)

        return wrapped


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _endpoint(url: str, default_port: int) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or `//host:port`; None if malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or default_port


def _cross_origin(headers: dict[str, str], scope) -> bool:
    """True when an Origin header is present and does not name this request's own scheme, host
    and port. Malformed origins and "null" (sandboxed frames, file://) count as cross-origin."""
    origin = headers.get("origin")
    if not origin:
        return False
    https = scope.get("scheme") in ("https", "wss")
    default = 443 if https else 80
    ours = _endpoint("//" + headers.get("host", ""), default)
    theirs = _endpoint(origin, default)
    if ours is None or theirs is None:
        return True
    return theirs != ("https" if https else "http", ours[1], ours[2])


def _too_large(scope, limit: int) -> str:
    """The refusal of a body over `limit` bytes, naming the flag that sets it; logged as a
    refused prompt is (`prompts.log_refusal`: what, TYPE, the reason), with the request and
    its client (it left only uvicorn's access line: a prompt refused for its size said
    nothing of why)."""
    message = f"request body larger than {limit} bytes ({server_limit_label('max_body_bytes')})"
    client = scope.get("client")
    log.warning("%s %s%s refused (too_large): %s", scope.get("method", "POST"),
                printable(scope.get("path", "")), f" from {client[0]}:{client[1]}" if client else "",
                message)  # fmt: skip
    return message
