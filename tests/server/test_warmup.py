"""Start-up work: a worker imports the model libraries before it takes a prompt, only when the
diffusion nodes are registered (the server process never does: test_workers.py); the submit
limiter."""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing
import sys

import pytest
from starlette.testclient import TestClient

from latentgraph.graph import Registry, Settings
from latentgraph.server import warmup
from latentgraph.server.worker_process import JobRunner, WorkerSpec
from latentgraph.server.workers import WorkerSetup

from .plugin.toy_nodes import register, toy_registry


def _with_builtin_like_node() -> Registry:
    """The toy nodes plus one that claims to come from the built-in diffusion nodes."""
    toy = register(Registry())
    reg = Registry()
    for node_type in toy:
        reg.add(node_type)
    number = toy.get("Number")
    reg.add(dataclasses.replace(number, name="FakeBuiltin", module="latentgraph.nodes.fake"))
    return reg


@pytest.mark.parametrize("builtin, preload, expected", [(True, True, True), (True, False, False),
                                                        (False, True, False)])  # fmt: skip
def test_a_worker_imports_model_libraries_only_for_the_diffusion_nodes(
    tmp_path, monkeypatch, builtin, preload, expected
):
    """The real import, of a probe module standing in for torch: done while the worker sets
    up (before it says Ready), and only when the diffusion nodes are registered."""
    (tmp_path / "lg_warmup_probe.py").write_text("READY = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lg_warmup_probe", raising=False)
    monkeypatch.setattr(warmup, "MODEL_LIBRARIES", {"lg_warmup_probe": ("READY",)})
    setup = WorkerSetup(registry=_with_builtin_like_node if builtin else toy_registry)
    ours, theirs = multiprocessing.Pipe()
    JobRunner(setup, WorkerSpec(0, Settings(), preload=preload), theirs)
    assert ("lg_warmup_probe" in sys.modules) is expected
    ours.close()


def test_a_worker_freezes_what_its_set_up_made_out_of_the_collectors_walks():
    """The model libraries' objects (440,000 with torch, diffusers and transformers) are
    frozen once the worker is set up: a full collection no longer walks them."""
    made_before = [object()]  # stands in for what importing the libraries leaves
    assert any(o is made_before for o in gc.get_objects())
    ours, theirs = multiprocessing.Pipe()
    try:
        JobRunner(WorkerSetup(registry=toy_registry),
                  WorkerSpec(0, Settings(), preload=False), theirs)  # fmt: skip
        assert gc.is_tracked(made_before)
        assert not any(o is made_before for o in gc.get_objects())  # in the permanent generation
    finally:
        ours.close()
        gc.unfreeze()  # the rest of the test session collects as usual


def test_the_submit_limiter_and_the_switch_interval_are_set_before_the_first_request(tmp_path):
    from latentgraph.server import app as app_mod
    from latentgraph.server.collector import GIL_SWITCH_SECONDS
    from latentgraph.server.config import ServerConfig

    sys.setswitchinterval(0.005)
    config = ServerConfig(data_dir=tmp_path, disk_cache=False, load_nodes=False, editor=False)
    app = app_mod.create_app(config, workers=WorkerSetup(registry=toy_registry))
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert app.state.lg._limiter is not None  # made before the first POST
            assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_SECONDS)
            assert client.get("/queue").status_code == 200
    finally:
        sys.setswitchinterval(0.005)  # the interpreter's default, for the tests after


def test_import_model_libraries_reports_what_failed(monkeypatch):
    monkeypatch.setattr(warmup, "MODEL_LIBRARIES", {"json": ("dumps",),
                                                    "latentgraph_no_such_lib": ()})  # fmt: skip
    failed = warmup.import_model_libraries()
    assert len(failed) == 1 and failed[0].startswith("latentgraph_no_such_lib:")
    monkeypatch.setattr(warmup, "MODEL_LIBRARIES", {"json": ("no_such_name",)})
    assert warmup.import_model_libraries()[0].startswith("json:")
