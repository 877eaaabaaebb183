"""JSON errors everywhere: clients parse every answer, and an HTML 500 breaks the editor."""

from __future__ import annotations

import errno
import json
import logging
import math
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from .jsontext import may_hold_surrogates, unsendable

log = logging.getLogger("latentgraph.server")


class ApiError(Exception):
    """A refusal with an HTTP status, answered as {"error": {"type", "message", ...}}."""

    def __init__(self, status: int, message: str, type_: str = "bad_request", **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.extra = extra


def error_response(status: int, message: str, type_: str = "bad_request", **extra) -> JSONResponse:
    body = {"error": {"type": type_, "message": message, "details": "", "extra_info": extra}}
    return JSONResponse(body, status_code=status)


class _NonFinite(ValueError):
    pass


def _refuse_number(text: str) -> Any:
    raise _NonFinite(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


# How `parse_json` decodes: the hooks refuse non-finite numbers without a second walk over a
# large body (`_NonFinite`).
_STRICT_HOOKS: dict[str, Any] = {"parse_constant": _refuse_number, "parse_float": _finite_float}
STRICT_DECODER = json.JSONDecoder(**_STRICT_HOOKS)


def _strict_loads(raw: bytes | str) -> Any:
    return json.loads(raw, **_STRICT_HOOKS)


def parse_json(raw: bytes | str, what: str = "the request body",
               decode: Callable[[Any], Any] = _strict_loads) -> Any:  # fmt: skip
    """Strict JSON, or a 400 naming the problem. NaN, Infinity, numbers that overflow to
    infinity and strings with lone surrogates are refused (with the path to them): stored in
    the queue they would make every later /queue and /history answer fail to encode.
    `decode(raw)` is `json.loads` with `STRICT_DECODER`'s hooks, or a reader giving the same
    value (`prompt_body.read_prompt_body`)."""
    try:
        value = decode(raw)
        if not may_hold_surrogates(raw):
            return value
    except _NonFinite:
        value = json.loads(raw)  # again, to say where
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"{what} is not valid JSON: {exc}", "invalid_json") from None
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        reason = str(exc).split(";")[0]  # (not its advice to the programmer)
        raise ApiError(400, f"{what} is not acceptable JSON: {reason}", "invalid_json") from None
    except RecursionError:
        raise ApiError(400, f"{what} is nested too deeply", "invalid_json") from None
    found = unsendable(value)
    if found is not None:
        where, kind = found
        raise ApiError(400, f"{what} has {kind} at {where}; JSON numbers must be finite and "
                            "strings valid Unicode", "invalid_json", path=where)  # fmt: skip
    return value


def json_body(raw: bytes, *, default: Any = ...) -> Any:
    """A request body as JSON (`default` when it is empty, if given), or a 400 that says what
    is wrong with it."""
    if not raw.strip():
        if default is not ...:
            return default
        raise ApiError(400, "the request body is empty; expected JSON", "invalid_json")
    return parse_json(raw)


async def read_json(request: Request, *, default: Any = ...) -> Any:
    """The request body as JSON (see `json_body`), parsed on the event loop: for the small
    bodies of every route but POST /prompt, which parses on its submit thread."""
    return json_body(await request.body(), default=default)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.type, **exc.extra)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    type_ = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
        exc.status_code, "http_error"
    )
    return error_response(exc.status_code, str(exc.detail), type_)


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    """A full disk is the operator's to fix, not a server bug: 507 saying what could not be
    written. Other OS errors are internal errors."""
    assert isinstance(exc, OSError)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(507, f"the server cannot store this request: {exc.strerror}",
                              "insufficient_storage")  # fmt: skip
    return await _crash(request, exc)


def _public_text(exc: Exception) -> str:
    """What a 500 answer says of `exc`: its type, and an OS error's reason without the file
    names it carries (absolute server paths stay in the log)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


async def _crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, f"internal error: {_public_text(exc)} (details in the server log)",
                          "internal_error")  # fmt: skip


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client gone before its body was all read (it left, or it stalled and was dropped:
    `http_protocol.py`) is no server error: each one logged a traceback, "Exception in ASGI
    application". Nothing reaches it; uvicorn drops what is sent to a gone client."""
    return Response(status_code=400)


exception_handlers = {ApiError: _api_error, HTTPException: _http_error, OSError: _os_error,
                      ClientDisconnect: _client_gone, Exception: _crash}  # fmt: skip
