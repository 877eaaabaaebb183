"""A link between sockets of different types is an error on the receiving input."""

from __future__ import annotations

import pytest

from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.validate import validate
from latentgraph.graph.workflow import load_workflow


def errors(graph: Graph, registry) -> list:
    return [p for p in validate(graph, registry) if p.severity == "error"]


def test_text_output_into_a_number_socket_is_refused(registry):
    text = "nodes:\n  f: {type: Format, template: 'x'}\n  o: {type: ShowNumber, value: f.text}\n"
    graph = load_workflow("w.yaml", text=text, registry=registry).graph
    [problem] = errors(graph, registry)
    assert (problem.code, problem.node_id, problem.input_name) == (
        "return_type_mismatch", "o", "value")  # fmt: skip
    assert "NUMBER" in problem.message and "TEXT" in problem.message
    assert problem.location.line == 3


@pytest.mark.parametrize(
    "source, target, ok",
    [("Const", "ShowNumber", True),  # NUMBER -> NUMBER
     ("Format", "Show", True),  # TEXT -> ANY
     ("Const", "Show", True),  # NUMBER -> ANY
     ("Format", "ShowNumber", False)],  # TEXT -> NUMBER
)  # fmt: skip
def test_socket_types_must_match_unless_one_is_any(registry, source, target, ok):
    graph = Graph()
    graph.add(Node("s", source, {"template": "x"} if source == "Format" else {}))
    graph.add(Node("t", target, {"value": Link("s", 0)}))
    found = [(p.code, p.node_id, p.input_name) for p in errors(graph, registry)]
    assert found == ([] if ok else [("return_type_mismatch", "t", "value")])
