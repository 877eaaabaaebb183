"""ComfyUI semantics that published workflows rely on: widget inputs fed by links, editor
files whose seed control value is a boolean, old group nodes, `--set <node>.<input>`, and
unknown node types named as ComfyUI nodes latentgraph lacks."""

from __future__ import annotations

import copy
import json

import pytest

from latentgraph.cli import main
from latentgraph.graph import default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.comfy_editor import graph_from_editor
from latentgraph.graph.model import Link
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.validate import validate

from .conftest import DATA


@pytest.fixture(autouse=True, scope="module")
def _builtin_nodes():
    """The process registry with the built-in nodes, as the command and server load it."""
    from latentgraph.wiring import node_registry

    node_registry()


def errors(graph) -> list:
    return [p for p in validate(graph) if p.severity == "error"]


# --- every widget accepts a link of its type --------------------------------------------------


def test_widgets_take_links_in_api_format(classic_api):
    prompt = copy.deepcopy(classic_api)
    prompt["20"] = {"class_type": "PrimitiveString", "inputs": {"value": "a fox"}}
    prompt["21"] = {"class_type": "PrimitiveString", "inputs": {"value": ["20", 0]}}
    prompt["22"] = {"class_type": "PrimitiveInt", "inputs": {"value": 99}}
    prompt["6"]["inputs"]["text"] = ["21", 0]
    prompt["3"]["inputs"]["seed"] = ["22", 0]
    prompt["23"] = {"class_type": "PreviewAny", "inputs": {"source": ["21", 0]}}
    graph = graph_from_prompt(prompt)
    assert errors(graph) == []
    result = Scheduler().run(graph, targets=["23"])
    assert result.ok and result.ui["23"] == {"text": ["a fox"]}


def test_a_link_of_another_type_is_still_refused(classic_api):
    prompt = copy.deepcopy(classic_api)
    prompt["22"] = {"class_type": "PrimitiveInt", "inputs": {"value": 99}}
    prompt["6"]["inputs"]["text"] = ["22", 0]
    [problem] = errors(graph_from_prompt(prompt))
    assert (problem.code, problem.node_id, problem.input_name) == ("return_type_mismatch", "6",
                                                                    "text")  # fmt: skip


def test_widget_converted_to_an_input_in_editor_format():
    editor = {
        "nodes": [
            {"id": 1, "type": "PrimitiveString", "inputs": [], "widgets_values": ["hi"],
             "outputs": [{"name": "STRING", "type": "STRING", "links": [1]}]},
            {"id": 2, "type": "StringConcatenate", "widgets_values": ["unused", "there", "-"],
             "inputs": [{"name": "string_a", "type": "STRING", "widget": {"name": "string_a"},
                         "link": 1}],
             "outputs": [{"name": "STRING", "type": "STRING", "links": [2]}]},
            {"id": 3, "type": "PreviewAny", "widgets_values": [],
             "inputs": [{"name": "source", "type": "*", "link": 2}], "outputs": []},
        ],
        "links": [[1, 1, 0, 2, 0, "STRING"], [2, 2, 0, 3, 0, "STRING"]],
    }  # fmt: skip
    graph = graph_from_editor(editor)
    assert graph["2"].inputs["string_a"] == Link("1", 0)
    result = Scheduler().run(graph)
    assert result.ok and result.ui["3"] == {"text": ["hi-there"]}


def test_from_links_a_widget_in_our_yaml(tmp_path):
    from latentgraph.graph.workflow import load_workflow

    text = """version: 1
nodes:
  word: {type: PrimitiveString, value: fox}
  join: {type: StringConcatenate, string_a: {from: word.STRING}, string_b: es}
  show: {type: PreviewAny, source: join}
"""
    graph = load_workflow("w.yaml", text=text).graph
    assert Scheduler().run(graph).ui["show"] == {"text": ["foxes"]}


# --- widgets_values mapped by declaration -----------------------------------------------------


def _with_ksampler_values(classic_editor: dict, values: list) -> dict:
    data = copy.deepcopy(classic_editor)
    [sampler] = [n for n in data["nodes"] if n["type"] == "KSampler"]
    sampler["widgets_values"] = values
    return data


def test_boolean_seed_control_value_is_skipped(classic_editor):
    data = _with_ksampler_values(classic_editor, [156680208700286, True, 20, 8, "euler",
                                                  "normal", 1])  # fmt: skip
    inputs = graph_from_editor(data)["3"].inputs
    assert {k: inputs[k] for k in ("seed", "steps", "cfg", "sampler_name", "scheduler",
                                   "denoise")} == {  # fmt: skip
        "seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler",
        "scheduler": "normal", "denoise": 1}  # fmt: skip


@pytest.mark.parametrize(
    "values",
    [
        [5, "fixed", 20, 8, "normal", 1],  # sampler_name left out: the rest would shift
        [5, "fixed", 20, 8, "euler", "normal", 1, "extra"],  # a value too many
    ],
)
def test_widget_values_that_do_not_fit_are_refused(classic_editor, values, tmp_path, capsys):
    data = _with_ksampler_values(classic_editor, values)
    with pytest.raises(WorkflowError) as caught:
        graph_from_editor(data)
    [problem] = caught.value.problems
    assert problem.node_id == "3" and "KSampler" in problem.message
    assert "seed (+ control value), steps, cfg, sampler_name" in problem.message
    src = tmp_path / "shifted.json"
    src.write_text(json.dumps(data))
    assert main(["convert", str(src), str(tmp_path / "out.yaml")]) == 2  # never written shifted
    assert not (tmp_path / "out.yaml").exists()


# --- old group nodes --------------------------------------------------------------------------


def _grouped(classic_editor: dict, inner_extra: list | None = None) -> dict:
    """The classic graph with its two prompts in group node 10 and the empty latent + sampler
    in group node 11, as the editor's 'Convert to Group Node' saved them."""
    data = copy.deepcopy(classic_editor)
    by_id = {n["id"]: n for n in data["nodes"]}
    pos, neg, latent, sampler = by_id[6], by_id[7], by_id[5], by_id[3]

    def inner(node: dict) -> dict:
        body = {k: copy.deepcopy(v) for k, v in node.items() if k not in ("id", "pos", "order")}
        for inp in body.get("inputs", []):
            inp["link"] = None
        for out in body.get("outputs", []):
            out["links"] = []
        return body

    prompts = {"nodes": [inner(pos), inner(neg)] + (inner_extra or []), "links": [],
               "external": [[0, 0, "CONDITIONING"], [1, 0, "CONDITIONING"]]}  # fmt: skip
    sampling = {"nodes": [inner(latent), inner(sampler)],
                "links": [[0, 0, 1, 3, 5, "LATENT"]], "external": [[1, 0, "LATENT"]]}  # fmt: skip
    data["extra"]["groupNodes"] = {"prompts": prompts, "sampling": sampling}
    data["nodes"] = [n for n in data["nodes"] if n["id"] not in (3, 5, 6, 7)] + [
        {"id": 10, "type": "workflow>prompts", "mode": 0,
         "inputs": [{"name": "clip", "type": "CLIP", "link": 3},
                    {"name": "CLIPTextEncode clip", "type": "CLIP", "link": 5}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [4]},
                     {"name": "CLIPTextEncode CONDITIONING", "type": "CONDITIONING",
                      "links": [6]}],
         "widgets_values": ["a red fox in the snow", "blurry"]},
        {"id": 11, "type": "workflow>sampling", "mode": 0,
         "inputs": [{"name": "model", "type": "MODEL", "link": 1},
                    {"name": "positive", "type": "CONDITIONING", "link": 4},
                    {"name": "negative", "type": "CONDITIONING", "link": 6}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [7]}],
         "widgets_values": [64, 64, 1, 777, "fixed", 3, 7.5, "euler", "normal", 1.0]},
    ]  # fmt: skip
    data["links"] = [[1, 4, 0, 11, 0, "MODEL"], [3, 4, 1, 10, 0, "CLIP"],
                     [4, 10, 0, 11, 1, "CONDITIONING"], [5, 4, 1, 10, 1, "CLIP"],
                     [6, 10, 1, 11, 2, "CONDITIONING"], [7, 11, 0, 8, 0, "LATENT"],
                     [8, 4, 2, 8, 1, "VAE"], [9, 8, 0, 9, 0, "IMAGE"]]  # fmt: skip
    return data


def test_group_nodes_expand_into_their_inner_nodes(classic_editor, one_thread, tmp_path):
    graph = graph_from_editor(_grouped(classic_editor))
    assert errors(graph) == []
    positive, negative = graph["10:0"].inputs, graph["10:1"].inputs
    assert positive == {"text": "a red fox in the snow", "clip": Link("4", 1)}
    assert negative == {"text": "blurry", "clip": Link("4", 1)}
    latent, sampler = graph["11:0"].inputs, graph["11:1"].inputs
    assert (latent["width"], latent["height"], latent["batch_size"]) == (64, 64, 1)
    assert (sampler["seed"], sampler["steps"], sampler["latent_image"]) == (777, 3,
                                                                            Link("11:0", 0))  # fmt: skip
    assert (sampler["positive"], sampler["negative"]) == (Link("10:0", 0), Link("10:1", 0))
    assert graph["8"].inputs["samples"] == Link("11:1", 0)
    src = tmp_path / "grouped.json"
    src.write_text(json.dumps(_grouped(classic_editor)))
    out = tmp_path / "out"
    assert main(["run", str(src), "--output-dir", str(out), "--no-cache", "-q"]) == 0
    assert [p.name for p in out.glob("*.png")] == ["classic_00001_.png"]


def test_group_node_with_an_unsupported_inner_node_names_it(classic_editor):
    gligen = {"type": "GLIGENLoader", "inputs": [], "outputs": [], "widgets_values": ["x"]}
    with pytest.raises(WorkflowError) as caught:
        graph_from_editor(_grouped(classic_editor, [gligen]))
    [problem] = caught.value.problems
    assert problem.node_id == "10:2" and problem.node_type == "GLIGENLoader"
    assert "workflow>prompts" in problem.message and "does not have" in problem.message


# --- --set on ComfyUI files, unknown types ----------------------------------------------------


def test_set_node_input_on_comfy_json(capsys):
    api = str(DATA / "classic_api.json")
    assert main(["validate", api, "--set", "3.seed=7"]) == 0
    assert main(["validate", api, "--set", "3.steps=0"]) == 2  # applied: below the minimum
    assert "'steps'" in capsys.readouterr().err
    assert main(["validate", api, "--set", "3.sede=7"]) == 2
    assert "did you mean 'seed'" in capsys.readouterr().err
    assert main(["validate", api, "--set", "seed=7"]) == 2
    assert "no params; name an input as <node id>.<input>" in capsys.readouterr().err


def test_unknown_comfy_type_is_named_as_a_comfy_node_we_lack(classic_api):
    prompt = copy.deepcopy(classic_api)
    prompt["10"] = {"class_type": "GLIGENLoader",
                    "inputs": {"gligen_name": "x.safetensors"}}  # fmt: skip
    [problem] = [p for p in errors(graph_from_prompt(prompt)) if p.node_id == "10"]
    assert "a ComfyUI core or custom node latentgraph does not have" in problem.message
    assert "did you mean" not in problem.message  # no unrelated loader suggested
    assert "GLIGENLoader" not in default_registry


def test_malformed_group_definition_is_reported_not_a_crash(classic_editor):
    data = _grouped(classic_editor)
    data["extra"]["groupNodes"]["sampling"]["links"] = [[0, 0, 9, 3, 5, "LATENT"], ["x"]]
    graph = graph_from_editor(data)  # the broken inner links are dropped, not followed
    [problem] = [p for p in errors(graph) if p.node_id == "11:1"]
    assert (problem.code, problem.input_name) == ("required_input_missing", "latent_image")
