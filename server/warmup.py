"""Import torch and the model libraries in a worker process before it takes its first prompt.

Importing them is seconds of work; a worker does it while it starts (before saying Ready), so
the first prompt is not held by it. The server process never imports them.
"""

from __future__ import annotations

import logging
import time
from importlib import import_module
from typing import Any

log = logging.getLogger("latentgraph.server")

# Package -> names that make its lazy top level import what the built-in nodes use.
MODEL_LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch": (),
    "diffusers": ("AutoencoderKL", "UNet2DConditionModel", "DDIMScheduler"),
    "transformers": ("CLIPTextModel", "CLIPTokenizer"),
}


def needs_model_libraries(registry: Any) -> bool:
    """True when the built-in diffusion nodes are registered (toy registries skip the wait)."""
    return any(str(nt.module).startswith("latentgraph.nodes.") for nt in registry)


def import_model_libraries() -> list[str]:
    """Import MODEL_LIBRARIES; returns what failed (a node that needs it reports it later)."""
    start = time.perf_counter()
    failed = []
    for name, attrs in MODEL_LIBRARIES.items():
        try:
            module = import_module(name)
            for attr in attrs:
                getattr(module, attr)
        except Exception as exc:  # noqa: BLE001 - start anyway; the run names the problem
            failed.append(f"{name}: {exc}")
    log.info("model libraries imported in %.1f s", time.perf_counter() - start)
    return failed
