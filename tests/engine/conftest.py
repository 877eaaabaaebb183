"""Pure-Python toy nodes for the engine tests: no torch, each call counted by node id."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import pytest

from latentgraph.graph import (
    ANY,
    INT,
    Bool,
    Int,
    NodeResult,
    Output,
    Registry,
    Socket,
    String,
    node,
)
from latentgraph.graph.cache import Cache
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.scheduler import Scheduler


@dataclass
class Toys:
    registry: Registry
    calls: Counter = field(default_factory=Counter)
    random_values: list = field(default_factory=list)  # what the non-deterministic node returns
    identity: dict = field(default_factory=lambda: {"token": "v1"})
    loop_started: threading.Event = field(default_factory=threading.Event)

    def scheduler(self, cache: Cache | None = None, **kw) -> Scheduler:
        return Scheduler(self.registry, cache if cache is not None else Cache(), **kw)


def L(ref: str) -> Link:
    """A link: "node" (output 0) or "node.N"."""
    name, _, index = ref.partition(".")
    return Link(name, int(index or 0))


def build(spec: dict[str, tuple[str, dict]]) -> Graph:
    """Graph from {id: (type, inputs)}; string inputs starting with "@" are links."""
    g = Graph()
    for nid, (type_name, inputs) in spec.items():
        ins = {
            k: L(v[1:]) if isinstance(v, str) and v.startswith("@") else v
            for k, v in inputs.items()
        }
        g.add(Node(nid, type_name, ins))
    return g


def make_toys() -> Toys:
    reg = Registry()
    toys = Toys(reg)

    @node("Const", inputs=[Int("value", 0)], outputs=[Output("value", INT)], registry=reg)
    def const(ctx, value):
        toys.calls[ctx.node_id] += 1
        return value

    @node(
        "Inc", inputs=[Socket("x", INT), Int("by", 1)], outputs=[Output("value", INT)], registry=reg
    )
    def inc(ctx, x, by):
        toys.calls[ctx.node_id] += 1
        return x + by

    @node("Add", inputs=[Socket("a", INT), Socket("b", INT)], outputs=[Output("sum", INT)],
          registry=reg)  # fmt: skip
    def add(ctx, a, b):
        toys.calls[ctx.node_id] += 1
        return a + b

    @node("DivMod", inputs=[Socket("x", INT), Int("d", 2)],
          outputs=[Output("q", INT), Output("r", INT)], registry=reg)  # fmt: skip
    def divmod_(ctx, x, d):
        toys.calls[ctx.node_id] += 1
        return divmod(x, d)

    @node("Fail", inputs=[Socket("x", INT), Bool("fail", True)], outputs=[Output("value", INT)],
          registry=reg)  # fmt: skip
    def fail(ctx, x, fail):
        toys.calls[ctx.node_id] += 1
        if fail:
            raise ValueError(f"told to fail on {x}")
        return x

    @node("Rand", inputs=[Int("salt", 0)], outputs=[Output("value", INT)], deterministic=False,
          registry=reg)  # fmt: skip
    def rand(ctx, salt):
        toys.calls[ctx.node_id] += 1
        return toys.random_values.pop(0)

    @node("Ident", inputs=[String("path", "x")], outputs=[Output("value", ANY)], registry=reg,
          identity=lambda lits, settings: f"{lits['path']}@{toys.identity['token']}")  # fmt: skip
    def ident(ctx, path):
        toys.calls[ctx.node_id] += 1
        return f"{path}:{toys.identity['token']}"

    @node("Loop", inputs=[Socket("x", INT), Int("n", 1000000)], outputs=[Output("value", INT)],
          registry=reg)  # fmt: skip
    def loop(ctx, x, n):
        toys.calls[ctx.node_id] += 1
        toys.loop_started.set()
        for i in range(n):
            ctx.check_cancelled()
            ctx.progress(i + 1, n)
            if i % 100 == 0:
                threading.Event().wait(0.001)
        return x

    @node("Steps", inputs=[Socket("x", INT), Int("n", 10)], outputs=[Output("value", INT)],
          registry=reg)  # fmt: skip
    def steps_(ctx, x, n):
        toys.calls[ctx.node_id] += 1
        for i in range(n):
            ctx.progress(i + 1, n)
        ctx.warn("careful")
        return x

    @node("Out", inputs=[Socket("x", ANY)], outputs=[], output_node=True, registry=reg)
    def out(ctx, x):
        toys.calls[ctx.node_id] += 1
        return NodeResult((), {"value": [x]})

    @node("Echo", inputs=[Socket("x", ANY)], outputs=[Output("value", ANY)], output_node=True,
          registry=reg)  # fmt: skip
    def echo(ctx, x):
        toys.calls[ctx.node_id] += 1
        return NodeResult((x,), {"value": [repr(x)]})

    return toys


@pytest.fixture
def toys() -> Toys:
    return make_toys()


@pytest.fixture(autouse=True)
def _restore_codecs():
    """Codecs registered by a test must not leak into other tests of the session. The built-in
    codecs are registered first (importing `latentgraph.nodes.codecs`, which imports no torch):
    registered by the first test importing the nodes, they were dropped after it, and a later
    test, whose import was then a no-op, ran without them (its tensors never copied)."""
    import latentgraph.nodes.codecs  # noqa: F401
    from latentgraph.graph import cache

    saved, saved_names = list(cache._codecs), dict(cache._codecs_by_name)
    yield
    cache._codecs[:] = saved
    cache._codecs_by_name.clear()
    cache._codecs_by_name.update(saved_names)
