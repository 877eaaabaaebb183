"""Engine paths the benchmarks found slow: summaries of huge values stay cheap and safe."""

from __future__ import annotations

from latentgraph.graph import INT, Int, Output, Registry, Socket, node
from latentgraph.graph.cache import Cache
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.scheduler import Scheduler, describe_value


def test_describe_huge_int_is_short_and_does_not_raise():
    assert describe_value(7) == "7"
    assert describe_value(2**100) == str(2**100)
    assert describe_value(10**5000) == f"int ({(10**5000).bit_length()} bits)"  # repr would raise


def test_a_node_returning_a_huge_int_finishes_with_events():
    reg = Registry()

    @node("Big", inputs=[Int("n", 5000)], outputs=[Output("v", INT)], registry=reg)
    def big(ctx, n):
        return 10**n

    @node("Out", inputs=[Socket("x", INT)], outputs=[Output("v", INT)], output_node=True,
          registry=reg)  # fmt: skip
    def out(ctx, x):
        return x + 1

    g = Graph()
    g.add(Node("b", "Big", {"n": 5000}))
    g.add(Node("o", "Out", {"x": Link("b", 0)}))
    events = []
    result = Scheduler(reg, Cache()).run(g, on_event=events.append)
    assert result.ok
    assert result.output("o") == 10**5000 + 1
    finished = [e for e in events if type(e).__name__ == "NodeFinished"]
    assert [e.node_id for e in finished] == ["b", "o"]
    assert all("bits" in e.summary[0] for e in finished)
