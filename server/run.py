"""`serve(config)`: run the app with uvicorn (websocket implementation: `websockets`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .config import ServerConfig


def uvicorn_options(config: ServerConfig) -> dict[str, Any]:
    """The uvicorn settings every start of the app shares (`serve`, the benches).

    No permessage-deflate: run messages are small JSON objects that compress little, and
    compressing each one cost more event-loop time than writing it (a 10,000-node run sends
    10,000 of them)."""
    return {"ws": "websockets", "ws_per_message_deflate": False,
            "ws_max_size": config.max_body_bytes}  # fmt: skip


def serve(
    config: ServerConfig,
    *,
    registry: Any = None,
    free_models: Callable[[], None] | None = None,
    log_level: str = "info",
) -> None:
    """Start the server and block until it is stopped (Ctrl-C / SIGTERM). `registry` and
    `free_models` as for `create_app`."""
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    app = create_app(config, registry=registry, free_models=free_models)
    if config.host not in ("127.0.0.1", "localhost", "::1") and not config.auth_token:
        logging.getLogger("latentgraph.server").warning(
            "listening on %s without --auth-token: anyone who can reach this port can run "
            "workflows and read outputs", config.host)  # fmt: skip
    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level,
                timeout_graceful_shutdown=5, **uvicorn_options(config))  # fmt: skip
