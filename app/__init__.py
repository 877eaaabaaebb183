"""latentgraph: a node-graph executor for diffusion image generation.

    import latentgraph
    result = latentgraph.run("workflows/txt2img.yaml", seed=7)
    result = latentgraph.run("my.yaml", settings=latentgraph.Settings(device="cuda"))

This package is the composition root (the repo's app/ folder): the `latentgraph` command
(`cli.py`), the notebook facade (`api.py`) and the wiring of engine, nodes and server
(`wiring.py`). It stays light: importing any `latentgraph.*` module imports this one first,
so `run`, `load`, `sweep`, `Settings` (a run's folders, device, dtype, options and limits),
`Cache` (where results are kept, and how much) and `RunResult` (what `run` returns) are
fetched from `latentgraph.api` on first use (PEP 562).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Cache", "RunResult", "Settings", "load", "run", "sweep"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'latentgraph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
