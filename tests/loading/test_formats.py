"""ComfyUI API prompts, /object_info, the JSON Schema and plugins, from the toy registry."""

from __future__ import annotations

import json
import math
import textwrap
import warnings
from pathlib import Path

import jsonschema
import pytest
import yaml

from latentgraph.graph.comfy_api import graph_from_prompt, prompt_body, prompt_from_graph
from latentgraph.graph.declare import Registry, default_registry
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.object_info import node_info, object_info
from latentgraph.graph.plugins import PluginFailure, PluginWarning, load_plugins
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.schema import workflow_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "workflows"

# --- ComfyUI API format --------------------------------------------------------------------


def test_prompt_links_values_titles_and_extras(registry):
    prompt = {
        "1": {"class_type": "Const", "inputs": {"value": 3}, "_meta": {"title": "Three"}},
        "2": {
            "class_type": "Scale",
            "inputs": {"x": ["1", 0], "seed": 5, "seed_control": "randomize", "note": "hi"},
        },
        "3": {"class_type": "Format", "inputs": {"template": {"__value__": ["a", 1]}}},
        "4": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
    }
    graph = graph_from_prompt(prompt, registry, source="api")
    assert graph.source == "api"
    assert graph["1"].title == "Three" and graph["2"].title is None
    assert graph["2"].inputs == {"x": Link("1", 0), "seed": 5, "note": "hi"}  # extra dropped
    assert graph["3"].inputs == {"template": ["a", 1]}
    back = prompt_from_graph(graph, registry)
    assert back["3"]["inputs"]["template"] == {"__value__": ["a", 1]}
    assert back["1"]["_meta"] == {"title": "Three"} and "_meta" not in back["2"]
    assert back["2"]["inputs"]["x"] == ["1", 0]
    assert json.loads(json.dumps(back)) == back


def test_unknown_class_keeps_inputs_for_validation(registry):
    graph = graph_from_prompt({"9": {"class_type": "Mystery", "inputs": {"q": 1}}}, registry)
    assert graph["9"].inputs == {"q": 1}


@pytest.mark.parametrize(
    ("prompt", "node_id"),
    [
        ({"1": {"inputs": {}}}, "1"),
        ({"1": "Const"}, "1"),
        ({"1": {"class_type": 5}}, "1"),
        ({"1": {"class_type": "Const", "inputs": [1]}}, "1"),
    ],
)
def test_invalid_prompts(registry, prompt, node_id):
    with pytest.raises(WorkflowError) as info:
        graph_from_prompt(prompt, registry)
    problem = info.value.problems[0]
    assert (problem.code, problem.node_id) == ("invalid_prompt", node_id)
    assert problem.location.file == "<prompt>"  # the default source names the place


def test_every_invalid_node_of_a_prompt_is_reported_with_why(registry):
    prompt = {"1": "Const", "2": {"inputs": {}}, "3": {"class_type": "Const", "inputs": [1]},
              "4": {"class_type": "Const", "inputs": {"value": 1}},
              "5": {"class_type": "Const", "inputs": "value"}}  # fmt: skip
    with pytest.raises(WorkflowError) as info:
        graph_from_prompt(prompt, registry, source="p.json")
    assert [(p.node_id, p.message, p.location.file) for p in info.value.problems] == [
        ("1", "a node must be an object with 'class_type' and 'inputs'", "p.json"),
        ("2", "the node has no 'class_type' (its node type name)", "p.json"),
        ("3", "'inputs' must be an object of input name to value", "p.json"),
        ("5", "'inputs' must be an object of input name to value", "p.json"),
    ]
    assert info.value.problems[2].node_type == "Const"


def test_a_document_with_nodes_or_version_is_never_a_prompt():
    """Our own format (or the editor's) whose keys happen to look like prompt nodes."""
    node = {"class_type": "Const", "inputs": {}}
    assert prompt_body({"nodes": node}) is None and prompt_body({"version": node}) is None
    assert prompt_body({"1": node}) == {"1": node}
    assert prompt_body({"prompt": {"1": node}, "client_id": "c"}) == {"1": node}


def test_missing_or_null_inputs_are_no_inputs(registry):
    prompt = {"1": {"class_type": "Const"}, "2": {"class_type": "Const", "inputs": None}}
    graph = graph_from_prompt(prompt, registry)
    assert graph["1"].inputs == {} and graph["2"].inputs == {}


def test_prompt_not_a_dict(registry):
    with pytest.raises(WorkflowError) as info:
        graph_from_prompt([1, 2], registry)
    (problem,) = info.value.problems
    assert problem.code == "invalid_prompt" and problem.location.file == "<prompt>"
    assert problem.message == "the prompt must be an object of node id to node"


def test_a_prompt_graph_speaks_comfy_and_a_value_dict_literal_round_trips(registry):
    graph = graph_from_prompt({"1": {"class_type": "Mystery", "inputs": {"q": 1}}}, registry)
    assert graph.dialect == "comfy"  # unknown types are then explained as ComfyUI nodes
    literal = Graph(source="x")
    literal.add(Node("1", "Mystery", {"q": {"__value__": 7}, "r": {"a": 1}}))
    wire = prompt_from_graph(literal, registry)["1"]["inputs"]
    assert wire == {"q": {"__value__": {"__value__": 7}}, "r": {"a": 1}}
    assert graph_from_prompt({"1": {"class_type": "Mystery", "inputs": wire}})["1"].inputs == {
        "q": {"__value__": 7}, "r": {"a": 1}}  # fmt: skip


def test_malformed_link_is_a_validation_error(registry):
    graph = graph_from_prompt(
        {"1": {"class_type": "Const"}, "2": {"class_type": "Show", "inputs": {"value": ["1"]}}},
        registry,
    )
    from latentgraph.graph.validate import validate

    codes = {(p.code, p.node_id, p.input_name) for p in validate(graph, registry)}
    assert ("bad_linked_input", "2", "value") in codes


# --- /object_info --------------------------------------------------------------------------


def test_object_info_shape(registry):
    info = object_info(registry)
    assert sorted(info) == registry.names()
    scale = info["Scale"]
    assert set(scale) >= {
        "input", "input_order", "output", "output_is_list", "output_name", "name",
        "display_name", "description", "python_module", "category", "output_node",
    }  # fmt: skip
    assert scale["input"]["hidden"] == {} and scale["input"]["optional"] == {}
    req = scale["input"]["required"]
    assert scale["input_order"]["required"] == [
        "x", "factor", "free", "seed", "flip", "mode", "note", "width", "height",
    ]  # fmt: skip
    assert list(req) == scale["input_order"]["required"]
    assert req["x"] == ["NUMBER", {}]
    assert req["factor"] == ["FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}]
    assert req["seed"][1]["control_after_generate"] is True
    assert req["seed"][1]["min"] == -(2**63)
    assert req["flip"] == ["BOOLEAN", {"default": False}]
    assert req["mode"] == [["fast", "slow", "exact"], {"default": "fast"}]
    assert req["note"] == ["STRING", {"default": "", "multiline": False}]
    assert math.isfinite(req["free"][1]["max"]) and req["free"][1]["min"] == -1e308
    assert scale["output"] == ["NUMBER"] and scale["output_name"] == ["y"]
    assert scale["output_is_list"] == [False] and scale["output_node"] is False
    assert info["Show"]["output_node"] is True and info["Show"]["output"] == []
    assert info["Add"]["input"]["optional"] == {"b": ["NUMBER", {}]}
    assert info["Add"]["input_order"] == {"required": ["a"], "optional": ["b"]}
    text = json.dumps(info, allow_nan=False)  # JSON without NaN or Infinity
    assert json.loads(text) == info


def test_node_info_of_files_picker_and_forced_input():
    from latentgraph.graph.declare import Choice, Input, Int, NodeType

    node_type = NodeType(
        "Pick",
        fn=lambda ctx, **kw: None,
        inputs=(
            Choice("image", lambda settings: ["a.png", "b.png"], image_upload=True),
            Input("n", "INT", kind="socket"),
            Int("k", 2, description="how many"),
        ),
        outputs=(),
        module="plug.pick",
        category="image/load",
    )
    info = node_info(node_type)
    req = info["input"]["required"]
    assert req["image"] == [["a.png", "b.png"], {"default": "a.png", "image_upload": True}]
    assert req["n"] == ["INT", {"forceInput": True}]
    assert req["k"][1]["tooltip"] == "how many" and req["k"][1]["default"] == 2
    assert (info["python_module"], info["category"]) == ("custom_nodes.plug.pick", "image/load")
    node_type.module = "latentgraph.nodes.images"
    assert node_info(node_type)["python_module"] == "nodes"  # built-ins show as core nodes


# --- JSON Schema ---------------------------------------------------------------------------


GOOD = """\
version: 1
params: {n: 3}
nodes:
  c: {type: Const, value: $n}
  s: {type: Scale, x: c, factor: {from: c.value}, mode: slow, note: "n=$n"}
  o: {type: Show, value: s.y}
"""


def test_schema_accepts_good_and_flags_bad_documents(registry):
    schema = workflow_schema(registry)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    assert list(validator.iter_errors(yaml.safe_load(GOOD))) == []
    for bad in (
        "nodes: {c: {type: Nope}}",
        "nodes: {c: {type: Const, value: 5000}}",
        "nodes: {c: {type: Const, valeu: 1}}",
        "nodes: {s: {type: Scale, mode: medium, x: c}}",
        "nodes: {s: {type: Scale}}",
        "nodes: {c: {type: Const}}\nextra: 1",
    ):
        assert list(validator.iter_errors(yaml.safe_load(bad))), bad
    json.dumps(schema, allow_nan=False)


def test_default_registry_schema_and_object_info_describe_the_built_in_nodes():
    """What the editor and the schema see of the built-in nodes, after a JSON round trip."""
    import latentgraph.nodes  # noqa: F401 - registers them (alone, nothing else here has)

    info = json.loads(json.dumps(object_info(), allow_nan=False))
    assert set(info) == set(default_registry.names())
    denoise = info["UNetDenoise"]
    assert denoise["input"]["required"]["latent"] == ["LATENT", {}]
    assert denoise["input"]["required"]["steps"][1] | {"tooltip": None} == {
        "default": 20, "min": 1, "max": 10000, "step": 1, "tooltip": None}  # fmt: skip
    assert denoise["output"] == ["LATENT"] and denoise["output_node"] is False
    assert info["SaveImage"]["output_node"] is True

    schema = json.loads(json.dumps(workflow_schema(), allow_nan=False))
    validator = jsonschema.Draft7Validator(schema)
    with open(EXAMPLES / "txt2img.yaml") as fh:
        good = yaml.safe_load(fh)
    assert list(validator.iter_errors(good)) == []
    good["nodes"]["denoise"]["steps"] = 0  # below UNetDenoise's minimum
    assert [list(e.absolute_path) for e in validator.iter_errors(good)] == [
        ["nodes", "denoise", "steps"]
    ]
    good["nodes"]["denoise"]["steps"] = 20
    good["nodes"]["denoise"]["stepz"] = 20  # not an input of UNetDenoise
    assert [list(e.absolute_path) for e in validator.iter_errors(good)] == [["nodes", "denoise"]]


# --- plugins -------------------------------------------------------------------------------


def test_plugins_from_a_folder_with_a_broken_one(tmp_path):
    (tmp_path / "good.py").write_text(
        textwrap.dedent(
            """
            from latentgraph.graph import node, Output, Int

            @node("PluginToyNodeGood", inputs=[Int("v", 1)], outputs=[Output("v", "NUMBER")])
            def good(ctx, v):
                return v
            """
        )
    )
    (tmp_path / "bad.py").write_text("raise RuntimeError('plugin exploded')\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from . import inner\n")
    (tmp_path / "pkg" / "inner.py").write_text(
        "from latentgraph.graph import node\n"
        "@node('PluginToyNodePkg', output_node=True)\n"
        "def f(ctx):\n    return ()\n"
    )
    (tmp_path / "notes.txt").write_text("not python")
    target = Registry()
    failures: list[PluginFailure] = []
    loaded = load_plugins([tmp_path], entry_points=False, registry=target, errors=failures)
    assert sorted(loaded) == [str(tmp_path / "good.py"), str(tmp_path / "pkg")]
    assert [f.origin for f in failures] == [str(tmp_path / "bad.py")]
    assert "plugin exploded" in failures[0].message and "bad.py" in str(failures[0])
    assert "PluginToyNodeGood" in target and "PluginToyNodePkg" in target
    assert "PluginToyNodeGood" in default_registry
    # Loading again is a no-op (no "already registered" failure), and warnings are the default.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_plugins([tmp_path], entry_points=False)
    assert str(tmp_path / "good.py") in again
    assert [str(w.message) for w in caught if w.category is PluginWarning] == [
        f"node plugin {tmp_path / 'bad.py'} failed to load: RuntimeError: plugin exploded "
        f"({tmp_path / 'bad.py'}:1)"
    ]


def test_missing_plugin_folder_is_reported(tmp_path):
    failures: list[PluginFailure] = []
    assert load_plugins([tmp_path / "nope"], entry_points=False, errors=failures) == []
    assert failures[0].message == "not a directory"


def test_entry_point_plugins_are_loaded_and_a_broken_one_is_reported(
    tmp_path, monkeypatch, fresh_entry_points
):
    import importlib.metadata

    (tmp_path / "lg_ep_good.py").write_text(
        "from latentgraph.graph import node\n"
        "@node('PluginToyNodeEntryPoint', output_node=True)\n"
        "def f(ctx):\n    return ()\n"
    )
    (tmp_path / "lg_ep_bad.py").write_text("raise ImportError('missing dependency')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    group = "latentgraph.nodes"
    installed = [importlib.metadata.EntryPoint("good", "lg_ep_good", group),
                 importlib.metadata.EntryPoint("bad", "lg_ep_bad", group),
                 importlib.metadata.EntryPoint("other", "lg_ep_bad", "another.group")]  # fmt: skip
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [e for e in installed if e.group == group])  # fmt: skip
    target = Registry()
    failures: list[PluginFailure] = []
    loaded = load_plugins([], entry_points=True, registry=target, errors=failures)
    assert loaded == ["lg_ep_good"] and "PluginToyNodeEntryPoint" in target
    assert [(f.origin, f.message) for f in failures] == [
        ("bad = lg_ep_bad", "ImportError: missing dependency")
    ]
    assert load_plugins([], entry_points=False, registry=Registry(), errors=failures) == []


def test_graph_from_prompt_without_a_registry_keeps_unknown_types():
    graph = graph_from_prompt({"1": {"class_type": "NoSuchNodeAnywhere", "inputs": {}}})
    assert isinstance(graph, Graph) and graph["1"] == Node("1", "NoSuchNodeAnywhere", {})


def test_plugin_calling_exit_does_not_stop_the_host(tmp_path):
    (tmp_path / "quitter.py").write_text("import sys\nsys.exit(3)\n")
    failures: list[PluginFailure] = []
    assert load_plugins([tmp_path], entry_points=False, errors=failures) == []
    assert failures[0].origin == str(tmp_path / "quitter.py")
    assert failures[0].message == "SystemExit: 3"
