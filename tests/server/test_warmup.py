"""Start-up work done before the first request: model libraries (only when needed), the
submit limiter."""

from __future__ import annotations

import dataclasses
import sys

import pytest
from starlette.testclient import TestClient

from latentgraph.graph import Registry
from latentgraph.server import app as app_mod
from latentgraph.server import warmup

from .plugin.toy_nodes import register


def _with_builtin_like_node(toy: Registry) -> Registry:
    """The toy nodes plus one that claims to come from the built-in diffusion nodes."""
    reg = Registry()
    for node_type in toy:
        reg.add(node_type)
    number = toy.get("Number")
    reg.add(dataclasses.replace(number, name="FakeBuiltin", module="latentgraph.nodes.fake"))
    return reg


@pytest.mark.parametrize("builtin, preload, expected", [(True, True, True), (True, False, False),
                                                        (False, True, False)])  # fmt: skip
def test_start_up_imports_model_libraries_only_for_the_diffusion_nodes(
    tmp_path, monkeypatch, builtin, preload, expected
):
    """The real import, of a probe module standing in for torch: done during start-up, before
    the worker thread exists, and only when the diffusion nodes are registered."""
    from latentgraph.server.config import ServerConfig

    (tmp_path / "lg_warmup_probe.py").write_text(
        "import threading\n"
        "WORKER_RUNNING = any(t.name == 'latentgraph-worker' for t in threading.enumerate())\n"
        "READY = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lg_warmup_probe", raising=False)
    monkeypatch.setattr(warmup, "MODEL_LIBRARIES", {"lg_warmup_probe": ("READY",)})
    toy = register(Registry())
    registry = _with_builtin_like_node(toy) if builtin else toy
    config = ServerConfig(data_dir=tmp_path / "data", disk_cache=False, load_nodes=False,
                          editor=False, preload=preload)  # fmt: skip
    app = app_mod.create_app(config, registry=registry)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert ("lg_warmup_probe" in sys.modules) is expected  # before the first request
        assert app.state.lg._limiter is not None  # made before the first POST
        assert client.get("/queue").status_code == 200
    if expected:
        assert sys.modules["lg_warmup_probe"].WORKER_RUNNING is False


def test_import_model_libraries_reports_what_failed(monkeypatch):
    monkeypatch.setattr(warmup, "MODEL_LIBRARIES", {"json": ("dumps",),
                                                    "latentgraph_no_such_lib": ()})  # fmt: skip
    failed = warmup.import_model_libraries()
    assert len(failed) == 1 and failed[0].startswith("latentgraph_no_such_lib:")
    monkeypatch.setattr(warmup, "MODEL_LIBRARIES", {"json": ("no_such_name",)})
    assert warmup.import_model_libraries()[0].startswith("json:")
