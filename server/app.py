"""The application factory: every route bare and under /api, guards, JSON errors, lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from latentgraph.graph.context import LIMIT_FLAGS, Settings

from . import (
    api_files,
    api_info,
    api_latentgraph,
    api_queue,
    api_templates,
    api_user,
    api_ws,
    editor,
)
from .collector import freeze_start_up_objects
from .config import ServerConfig, remove_made
from .dispatch import Dispatcher
from .errors import exception_handlers
from .hosts import HostGuard
from .hub import Hub
from .local_workers import LocalWorkerPool, worker_specs
from .messages import user_folders
from .middleware import GuardMiddleware
from .state import ServerState
from .store import DatabaseLock, Store
from .workers import WorkerPool, WorkerSetup

log = logging.getLogger("latentgraph.server")


def _api_routes() -> list[BaseRoute]:
    return [*api_queue.routes, *api_files.routes, *api_user.routes, *api_info.routes,
            *api_latentgraph.routes, *api_templates.routes]  # fmt: skip


def _load_nodes(config: ServerConfig, registry: Any) -> None:
    """Register the installed node packs (the built-in nodes are one: an entry point) and any
    plugin folders, only into the default registry. Handing the workers the nodes' functions
    (`WorkerSetup`) is the program's job (latentgraph.wiring), not the server's."""
    from latentgraph.graph.declare import default_registry
    from latentgraph.graph.plugins import load_plugins

    if registry is not default_registry:
        return
    if config.load_nodes or config.nodes_dirs:
        load_plugins(config.nodes_dirs, entry_points=config.load_nodes)


def _server_registry(registry: Any, setup: WorkerSetup) -> Any:
    """The registry the server checks prompts with: the one handed in, else the one the workers
    build (`setup.registry()`), else the process's default registry. A worker builds its own
    copy with `setup.registry`, so a registry handed in that it cannot rebuild is refused."""
    from latentgraph.graph.declare import default_registry

    if registry is None:
        return setup.registry() if setup.registry is not None else default_registry
    if registry is not default_registry and setup.registry is None:
        raise ValueError("the worker processes cannot rebuild this registry: pass "
                         "workers=WorkerSetup(registry=<module-level function building it>)")  # fmt: skip
    return registry


def _settings(config: ServerConfig) -> Settings:
    """The `Settings` every prompt runs with, from the config: folders, device, options and
    limits, the limits worded by the `serve` flags that set them (`LIMIT_FLAGS`)."""
    return Settings(output_dir=config.output_dir, input_dir=config.input_dir,
                    temp_dir=config.temp_dir, models_dirs=list(config.models_dirs),
                    device=config.device, dtype=config.dtype, options=config.options,
                    **config.limits, limit_labels=LIMIT_FLAGS)  # fmt: skip


def _open_store(config: ServerConfig, lock: DatabaseLock | None) -> Store:
    """The queue database, with the prompts a previous process left running marked failed
    (that process is gone: they will never finish), said once in the log."""
    store = Store(config.db_path, history_bytes=config.history_memory_bytes,
                  max_history=config.max_history, lock=lock)  # fmt: skip
    recovered = store.recover()
    if recovered:
        log.warning(
            "marked %d prompt(s) left running by a previous process as failed", len(recovered)
        )
    return store


def _log_start(config: ServerConfig, store: Store, pool: WorkerPool) -> None:
    """What an operator reads at start, beside uvicorn's "running on": the workers and their
    devices (a worker on "auto" says which when it is ready: `Dispatcher`), the folders,
    whether a token is asked (never the token), the prompts waiting from before a restart
    (restored from the queue database: they run now)."""
    devices = [worker.device for worker in pool.workers()]
    one, many = (
        ("Ray actor", "Ray actors") if config.ray else ("worker process", "worker processes")
    )
    shown = ", ".join(devices)
    if "auto" in devices:  # resolved in the worker (this process never imports torch)
        shown += " (the device each finds is logged when it is ready)"
    log.info("%d %s on %s", len(devices), one if len(devices) == 1 else many, shown)
    log.info("folders: data %s (the queue database), users %s, output %s, input %s, temp %s",
             config.data_dir, config.users_dir, config.output_dir, config.input_dir,
             config.temp_dir)  # fmt: skip
    cache = config.disk_store
    log.info("disk cache: %s", cache if cache is not None else "none (--no-cache)")
    log.info("auth token: %s", "required" if config.auth_token else "not required")
    log.info("%d pending prompt(s) restored from the queue database", len(store.pending()))


def _worker_pool(config: ServerConfig, setup: WorkerSetup, settings: Settings,
                 pool: WorkerPool | None) -> WorkerPool:  # fmt: skip
    """Where prompts run: the pool handed in, else Ray actors when the config asks for Ray,
    else local worker processes."""
    if pool is not None:
        return pool
    if config.ray:
        from .ray_workers import ray_pool  # Ray is optional: imported only when asked for

        return ray_pool(config, setup, settings)
    return LocalWorkerPool(setup, worker_specs(config, settings))


def _lifespan(state: ServerState, logs: api_info.RecentLogs) -> Callable[[Starlette], Any]:
    """What starts with the app and stops with it: the log panel's capture, the hub on the
    event loop, the dispatcher (stopped off the loop: it joins its thread and stops the
    workers), the store."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        logs.attach()  # uvicorn has configured its loggers by now
        state.hub.bind(asyncio.get_running_loop())
        state.on_start()
        freeze_start_up_objects()
        state.dispatcher.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, state.dispatcher.stop)
            state.store.close()
            logs.detach()

    return lifespan


def _routes(config: ServerConfig) -> list[BaseRoute]:
    """Every route, bare and under /api as ComfyUI serves them; the editor last, as its static
    files are mounted at / and would answer every path after them."""
    api = _api_routes()
    routes = [
        *api,
        *api_ws.routes,
        Mount("/api", routes=[*api, *api_ws.routes]),
        *api_templates.static_routes,
        *editor.routes(config.editor),
    ]
    return _matching_newlines(routes)


def _matching_newlines(routes: list[BaseRoute]) -> list[BaseRoute]:
    """`routes`, a Mount's own too, matching a path that holds a newline (%0A) as they match
    one holding any other character, so the handler judges the name: Starlette's
    `{name:path}`, a Mount's rest of the path included, is `.*`, whose `.` stops at a newline.
    `/userdata/a%0Ab.json` (and any `/api/...` path with a newline) matched no route: a bare
    404 "Not Found", where a tab got /userdata's 400 naming the character. Only a `path`
    parameter changes: the literal parts are escaped and the other convertors hold no `.`."""
    for route in routes:
        if isinstance(route, (Route, WebSocketRoute, Mount)):
            route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
        if isinstance(route, Mount):
            _matching_newlines(route.routes)
    return routes


def _guards(config: ServerConfig) -> list[Middleware]:
    """The guards in front of every route, the websocket and the editor too: Host (DNS
    rebinding), token, cross-origin requests, body size (`middleware.py`)."""
    return [
        Middleware(
            GuardMiddleware,
            max_body_bytes=config.max_body_bytes,
            auth_token=config.auth_token,
            hosts=HostGuard(config.host, config.allow_hosts),
        )
    ]


def create_app(
    config: ServerConfig,
    *,
    registry: Any = None,
    workers: WorkerSetup | None = None,
    pool: WorkerPool | None = None,
    lock: DatabaseLock | None = None,
    logs: api_info.RecentLogs | None = None,
) -> Starlette:
    """Build the ASGI app. The server process never imports torch: prompts run in worker
    processes, which build their own registry and reach the nodes' model functions through
    `workers` (the program that wires the nodes in passes it: latentgraph.wiring).

    `registry` is the server's copy, for /object_info and validation, used as it is handed in
    (the caller loaded its plugins and reported their failures: `latentgraph serve` prints
    them once); by default `workers.registry()`, else the global registry with the config's
    plugin packs. A registry a worker cannot rebuild (no `workers.registry`) is refused.
    `pool` replaces the local worker processes (another executor behind the same interface).
    `lock`: the queue database's lock, when the caller took it (`serve`: an existing data
    folder's before it binds its port); the store takes it otherwise (`StoreInUse`: another server uses this data folder)
    and holds it until the app stops. A store that cannot be opened (a full disk) removes the
    folders made here, as the store removes its files and the lock file it made. `logs`: the
    Logs panel's lines, when the caller keeps them from before the app is made (`serve`: its
    start-up lines); a new one otherwise, attached while the app runs."""
    setup = workers or WorkerSetup()
    handed_in = registry is not None
    registry = _server_registry(registry, setup)
    made = config.ensure_dirs()
    try:
        if not handed_in:
            _load_nodes(config, registry)
        settings = _settings(config)
        store = _open_store(config, lock)
    except BaseException:  # a refused start leaves no folder it made (empty)
        remove_made(made)
        raise
    hub = Hub(config.client_backlog_bytes, config.client_stall_seconds)
    pool = _worker_pool(config, setup, settings, pool)
    _log_start(config, store, pool)
    previews = config.previews or settings.option("previews")
    dispatcher = Dispatcher(store, hub, registry, pool, previews=previews,
                            interrupt_grace=config.interrupt_grace_seconds,
                            folders=user_folders(settings))  # fmt: skip
    state = ServerState(config, registry, settings, store, hub, dispatcher)
    logs = logs if logs is not None else api_info.RecentLogs()
    app = Starlette(
        routes=_routes(config),
        exception_handlers=exception_handlers,
        middleware=_guards(config),
        lifespan=_lifespan(state, logs),
    )
    app.state.lg = state
    app.state.logs = logs  # the recent log lines /internal/logs/raw answers
    app.state.model_folders = setup.model_folders  # the model types /models lists
    return app


__all__ = ["create_app"]
