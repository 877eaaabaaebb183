"""Memory: peak RSS of a txt2img run; one load per model however many nodes use it; no
duplicate loads when queued prompts share models; RSS back near its baseline after
`ModelManager.free()` across 20 load/unload cycles.
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
from pathlib import Path

from ._common import (
    WORKFLOWS,
    isolate_cache_dir,
    latentgraph_cmd,
    one_thread,
    row,
    rss_mb,
    run_child,
    suite_main,
)

SUITE = "memory"
CYCLES = 20


def _many_users_graph(params: dict):
    """txt2img with three identical LoadModel nodes, the model's users spread over them."""
    from latentgraph import api
    from latentgraph.graph.model import Link, Node

    graph = api.load(WORKFLOWS / "txt2img.yaml", params=params).graph
    loader = graph.nodes["model"]
    for extra in ("model2", "model3"):
        graph.add(Node(extra, loader.type, dict(loader.inputs)))
    users = 0
    for node in list(graph.nodes.values()):
        for name, value in node.inputs.items():
            if isinstance(value, Link) and value.node == "model":
                node.inputs[name] = Link(("model", "model2", "model3")[users % 3], value.output)
                users += 1
    return graph, users


def _peak_run(size: int, steps: int, baseline: bool) -> list[dict]:
    out = Path(tempfile.mkdtemp(prefix="lg-bench-out-"))
    cmd = latentgraph_cmd("run", str(WORKFLOWS / "txt2img.yaml"), "--no-cache", "-q",
                          "--device", "cpu", "--output-dir", str(out), "--set", f"width={size}",
                          "--set", f"height={size}", "--set", f"steps={steps}")  # fmt: skip
    _, peak, rc, _, err = run_child(cmd)
    if rc != 0:
        raise RuntimeError(f"latentgraph run exited {rc}: {err.strip()[-300:]}")
    note = "fresh process"
    if baseline:
        imports = [sys.executable, "-c", "import torch, diffusers, transformers"]
        base = run_child(imports)[1]
        note += f"; importing torch+diffusers+transformers alone: {base:.0f} MB"
    return [row(SUITE, f"peak RSS, txt2img {size}x{size} {steps} steps", round(peak), "MB",
                note=note)]  # fmt: skip


def _scheduler(settings):
    from latentgraph.graph.cache import Cache
    from latentgraph.graph.scheduler import Scheduler

    return Scheduler(cache=Cache(), settings=settings)


def _loads_once(settings) -> list[dict]:
    from latentgraph.nodes.model_manager import manager

    graph, users = _many_users_graph({"width": 32, "height": 32, "steps": 2})
    manager().free()
    before = manager().loads
    result = _scheduler(settings).run(graph)
    if not result.ok:
        raise RuntimeError(result.failures[0].message)
    loads = manager().loads - before
    return [row(SUITE, "one model, 3 loader nodes + many users: loads", loads, "loads", "= 1",
                loads == 1, note=f"{users} links from the 3 loader nodes")]  # fmt: skip


def _grouping(settings) -> list[dict]:
    """Four prompts over two models, A B A B: with room for both, each loads once; with room
    for one, the order matters (grouped A A B B loads each once, interleaved reloads)."""
    from latentgraph import api
    from latentgraph.nodes.model_manager import manager
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    copy = Path(tempfile.mkdtemp(prefix="lg-bench-model-")) / "tiny-copy"
    shutil.copytree(ensure_tiny_sd(), copy)
    models = {"A": "builtin:tiny-sd", "B": str(copy)}

    def queue(order: str, budget: int | None) -> int:
        m = manager()
        m.free()
        saved = m.ram_budget
        if budget is not None:
            m.ram_budget = budget
        before = m.loads
        try:
            for i, name in enumerate(order):
                wf = api.load(
                    WORKFLOWS / "txt2img.yaml",
                    params={
                        "model": models[name],
                        "width": 32,
                        "height": 32,
                        "steps": 2,
                        "seed": i,
                    },
                )
                if not _scheduler(settings).run(wf.graph).ok:
                    raise RuntimeError(f"prompt {i} failed")
        finally:
            m.ram_budget = saved
        return m.loads - before

    one = _model_bytes() + 1
    roomy = queue("ABAB", None)
    tight_interleaved = queue("ABAB", one)
    tight_grouped = queue("AABB", one)
    manager().free()
    shutil.rmtree(copy.parent, ignore_errors=True)
    return [
        row(SUITE, "4 prompts over 2 models (A B A B): loads", roomy, "loads", "= 2",
            roomy == 2, note="budget holds both: the manager keeps and shares them"),
        row(SUITE, "same, budget for 1 model, grouped A A B B", tight_grouped, "loads", "= 2",
            tight_grouped == 2, note=f"interleaved A B A B would load {tight_interleaved} "
            "times: group queued work by model when memory is tight"),
    ]  # fmt: skip


def _model_bytes() -> int:
    from latentgraph.nodes.model_manager import manager

    m = manager()
    m.free()
    _load()
    size = sum(e.size for e in m._entries.values())
    m.free()
    return size


def _load():
    from latentgraph.graph import CancelToken, Context, Settings
    from latentgraph.nodes.loaders import load_bundle
    from latentgraph.nodes.model_presets import BUILTIN_TINY

    ctx = Context("bench", "LoadModel", Settings(device="cpu"), CancelToken())
    return load_bundle(ctx, BUILTIN_TINY)[0]


def _cycles(cycles: int) -> list[dict]:
    from latentgraph.nodes.model_manager import manager

    m = manager()
    for _ in range(2):  # warm: first loads allocate caches that stay (imports, allocator)
        _load()
        m.free()
    gc.collect()
    base = rss_mb()
    loaded = 0.0
    for _ in range(cycles):
        _load()
        loaded = max(loaded, rss_mb())
        m.free()
        gc.collect()
    after = rss_mb()
    growth = after - base
    size = _model_bytes() / 2**20
    return [row(SUITE, f"RSS growth over {cycles} load/free cycles", round(growth, 1), "MB",
                "< 10", growth < 10, note=f"baseline {base:.0f} MB, loaded {loaded:.0f} MB, "
                f"after {after:.0f} MB; model weights {size:.1f} MB")]  # fmt: skip


def run(quick: bool) -> list[dict]:
    isolate_cache_dir()
    one_thread()
    from latentgraph.graph import Settings
    from latentgraph.wiring import node_registry

    node_registry()
    settings = Settings(output_dir=Path(tempfile.mkdtemp(prefix="lg-bench-out-")), device="cpu")
    size, steps = (64, 10) if quick else (128, 20)
    rows = _peak_run(size, steps, baseline=not quick)
    rows += _loads_once(settings)
    rows += _grouping(settings)
    rows += _cycles(5 if quick else CYCLES)
    return rows


if __name__ == "__main__":
    suite_main("bench.memory", __doc__, run)
