"""The fast paths of the run's per-node work give what the general code gives: `executing`,
`executed` and `progress_state` encoded as the JSON encoder writes them, and the string-length check finding a long string
wherever the prompt holds it (a nested list, a key, a str subclass)."""

from __future__ import annotations

import json

import pytest

from latentgraph.server.messages import (
    _ENCODER,
    ProgressStates,
    _progress_state_text,
    encode_message,
)
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


@pytest.mark.parametrize("node, display, output", [
    ("12", "12", {"text": ["a\nb \"q\" ü"]}),
    ("7", "N3", {"images": [{"filename": "x.png", "subfolder": "", "type": "output"}]}),
    (None, None, {}),
    (5, True, {"value": [1.5, None, float("inf")], "obj": object}),  # odd ids, default=str
])  # fmt: skip
def test_executed_is_encoded_as_the_json_encoder_writes_it(node, display, output):
    data = {"node": node, "display_node": display, "output": output, "prompt_id": "p-1"}
    text = encode_message("executed", data)
    assert text == _ENCODER.encode({"type": "executed", "data": data})


@pytest.mark.parametrize("type_, data", [
    ("executing", {"node": "1", "display_node": "1", "prompt_id": "p", "extra": [1, 2]}),
    ("executing", {"prompt_id": "p", "node": "1", "display_node": "1"}),  # another key order
    ("executed", {"node": "1", "display_node": "1", "output": {}}),
    ("executed", {"output": {}, "node": "1", "display_node": "1", "prompt_id": "p"}),
])  # fmt: skip
def test_other_shapes_take_the_general_path(type_, data):
    assert encode_message(type_, data) == _ENCODER.encode({"type": type_, "data": data})


def _node_state(node_id, prompt_id, state="finished", value=1, top=1, parent=None):
    return {"value": value, "max": top, "state": state, "node_id": node_id,
            "prompt_id": prompt_id, "display_node_id": node_id, "parent_node_id": parent,
            "real_node_id": node_id}  # fmt: skip


@pytest.mark.parametrize("nodes", [
    {str(i): _node_state(str(i), "p-1") for i in range(100)},  # the end of a 100-node run
    {'q"uote\\n': _node_state('q"uote\\n', "p-1", "running", 0, 1),
     "ü☃": _node_state("ü☃", "p-1", "error", 2.5, float("inf"), parent="7")},
    {"a": {**_node_state("a", "p-1"), "display_node_id": "b", "real_node_id": 3,
           "prompt_id": None, "value": True}},  # fields not as ProgressStates makes them
    {},
])  # fmt: skip
def test_progress_state_is_encoded_as_the_json_encoder_writes_it(nodes):
    data = {"prompt_id": "p-1", "nodes": nodes}
    text = encode_message("progress_state", data)
    assert text == _ENCODER.encode({"type": "progress_state", "data": data})
    assert json.loads(text) == {"type": "progress_state", "data": data}
    assert _progress_state_text("p-1", nodes) is not None  # written from its parts


@pytest.mark.parametrize("data", [
    {"nodes": {"a": _node_state("a", "p")}, "prompt_id": "p"},  # another key order
    {"prompt_id": "p", "nodes": {"a": {**_node_state("a", "p"), "extra": 1}}},
    {"prompt_id": "p", "nodes": {1: _node_state("1", "p")}},  # a key the encoder converts
    {"prompt_id": "p", "nodes": [_node_state("a", "p")]},
])  # fmt: skip
def test_other_progress_state_shapes_take_the_general_path(data):
    assert encode_message("progress_state", data) == _ENCODER.encode({"type": "progress_state",
                                                                      "data": data})  # fmt: skip


def test_progress_states_sends_what_the_fast_path_encodes():
    """The node states `ProgressStates` builds are the shape the fast path writes (were they
    not, every `progress_state` would silently take the slower walk)."""
    sent = []
    states = ProgressStates("p-1", lambda t, d: sent.append(d), interval=0.0)
    states.set("n1", "running", 0, 1)
    states.set("n1", "finished", 1, 1)
    assert _progress_state_text(sent[-1]["prompt_id"], sent[-1]["nodes"]) is not None


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
    assert error["type"] == "custom_validation_failed" and where in error["message"]
    assert error["extra_info"]["latentgraph_type"] == "value_too_long"


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


@pytest.mark.parametrize("user_error", [True, False])
def test_execution_error_says_whether_the_node_refused_the_users_value(user_error):
    """`latentgraph submit` exits 2 for a value a node refused, 1 for a crash, as `run` does:
    the message says which (`user_error`) instead of the client guessing from class names."""
    from latentgraph.graph import events as ev
    from latentgraph.server.messages import RunTranslator

    sent: list[tuple[str, dict]] = []
    tr = RunTranslator("p", {"a": "X"}, send=lambda t, d: sent.append((t, d)))
    tr.handle(ev.RunStarted("p", nodes=["a"]))
    tr.handle(ev.NodeStarted("p", node_id="a", node_type="X"))
    tr.handle(ev.NodeFailed("p", node_id="a", node_type="X", message="no such file",
                            exception_type="NodeInputError", user_error=user_error))  # fmt: skip
    tr.finish(ev.RunFinished("p", status="failed"))
    [(kind, data)] = [(t, d) for t, d in sent if t == "execution_error"]
    assert data["user_error"] is user_error and data["exception_message"] == "no such file"


@pytest.mark.parametrize("own", [False, True], ids=["comfyui-client", "latentgraph-client"])
def test_latentgraph_messages_go_only_to_a_prompt_asking_for_them(own):
    """A prompt with `latentgraph_messages` in its extra_data (`submit`'s, `run --ray`'s) is
    also sent what `latentgraph run` prints and ComfyUI has no message for: each node's outputs
    described (`node_finished`, after its `executed`), its warning and its failure. Any other
    prompt (the editor's, which logs a message type it does not know as an error) gets only
    ComfyUI's messages, as they were; history keeps the warning and the failure either way."""
    from latentgraph.graph import events as ev
    from latentgraph.server.messages import RunTranslator

    sent: list[tuple[str, dict]] = []
    tr = RunTranslator("p", {"a": "X", "b": "Y"}, send=lambda t, d: sent.append((t, d)),
                       own_messages=own)  # fmt: skip
    tr.handle(ev.RunStarted("p", nodes=["a", "b"]))
    tr.handle(ev.NodeStarted("p", node_id="a", node_type="X"))
    tr.handle(ev.NodeWarning("p", node_id="a", message="cropped"))
    tr.handle(ev.NodeFinished("p", node_id="a", node_type="X", seconds=1.5,
                              summary=["latent: Latent"], ui={"text": ["hi"]}))  # fmt: skip
    tr.handle(ev.NodeStarted("p", node_id="b", node_type="Y"))
    tr.handle(ev.NodeFailed("p", node_id="b", node_type="Y", message="no",
                            exception_type="ValueError"))  # fmt: skip
    tr.finish(ev.RunFinished("p", status="failed"))
    kinds = [t for t, _ in sent if t != "progress_state"]
    comfy = ["execution_start", "executing", "executed", "executing", "execution_error"]
    if not own:
        assert kinds == comfy
    else:
        assert kinds == ["execution_start", "executing", "node_warning", "executed",
                         "node_finished", "executing", "node_error", "execution_error"]  # fmt: skip
        done = next(d for t, d in sent if t == "node_finished")
        assert done == {"prompt_id": "p", "node_id": "a", "node_type": "X", "seconds": 1.5,
                        "summary": ["latent: Latent"]}  # fmt: skip
    assert [t for t, _ in tr.history] == ["execution_start", "node_warning", "node_error",
                                          "execution_error"]  # fmt: skip
