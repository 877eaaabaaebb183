"""An input's `canonical` hook gives the form of its literal that the cache key holds: the
spellings it says are one value share a key, every other input (and every node type declaring
no hook) is keyed as written, and the identity hook still sees the value as written."""

from __future__ import annotations

import hashlib

import pytest

from latentgraph.graph import INT, Int, NodeType, Output, Registry, Settings, String, node
from latentgraph.graph.cache import _CANON, Cache, node_key
from latentgraph.graph.model import Graph, Node
from latentgraph.graph.scheduler import Scheduler

SETTINGS = Settings()


def folded(value, settings):
    """Text keyed in lower case: 'A' and 'a' are one value for the toy node."""
    return value.lower() if isinstance(value, str) else value


def test_spellings_the_hook_folds_share_a_key_and_run_once():
    reg, seen, calls = Registry(), [], []

    @node("Named", inputs=[String("name", canonical=folded), String("other", "x")],
          outputs=[Output("n", INT)], registry=reg,
          identity=lambda lits, settings: seen.append(dict(lits)) or "")  # fmt: skip
    def named(ctx, name, other):
        calls.append(name)
        return len(name)

    nt = reg["Named"]
    key = lambda **lits: node_key(nt, lits, {}, SETTINGS)  # noqa: E731
    assert key(name="Cat", other="x") == key(name="cAT", other="x")
    assert key(name="cat", other="x") != key(name="cat", other="X")  # no hook: as written
    assert key(name="cat", other="x") != key(name="dog", other="x")
    assert {"name": "Cat", "other": "x"} in seen  # identity is given the value as written

    sched = Scheduler(reg, Cache())
    for spelling in ("Cat", "CAT", "cat"):
        g = Graph()
        g.add(Node("1", "Named", {"name": spelling}))
        assert sched.run(g, targets=["1"]).ok
    assert calls == ["Cat"]


def test_a_node_type_without_a_hook_is_keyed_by_its_literals_as_written():
    """The key of every node whose inputs declare no hook is what it was before hooks."""
    nt = NodeType("T", fn=lambda ctx, a, b: 0, inputs=(Int("a", 0), String("b", "")),
                  outputs=(Output("v", INT),))  # fmt: skip
    literals = {"a": 3, "b": "./x.png"}
    assert nt.key_literals(literals, SETTINGS) is literals
    expected = hashlib.sha256(
        "\0".join(["T", "1", nt.code.digest(), _CANON.encode(literals)]).encode()
    )
    assert node_key(nt, literals, {}, SETTINGS) == expected.hexdigest()


def test_a_canonical_hook_that_is_not_callable_is_refused_when_the_node_is_declared():
    with pytest.raises(ValueError) as info:

        @node("Bad", inputs=[String("name", canonical="lower")], registry=Registry())
        def bad(ctx, name):
            return None

    assert str(info.value) == (
        "node type 'Bad' input 'name': canonical 'lower' is not callable; expected a function "
        "(value, settings) -> the value its cache key holds"
    )
