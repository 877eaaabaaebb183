"""The server tests' toy nodes, and one that kills the process running it (a model call that
takes its Ray actor down every time: an OOM kill, a driver crash)."""

from __future__ import annotations

import os
import signal

from latentgraph.graph import Registry, Socket, node
from tests.server.plugin.toy_nodes import NUM, toy_registry


def fault_registry() -> Registry:
    registry = toy_registry()

    @node("KillsItsWorker", inputs=[Socket("x", NUM)], outputs=[], output_node=True,
          category="toy", registry=registry)  # fmt: skip
    def kills_its_worker(ctx, x):
        os.kill(os.getpid(), signal.SIGKILL)

    return registry
