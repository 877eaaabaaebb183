"""A Ray cluster that goes away under `serve --ray`: the pool notices (its GCS stops answering)
and says `Lost`; the server stops in order (websocket clients closed with 1012, the prompts
queued or running kept for the next start) and exits 3, before Ray's core would end the process
without a word 60 s later ("Failed to connect to GCS within 60 seconds").

Tested at the seams: the pool's watch asked about an address nobody answers at (its actors
live on in the test session's runtime), and `serve --ray local` with a pool that says `Lost`
when told. A real head stopped under a running server (`ray start --head`, its GCS killed) was
checked by hand (docs/scale-out.md, Failures)."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.server.conftest import free_port, server_process, stop_server_process

from .test_ray_connect import _closed_port

ROOT = Path(__file__).resolve().parents[2]
REASON = "the Ray cluster at 127.0.0.1:6379 stopped answering (for 10 s)"


def test_a_pool_whose_cluster_stops_answering_says_lost_once_naming_it(ray_runtime, tmp_path,
                                                                       monkeypatch):  # fmt: skip
    from latentgraph.graph.context import Settings
    from latentgraph.server import ray_workers
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.ray_connect import NAMESPACE
    from latentgraph.server.workers import Lost, WorkerSetup

    monkeypatch.setattr(ray_workers, "HEALTH_SECONDS", 0.2)
    monkeypatch.setattr(ray_workers, "LOST_SECONDS", 0.5)
    config = ServerConfig(data_dir=tmp_path / "data", ray="local", ray_workers=1,
                          disk_cache=False, load_nodes=False, editor=False)  # fmt: skip
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path / "in",
                        temp_dir=tmp_path / "temp")  # fmt: skip
    for folder in (settings.output_dir, settings.input_dir, settings.temp_dir):
        folder.mkdir()
    said: list[str] = []
    pool = ray_workers.ray_pool(config, WorkerSetup(), settings, announce=said.append)
    assert said == ["starting 1 Ray worker(s) (1 CPU and 0 GPU each)..."]
    assert pool.cluster == ray_runtime.get_runtime_context().gcs_address  # what it watches
    gone = f"127.0.0.1:{_closed_port()}"
    pool.cluster = gone  # the seam: the GCS it asks no longer answers
    lost: list[Lost] = []
    got = []
    pool.start(lambda worker, message: (lost if isinstance(message, Lost) else got).append(
        message))  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not lost:
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
        time.sleep(1.0)  # no second one
        assert lost == [Lost(f"the Ray cluster at {gone} stopped answering (for 0.5 s)")]
        assert pool.lost
    finally:
        pool.stop()
        for worker in pool.workers():  # the runtime is the session's: its actor goes too
            ray_runtime.kill(ray_runtime.get_actor(worker.name, namespace=NAMESPACE))


# `latentgraph serve --ray local` whose pool is `LostPool`: one worker that takes a job and
# never ends it, and says `Lost` once the file named by LOST_TRIGGER exists.
LAUNCH = f"""
import os, sys, threading, time
from latentgraph.server import ray_workers
from latentgraph.server.workers import Lost, Ready, WorkerInfo, WorkerPool

class LostPool(WorkerPool):
    def start(self, deliver):
        deliver(0, Ready(4242))
        def lose():
            while not os.path.exists(os.environ["LOST_TRIGGER"]):
                time.sleep(0.05)
            deliver(0, Lost({REASON!r}))
        threading.Thread(target=lose, daemon=True).start()
    def stop(self, timeout=2.0): pass
    def workers(self): return [WorkerInfo(0, "w0", "cpu", 4242)]
    def submit(self, worker_id, job): pass
    def cancel(self, worker_id, prompt_id): pass
    def kill(self, worker_id): pass
    def free(self, worker_id, unload_models, free_memory): pass
    def convert_ahead(self, worker_id, prompt_id, prompt_json): pass

ray_workers.ray_pool = lambda *args, **kwargs: LostPool()
from latentgraph.cli import main
sys.exit(main(sys.argv[1:]))
"""

PROMPT = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8,
                                                        "batch_size": 1, "color": 0}},
          "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}  # fmt: skip


def test_serve_whose_ray_cluster_is_lost_stops_in_order_keeping_its_prompts(tmp_path):
    port = free_port()
    trigger = tmp_path / "lose-now"
    env = {**os.environ, "LOST_TRIGGER": str(trigger), "PYTHONPATH": str(ROOT)}
    args = ["serve", "--port", str(port), "--ray", "local", "--ray-workers", "1",
            "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out"),
            "--input-dir", str(tmp_path / "in"), "--temp-dir", str(tmp_path / "temp"),
            "--no-cache"]  # fmt: skip
    proc, http = server_process(LAUNCH, args, port, env, cwd=ROOT)
    try:
        with connect(f"ws://127.0.0.1:{port}/ws?clientId=c", open_timeout=10) as ws:
            ids = [http.post("/prompt", json={"prompt": PROMPT, "client_id": "c"}).json()[
                "prompt_id"] for _ in range(2)]  # fmt: skip
            deadline = time.monotonic() + 30
            while not http.get("/queue").json()["queue_running"]:  # the first runs, one waits
                assert time.monotonic() < deadline
                time.sleep(0.05)
            trigger.touch()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=60)
        assert closed.value.rcvd.code == 1012  # as any orderly stop closes them
        assert proc.wait(60) == 3
        log = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        stop_server_process(proc, http)
    assert (
        f"ERROR latentgraph.server: {REASON}: the server stops; its 2 prompt(s) queued or "
        "running are kept, to run at its next start\n"
    ) in log, log[-3000:]
    assert log.endswith(f"latentgraph: error: {REASON}; the prompts are kept for the next "
                        "start\n"), log[-3000:]  # fmt: skip
    assert "Traceback" not in log
    with closing(sqlite3.connect(tmp_path / "data" / "server.sqlite3")) as db:
        kept = dict(db.execute("SELECT id, status FROM prompts").fetchall())
    assert kept == dict.fromkeys(ids, "pending")
