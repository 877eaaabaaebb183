"""Random DAGs of toy nodes: results match a direct evaluation; a changed literal re-runs
exactly its descendants; failures skip exactly the dependants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from latentgraph.graph.cache import Cache
from latentgraph.graph.model import Graph, Link, Node

from .conftest import make_toys


@st.composite
def dags(draw):
    """(sources, adds): node i < sources is Const; others Add two earlier nodes."""
    sources = draw(st.integers(1, 4))
    n = draw(st.integers(sources, 25))
    values = draw(st.lists(st.integers(-50, 50), min_size=sources, max_size=sources))
    adds = [(draw(st.integers(0, i - 1)), draw(st.integers(0, i - 1))) for i in range(sources, n)]
    return values, adds


def to_graph(values, adds, fail_at=None):
    g = Graph()
    for i, v in enumerate(values):
        g.add(Node(f"n{i}", "Const", {"value": v}))
    for i, (a, b) in enumerate(adds, start=len(values)):
        g.add(Node(f"n{i}", "Add", {"a": Link(f"n{a}", 0), "b": Link(f"n{b}", 0)}))
    if fail_at is not None:
        node = g.nodes[f"n{fail_at}"]
        g.nodes[node.id] = Node(
            node.id, "Fail", {"x": next(iter(node.inputs.values())), "fail": True}
        )
    for i in range(len(g.nodes)):
        g.add(Node(f"o{i}", "Echo", {"x": Link(f"n{i}", 0)}))
    return g


def evaluate(values, adds):
    out = list(values)
    for a, b in adds:
        out.append(out[a] + out[b])
    return out


def descendants(values, adds, start):
    found = {start}
    for i, (a, b) in enumerate(adds, start=len(values)):
        if a in found or b in found:
            found.add(i)
    return found


@given(dags(), st.data())
def test_random_dags(dag, data):
    values, adds = dag
    toys = make_toys()
    s = toys.scheduler(Cache())
    r = s.run(to_graph(values, adds))
    expected = evaluate(values, adds)
    assert r.status == "success"
    assert {k: v[0] for k, v in r.outputs.items()} == {f"o{i}": x for i, x in enumerate(expected)}

    changed = data.draw(st.integers(0, len(values) - 1))
    values2 = list(values)
    values2[changed] += 1000
    toys.calls.clear()
    r2 = s.run(to_graph(values2, adds))
    rerun = descendants(values, adds, changed)
    assert set(toys.calls) == {f"n{i}" for i in rerun} | {f"o{i}" for i in rerun}
    assert r2.outputs[f"o{len(expected) - 1}"] == (evaluate(values2, adds)[-1],)

    if adds:
        fail_at = data.draw(st.integers(len(values), len(values) + len(adds) - 1))
        r3 = toys.scheduler(Cache()).run(to_graph(values, adds, fail_at))
        below = descendants(values, adds, fail_at) - {fail_at}
        assert [f.node_id for f in r3.failures] == [f"n{fail_at}"]
        assert set(r3.skipped) == {f"n{i}" for i in below} | {f"o{i}" for i in below | {fail_at}}
        assert len(r3.outputs) == len(expected) - len(below) - 1
