"""The Python API for notebooks and scripts: load a workflow, override params, run, sweep.

    from latentgraph.graph import api
    result = api.run("workflows/txt2img.yaml", params={"seed": 7})
    image = result.outputs["decode"][0]
    results = api.sweep("workflows/txt2img.yaml", "seed", [1, 2, 3])

Runs in one process share one cache (memory + the user's disk store) unless given another, so
re-running a cell only runs what changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

from .cache import Cache, default_cache
from .context import Settings
from .events import Event
from .model import Graph
from .scheduler import RunResult, Scheduler

_shared: Cache | None = None
_shared_lock = threading.Lock()


def shared_cache() -> Cache:
    """The process-wide cache used when none is given (created on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = default_cache(disk=True)
        return _shared


def load(path: str | PathLike, *, params: dict | None = None) -> Any:
    """Load a YAML/JSON workflow file (see graph.workflow), with `params` overriding its own."""
    from .workflow import load_workflow

    return load_workflow(path, params=params)


def _graph(workflow_or_path: Any, params: dict | None) -> Graph:
    """A runnable Graph from a path, a loaded workflow or a Graph, with params applied."""
    if isinstance(workflow_or_path, Graph):
        if params:
            raise TypeError("params need a workflow (a path or a loaded workflow), not a Graph")
        return workflow_or_path
    if isinstance(workflow_or_path, (str, PathLike)):
        return load(workflow_or_path, params=params).graph
    wf = workflow_or_path
    if params:
        for method in ("with_params", "apply_params"):
            fn = getattr(wf, method, None)
            if callable(fn):
                return _as_graph(fn(params))
        source = getattr(wf, "path", None) or getattr(wf, "source", None)
        if source and Path(source).is_file():
            merged = {**(getattr(wf, "param_values", None) or {}), **params}
            return load(source, params=merged).graph
        raise TypeError(f"cannot apply params to {type(wf).__name__}: pass the workflow's path")
    return _as_graph(wf)


def _as_graph(obj: Any) -> Graph:
    if isinstance(obj, Graph):
        return obj
    graph = getattr(obj, "graph", None)
    if isinstance(graph, Graph):
        return graph
    raise TypeError(
        f"expected a workflow path, a loaded workflow or a Graph, got {type(obj).__name__}"
    )


def run(
    workflow_or_path: Any,
    *,
    params: dict | None = None,
    settings: Settings | None = None,
    cache: Cache | None = None,
    on_event: Callable[[Event], None] | None = None,
    scheduler: Scheduler | None = None,
    **run_kw: Any,
) -> RunResult:
    """Load (if needed) and run a workflow. Extra keywords go to `Scheduler.run`."""
    graph = _graph(workflow_or_path, params)
    if scheduler is None:
        scheduler = Scheduler(
            cache=cache if cache is not None else shared_cache(), settings=settings
        )
    extra = run_kw.pop("extra", None)
    if params:
        extra = {**(extra or {}), "params": dict(params)}
    return scheduler.run(graph, on_event=on_event, extra=extra, **run_kw)


def sweep(workflow_or_path: Any, name: str, values: list, **kw: Any) -> list[RunResult]:
    """One run per value of param `name`, sharing one scheduler and cache, so everything that
    does not depend on the swept param is computed once."""
    params = dict(kw.pop("params", None) or {})
    settings = kw.pop("settings", None)
    cache = kw.pop("cache", None)
    scheduler = kw.pop("scheduler", None) or Scheduler(
        cache=cache if cache is not None else shared_cache(), settings=settings
    )
    return [
        run(workflow_or_path, params={**params, name: value}, scheduler=scheduler, **kw)
        for value in values
    ]
