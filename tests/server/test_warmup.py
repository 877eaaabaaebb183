"""Start-up work done before the first request: model libraries (only when needed), the
submit limiter."""

from __future__ import annotations

import dataclasses

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


@pytest.mark.parametrize("builtin, preload, expected", [(True, True, 1), (True, False, 0),
                                                        (False, True, 0)])  # fmt: skip
def test_start_up_imports_model_libraries_only_for_the_diffusion_nodes(
    tmp_path, monkeypatch, builtin, preload, expected
):
    from latentgraph.server.config import ServerConfig

    calls = []

    def fake_import() -> list[str]:
        worker = app.state.lg.worker
        calls.append(worker._thread.is_alive())  # the worker has not started yet
        return []

    monkeypatch.setattr(app_mod, "import_model_libraries", fake_import)
    toy = register(Registry())
    registry = _with_builtin_like_node(toy) if builtin else toy
    config = ServerConfig(data_dir=tmp_path, disk_cache=False, load_nodes=False, editor=False,
                          preload=preload)  # fmt: skip
    app = app_mod.create_app(config, registry=registry)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert app.state.lg._limiter is not None  # made before the first POST
        assert client.get("/queue").status_code == 200
    assert calls == [False] * expected


def test_import_model_libraries_reports_what_failed(monkeypatch):
    monkeypatch.setattr(warmup, "MODEL_LIBRARIES", {"json": ("dumps",),
                                                    "latentgraph_no_such_lib": ()})  # fmt: skip
    failed = warmup.import_model_libraries()
    assert len(failed) == 1 and failed[0].startswith("latentgraph_no_such_lib:")
    monkeypatch.setattr(warmup, "MODEL_LIBRARIES", {"json": ("no_such_name",)})
    assert warmup.import_model_libraries()[0].startswith("json:")
