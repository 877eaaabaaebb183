"""BOOLEAN literals of an API-format prompt: what clients send besides true/false (0/1, the
text "true"/"false") runs as the boolean it means; anything else is refused, named."""

from __future__ import annotations

import pytest

from latentgraph.graph import Settings
from latentgraph.graph.cache import Cache
from latentgraph.graph.scheduler import Scheduler
from latentgraph.server.prompts import PromptRejected, check_prompt
from latentgraph.wiring import node_registry


@pytest.fixture(scope="module")
def registry():
    return node_registry()


def boolean_prompt(value) -> dict:
    return {"1": {"class_type": "PrimitiveBoolean", "inputs": {"value": value}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}  # fmt: skip


@pytest.mark.parametrize(
    ("sent", "runs"),
    [(True, True), (False, False), (1, True), (0, False), (1.0, True), ("true", True),
     ("false", False), ("FALSE", False), (" True ", True)],
)  # fmt: skip
def test_a_boolean_literal_runs_as_the_boolean_it_means(registry, sent, runs):
    checked, graph = check_prompt(boolean_prompt(sent), registry, Settings())
    assert checked.node_errors == {}
    value = graph.nodes["1"].inputs["value"]
    assert value is runs
    result = Scheduler(registry, Cache()).run(graph, targets=["1", "2"])
    assert result.status == "success"
    assert result.output("1") is runs


@pytest.mark.parametrize("sent", [2, -1, 0.5, "yes", "0", "", None, {"__value__": [True]}])
def test_any_other_boolean_literal_is_refused_naming_the_input(registry, sent):
    with pytest.raises(PromptRejected) as caught:
        check_prompt(boolean_prompt(sent), registry, Settings())
    [error] = caught.value.body["node_errors"]["1"]["errors"]
    assert error["type"] == "invalid_input_type"
    assert error["extra_info"]["input_name"] == "value"
    assert error["extra_info"]["received_value"] == sent
    assert "true or false" in error["details"] + error["message"]
