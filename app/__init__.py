"""latentgraph: a node-graph executor for diffusion image generation.

    import latentgraph
    result = latentgraph.run("workflows/txt2img.yaml", seed=7)
    result = latentgraph.run("my.yaml", settings=latentgraph.Settings(device="cuda"))

This package is the composition root (the repo's app/ folder): the `latentgraph` command
(`cli.py`), the notebook facade (`api.py`) and the wiring of engine, nodes and server
(`wiring.py`). It stays light: importing any `latentgraph.*` module imports this one first,
so `run`, `load`, `sweep`, `Settings` (a run's folders, device, dtype, options and limits),
`Cache` (where results are kept, and how much) and `RunResult` (what `run` returns) are
fetched from `latentgraph.api` on first use (PEP 562), with `free` (the memory runs hold, loaded
models first, given back), and what a caller of `run` catches or
passes it from the engine: `WorkflowError` (a workflow that cannot run), `CancelToken`
(`cancel=`) and the events `on_event=` receives (docs/python.md).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what __getattr__ below hands out, for type checkers and editors (py.typed)
    from .api import free as free
    from .api import load as load
    from .api import run as run
    from .api import sweep as sweep
    from .graph.cache import Cache as Cache
    from .graph.context import CancelToken as CancelToken
    from .graph.context import Settings as Settings
    from .graph.events import Event as Event
    from .graph.events import NodeFailed as NodeFailed
    from .graph.events import NodeFinished as NodeFinished
    from .graph.events import NodeProgress as NodeProgress
    from .graph.events import NodesCached as NodesCached
    from .graph.events import NodeStarted as NodeStarted
    from .graph.events import NodeWarning as NodeWarning
    from .graph.events import RunFinished as RunFinished
    from .graph.events import RunStarted as RunStarted
    from .graph.problems import WorkflowError as WorkflowError
    from .graph.scheduler import RunResult as RunResult

_FACADE = ["Cache", "RunResult", "Settings", "free", "load", "run", "sweep"]
_EVENTS = ["Event", "NodeFailed", "NodeFinished", "NodeProgress", "NodeStarted", "NodeWarning",
           "NodesCached", "RunFinished", "RunStarted"]  # fmt: skip
# each name's module, imported when the name is first asked for
_HOME = {**dict.fromkeys(_FACADE, "latentgraph.api"),
         **dict.fromkeys(_EVENTS, "latentgraph.graph.events"),
         "CancelToken": "latentgraph.graph.context",
         "WorkflowError": "latentgraph.graph.problems"}  # fmt: skip
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'latentgraph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
