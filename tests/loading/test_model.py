"""The graph container on its own."""

from __future__ import annotations

from latentgraph.graph.model import Graph, Node


def test_a_graph_knows_its_node_ids():
    graph = Graph()
    graph.add(Node("n1", "Const", {}))
    assert "n1" in graph and "n2" not in graph
