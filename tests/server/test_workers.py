"""Worker processes: the server survives its workers (killed, stuck), runs prompts on several,
frees memory in each, and the process answering HTTP never imports torch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

import pytest

from latentgraph.server.workers import WorkerSetup

from .conftest import RunningServer, WsClient, chain, free_port
from .plugin.toy_nodes import toy_registry
from .plugin.worker_hooks import record_free


def _config(tmp_path_factory, name: str, **kw):
    from latentgraph.server.config import ServerConfig

    return ServerConfig(data_dir=tmp_path_factory.mktemp(name), port=free_port(),
                        disk_cache=False, load_nodes=False, editor=False, **kw)  # fmt: skip


def _ready_pids(server: RunningServer, count: int, timeout: float = 60) -> list[int]:
    dispatcher = server.app.state.lg.dispatcher
    deadline = time.monotonic() + timeout
    while True:
        pids = dispatcher.worker_pids()
        if len(pids) == count and all(pids):
            return pids
        assert time.monotonic() < deadline, f"workers not ready: {pids}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    running = RunningServer(_config(tmp_path_factory, "one-worker", interrupt_grace_seconds=0.5),
                            WorkerSetup(registry=toy_registry)).start()  # fmt: skip
    yield running
    running.stop()


def _slow_prompt_mid_run(server: RunningServer, client: WsClient, value: int) -> str:
    """Post a 10-second prompt for `client` and return its id once its slow node reports
    progress."""
    prompt_id = server.post_prompt(chain(value, slow_steps=500, delay=0.02),
                                   client.client_id).json()["prompt_id"]  # fmt: skip
    client.until("progress", prompt_id)
    return prompt_id


def block_chain(seconds: float = 60) -> dict:
    p = chain(5)
    p["3"] = {"class_type": "Block", "inputs": {"x": ["2", 0], "seconds": seconds}}
    p["9"]["inputs"]["x"] = ["3", 0]
    return p


def test_a_worker_killed_mid_run_fails_its_prompt_and_is_replaced(one_worker):
    client = WsClient(one_worker)
    try:
        [old_pid] = _ready_pids(one_worker, 1)
        slow = one_worker.post_prompt(chain(1, slow_steps=500, delay=0.02), client.client_id)
        slow_id = slow.json()["prompt_id"]
        after_id = one_worker.post_prompt(chain(2, prefix="after"),
                                          client.client_id).json()["prompt_id"]  # fmt: skip
        client.until("progress", slow_id)  # mid-run
        os.kill(old_pid, signal.SIGKILL)
        messages = client.until_done(slow_id)
        errors = [m["data"] for m in messages if m["type"] == "execution_error"]
        assert len(errors) == 1
        assert errors[0]["exception_message"] == "worker process died: signal 9"
        assert errors[0]["node_id"] == "3" and errors[0]["node_type"] == "Slow"
        entry = one_worker.http.get(f"/history/{slow_id}").json()[slow_id]
        assert entry["status"]["status_str"] == "error"
        assert "worker process died: signal 9" in json.dumps(entry["status"]["messages"])
        after = client.until_done(after_id, timeout=60)  # queued: runs on the replacement
        assert any(m["type"] == "execution_success" for m in after)
        [new_pid] = _ready_pids(one_worker, 1)
        assert new_pid != old_pid
        assert one_worker.http.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    finally:
        client.close()


def test_a_node_ending_its_worker_is_named_and_its_prompt_kills_no_second_worker(one_worker):
    """A node calling os._exit ended its worker before the batch announcing it left: the
    error said node_id "" and node_type "", and the prompt, looking not begun, ran again and
    ended a second worker. The worker writes each node it starts where the server reads it
    after the death (`RunningNode`)."""
    client = WsClient(one_worker)
    try:
        [old_pid] = _ready_pids(one_worker, 1)
        prompt = chain(4)
        prompt["3"] = {"class_type": "Exit", "inputs": {"x": ["2", 0], "code": 9}}
        prompt["9"]["inputs"]["x"] = ["3", 0]
        prompt_id = one_worker.post_prompt(prompt, client.client_id).json()["prompt_id"]
        messages = client.until_done(prompt_id, timeout=60)
        [error] = [m["data"] for m in messages if m["type"] == "execution_error"]
        assert error["exception_message"] == "worker process died: exit code 9"
        assert (error["node_id"], error["node_type"]) == ("3", "Exit")
        entry = one_worker.http.get(f"/history/{prompt_id}").json()[prompt_id]
        [kept] = [d for t, d in entry["status"]["messages"] if t == "execution_error"]
        assert (kept["node_id"], kept["node_type"]) == ("3", "Exit")
        # one death: the worker replacing the one the node ended ran nothing and lives on
        [new_pid] = _ready_pids(one_worker, 1)
        assert new_pid != old_pid
        after = one_worker.post_prompt(chain(5, prefix="after"), client.client_id).json()
        assert any(m["type"] == "execution_success"
                   for m in client.until_done(after["prompt_id"], timeout=60))  # fmt: skip
        assert _ready_pids(one_worker, 1) == [new_pid]
    finally:
        client.close()


def test_a_worker_alone_terminated_mid_run_is_a_crash_reported_after_the_grace(one_worker):
    """SIGTERM to the worker only (the server was not told to stop): a crash, as SIGKILL is,
    once `SIGTERM_GRACE_SECONDS` passed without the server's own stop signal."""
    client = WsClient(one_worker)
    try:
        [old_pid] = _ready_pids(one_worker, 1)
        slow_id = _slow_prompt_mid_run(one_worker, client, 3)
        os.kill(old_pid, signal.SIGTERM)
        messages = client.until_done(slow_id, timeout=30)
        [error] = [m["data"] for m in messages if m["type"] == "execution_error"]
        assert error["exception_message"] == "worker process died: signal 15"
        [new_pid] = _ready_pids(one_worker, 1)
        assert new_pid != old_pid
    finally:
        client.close()


def test_interrupt_stops_a_node_that_never_checks_within_the_grace(one_worker):
    grace = one_worker.app.state.lg.dispatcher.interrupt_grace
    client = WsClient(one_worker)
    try:
        [old_pid] = _ready_pids(one_worker, 1)
        pid = one_worker.post_prompt(block_chain(60), client.client_id).json()["prompt_id"]
        client.until("executing", pid)
        while client.recv()["data"].get("node") != "3":  # the blocking node is running
            pass
        asked = time.monotonic()
        assert one_worker.http.post("/interrupt", json={"prompt_id": pid}).json() == {
            "interrupted": True}  # fmt: skip
        messages = client.until_done(pid, timeout=30)
        took = time.monotonic() - asked
        ends = [m for m in messages if m["type"].startswith("execution_")]
        assert [m["type"] for m in ends] == ["execution_interrupted"]
        assert ends[0]["data"]["node_id"] == "3"
        # A 60-second node: ending at all means its worker was killed after the grace period
        # (timings on this shared machine are for bench/, the bound here only rules out waiting).
        assert grace <= took < 30
        assert one_worker.http.get(f"/jobs/{pid}").json()["status"] == "cancelled"
        next_id = one_worker.post_prompt(chain(3), client.client_id).json()["prompt_id"]
        assert any(m["type"] == "execution_success" for m in client.until_done(next_id, 60))
        assert _ready_pids(one_worker, 1) != [old_pid]
    finally:
        client.close()


def test_previews_come_back_from_the_worker_as_binary_frames(one_worker):
    import io
    import struct

    from PIL import Image

    client = WsClient(one_worker)
    try:
        client.send("feature_flags", {"supports_preview_metadata": True})
        assert client.recv()["type"] == "feature_flags"
        prompt = chain(200)
        prompt["3"] = {"class_type": "Glimpse", "inputs": {"x": ["2", 0]}}
        prompt["9"]["inputs"]["x"] = ["3", 0]
        pid = one_worker.post_prompt(prompt, client.client_id,
                                     extra_data={"preview_method": "auto"}).json()["prompt_id"]  # fmt: skip
        client.until_done(pid)
    finally:
        client.close()
    [frame] = client.binary
    kind, size = struct.unpack(">II", frame[:8])
    header = json.loads(frame[8 : 8 + size])
    assert kind == 4 and header["node_id"] == "3" and header["prompt_id"] == pid
    image = Image.open(io.BytesIO(frame[8 + size :]))
    assert image.format == "JPEG" and image.size == (4, 4)
    assert abs(image.getpixel((0, 0))[0] - 400 % 256) <= 2  # Add(200, 200)


def test_a_cooperative_interrupt_keeps_the_worker(one_worker):
    client = WsClient(one_worker)
    try:
        [old_pid] = _ready_pids(one_worker, 1)
        pid = _slow_prompt_mid_run(one_worker, client, 4)
        one_worker.http.post("/interrupt", json={})
        messages = client.until_done(pid)
        assert any(m["type"] == "execution_interrupted" for m in messages)
        assert _ready_pids(one_worker, 1) == [old_pid]
    finally:
        client.close()


def test_two_workers_run_two_prompts_at_once_and_free_each(tmp_path_factory, tmp_path):
    marks = tmp_path / "freed"
    setup = WorkerSetup(registry=toy_registry, free_models=partial(record_free, str(marks)))
    running = RunningServer(_config(tmp_path_factory, "two-workers", workers=2), setup).start()
    try:
        pids = _ready_pids(running, 2)
        assert len(set(pids)) == 2 and os.getpid() not in pids
        ids = [running.post_prompt(chain(10 + i, slow_steps=200, delay=0.02)).json()["prompt_id"]
               for i in range(2)]  # fmt: skip
        deadline = time.monotonic() + 30
        while len(running.http.get("/queue").json()["queue_running"]) < 2:
            assert time.monotonic() < deadline, "the two prompts never ran together"
            time.sleep(0.02)
        running.http.post("/interrupt")  # both
        running.http.post("/free", json={"unload_models": True, "free_memory": True})
        deadline = time.monotonic() + 30
        while len(marks.read_text().split() if marks.exists() else []) < 2:
            assert time.monotonic() < deadline, "POST /free did not reach both workers"
            time.sleep(0.05)
        assert sorted(map(int, marks.read_text().split())) == sorted(pids)
        for pid in ids:
            while not running.http.get(f"/history/{pid}").json():
                assert time.monotonic() < deadline, "an interrupted prompt never ended"
                time.sleep(0.05)
            assert running.http.get(f"/jobs/{pid}").json()["status"] == "cancelled"
    finally:
        running.stop()


def test_latentgraph_serve_hands_the_server_the_worker_setup(monkeypatch, tmp_path):
    import latentgraph.preflight as preflight
    import latentgraph.server.run as run
    import latentgraph.wiring as wiring
    from latentgraph.cli import main
    from latentgraph.nodes import free_models, resident_models

    seen: dict = {}
    monkeypatch.setattr(run, "serve", lambda config, **kw: seen.update(kw, config=config))
    monkeypatch.setattr(wiring, "prepare_server", lambda config, **kw: None)  # no node setup
    monkeypatch.setattr(preflight, "device_problems", lambda devices, **kw: {})  # two GPUs here
    assert main(["serve", "--data-dir", str(tmp_path), "--workers", "3",
                 "--devices", "cuda:0,cuda:1"]) == 0  # fmt: skip
    setup = seen["workers"]
    assert setup.free_models is free_models and setup.resident_models is resident_models
    assert setup.registry.func is wiring.worker_registry
    assert (seen["config"].workers, seen["config"].devices) == (3, ["cuda:0", "cuda:1"])


def test_workers_are_spread_over_the_devices(tmp_path, monkeypatch):
    from latentgraph.graph import Settings
    from latentgraph.server import local_workers
    from latentgraph.server.config import ServerConfig

    def devices(**kw):
        config = ServerConfig(data_dir=tmp_path, **kw)
        return [s.settings.device for s in local_workers.worker_specs(config, Settings())]

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices() == ["auto"]
    assert devices(workers=2, device="cpu") == ["cpu", "cpu"]
    assert devices(devices=["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1"]
    assert devices(workers=3, devices=["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1", "cuda:0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert devices() == ["cuda:0", "cuda:1"]  # one per visible GPU
    assert devices(device="cpu") == ["cpu"]


SERVER_SCRIPT = r"""
import json, sys, threading, time
import httpx, uvicorn
from latentgraph.server.app import create_app
from latentgraph.server.config import ServerConfig
from latentgraph.wiring import prepare_server, worker_setup

t0 = time.monotonic()
config = ServerConfig(data_dir=sys.argv[1], port=int(sys.argv[2]), disk_cache=False, editor=False)
app = create_app(config, registry=prepare_server(config), workers=worker_setup())
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port, log_level="warning"))
threading.Thread(target=server.run, daemon=True).start()
http = httpx.Client(base_url=f"http://127.0.0.1:{config.port}", timeout=30)
while True:
    try:
        info = http.get("/object_info")
        break
    except httpx.TransportError:
        time.sleep(0.02)
answered = time.monotonic() - t0
queue = http.get("/queue").json()
prompt = json.loads(sys.argv[3])
pid = http.post("/prompt", json={"prompt": prompt}).json()["prompt_id"]
while not http.get(f"/history/{pid}").json():
    time.sleep(0.05)
status = http.get(f"/history/{pid}").json()[pid]["status"]["status_str"]
print(json.dumps({"answered_s": answered, "object_info": sorted(info.json()), "queue": queue,
                  "status": status, "torch": "torch" in sys.modules,
                  "worker_pids": app.state.lg.dispatcher.worker_pids()}))
server.should_exit = True
"""


def tiny_prompt(seed: int, size: int = 64, batch: int = 1, prefix: str = "tiny") -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size,
                                                           "batch_size": batch}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": seed, "steps": 1,
              "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "positive": ["6", 0],
              "negative": ["6", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0],
                                                    "filename_prefix": prefix}},
    }  # fmt: skip


def test_the_http_process_never_imports_torch(tmp_path, tiny_folder):
    prompt = tiny_prompt(1, prefix="no-torch")
    out = subprocess.run([sys.executable, "-c", SERVER_SCRIPT, str(tmp_path), str(free_port()),
                          json.dumps(prompt)], capture_output=True, text=True, timeout=180,
                         )  # fmt: skip  # the session's cache dir (tiny_folder) is inherited
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert "KSampler" in seen["object_info"] and "UNetDenoise" in seen["object_info"]
    assert seen["queue"] == {"queue_running": [], "queue_pending": []}
    assert seen["status"] == "success"  # the worker ran the model
    assert seen["torch"] is False  # ... and the server process never imported torch
    assert all(seen["worker_pids"])
    assert list((tmp_path / "output").glob("no-torch*.png"))  # in the server's output folder


def test_post_free_brings_a_workers_rss_back_to_its_baseline(tmp_path_factory, tiny_folder):
    from bench.load import rss_mb as _rss_mb  # VmRSS from /proc/PID/status
    from latentgraph.wiring import worker_setup

    running = RunningServer(_config(tmp_path_factory, "rss"),
                            worker_setup()).start()  # fmt: skip
    try:
        [pid] = _ready_pids(running, 1)

        def run(prompt: dict) -> None:
            prompt_id = running.post_prompt(prompt).json()["prompt_id"]
            deadline = time.monotonic() + 120
            while not (entry := running.http.get(f"/history/{prompt_id}").json()):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert entry[prompt_id]["status"]["status_str"] == "success"

        def free() -> float:
            """POST /free, then the worker's RSS once it has answered (Freed)."""
            seen = dispatcher.frees
            running.http.post("/free", json={"unload_models": True, "free_memory": True})
            deadline = time.monotonic() + 30
            while dispatcher.frees == seen:
                assert time.monotonic() < deadline, "the worker never answered /free"
                time.sleep(0.05)
            return _rss_mb(pid)

        dispatcher = running.app.state.lg.dispatcher
        run(tiny_prompt(1))  # the libraries' lazy imports happen once: part of the baseline
        baseline = free()
        run(tiny_prompt(2, size=256, batch=4))  # models and outputs held in the worker
        loaded = _rss_mb(pid)
        after = free()
    finally:
        running.stop()
    assert loaded > baseline + 20, (baseline, loaded)  # the run did hold memory
    assert after < baseline + 10, (baseline, loaded, after)


def test_an_interrupt_waits_for_a_slow_step_and_keeps_the_worker(tmp_path_factory):
    """A denoise step can take over a second (CPU, large images): an interrupt ends the run at
    the node's next check, and its worker (with its loaded models) is not killed for it. With
    the old 0.5 s grace this worker was killed mid-step."""
    running = RunningServer(_config(tmp_path_factory, "slow-steps"),
                            WorkerSetup(registry=toy_registry)).start()  # fmt: skip
    client = WsClient(running)
    try:
        assert running.app.state.lg.dispatcher.interrupt_grace >= 1.5  # the default
        [old_pid] = _ready_pids(running, 1)
        prompt = chain(3, slow_steps=5, delay=1.0)  # over the old 0.5 s grace, 0.5 s under the new
        pid = running.post_prompt(prompt, client.client_id).json()["prompt_id"]
        while client.recv()["type"] != "progress":  # the slow node has begun its steps
            pass
        running.http.post("/interrupt", json={"prompt_id": pid})
        ends = [m["type"] for m in client.until_done(pid, timeout=30)
                if m["type"].startswith("execution_")]  # fmt: skip
        assert ends == ["execution_interrupted"]
        assert _ready_pids(running, 1) == [old_pid]  # the same process: not killed
    finally:
        client.close()
        running.stop()
