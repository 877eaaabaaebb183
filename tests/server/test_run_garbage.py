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
