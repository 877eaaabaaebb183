"""`serve(config)`: run the app with uvicorn (websocket implementation: `websockets-sansio`)."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from .config import ServerConfig
from .hosts import is_loopback_bind
from .workers import WorkerSetup

_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"']*")


class RedactToken(logging.Filter):
    """Replaces `?token=...` in uvicorn's log lines (the access log prints every request's
    query string; the editor is opened with `?token=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = _TOKEN_IN_QUERY.sub(r"\1<redacted>", message), ()
        return True


_REDACT = RedactToken()


def uvicorn_config(app: Any, config: ServerConfig, log_level: str = "info") -> Any:
    """uvicorn's settings for this app, with the token kept out of its logs."""
    import uvicorn

    settings = uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level,
                              timeout_graceful_shutdown=5, **uvicorn_options(config))  # fmt: skip
    for name in ("uvicorn.access", "uvicorn.error"):  # after uvicorn configured its logging
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)
    return settings


def uvicorn_options(config: ServerConfig) -> dict[str, Any]:
    """The uvicorn settings every start of the app shares (`serve`, the tests, the benches).

    The websocket implementation is `websockets-sansio` (uvicorn's default since 0.50; the
    older `websockets` one is deprecated), which writes a frame in 4 us of event-loop time where
    the older one took 7 (docs/benchmarks.md), with the frames of one event-loop turn written
    together (`ws_protocol.py`): a run sends one frame per node. No permessage-deflate: run
    messages are small JSON objects that compress little, and compressing each one cost more
    event-loop time than writing it.

    HTTP is parsed by httptools and the event loop is uvloop's where it exists (not on
    Windows): with the pure-Python h11 parser and asyncio's loop a 100-node run through the
    server took 0.03-0.6 ms longer, alternated side by side (docs/benchmarks.md)."""
    from .ws_protocol import TurnBufferedWebSockets

    return {"ws": TurnBufferedWebSockets, "ws_per_message_deflate": False,
            "ws_max_size": config.max_body_bytes, "http": "httptools",
            "loop": "asyncio" if sys.platform == "win32" else "uvloop"}  # fmt: skip


def serve(
    config: ServerConfig,
    *,
    registry: Any = None,
    workers: WorkerSetup | None = None,
    log_level: str = "info",
) -> None:
    """Start the server and block until it is stopped (Ctrl-C / SIGTERM). `registry` and
    `workers` as for `create_app`."""
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    app = create_app(config, registry=registry, workers=workers)
    if not is_loopback_bind(config.host) and not config.auth_token:
        logging.getLogger("latentgraph.server").warning(
            "listening on %s without --auth-token: anyone who can reach this port can run "
            "workflows and read outputs", config.host)  # fmt: skip
    uvicorn.Server(uvicorn_config(app, config, log_level)).run()
