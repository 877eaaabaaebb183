"""A finished run leaves no reference cycles behind: what it built is freed as it ends, not
left for the collector's full passes (which walked a worker's whole heap, GIL held, for tens
of milliseconds in the middle of later runs: measured 30-60 ms each at 100-node runs)."""

from __future__ import annotations

import gc
import json
import multiprocessing
import threading
import weakref

import pytest

from latentgraph.graph import Settings
from latentgraph.graph import events as ev
from latentgraph.graph.model import Node
from latentgraph.server.messages import PROGRESS_STATE_INTERVAL, RunTranslator
from latentgraph.server.worker_process import JobRunner, WorkerSpec
from latentgraph.server.workers import Done, Job, WorkerSetup

from .conftest import chain
from .plugin.toy_nodes import toy_registry


@pytest.fixture
def collector_off():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_finished_translator_is_freed_by_reference_counting(collector_off):
    timers: list = []
    translator = RunTranslator("p", {"a": "X"}, send=lambda t, d: None,
                               schedule=lambda delay, fn: timers.append(fn))  # fmt: skip
    translator.handle(ev.RunStarted("p", nodes=["a"]))
    translator.handle(ev.NodeStarted("p", node_id="a", node_type="X"))
    translator.handle(ev.NodeFinished("p", node_id="a", node_type="X", cached=False, seconds=0.0))
    translator.finish(ev.RunFinished("p", status="success"))
    gone = weakref.ref(translator)
    del translator
    assert gone() is None


def test_a_workers_run_leaves_nothing_for_the_collector(collector_off, tmp_path):
    ours, theirs = multiprocessing.Pipe()
    runner = JobRunner(WorkerSetup(registry=toy_registry),
                       WorkerSpec(0, Settings(output_dir=tmp_path),
                                  preload=False),
                       theirs)  # fmt: skip
    try:
        for i in range(3):
            prompt = chain(4, prefix=f"run{i}")
            runner.run(Job(f"p{i}", json.dumps(prompt), {}, None, False, checked=True))
            while not any(isinstance(m, Done) for m in ours.recv()):
                pass
        fired = threading.Event()  # after the runs' progress_state timers: they held them
        runner.timers.schedule(PROGRESS_STATE_INTERVAL * 2, fired.set)
        assert fired.wait(10)
        assert gc.collect() == 0
    finally:
        ours.close()
        gc.unfreeze()  # the runner froze the session's objects


def _live_nodes() -> int:
    """The graphs' Node objects alive now (found by the collector's lists, none collected)."""
    return sum(1 for o in gc.get_objects() if isinstance(o, Node))


@pytest.fixture
def toy_app(tmp_path):
    from starlette.testclient import TestClient

    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path, disk_cache=False, load_nodes=False, editor=False)
    app = create_app(config, workers=WorkerSetup(registry=toy_registry))
    with TestClient(app, base_url="http://127.0.0.1:8188") as client:
        yield client


def _no_outputs(n: int) -> dict:
    return {str(i): {"class_type": "Number", "inputs": {"value": 1}} for i in range(n)}


def _bad_link(n: int) -> dict:
    return {**_no_outputs(n), "s": {"class_type": "Show", "inputs": {"x": ["nowhere", 0]}}}


@pytest.mark.parametrize("prompt", [_no_outputs, _bad_link])
def test_a_refused_prompt_leaves_nothing_for_the_collector(toy_app, collector_off, prompt):
    """A refusal leaves no cycle holding the parsed prompt and its graph: anyio keeps the
    submit thread's exception in a future that a frame of its traceback holds, and those
    frames held the body, prompt and graph until a rare full collection (a 15 MB body's
    refusals grew the server 390 MB each)."""
    body, before = {"prompt": prompt(500)}, _live_nodes()
    with toy_app.websocket_connect("ws://127.0.0.1:8188/ws?clientId=c") as ws:
        ws.receive_json()  # status
        for _ in range(3):
            assert toy_app.post("/prompt", json=body).status_code == 400
            ws.send_json({"type": "queue_prompt", "data": body})
            while ws.receive_json()["type"] != "prompt_error":
                pass
    assert _live_nodes() == before
    assert toy_app.post("/prompt", json={"prompt": chain(1)}).status_code == 200
    assert _live_nodes() == before  # an accepted prompt's graph is gone with its answer too


def test_a_refused_workflow_leaves_nothing_for_the_collector(toy_app, collector_off):
    """POST /latentgraph/run answers a workflow validation refuses with its problems, caught
    from the thread that loaded and checked it: that exception's traceback held the text, the
    loaded graph and its problems in the same cycle (`collector.in_thread` clears it)."""
    body, before = {"workflow": _bad_link(500)}, _live_nodes()
    for _ in range(3):
        answer = toy_app.post("/latentgraph/run", json=body)
        assert answer.status_code == 400 and answer.json()["problems"]
    assert _live_nodes() == before
    answer = toy_app.post("/latentgraph/run", json={"workflow": chain(1)})
    assert answer.status_code == 200
    assert _live_nodes() == before  # an accepted workflow's graph is gone with its answer too
