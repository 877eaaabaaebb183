"""`serve(config)`: run the app with uvicorn (websocket implementation: `websockets`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .config import ServerConfig


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
    uvicorn.run(app, host=config.host, port=config.port, ws="websockets", log_level=log_level,
                ws_max_size=config.max_body_bytes, timeout_graceful_shutdown=5)  # fmt: skip
