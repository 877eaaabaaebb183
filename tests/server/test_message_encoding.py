"""The fast paths of the run's per-node work give what the general code gives: `executing`
encoded as the JSON encoder writes it, and the string-length check finding a long string
wherever the prompt holds it (a nested list, a key, a str subclass)."""

from __future__ import annotations

import json

import pytest

from latentgraph.server.messages import _ENCODER, encode_message
from latentgraph.server.prompts import PromptRejected, check_string_lengths


@pytest.mark.parametrize("node, prompt_id", [
    ("12", "6f1e2c3a-0000-4000-8000-123456789abc"),
    (None, "p"),  # the end of a run
    ('q"uote\\back\nslash', "ü☃\U0001f600"),
    ("x", None),
])  # fmt: skip
def test_executing_is_encoded_as_the_json_encoder_writes_it(node, prompt_id):
    data = {"node": node, "display_node": node, "prompt_id": prompt_id}
    text = encode_message("executing", data)
    assert text == _ENCODER.encode({"type": "executing", "data": data})
    assert json.loads(text) == {"type": "executing", "data": data}


def test_other_executing_shapes_take_the_general_path():
    data = {"node": "1", "display_node": "1", "prompt_id": "p", "extra": [1, 2]}
    assert json.loads(encode_message("executing", data))["data"] == data


class Text(str):
    pass


@pytest.mark.parametrize("spec, where", [
    ({"class_type": "T", "inputs": {"a": ["1", 0], "b": [["x" * 11]]}}, "input 'b'"),
    ({"class_type": "T", "inputs": {"k" * 11: 1}}, "input 'kkkkkkkkkkk'"),
    ({"class_type": "T", "inputs": {"a": Text("y" * 11)}}, "input 'a'"),
    ({"class_type": "T" * 11, "inputs": {}}, "class_type"),
])  # fmt: skip
def test_a_long_string_anywhere_in_a_node_is_refused_naming_where(spec, where):
    prompt = {"1": {"class_type": "T", "inputs": {"a": "short", "b": [1, 2.5, None, True]}},
              "2": spec}  # fmt: skip
    check_string_lengths({"1": prompt["1"]}, 10)  # nothing longer than 10: passes
    with pytest.raises(PromptRejected) as caught:
        check_string_lengths(prompt, 10)
    [error] = caught.value.body["node_errors"]["2"]["errors"]
    assert error["type"] == "value_too_long" and where in error["message"]


def test_a_long_node_id_is_refused():
    with pytest.raises(PromptRejected) as caught:
        check_string_lengths({"n" * 11: {"class_type": "T", "inputs": {}}}, 10)
    [entry] = caught.value.body["node_errors"].values()
    assert entry["errors"][0]["message"].startswith("its id is 11 characters long")


def test_node_states_keep_a_nodes_progress_when_it_finishes_or_fails():
    from latentgraph.graph import events as ev
    from latentgraph.server.messages import RunTranslator

    sent: list[tuple[str, dict]] = []
    tr = RunTranslator("p", {}, send=lambda t, d: sent.append((t, d)),
                       schedule=lambda delay, fn: None)  # fmt: skip
    tr.handle(ev.RunStarted("p", nodes=["a", "b", "c"]))
    tr.handle(ev.NodeStarted("p", node_id="a", node_type="X"))
    tr.handle(ev.NodeProgress("p", node_id="a", value=3, max=9))
    tr.handle(ev.NodeFinished("p", node_id="a", node_type="X", cached=False, seconds=0.0))
    tr.handle(ev.NodeStarted("p", node_id="b", node_type="X"))
    tr.handle(ev.NodeProgress("p", node_id="b", value=2, max=5))
    tr.handle(ev.NodeFailed("p", node_id="b", node_type="X", message="no",
                            exception_type="ValueError"))  # fmt: skip
    tr.handle(ev.NodeStarted("p", node_id="c", node_type="X"))
    tr.handle(ev.RunFinished("p", status="failed"))
    nodes = [d for t, d in sent if t == "progress_state"][-1]["nodes"]
    assert {n: (s["state"], s["value"], s["max"]) for n, s in nodes.items()} == {
        "a": ("finished", 9, 9), "b": ("error", 2, 5), "c": ("running", 0, 1)}  # fmt: skip
    assert list(nodes) == ["a", "b", "c"]  # the order they last changed in
