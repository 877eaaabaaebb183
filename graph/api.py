"""The Python API for notebooks and scripts: load a workflow, override params, run, sweep.

    from latentgraph.graph import api
    result = api.run("workflows/txt2img.yaml", params={"seed": 7})
    image = result.outputs["decode"][0]
    results = api.sweep("workflows/txt2img.yaml", "seed", [1, 2, 3])

Runs in one process share one cache (memory + the user's disk store) unless given another, so
re-running a cell only runs what changed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import Cache, default_cache
from .context import Settings
from .declare import Registry
from .events import Event
from .model import Graph
from .scheduler import RunResult, Scheduler

if TYPE_CHECKING:
    from .workflow import Workflow

_shared: Cache | None = None
_shared_lock = threading.Lock()


def shared_cache() -> Cache:
    """The process-wide cache used when none is given (created on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = default_cache(disk=True)
        return _shared


def load(
    path: str | PathLike, *, params: dict | None = None, registry: Registry | None = None
) -> Workflow:
    """Load a YAML/JSON workflow file, with `params` overriding the file's own params."""
    from .workflow import load_workflow

    return load_workflow(path, overrides=dict(params or {}), registry=registry)


def _prepare(
    workflow_or_path: Any, params: dict | None, registry: Registry | None
) -> tuple[Graph, dict | None]:
    """A runnable Graph (and its effective params) from a path, a Workflow or a Graph."""
    if isinstance(workflow_or_path, Graph):
        if params:
            raise TypeError("params need a workflow (a path or a loaded Workflow), not a Graph")
        return workflow_or_path, None
    if isinstance(workflow_or_path, (str, PathLike)):
        wf = load(workflow_or_path, params=params, registry=registry)
        return wf.graph, wf.params
    wf = workflow_or_path
    graph = getattr(wf, "graph", None)
    if not isinstance(graph, Graph):
        raise TypeError(
            f"expected a workflow path, a loaded Workflow or a Graph, got {type(wf).__name__}"
        )
    if not params:
        return graph, getattr(wf, "params", None)
    # Params are substituted at load time: load the same document again with the overrides.
    from .workflow import load_workflow

    merged = {**(getattr(wf, "params", None) or {}), **params}
    source = graph.source
    if Path(source).is_file():
        again = load_workflow(source, overrides=merged, registry=registry)
    else:
        text = json.dumps(wf.raw)
        again = load_workflow(source, text=text, overrides=merged, registry=registry)
    return again.graph, again.params


def _scheduler(registry: Registry | None, cache: Cache | None,
               settings: Settings | None) -> Scheduler:  # fmt: skip
    """A scheduler on the shared cache (with the built-in nodes when no registry is given)."""
    if registry is None:
        from .plugins import builtin_nodes

        builtin_nodes()
    return Scheduler(registry, cache if cache is not None else shared_cache(), settings=settings)


def run(
    workflow_or_path: Any,
    *,
    params: dict | None = None,
    settings: Settings | None = None,
    cache: Cache | None = None,
    on_event: Callable[[Event], None] | None = None,
    registry: Registry | None = None,
    scheduler: Scheduler | None = None,
    **run_kw: Any,
) -> RunResult:
    """Load (if needed) and run a workflow; node code sees the params as ctx.extra["params"].
    Extra keywords (targets, keep, cancel, extra, ...) go to `Scheduler.run`."""
    if scheduler is None:
        scheduler = _scheduler(registry, cache, settings)
    graph, effective = _prepare(workflow_or_path, params, registry)
    extra = run_kw.pop("extra", None)
    if effective:
        extra = {"params": dict(effective), **(extra or {})}
    return scheduler.run(graph, on_event=on_event, extra=extra, **run_kw)


def sweep(workflow_or_path: Any, name: str, values: list, **kw: Any) -> list[RunResult]:
    """One run per value of param `name`, sharing one scheduler and cache, so everything that
    does not depend on the swept param is computed once."""
    params = dict(kw.pop("params", None) or {})
    registry = kw.pop("registry", None)
    settings = kw.pop("settings", None)
    cache = kw.pop("cache", None)
    scheduler = kw.pop("scheduler", None)
    if scheduler is None:
        scheduler = _scheduler(registry, cache, settings)
    if isinstance(workflow_or_path, (str, PathLike)):  # parse the file once
        workflow_or_path = load(workflow_or_path, params=params, registry=registry)
    return [
        run(
            workflow_or_path,
            params={**params, name: value},
            registry=registry,
            scheduler=scheduler,
            **kw,
        )  # fmt: skip
        for value in values
    ]
