"""A node's warning is said again when its values, or values computed from them, are served from
the cache: a second run of a workflow warns as the first did (the run's events and its result)."""

from __future__ import annotations

import pytest

from latentgraph.graph.cache import Cache
from latentgraph.graph.events import NodeWarning
from latentgraph.graph.model import Link, Node

from .conftest import build


def _warnings(toys, graph, cache):
    events: list = []
    result = toys.scheduler(cache).run(graph, on_event=events.append)
    said = [(e.node_id, e.message) for e in events if isinstance(e, NodeWarning)]
    assert said == [(w.node_id, w.message) for w in result.warnings]
    return said, result


def test_a_second_run_served_from_the_cache_says_the_warning_of_the_node_behind_it(toys):
    graph = build({"c": ("Const", {"value": 2}), "s": ("Steps", {"x": "@c", "n": 2}),
                   "e": ("Echo", {"x": "@s"})})  # fmt: skip
    cache = Cache()
    first, _ = _warnings(toys, graph, cache)
    second, result = _warnings(toys, graph, cache)
    assert first == second == [("s", "careful")]
    assert result.cached == ["e"] and toys.calls["s"] == 1  # the node that warned did not run


def test_the_warning_is_said_once_per_run_however_many_cached_values_it_is_behind(toys):
    graph = build({"c": ("Const", {"value": 2}), "s": ("Steps", {"x": "@c", "n": 2}),
                   "a": ("Inc", {"x": "@s"}), "b": ("Inc", {"x": "@s", "by": 2}),
                   "sum": ("Add", {"a": "@a", "b": "@b"}), "e": ("Echo", {"x": "@sum"}),
                   "f": ("Echo", {"x": "@a"})})  # fmt: skip
    cache = Cache()
    assert _warnings(toys, graph, cache)[0] == [("s", "careful")]
    assert _warnings(toys, graph, cache)[0] == [("s", "careful")]
    graph.add(Node("g", "Echo", {"x": Link("s", 0)}))  # "g" runs on "s", itself cached now
    said, result = _warnings(toys, graph, cache)
    assert said == [("s", "careful")] and result.executed == ["g"]


def test_the_warning_survives_in_the_disk_store(toys, tmp_path):
    """Another process (a later `latentgraph run`) reads the entry from disk: its warnings too."""
    graph = build({"c": ("Const", {"value": 2}), "s": ("Steps", {"x": "@c", "n": 2}),
                   "e": ("Echo", {"x": "@s"})})  # fmt: skip
    assert _warnings(toys, graph, Cache(disk_dir=tmp_path))[0] == [("s", "careful")]
    again, result = _warnings(toys, graph, Cache(disk_dir=tmp_path))
    assert again == [("s", "careful")] and result.cached == ["e"]


def test_a_warning_behind_a_non_deterministic_node_is_said_at_its_node(toys):
    """Below a non-deterministic node keys come from its outputs' content: the cached node is
    served after that node runs, and the warning is still placed at the node that said it."""
    toys.random_values[:] = [5, 5]
    graph = build({"r": ("Rand", {}), "s": ("Steps", {"x": "@r", "n": 2}),
                   "e": ("Echo", {"x": "@s"})})  # fmt: skip
    cache = Cache()
    assert _warnings(toys, graph, cache)[0] == [("s", "careful")]
    again, result = _warnings(toys, graph, cache)
    assert again == [("s", "careful")] and result.cached == ["s", "e"]


def test_latentgraph_run_twice_warns_both_times(toys, tmp_path):
    from latentgraph import api

    path = tmp_path / "wf.yaml"
    path.write_text("version: 1\nnodes:\n  c: {type: Const, value: 3}\n"
                    "  s: {type: Steps, x: c, n: 2}\n  out: {type: Echo, x: s}\n")  # fmt: skip
    cache = Cache()
    for _ in range(2):
        events: list = []
        result = api.run(path, registry=toys.registry, cache=cache, on_event=events.append)
        said = [(e.node_id, e.message) for e in events if isinstance(e, NodeWarning)]
        assert said == [(w.node_id, w.message) for w in result.warnings] == [("s", "careful")]
    assert result.cached == ["out"]


APART = {"c": ("Const", {"value": 2}), "s": ("Steps", {"x": "@c", "n": 2}),
         "t": ("Steps", {"x": "@c", "n": 2}), "e": ("Echo", {"x": "@s"}),
         "f": ("Echo", {"x": "@t"})}  # fmt: skip
JOINED = {"c": ("Const", {"value": 2}), "s": ("Steps", {"x": "@c", "n": 2}),
          "t": ("Steps", {"x": "@c", "n": 2}), "sum": ("Add", {"a": "@s", "b": "@t"}),
          "e": ("Echo", {"x": "@sum"})}  # fmt: skip


@pytest.mark.parametrize("spec", [APART, JOINED, {**APART, "c": ("Rand", {})}],
                         ids=["apart", "joined", "below-random"])  # fmt: skip
def test_two_identical_nodes_each_say_their_warning_again_from_the_cache(toys, spec):
    """Two nodes with the same inputs share a cache key: the second run said the warning of
    only the first (found by its key), dropping the other's. Each says its own again, as the
    fresh run did: each on its own path, on a path they share, and below a non-deterministic
    node (their keys found as the run goes)."""
    toys.random_values[:] = [5, 5]
    graph, cache = build(spec), Cache()
    first, _ = _warnings(toys, graph, cache)
    again, result = _warnings(toys, graph, cache)
    assert first == again == [("s", "careful"), ("t", "careful")]
    assert "s" not in result.executed and "t" not in result.executed


def test_a_node_that_runs_after_its_warning_was_said_again_from_the_cache_is_not_heard_twice(
        toys):  # fmt: skip
    """A LoRA warning was printed twice by `latentgraph run` with another seed: said again at
    the start for the cached prompts computed from the LoRA's model, then by the LoRA node
    itself, which ran again since a model is not kept on disk. Said once per run: the
    first, and still kept with the node's new values."""
    graph = build({"c": ("Const", {"value": 2}), "s": ("Steps", {"x": "@c", "n": 2}),
                   "a": ("Inc", {"x": "@s"}), "e": ("Echo", {"x": "@a"})})  # fmt: skip
    cache = Cache()
    assert _warnings(toys, graph, cache)[0] == [("s", "careful")]
    assert cache.memory.discard(lambda v: v == 2) == 2  # s's value (and c's) gone, not e's
    graph.add(Node("g", "Echo", {"x": Link("s", 0)}))  # needs s: it runs again
    said, result = _warnings(toys, graph, cache)
    assert said == [("s", "careful")] and "e" in result.cached and toys.calls["s"] == 2
    again, result = _warnings(toys, graph, cache)  # g's value, computed this time, says it too
    assert again == [("s", "careful")] and result.cached == ["e", "g"]
