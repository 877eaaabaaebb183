"""Cache: what a re-run costs, what a seed change re-runs, and reuse across processes.

- unchanged re-run as a share of the cold run (same process, models already loaded): < 1%;
- a seed-only change re-runs exactly the four nodes downstream of the seed (noise, denoise,
  decode, save);
- a second `latentgraph run` process with the same disk cache runs no denoise.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from ._common import (
    WORKFLOWS,
    isolate_cache_dir,
    latentgraph_cmd,
    one_thread,
    row,
    run_child,
    suite_main,
)

SUITE = "cache"
SEED_DOWNSTREAM = {"noise", "denoise", "decode", "save"}


def _in_process(size: int, steps: int) -> list[dict]:
    from latentgraph import api
    from latentgraph.graph import Settings
    from latentgraph.graph.cache import Cache
    from latentgraph.graph.scheduler import Scheduler
    from latentgraph.wiring import node_registry

    node_registry()
    out = Path(tempfile.mkdtemp(prefix="lg-bench-out-"))
    settings = Settings(output_dir=out, device="cpu")
    params = {"width": size, "height": size, "steps": steps}
    wf = api.load(WORKFLOWS / "txt2img.yaml", params=params)
    Scheduler(cache=Cache(), settings=settings).run(wf.graph)  # loads the model
    scheduler = Scheduler(cache=Cache(), settings=settings)
    t0 = time.process_time()
    cold = scheduler.run(wf.graph)
    t1 = time.process_time()
    warm = scheduler.run(wf.graph)
    t2 = time.process_time()
    share = (t2 - t1) / (t1 - t0) * 100
    reseeded = api.load(WORKFLOWS / "txt2img.yaml", params={**params, "seed": 43})
    again = scheduler.run(reseeded.graph)
    ran = set(again.executed)
    case = f"txt2img {size}x{size} {steps} steps"
    return [
        row(
            SUITE,
            f"{case}: cold run",
            round(t1 - t0, 3),
            "s",
            note=f"{len(cold.executed)} nodes executed, model already loaded",
        ),  # fmt: skip
        row(
            SUITE,
            "unchanged re-run / cold run",
            round(share, 4),
            "%",
            "< 1",
            share < 1.0,
            note=f"{(t2 - t1) * 1000:.2f} ms, {len(warm.executed)} nodes executed",
        ),  # fmt: skip
        row(
            SUITE,
            "seed-only change: nodes executed",
            len(ran),
            "nodes",
            "= 4",
            ran == SEED_DOWNSTREAM,
            note=", ".join(again.executed),
        ),  # fmt: skip
    ]


def _executed(stdout: str) -> list[str] | None:
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "run_finished":
            return list(event.get("executed", []))
    return None


def _in_this_process(args: list[str]) -> tuple[float, float, int, str, str]:
    """`latentgraph ARGS` run by this process (torch already imported): run_child's shape."""
    import contextlib
    import io

    from latentgraph.cli import main

    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return time.perf_counter() - t0, 0.0, code, out.getvalue(), err.getvalue()


def _two_processes(size: int, steps: int, quick: bool) -> list[dict]:
    """Quick mode fills the disk cache from this process: only the second one is spawned."""
    tmp = Path(tempfile.mkdtemp(prefix="lg-bench-disk-"))
    args = ["run", str(WORKFLOWS / "txt2img.yaml"), "--json", "--device", "cpu",
            "--cache-dir", str(tmp / "cache"), "--output-dir", str(tmp / "out"),
            "--set", f"width={size}", "--set", f"height={size}", "--set", f"steps={steps}"]  # fmt: skip
    cmd = latentgraph_cmd(*args)
    first = _in_this_process(args) if quick else run_child(cmd)
    second = run_child(cmd)
    for _, _, rc, _, err in (first, second):
        if rc != 0:
            raise RuntimeError(f"latentgraph run failed ({rc}): {err.strip()[-400:]}")
    ran1, ran2 = _executed(first[3]), _executed(second[3])
    if ran1 is None or ran2 is None:
        raise RuntimeError("no run_finished event in the --json output")
    ok = "denoise" not in ran2 and "denoise" in ran1
    return [
        row(
            SUITE,
            "second process, disk cache: denoise executed",
            "no" if ok else "yes",
            "",
            "no",
            ok,
            note=f"executed: {', '.join(ran2) or 'nothing'} (first process ran {len(ran1)})",
        ),  # fmt: skip
        row(
            SUITE,
            "second process, disk cache: wall time",
            round(second[0], 2),
            "s",
            note="first run in this process (quick)"
            if quick
            else f"first process {first[0]:.2f} s (imports torch, loads, runs)",
        ),  # fmt: skip
    ]


def run(quick: bool) -> list[dict]:
    isolate_cache_dir()
    one_thread()
    size, steps = (64, 10) if quick else (128, 20)
    return _in_process(size, steps) + _two_processes(64, 10, quick)


if __name__ == "__main__":
    suite_main("bench.cache", __doc__, run)
