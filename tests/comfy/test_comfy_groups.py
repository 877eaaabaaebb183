"""graph/comfy_groups.py: the editor's old group nodes expanded into their inner nodes, with
the toy registry (no torch): inner ids, widgets split per inner node, links rewired both ways
(list and object links), hidden inputs and outputs, muting, and the refusals."""

from __future__ import annotations

import copy

import pytest

from latentgraph.graph import Link, WorkflowError
from latentgraph.graph.comfy_editor import graph_from_editor
from latentgraph.graph.comfy_groups import expand_group_nodes, group_name

from .test_comfy_semantics import _grouped
from .toy_nodes import registry


def by_id(data) -> dict:
    return {n["id"]: n for n in data["nodes"]}


def test_group_names_of_both_prefixes():
    assert group_name("workflow>prompts") == "prompts"
    assert group_name("workflow/prompts") == "prompts"
    assert group_name("KSampler") is None


def test_group_nodes_expand_into_their_inner_nodes(classic_editor):
    graph = graph_from_editor(_grouped(classic_editor), registry)
    assert graph["10:0"].inputs == {"text": "a red fox in the snow", "clip": Link("4", 1)}
    assert graph["10:1"].inputs == {"text": "blurry", "clip": Link("4", 1)}
    assert graph["11:0"].inputs == {"width": 64, "height": 64, "batch_size": 1}
    sampler = graph["11:1"].inputs
    assert sampler == {"model": Link("4", 0), "seed": 777, "steps": 3, "cfg": 7.5,
                       "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                       "positive": Link("10:0", 0), "negative": Link("10:1", 0),
                       "latent_image": Link("11:0", 0)}  # fmt: skip
    assert graph["8"].inputs["samples"] == Link("11:1", 0)
    assert sorted(graph.nodes) == ["10:0", "10:1", "11:0", "11:1", "4", "8", "9"]


def test_expanded_links_and_ids(classic_editor):
    data = _grouped(classic_editor)
    out = expand_group_nodes(data, registry, "g.json")
    nodes = by_id(out)
    assert sorted(nodes, key=str) == sorted([4, 8, 9, "10:0", "10:1", "11:0", "11:1"], key=str)
    assert [n["type"] for n in data["nodes"]][-2:] == ["workflow>prompts", "workflow>sampling"]
    # the inner link gets the next free id after the outer links; outer links are rewired
    assert out["links"] == [
        [1, 4, 0, "11:1", 0, "MODEL"], [3, 4, 1, "10:0", 0, "CLIP"],
        [4, "10:0", 0, "11:1", 1, "CONDITIONING"], [5, 4, 1, "10:1", 0, "CLIP"],
        [6, "10:1", 0, "11:1", 2, "CONDITIONING"], [7, "11:1", 0, 8, 0, "LATENT"],
        [8, 4, 2, 8, 1, "VAE"], [9, 8, 0, 9, 0, "IMAGE"],
        [10, "11:0", 0, "11:1", 3, "LATENT"],
    ]  # fmt: skip
    assert nodes["11:1"]["widgets_values"] == [777, "fixed", 3, 7.5, "euler", "normal", 1.0]
    assert data["links"][0] == [1, 4, 0, 11, 0, "MODEL"]  # the input is not changed


def test_the_older_prefix_and_object_links(classic_editor):
    data = _grouped(classic_editor)
    for node in data["nodes"]:
        node["type"] = node["type"].replace("workflow>", "workflow/")
    data["links"] = [{"id": ln[0], "origin_id": ln[1], "origin_slot": ln[2], "target_id": ln[3],
                      "target_slot": ln[4], "type": ln[5]} for ln in data["links"]]  # fmt: skip
    out = expand_group_nodes(data, registry, "g.json")
    assert out["links"][2] == [4, "10:0", 0, "11:1", 1, "CONDITIONING"]
    graph = graph_from_editor(data, registry)
    assert graph["11:1"].inputs["positive"] == Link("10:0", 0)


def test_a_workflow_without_groups_is_returned_as_it_is(classic_editor):
    assert expand_group_nodes(classic_editor, registry, "x") is classic_editor


def test_a_muted_instance_mutes_its_inner_nodes(classic_editor):
    data = _grouped(classic_editor)
    by_id(data)[10]["mode"] = 4  # bypassed
    out = by_id(expand_group_nodes(data, registry, "g.json"))
    assert (out["10:0"]["mode"], out["10:1"]["mode"], out["11:0"]["mode"]) == (4, 4, 0)
    del by_id(data)[11]["mode"]
    assert by_id(expand_group_nodes(data, registry, "g.json"))["11:0"]["mode"] == 0


def test_instance_values_that_are_not_a_list_keep_the_inner_values(classic_editor):
    data = _grouped(classic_editor)
    by_id(data)[10]["widgets_values"] = None
    out = by_id(expand_group_nodes(data, registry, "g.json"))
    assert out["10:0"]["widgets_values"] == ["a lighthouse on a cliff at dusk, oil painting"]


def test_an_undefined_group_is_refused_by_instance(classic_editor):
    data = _grouped(classic_editor)
    del data["extra"]["groupNodes"]["sampling"]
    with pytest.raises(WorkflowError) as err:
        expand_group_nodes(data, registry, "g.json")
    [problem] = err.value.problems
    assert (problem.code, problem.node_id) == ("unknown_node_type", "11")
    assert problem.node_type == "workflow>sampling"
    assert problem.message == ("group node 'workflow>sampling' is not defined in the "
                               "workflow's extra.groupNodes")  # fmt: skip
    assert str(problem.location) == "g.json"
    data["extra"] = None  # no definitions at all
    with pytest.raises(WorkflowError, match="'workflow>prompts' is not defined"):
        expand_group_nodes(data, registry, "g.json")


def test_an_unsupported_inner_node_is_named_with_its_place(classic_editor):
    gligen = {"type": "GLIGENLoader", "inputs": [], "outputs": [], "widgets_values": ["x"]}
    with pytest.raises(WorkflowError) as err:
        expand_group_nodes(_grouped(classic_editor, [gligen]), registry, "g.json")
    [problem] = err.value.problems
    assert (problem.code, problem.node_id) == ("unknown_node_type", "10:2")
    assert problem.node_type == "GLIGENLoader"
    assert problem.message == ("group node 'workflow>prompts' contains node 2 of type "
                               "'GLIGENLoader', a ComfyUI node latentgraph does not have yet")  # fmt: skip
    assert str(problem.location) == "g.json"


def test_hidden_inputs_and_outputs_shown_by_config(classic_editor):
    data = _grouped(classic_editor)
    sampling = data["extra"]["groupNodes"]["sampling"]
    # the latent is also shown as an output of the group; the sampler's model input is hidden
    sampling["config"] = {"0": {"output": {"0": {"visible": True}}},
                          1: {"input": {"model": {"visible": False}}}}  # fmt: skip
    instance = by_id(data)[11]
    data["links"] = [ln if ln[0] != 1 else [1, 4, 0, 11, 5, "MODEL"] for ln in data["links"]]
    data["links"][1:1] = [[20, 10, 0, 11, 0, "CONDITIONING"], [21, 10, 1, 11, 1, "CONDITIONING"]]
    data["links"] = [ln for ln in data["links"] if ln[0] not in (4, 6)]
    data["links"] = [ln if ln[0] != 7 else [7, 11, 1, 8, 0, "LATENT"] for ln in data["links"]]
    data["links"].append([22, 11, 0, 9, 0, "LATENT"])  # slot 0 is the inner latent now
    del instance["inputs"][0]
    out = expand_group_nodes(data, registry, "g.json")
    links = {ln[0]: ln[1:] for ln in out["links"]}
    assert links[20] == ["10:0", 0, "11:1", 1, "CONDITIONING"]  # slot 0: positive
    assert links[21] == ["10:1", 0, "11:1", 2, "CONDITIONING"]
    assert links[1] == [4, 0, 11, 5, "MODEL"]  # slot 5 does not exist: left as it is
    assert links[7] == ["11:1", 0, 8, 0, "LATENT"]
    assert links[22] == ["11:0", 0, 9, 0, "LATENT"]


def test_a_widget_converted_to_an_input_inside_a_group_takes_the_link(classic_editor):
    """The instance has no widget for it (its input follows the sockets); the inner node keeps
    the widget's place in its values, so the widgets after it are read right."""
    data = _grouped(classic_editor)
    sampler = data["extra"]["groupNodes"]["sampling"]["nodes"][1]
    sampler["inputs"].insert(1, {"name": "seed", "type": "INT", "link": None,
                                 "widget": {"name": "seed"}})  # fmt: skip
    by_id(data)[11]["widgets_values"] = [64, 64, 1, 3, 7.5, "euler", "normal", 1.0]
    data["nodes"].append({"id": 12, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                          "outputs": [{"name": "INT", "type": "INT", "links": [30],
                                       "widget": {"name": "seed"}}],
                          "widgets_values": [4242, "fixed"]})  # fmt: skip
    data["links"].append([30, 12, 0, 11, 3, "INT"])  # after model, positive, negative
    inner = by_id(expand_group_nodes(data, registry, "g.json"))["11:1"]
    assert inner["widgets_values"] == [1234, 3, 7.5, "euler", "normal", 1.0]  # its own seed
    sampler_inputs = graph_from_editor(data, registry)["11:1"].inputs
    assert sampler_inputs["seed"] == 4242
    assert (sampler_inputs["steps"], sampler_inputs["cfg"], sampler_inputs["denoise"]) == (3, 7.5,
                                                                                           1.0)  # fmt: skip


def test_a_primitive_inside_a_group_takes_its_values(classic_editor):
    data = _grouped(classic_editor)
    sampling = data["extra"]["groupNodes"]["sampling"]
    primitive = {"type": "PrimitiveNode", "inputs": [],
                 "outputs": [{"name": "INT", "type": "INT", "links": [],
                              "widget": {"name": "steps"}}],
                 "widgets_values": [5, "fixed"]}  # fmt: skip
    sampling["nodes"].insert(0, primitive)
    sampling["links"] = [[1, 0, 2, 3, 5, "LATENT"]]
    sampling["external"] = [[2, 0, "LATENT"]]
    instance = by_id(data)[11]
    instance["widgets_values"] = [9, "fixed", *instance["widgets_values"]]
    values = by_id(expand_group_nodes(data, registry, "g.json"))
    assert values["11:0"]["widgets_values"] == [9, "fixed"]
    assert values["11:1"]["widgets_values"] == [64, 64, 1]
    assert values["11:2"]["widgets_values"] == [777, "fixed", 3, 7.5, "euler", "normal", 1.0]


def test_malformed_definitions_are_dropped_not_followed(classic_editor):
    data = _grouped(classic_editor)
    sampling = data["extra"]["groupNodes"]["sampling"]
    sampling["nodes"].append("not a node")
    sampling["links"] = [[0, 0, 1, 3, 5, "LATENT"], ["x"], [0, 0, 2, 0], [-1, 0, 1, 3],
                         [0, 0, 1, "3"], [0, 0, 1]]  # fmt: skip
    sampling["external"] = [[1, 0, "LATENT"], "x", [1]]
    out = expand_group_nodes(copy.deepcopy(data), registry, "g.json")
    inner = [ln for ln in out["links"] if ln[0] > 9]
    assert inner == [[10, "11:0", 0, "11:1", 3, "LATENT"]]
    assert "11:2" not in by_id(out)
