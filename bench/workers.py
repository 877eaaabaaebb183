"""Worker processes: how fast the light server answers, what a second worker buys, how long a
worker's death costs.

- `latentgraph serve` start to the first /object_info answer, beside `python -c "import torch"`
  measured in the same run (the server process no longer imports it);
- throughput of 2 workers vs 1 for 16 tiny-model prompts (wall time, both in this run);
- from a worker's SIGKILL (mid-run) to the next queued prompt running on its replacement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from ._common import isolate_cache_dir, latentgraph_cmd, median, row, run_child, suite_parser

SUITE = "workers"


def serve_start(repeats: int, bytecode: bool = False) -> tuple[float, float]:
    """Median seconds from `latentgraph serve` starting to its first /object_info answer, and
    median seconds of `python -c "import torch"`, interleaved. `bytecode`: let Python write and
    use its bytecode cache even where PYTHONDONTWRITEBYTECODE is set (as on the benchmark
    machine, where every start otherwise compiles the modules from source again)."""
    from .load import _port

    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    served, torch_import = [], []
    for _ in range(repeats):
        port = _port()
        with tempfile.TemporaryDirectory() as data:
            cmd = latentgraph_cmd("serve", "--port", str(port), "--data-dir", data,
                                  "--output-dir", f"{data}/out", "--input-dir", f"{data}/in")  # fmt: skip
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=env)  # fmt: skip
            try:
                while True:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/object_info", timeout=5).is_success:
                            break
                    except httpx.TransportError:
                        pass
                    if proc.poll() is not None or time.perf_counter() - t0 > 120:
                        raise RuntimeError("latentgraph serve did not answer /object_info")
                    time.sleep(0.01)
                served.append(time.perf_counter() - t0)
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        wall, _, rc, _, err = run_child([sys.executable, "-c", "import torch"])
        if rc != 0:
            raise RuntimeError(err[-300:])
        torch_import.append(wall)
    return median(served), median(torch_import)


def _wait_ready(srv: Any, count: int, timeout: float = 180) -> list[int]:
    """The workers' pids once all `count` are ready. A tiny-model worker imports torch and
    diffusers first: seconds on a quiet machine, a minute or more on 2 busy cores (slow, not
    hung); past `timeout` the suite stops saying how many were ready."""
    deadline = time.monotonic() + timeout
    while True:
        pids = srv.app.state.lg.dispatcher.worker_pids()
        if len(pids) == count and all(pids):
            return pids
        if time.monotonic() > deadline:
            ready = sum(1 for pid in pids if pid)
            raise RuntimeError(f"{ready} of {count} worker(s) ready after {timeout:g} s (each "
                               "imports torch before it is ready; is the machine busy?)")  # fmt: skip
        time.sleep(0.05)


def _wait_done(http: httpx.Client, ids: list[str], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for pid in ids:
        while not http.get(f"/history/{pid}").json():
            if time.monotonic() > deadline:
                raise RuntimeError("prompts never finished")
            time.sleep(0.02)


def _tiny(seed: int) -> dict:
    """The load bench's tiny-model prompt at 256x256, 10 steps: the model's work dominates."""
    from .load import tiny_prompt

    prompt = tiny_prompt(seed)
    prompt["5"]["inputs"].update(width=256, height=256)
    prompt["7"]["inputs"]["steps"] = 10
    return prompt


def throughput(workers: int, prompts: int, threads: int | None) -> float:
    """Wall seconds for `prompts` tiny-model prompts queued at once on `workers` workers
    (after each worker ran one prompt: models loaded, libraries imported). `threads` sets
    OMP_NUM_THREADS for the workers (None: torch's default for one worker, all cores; several
    CPU workers split the cores)."""
    from .load import Server, tiny_registry

    old = os.environ.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the spawned workers
    try:
        with tempfile.TemporaryDirectory() as tmp, Server(tiny_registry, tmp, workers) as srv:
            http = httpx.Client(base_url=srv.base, timeout=60)
            _wait_ready(srv, workers)
            warm = [http.post("/prompt", json={"prompt": _tiny(10_000 + i)}).json()["prompt_id"]
                    for i in range(workers)]  # fmt: skip
            _wait_done(http, warm)
            t0 = time.perf_counter()
            ids = [http.post("/prompt", json={"prompt": _tiny(i)}).json()["prompt_id"]
                   for i in range(prompts)]  # fmt: skip
            _wait_done(http, ids)
            seconds = time.perf_counter() - t0
            http.close()
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)
        if old is not None:
            os.environ["OMP_NUM_THREADS"] = old
    return seconds


def recovery(**config: Any) -> tuple[float, float]:
    """Seconds from SIGKILL of the (idle) worker to the next prompt starting on the
    replacement (its `execution_start` time in history): with the tiny model (the new worker
    imports torch) and with pure-Python toy nodes. `config`: more ServerConfig fields (Ray)."""
    from .load import Server, tiny_prompt, tiny_registry, toy_prompt, toy_registry

    out = []
    for build, make in ((tiny_registry, tiny_prompt), (toy_registry, toy_prompt)):
        with tempfile.TemporaryDirectory() as tmp, Server(build, tmp, 1, **config) as srv:
            http = httpx.Client(base_url=srv.base, timeout=60)
            [pid] = _wait_ready(srv, 1)
            killed_ms = time.time() * 1000
            os.kill(pid, signal.SIGKILL)
            nxt = http.post("/prompt", json={"prompt": make(2)}).json()["prompt_id"]
            _wait_done(http, [nxt])
            entry = http.get(f"/history/{nxt}").json()[nxt]
            started = [d["timestamp"] for t, d in entry["status"]["messages"]
                       if t == "execution_start"]  # fmt: skip
            if entry["status"]["status_str"] != "success" or not started:
                raise RuntimeError(f"the prompt after the kill did not run: {entry['status']}")
            out.append((started[0] - killed_ms) / 1000)
            http.close()
    return out[0], out[1]


def start_rows(repeats: int) -> list[dict[str, Any]]:
    """Serve start as this environment runs it and, where it forbids Python's bytecode cache
    (PYTHONDONTWRITEBYTECODE), also with the cache an ordinary install has."""
    rows = []
    variants = [False, True] if os.environ.get("PYTHONDONTWRITEBYTECODE") else [False]
    for bytecode in variants:
        if bytecode:
            serve_start(1, bytecode=True)  # writes the cache
        served, imported = serve_start(repeats, bytecode=bytecode)
        how = ", bytecode cache on" if bytecode else ""
        note = (" (PYTHONDONTWRITEBYTECODE=1 here: modules compiled at every start)"
                if len(variants) > 1 and not bytecode else "")  # fmt: skip
        rows.append(row(SUITE, f"serve start to first /object_info{how}", round(served, 2), "s",
                        "< 1.5", served < 1.5, f"median of {repeats}{note}; `python -c 'import "
                        f"torch'` in the same run: {imported:.2f} s"))  # fmt: skip
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    isolate_cache_dir()
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    ensure_tiny_sd()
    rows = start_rows(1 if quick else 3)
    prompts = 4 if quick else 16
    for threads in (None, 1):
        one, two = throughput(1, prompts, threads), throughput(2, prompts, threads)
        how = "torch's default threads" if threads is None else "OMP_NUM_THREADS=1"
        rows.append(row(SUITE, f"{prompts} tiny prompts 256x256 10 steps, 2 workers vs 1 "
                        f"({how})", round(one / two, 2), "x", "", None,
                        f"1 worker {one:.1f} s, 2 workers {two:.1f} s "
                        f"({os.cpu_count()} cores)"))  # fmt: skip
    tiny, toy = recovery()
    rows.append(row(SUITE, "worker SIGKILL to next prompt starting", round(tiny, 2), "s", "", None,
                    f"tiny model (the new worker imports torch); toy nodes: {toy:.2f} s"))  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.__main__ import table

    parser = suite_parser("bench.workers", __doc__)
    parser.add_argument("--start", action="store_true", help="only serve start, not the suite")
    args = parser.parse_args()
    print(table(start_rows(1 if args.quick else 3) if args.start else run(args.quick)))
