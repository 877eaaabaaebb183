"""Throughput: images per minute for 8 seeds as one batched UNet call, as 8 separate runs, and
as a sweep of 8 (one scheduler and cache: the prompts are encoded once).

CPU time of this process with one torch thread, so the numbers are per core and stable on a
shared machine; the model is loaded before timing.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ._common import WORKFLOWS, isolate_cache_dir, one_thread, row, suite_main

SUITE = "throughput"
N = 8


def run(quick: bool) -> list[dict]:
    isolate_cache_dir()
    one_thread()
    from latentgraph import api
    from latentgraph.graph import Settings
    from latentgraph.graph.cache import Cache
    from latentgraph.graph.scheduler import Scheduler
    from latentgraph.wiring import node_registry

    node_registry()
    size, steps = (64, 10) if quick else (64, 20)
    settings = Settings(output_dir=Path(tempfile.mkdtemp(prefix="lg-bench-out-")), device="cpu")
    params = {"width": size, "height": size, "steps": steps, "seed": 1}
    path = WORKFLOWS / "txt2img.yaml"

    def fresh() -> Scheduler:
        return Scheduler(cache=Cache(), settings=settings)

    def check(result) -> None:
        if not result.ok:
            raise RuntimeError(result.failures[0].message if result.failures else result.status)

    check(fresh().run(api.load(path, params=params).graph))  # load the model, warm up

    batched = api.load(path, params=params).graph
    batched.nodes["noise"].inputs["batch_size"] = N
    t0 = time.process_time()
    check(fresh().run(batched))
    t_batch = time.process_time() - t0

    graphs = [api.load(path, params={**params, "seed": 1 + i}).graph for i in range(N)]
    t0 = time.process_time()
    for g in graphs:
        check(fresh().run(g))
    t_separate = time.process_time() - t0

    wf = api.load(path, params=params)
    t0 = time.process_time()
    for r in api.sweep(wf, "seed", list(range(1, N + 1)), scheduler=fresh()):
        check(r)
    t_sweep = time.process_time() - t0

    def ipm(seconds: float) -> float:
        return round(N / seconds * 60, 1)

    case = f"{size}x{size} {steps} steps"
    return [
        row(SUITE, f"batch of {N} seeds, one UNet call per step", ipm(t_batch), "img/min",
            note=f"{case}; {t_batch:.2f} s CPU; {t_separate / t_batch:.2f}x the separate runs"),
        row(SUITE, f"{N} separate runs", ipm(t_separate), "img/min",
            note=f"{case}; {t_separate:.2f} s CPU; fresh cache each run"),
        row(SUITE, f"sweep of {N} seeds", ipm(t_sweep), "img/min",
            note=f"{case}; {t_sweep:.2f} s CPU; prompts encoded once"),
    ]  # fmt: skip


if __name__ == "__main__":
    suite_main("bench.throughput", __doc__, run)
