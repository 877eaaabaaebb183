"""`serve --cache-dir DIR`: the workers keep their disk cache in DIR, the entries directly in
it as `run --cache-dir DIR` keeps them (`graph.cache.disk_store_dir`), handed to each worker in
its spec, never through the environment (whose LATENTGRAPH_CACHE_DIR stays the cache root)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .conftest import chain, free_port, server_process, stop_server_process

PLUGIN_DIR = Path(__file__).parent / "plugin"
CLI = "import sys\nfrom latentgraph.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def _entries(folder: Path) -> list[Path]:
    """The disk store's entry files directly in `folder` (`<key[:2]>/<key>`)."""
    return [p for p in folder.glob("??/*") if p.is_file()]


def test_serve_cache_dir_holds_what_its_workers_cache(tmp_path):
    root, store = tmp_path / "root", tmp_path / "store"
    port = free_port()
    env = {**os.environ, "LATENTGRAPH_TOY_PLUGIN": "1", "LATENTGRAPH_CACHE_DIR": str(root)}
    env.pop("LATENTGRAPH_AUTH_TOKEN", None)
    proc, http = server_process(CLI, ["serve", "--port", str(port), "--data-dir",
                                      str(tmp_path / "data"), "--nodes-dir", str(PLUGIN_DIR),
                                      "--cache-dir", str(store), "--device", "cpu", "--workers",
                                      "1"], port, env, cwd=tmp_path, wait=120)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        prompt_id = http.post("/prompt", json={"prompt": chain(7)}).json()["prompt_id"]
        while prompt_id not in (history := http.get(f"/history/{prompt_id}").json()):
            assert time.monotonic() < deadline, "the prompt did not finish"
            time.sleep(0.1)
        assert history[prompt_id]["status"]["status_str"] == "success", history
    finally:
        stop_server_process(proc, http)
    assert _entries(store), sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert not (root / "outputs").exists()  # not the default store, nor DIR/outputs
    assert not (store / "outputs").exists()


def test_every_worker_spec_carries_the_disk_store_and_no_cache_carries_none(tmp_path):
    """Local workers and Ray actors are given `ServerConfig.disk_store`: the folder `run`
    resolves from the same flags (--cache-dir DIR: DIR itself; none: the default store;
    --no-cache: no disk cache, with or without --cache-dir, as `run`)."""
    from latentgraph.graph.cache import disk_store_dir
    from latentgraph.graph.context import Settings
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.local_workers import worker_specs

    given = ServerConfig(data_dir=tmp_path, cache_dir=tmp_path / "store", workers=3,
                         device="cpu")  # fmt: skip
    specs = worker_specs(given, Settings())
    assert [s.disk_store for s in specs] == [(tmp_path / "store").resolve()] * 3
    default = ServerConfig(data_dir=tmp_path, workers=1, device="cpu")
    assert worker_specs(default, Settings())[0].disk_store == disk_store_dir().resolve()
    off = ServerConfig(data_dir=tmp_path, cache_dir=tmp_path / "store", disk_cache=False,
                       workers=1, device="cpu")  # fmt: skip
    assert worker_specs(off, Settings())[0].disk_store is None


def test_a_worker_keeps_to_its_specs_bounds_and_tells_a_full_disk_once(tmp_path, caplog):
    """The worker's cache is made from its spec (`serve --cache-memory-mb/--cache-disk-mb`),
    and a disk store it cannot write is told the server once (`Warned`), with the folder and
    the reason, however many entries fail: the server logs it once for all its workers
    (test_dispatch), where each worker logged it itself, once per worker."""
    import gc
    import logging
    import multiprocessing

    from latentgraph.graph.context import Settings
    from latentgraph.server.worker_process import JobRunner, WorkerSpec
    from latentgraph.server.workers import Warned, WorkerSetup

    from .plugin.toy_nodes import toy_registry

    ours, theirs = multiprocessing.Pipe()
    spec = WorkerSpec(0, Settings(output_dir=tmp_path), disk_store=tmp_path / "store",
                      cache_memory_bytes=5 << 20, cache_disk_bytes=7 << 20, preload=False)  # fmt: skip
    try:
        cache = JobRunner(WorkerSetup(registry=toy_registry), spec, theirs).scheduler.cache
        assert (cache.memory.max_bytes, cache.disk.max_bytes) == (5 << 20, 7 << 20)

        def full(key, values, ui, said):
            raise OSError(28, "No space left on device")

        cache.disk.put = full
        with caplog.at_level(logging.WARNING, logger="latentgraph.worker"):
            for i in range(3):
                cache.put(f"{i:02x}" + "0" * 62, ([i],), None)
        sent = []
        while ours.poll(1):
            sent += [m for m in ours.recv() if isinstance(m, Warned)]
    finally:
        ours.close()
        gc.unfreeze()  # the runner froze the session's objects
    assert sent == [Warned(f"the disk cache at {tmp_path / 'store'} cannot be written (No space "
                           "left on device); results are kept in memory only, not for later "
                           "runs (said once)")]  # fmt: skip
    assert not [r for r in caplog.records if "cannot be written" in r.getMessage()]
