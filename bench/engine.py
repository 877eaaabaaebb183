"""Engine scaling: validate + schedule + execute graphs of trivial nodes (chain, fan, random DAG).

The nodes do nothing, so the times are the engine's own overhead per node. Target: under 20 µs
per node, flat from 10 to 100,000 nodes. Times are CPU time of this process (time.process_time),
so other load on a shared machine does not inflate them. `python -m bench.engine --profile 10000` prints a
cProfile of the 10,000-node cases.
"""

from __future__ import annotations

import random
import time

from bench._common import row, suite_parser
from latentgraph.graph import INT, Int, Output, Registry, Socket, node
from latentgraph.graph.cache import Cache
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.scheduler import Scheduler

SIZES = (10, 100, 1000, 10_000, 100_000)
TARGET_US = 20.0
MOD = 2**31


def registry() -> Registry:
    reg = Registry()

    @node("Const", inputs=[Int("value", 0)], outputs=[Output("v", INT)], registry=reg)
    def const(ctx, value):
        return value

    @node("Inc", inputs=[Socket("x", INT)], outputs=[Output("v", INT)], registry=reg)
    def inc(ctx, x):
        return x + 1

    @node("Leaf", inputs=[Socket("x", INT)], outputs=[Output("v", INT)], output_node=True,
          registry=reg)  # fmt: skip
    def leaf(ctx, x):
        return x

    @node("Add", inputs=[Socket("a", INT), Socket("b", INT)], outputs=[Output("v", INT)],
          registry=reg)  # fmt: skip
    def add(ctx, a, b):
        return (a + b) % MOD  # bounded: the bench measures the engine, not bignum arithmetic

    @node("AddOut", inputs=[Socket("a", INT), Socket("b", INT)], outputs=[Output("v", INT)],
          output_node=True, registry=reg)  # fmt: skip
    def add_out(ctx, a, b):
        return (a + b) % MOD

    return reg


def chain(n: int) -> Graph:
    g = Graph()
    g.add(Node("n0", "Const", {"value": 1}))
    for i in range(1, n - 1):
        g.add(Node(f"n{i}", "Inc", {"x": Link(f"n{i - 1}", 0)}))
    g.add(Node(f"n{n - 1}", "Leaf", {"x": Link(f"n{n - 2}", 0)}))
    return g


def fan(n: int) -> Graph:
    g = Graph()
    g.add(Node("root", "Const", {"value": 1}))
    for i in range(n - 1):
        g.add(Node(f"leaf{i}", "Leaf", {"x": Link("root", 0)}))
    return g


def random_dag(n: int, seed: int = 0) -> Graph:
    """Each node adds two earlier ones (mostly recent: a realistic, deep-ish shape)."""
    rng = random.Random(seed)
    g = Graph()
    consumed = set()
    for i in range(n):
        if i < 2:
            g.add(Node(f"r{i}", "Const", {"value": i}))
            continue
        a, b = (max(0, i - 1 - int(rng.expovariate(0.1))) for _ in range(2))
        consumed.update((a, b))
        g.add(Node(f"r{i}", "Add", {"a": Link(f"r{a}", 0), "b": Link(f"r{b}", 0)}))
    for i in range(2, n):
        if i not in consumed:
            g.nodes[f"r{i}"].type = "AddOut"
    return g


SHAPES = {"chain": chain, "fan": fan, "random": random_dag}


def measure(shape: str, n: int, reg: Registry) -> dict:
    from latentgraph.graph.validate import validate

    g = SHAPES[shape](n)
    t0 = time.process_time()
    problems = validate(g, reg)
    t1 = time.process_time()
    assert not [p for p in problems if p.severity == "error"], problems[:3]
    scheduler = Scheduler(reg, Cache())
    result = scheduler.run(g, validate=False)
    t2 = time.process_time()
    assert result.status == "success", result.failures[:1]
    seen = [0]

    def consumer(event) -> None:  # a consumer that keeps nothing, like the CLI's
        seen[0] += 1

    warm = scheduler.run(g, validate=False, on_event=consumer)
    t3 = time.process_time()
    assert not warm.executed
    Scheduler(reg, Cache()).run(g, validate=False, on_event=consumer)
    t4 = time.process_time()
    us = 1e6 / n
    total = (t2 - t0) * us
    detail = {
        "case": shape,
        "nodes": n,
        "validate_us": (t1 - t0) * us,
        "run_us": (t2 - t1) * us,
        "us_per_node": total,
        "with_events_us": (t4 - t3) * us,
        "rerun_cached_us": (t3 - t2) * us,
    }
    note = (f"validate {detail['validate_us']:.1f} + run {detail['run_us']:.1f}; with events "
            f"{detail['with_events_us']:.1f}; cached re-run {detail['rerun_cached_us']:.1f}")  # fmt: skip
    return {**row("engine", f"{shape} {n} nodes", round(total, 2), "us/node",
                  f"< {TARGET_US:g}", total < TARGET_US, note), **detail}  # fmt: skip


def run(quick: bool) -> list[dict]:
    reg = registry()
    sizes = [s for s in SIZES if not quick or s <= 10_000]
    rows = []
    for shape in SHAPES:
        for n in sizes:
            best = None
            for _ in range(3 if n <= 1000 else 1):  # best of 3 where it is cheap
                found = measure(shape, n, reg)
                if best is None or found["us_per_node"] < best["us_per_node"]:
                    best = found
            rows.append(best)
    return rows


def profile(n: int) -> None:
    import cProfile
    import pstats

    reg = registry()
    profiler = cProfile.Profile()
    for shape in SHAPES:
        g = SHAPES[shape](n)
        profiler.enable()
        from latentgraph.graph.validate import validate

        validate(g, reg)
        Scheduler(reg, Cache()).run(g, validate=False)
        profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = suite_parser("bench.engine", __doc__)
    parser.add_argument("--profile", type=int, metavar="N",
                        help="cProfile validating and running each shape at N nodes, not the suite")  # fmt: skip
    args = parser.parse_args()
    if args.profile is not None:
        profile(args.profile)
    else:
        from bench.__main__ import table

        print(table(run(args.quick)))
