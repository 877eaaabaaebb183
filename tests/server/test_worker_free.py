"""The worker frees models through the function it is given, not one it looks up."""

from __future__ import annotations

import threading
import time

from latentgraph.graph import Registry, Settings
from latentgraph.server.hub import Hub
from latentgraph.server.store import Store
from latentgraph.server.worker import Worker


def _worker(tmp_path, free_models=None) -> Worker:
    store = Store(tmp_path / "db.sqlite3")
    return Worker(store, Hub(), Registry(), Settings(), disk_cache=False, free_models=free_models)


def test_post_free_calls_the_injected_free_function_on_the_worker_thread(tmp_path):
    called = threading.Event()
    threads: list[str] = []

    def free_models() -> None:
        threads.append(threading.current_thread().name)
        called.set()

    worker = _worker(tmp_path, free_models)
    worker.start()
    try:
        worker.request_free(unload_models=True, free_memory=False)
        assert called.wait(10)
    finally:
        worker.stop()
        worker.store.close()
    assert threads == ["latentgraph-worker"]  # models are not thread-safe: never elsewhere


def test_without_a_free_function_freeing_still_clears_the_output_cache(tmp_path):
    worker = _worker(tmp_path)
    cache = worker.scheduler().cache
    cache.put("k" * 64, (1,), None)
    worker.start()
    try:
        worker.request_free(unload_models=True, free_memory=True)
        deadline = time.monotonic() + 10
        while cache.get("k" * 64) is not None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
        worker.store.close()
    assert cache.get("k" * 64) is None


def test_latentgraph_serve_hands_the_server_the_nodes_free_function(monkeypatch, tmp_path):
    import latentgraph.server.run as run
    import latentgraph.wiring as wiring
    from latentgraph.cli import main
    from latentgraph.nodes import free_models

    seen: dict = {}
    monkeypatch.setattr(run, "serve", lambda config, **kw: seen.update(kw))
    monkeypatch.setattr(wiring, "prepare_server", lambda config, **kw: None)  # no node setup
    assert main(["serve", "--data-dir", str(tmp_path)]) == 0
    assert seen["free_models"] is free_models
