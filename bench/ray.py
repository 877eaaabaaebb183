"""Workers as Ray actors (a local Ray runtime on this machine, CPU actors):

- starting the local runtime (`ray.init`, small: no dashboard, 128 MB object store);
- a sweep of 8 seeds of workflows/txt2img.yaml (256x256, 10 steps) on 1 vs 2 actors (wall time once every actor
  is warm: libraries imported, models loaded; the ratio is what a second actor buys);
- dispatch overhead per prompt: a two-node toy prompt posted and waited for over the
  websocket, one at a time, on one Ray actor vs one local worker process (median ms);
- recovery: from SIGKILL of an idle actor to the next prompt starting on its restarted
  incarnation (tiny model: the new actor imports torch; toy nodes), and a prompt whose actor is
  killed mid-denoise: re-dispatched, how much longer it took than an undisturbed one.
Needs the `ray` extra; skipped without it.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from typing import Any

import httpx

from ._common import WORKFLOWS, isolate_cache_dir, median, row, skipped, suite_main
from .workers import _wait_done, _wait_ready, recovery

SUITE = "ray"
SEEDS = 8


def _sweep_seconds(actors: int, output: str) -> float:
    """Wall seconds for the 8-seed sweep on `actors` warm actors."""
    from latentgraph.api import load, sweep_workflows
    from latentgraph.graph.context import Settings
    from latentgraph.ray_run import workflow_job
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.pool_batch import Batches
    from latentgraph.server.ray_workers import ray_pool
    from latentgraph.wiring import node_registry, worker_setup

    registry = node_registry()
    settings = Settings(output_dir=output)
    params = {"width": 256, "height": 256, "steps": 10}
    base = load(WORKFLOWS / "txt2img.yaml", params=params, registry=registry)

    def jobs(seeds: list[int]) -> list:
        workflows = sweep_workflows(base, "seed", seeds, params=params, registry=registry)
        return [workflow_job(seed, wf, registry, settings) for seed, wf in zip(seeds, workflows,
                                                                               strict=True)]  # fmt: skip

    config = ServerConfig(output_dir=output, ray="local", ray_workers=actors, disk_cache=False)
    pool = ray_pool(config, worker_setup(), settings)
    try:
        batches = Batches(pool)
        batches.run(jobs([1000 + i for i in range(actors)]))  # warm: one run on each actor
        t0 = time.perf_counter()
        results = batches.run(jobs(list(range(1, SEEDS + 1))))
        seconds = time.perf_counter() - t0
    finally:
        pool.stop()
    if any(r.done.status != "success" for r in results):
        raise RuntimeError(f"a sweep run failed: {[r.done.error for r in results]}")
    return seconds


def _round_trip_ms(srv: Any, make: Any, count: int) -> float:
    """Median ms from POST /prompt to the final `executing` on the websocket, one at a time."""
    from websockets.sync.client import connect

    client_id = uuid.uuid4().hex
    http = httpx.Client(base_url=srv.base, timeout=60)
    times = []
    with connect(f"{srv.ws}?clientId={client_id}") as ws:
        for i in range(count + 3):  # the first few warm the path
            t0 = time.perf_counter()
            pid = http.post("/prompt", json={"prompt": make(i), "client_id": client_id}).json()
            while True:
                msg = json.loads(ws.recv(timeout=60))
                data = msg.get("data") or {}
                if (msg["type"] == "executing" and data.get("node") is None
                        and data.get("prompt_id") == pid["prompt_id"]):  # fmt: skip
                    break
            if i >= 3:
                times.append((time.perf_counter() - t0) * 1000)
    http.close()
    return median(times)


def _actors_ready(srv: Any) -> list[int]:
    return _wait_ready(srv, len(srv.app.state.lg.dispatcher.worker_pids()), 240)


def _overhead(count: int) -> tuple[float, float]:
    """Median round trip of a toy prompt: local worker process, Ray actor."""
    from .load import Server, toy_prompt, toy_registry

    out = []
    for options in ({}, {"ray": "local", "ray_workers": 1}):
        with tempfile.TemporaryDirectory() as tmp, Server(toy_registry, tmp, 1, **options) as srv:
            _actors_ready(srv)
            out.append(_round_trip_ms(srv, toy_prompt, count))
    return out[0], out[1]


def _killed_mid_denoise() -> tuple[float, float, float]:
    """Wall seconds of a 200-step tiny-model prompt undisturbed, and with its actor (one of
    two) SIGKILLed once it is denoising (re-dispatched, it completes); and seconds from the
    kill to the re-dispatched run starting (its execution_start in history)."""
    from .load import Server, tiny_prompt, tiny_registry

    def prompt(seed: int) -> dict:
        p = tiny_prompt(seed)
        p["7"]["inputs"]["steps"] = 200
        return p

    with tempfile.TemporaryDirectory() as tmp, \
            Server(tiny_registry, tmp, 1, ray="local", ray_workers=2) as srv:  # fmt: skip
        http = httpx.Client(base_url=srv.base, timeout=60)
        _actors_ready(srv)
        dispatcher = srv.app.state.lg.dispatcher
        _wait_done(http, [http.post("/prompt", json={"prompt": prompt(90 + i)}).json()["prompt_id"]
                          for i in range(2)])  # fmt: skip  # both warm
        t0 = time.perf_counter()
        _wait_done(http, [http.post("/prompt", json={"prompt": prompt(1)}).json()["prompt_id"]])
        calm = time.perf_counter() - t0
        t0 = time.perf_counter()
        pid = http.post("/prompt", json={"prompt": prompt(2)}).json()["prompt_id"]
        while True:  # until it is denoising (a progress step reached the server)
            entry = http.get("/queue").json()["queue_running"]
            worker = dispatcher.worker_of(pid)
            if entry and worker is not None and time.perf_counter() - t0 > calm / 3:
                break
            time.sleep(0.01)
        killed_ms = time.time() * 1000
        os.kill(dispatcher.worker_pids()[worker], signal.SIGKILL)
        _wait_done(http, [pid], timeout=300)
        killed = time.perf_counter() - t0
        status = http.get(f"/history/{pid}").json()[pid]["status"]
        http.close()
    if status["status_str"] != "success":
        raise RuntimeError(f"the killed prompt ended {status['status_str']}")
    [again] = [d["timestamp"] for t, d in status["messages"] if t == "execution_start"]
    return calm, killed, (again - killed_ms) / 1000


def run(quick: bool) -> list[dict[str, Any]]:
    try:
        from latentgraph.server.ray_connect import connect, import_ray

        import_ray()
    except Exception as exc:  # noqa: BLE001 - no extra: the suite is skipped, naming why
        return [skipped(SUITE, "Ray actors", str(exc))]
    isolate_cache_dir()
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    ensure_tiny_sd()
    rows = []
    t0 = time.perf_counter()
    started = connect("local", num_cpus=2)
    rows.append(row(SUITE, "local Ray runtime start (ray.init)", round(time.perf_counter() - t0, 2),
                    "s", "", None, "2 logical CPUs, no dashboard, 128 MB object store"))  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as out:
            one, two = _sweep_seconds(1, out), _sweep_seconds(2, out)
        rows.append(row(SUITE, f"sweep of {SEEDS} seeds, txt2img 256x256 10 steps, 2 actors vs 1",
                        round(one / two, 2), "x", "", None,
                        f"1 actor {one:.1f} s, 2 actors {two:.1f} s (warm; one torch thread "
                        f"per actor; {os.cpu_count()} cores)"))  # fmt: skip
        local_ms, ray_ms = _overhead(10 if quick else 40)
        rows.append(row(SUITE, "dispatch overhead per prompt, Ray actor vs local worker",
                        round(ray_ms - local_ms, 1), "ms", "", None,
                        f"toy prompt round trip (POST to final executing), median: Ray "
                        f"{ray_ms:.1f} ms, local worker {local_ms:.1f} ms"))  # fmt: skip
        tiny, toy = recovery(ray="local", ray_workers=1)
        rows.append(row(SUITE, "actor SIGKILL to next prompt starting", round(tiny, 2), "s", "",
                        None, f"tiny model (the restarted actor imports torch); toy nodes: "
                        f"{toy:.2f} s"))  # fmt: skip
        calm, killed, again = _killed_mid_denoise()
        rows.append(row(SUITE, "actor SIGKILL mid-denoise to its prompt running again",
                        round(again, 2), "s", "", None,
                        f"on the other actor (2 actors); the 200-step tiny prompt took "
                        f"{killed:.1f} s killed and re-dispatched, {calm:.1f} s undisturbed"))  # fmt: skip
    finally:
        if started:
            import_ray().shutdown()
    return rows


if __name__ == "__main__":
    suite_main("bench.ray", __doc__, run)
