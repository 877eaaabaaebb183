"""The graph container on its own."""

from __future__ import annotations

from latentgraph.graph.model import Graph, Node


def test_a_graph_knows_its_node_ids():
    graph = Graph()
    graph.add(Node("n1", "Const", {}))
    assert "n1" in graph and "n2" not in graph


def test_adding_a_node_id_twice_is_refused_not_a_silent_replacement():
    import pytest

    graph = Graph()
    first = graph.add(Node("add", "Const", {"value": 1}))
    with pytest.raises(ValueError, match="node id 'add' is already in the graph"):
        graph.add(Node("add", "Const", {"value": 2}))
    assert graph["add"] is first
