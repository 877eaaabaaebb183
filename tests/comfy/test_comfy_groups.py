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
                               "'GLIGENLoader', a ComfyUI core or custom node latentgraph does not have")  # fmt: skip
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
    sampling["links"] = [[0, 0, 1, 3, 5, "LATENT"], ["x"], [0, 0, 2, 0], [2, 0, 1, 3], [-1, 0, 1, 3],
                         [0, 0, 1, "3"], [0, 0, 1]]  # fmt: skip
    sampling["external"] = [[1, 0, "LATENT"], "x", [1]]
    out = expand_group_nodes(copy.deepcopy(data), registry, "g.json")
    inner = [ln for ln in out["links"] if ln[0] > 9]
    assert inner == [[10, "11:0", 0, "11:1", 3, "LATENT"]]
    assert "11:2" not in by_id(out)


# --- the slot maps and the link arithmetic, on small groups ------------------------------------


def _loader_group(classic_editor, links: list) -> dict:
    """Group 11 holds the checkpoint loader, the empty latent and the sampler (in that order),
    wired inside by `links`; its outer inputs are the two prompts' conditioning."""
    data = _grouped(classic_editor)
    sampling = data["extra"]["groupNodes"]["sampling"]
    loader = {k: copy.deepcopy(v) for k, v in by_id(data)[4].items() if k not in ("id", "pos")}
    for out in loader["outputs"]:
        out["links"] = []
    sampling["nodes"].insert(0, loader)
    sampling["links"] = links
    sampling["external"] = [[2, 0, "LATENT"]]
    instance = by_id(data)[11]
    instance["widgets_values"] = ["builtin:tiny-sd", 64, 64, 1, 777, "fixed", 3, 7.5, "euler",
                                  "normal", 1.0]  # fmt: skip
    # prompts into instance slots 0 and 1; the loader's CLIP and VAE come out of slots 0 and 1
    data["links"] = [[4, 10, 0, 11, 0, "CONDITIONING"], [6, 10, 1, 11, 1, "CONDITIONING"],
                     [3, 11, 0, 10, 0, "CLIP"], [5, 11, 0, 10, 1, "CLIP"],
                     [7, 11, 2, 8, 0, "LATENT"], [8, 11, 1, 8, 1, "VAE"],
                     [9, 8, 0, 9, 0, "IMAGE"]]  # fmt: skip
    data["nodes"] = [n for n in data["nodes"] if n["id"] != 4]
    return data


def test_inner_links_feed_inputs_and_hide_outputs_used_only_inside(classic_editor):
    data = _loader_group(classic_editor, [[0, 0, 2, 0], [1, 0, 2, 3, 9]])  # 4 and 5 entries
    out = expand_group_nodes(data, registry, "g.json")
    links = {ln[0]: ln[1:] for ln in out["links"]}
    assert links[10] == ["11:0", 0, "11:2", 0, None]  # ids after the highest outer one
    assert links[11] == ["11:1", 0, "11:2", 3, None]
    assert links[4] == ["10:0", 0, "11:2", 1, "CONDITIONING"]  # the model is fed inside
    assert links[6] == ["10:1", 0, "11:2", 2, "CONDITIONING"]
    # outputs: the loader's CLIP and VAE (its MODEL is used only inside), the sampler's latent
    assert links[3] == ["11:0", 1, "10:0", 0, "CLIP"]
    assert links[8] == ["11:0", 2, 8, 1, "VAE"]
    assert links[7] == ["11:2", 0, 8, 0, "LATENT"]
    graph = graph_from_editor(data, registry)
    assert graph["11:2"].inputs["model"] == Link("11:0", 0)
    assert graph["11:2"].inputs["latent_image"] == Link("11:1", 0)
    assert graph["11:0"].inputs == {"ckpt_name": "builtin:tiny-sd"}


def test_an_output_used_inside_and_listed_external_stays_an_output(classic_editor):
    data = _loader_group(classic_editor, [[0, 0, 2, 0], [1, 0, 2, 3]])
    data["extra"]["groupNodes"]["sampling"]["external"] = [[0, 0], [2, 0, "LATENT"]]  # no type
    data["links"] = [ln if ln[0] != 8 else [8, 11, 2, 8, 1, "VAE"] for ln in data["links"]]
    links = {ln[0]: ln[1:] for ln in expand_group_nodes(data, registry, "g.json")["links"]}
    assert links[8] == ["11:0", 2, 8, 1, "VAE"]  # slots: MODEL, CLIP, VAE, LATENT


def test_outputs_without_an_external_list_are_all_shown(classic_editor):
    data = _grouped(classic_editor)
    del data["extra"]["groupNodes"]["prompts"]["external"]
    graph = graph_from_editor(data, registry)
    assert graph["11:1"].inputs["negative"] == Link("10:1", 0)


def test_inner_links_between_nodes_in_either_order(classic_editor):
    data = _grouped(classic_editor)
    sampling = data["extra"]["groupNodes"]["sampling"]
    sampling["nodes"].reverse()  # the sampler first, fed by the latent after it
    sampling["links"] = [[1, 0, 0, 3, 5, "LATENT"]]
    sampling["external"] = [[0, 0, "LATENT"]]
    by_id(data)[11]["widgets_values"] = [777, "fixed", 3, 7.5, "euler", "normal", 1.0, 64, 64, 1]
    graph = graph_from_editor(data, registry)
    assert graph["11:0"].inputs["latent_image"] == Link("11:1", 0)
    assert graph["11:0"].inputs["positive"] == Link("10:0", 0)
    assert graph["8"].inputs["samples"] == Link("11:0", 0)
    assert graph["11:1"].inputs == {"width": 64, "height": 64, "batch_size": 1}


def test_outer_links_out_of_the_instance_slots_and_of_other_shapes(classic_editor):
    data = _grouped(classic_editor)
    data["links"] = [None, "x", *[ln[:5] for ln in data["links"]],
                     [20, 4, 0, 11, 3], [21, 11, 1, 8, 0]]  # slots past the instance's (3 in, 1 out)  # fmt: skip
    out = expand_group_nodes(data, registry, "g.json")
    links = {ln[0]: ln[1:] for ln in out["links"] if isinstance(ln, list)}
    assert links[4] == ["10:0", 0, "11:1", 1, None]  # five entries: no type
    assert links[20] == [4, 0, 11, 3, None] and links[21] == [11, 1, 8, 0, None]
    assert out["links"][:2] == [None, "x"]


def test_inner_link_ids_start_at_one_without_outer_links(classic_editor):
    data = _grouped(classic_editor)
    data["links"] = []
    out = expand_group_nodes(data, registry, "g.json")
    assert out["links"] == [[1, "11:0", 0, "11:1", 3, "LATENT"]]


def test_object_links_count_for_the_next_id(classic_editor):
    data = _grouped(classic_editor)
    data["links"] = [{"id": ln[0] + 40, "origin_id": ln[1], "origin_slot": ln[2],
                      "target_id": ln[3], "target_slot": ln[4], "type": ln[5]}
                     for ln in data["links"]]  # fmt: skip
    out = expand_group_nodes(data, registry, "g.json")
    assert out["links"][-1] == [50, "11:0", 0, "11:1", 3, "LATENT"]


def test_values_run_out_and_a_seed_without_its_control_value(classic_editor):
    data = _grouped(classic_editor)
    by_id(data)[11]["widgets_values"] = [64, 64, 1, 777]
    nodes = by_id(expand_group_nodes(data, registry, "g.json"))
    assert nodes["11:0"]["widgets_values"] == [64, 64, 1]
    assert nodes["11:1"]["widgets_values"] == [777]
    by_id(data)[11]["widgets_values"] = [64, 64]
    nodes = by_id(expand_group_nodes(data, registry, "g.json"))
    assert nodes["11:0"]["widgets_values"] == [64, 64]
    assert nodes["11:1"]["widgets_values"] == [1234, "randomize", 3, 7.5, "euler", "normal", 1.0]


def test_a_control_value_follows_only_a_seed():
    from latentgraph.graph.declare import Bool, Int, Registry, node

    types = Registry()
    node("Count", registry=types, inputs=[Int("n", 0)])(lambda ctx, **kw: None)
    node("Switch", registry=types, inputs=[Bool("on", False)])(lambda ctx, **kw: None)
    inner = [{"type": t, "inputs": [], "outputs": [], "widgets_values": v}
             for t, v in (("Count", [0]), ("Switch", [False]))]  # fmt: skip
    data = {"nodes": [{"id": 1, "type": "workflow>f", "mode": 0, "widgets_values": [3, True]}],
            "links": [], "extra": {"groupNodes": {"f": {"nodes": inner, "links": []}}}}  # fmt: skip
    nodes = by_id(expand_group_nodes(data, types, "f.json"))
    assert (nodes["1:0"]["widgets_values"], nodes["1:1"]["widgets_values"]) == ([3], [True])


def test_notes_and_primitives_without_values_inside_a_group(classic_editor):
    data = _grouped(classic_editor)
    sampling = data["extra"]["groupNodes"]["sampling"]
    note = {"type": "Note", "inputs": [], "outputs": [], "widgets_values": ["remember"]}
    bare = {"type": "PrimitiveNode", "inputs": [], "outputs": []}  # no widgets_values
    sampling["nodes"][1:1] = [note, bare]  # between the latent and the sampler
    sampling["links"] = [[0, 0, 3, 3, 5, "LATENT"]]
    sampling["external"] = [[3, 0, "LATENT"]]
    data["links"] = [ln if ln[0] != 7 else [7, 11, 0, 8, 0, "LATENT"] for ln in data["links"]]
    nodes = by_id(expand_group_nodes(data, registry, "g.json"))
    assert nodes["11:1"]["widgets_values"] == ["remember"]  # a note keeps its own
    assert "widgets_values" not in nodes["11:2"]
    assert nodes["11:3"]["widgets_values"] == [777, "fixed", 3, 7.5, "euler", "normal", 1.0]
    primitive = {"type": "PrimitiveNode", "inputs": [], "outputs": [], "widgets_values": [1]}
    sampling["nodes"][1:1] = [primitive]  # after the latent: takes the value after its three
    by_id(data)[11]["widgets_values"][3:3] = [8]
    nodes = by_id(expand_group_nodes(data, registry, "g.json"))
    assert nodes["11:1"]["widgets_values"] == [8]
    assert nodes["11:4"]["widgets_values"] == [777, "fixed", 3, 7.5, "euler", "normal", 1.0]


def test_config_keys_as_numbers_and_entries_that_are_not_objects(classic_editor):
    data = _grouped(classic_editor)
    prompts = data["extra"]["groupNodes"]["prompts"]
    prompts["config"] = {"0": {"output": {0: {"visible": False}}, "input": {"clip": True}},
                         "1": {"output": "x"}}  # fmt: skip
    data["links"] = [ln if ln[0] != 6 else [6, 10, 0, 11, 2, "CONDITIONING"]
                     for ln in data["links"] if ln[0] != 4]  # fmt: skip
    links = {ln[0]: ln[1:] for ln in expand_group_nodes(data, registry, "g.json")["links"]}
    assert links[6] == ["10:1", 0, "11:1", 2, "CONDITIONING"]  # output 0 is the negative now
    assert links[3] == [4, 1, "10:0", 0, "CLIP"]  # the positive's clip is still an input


def test_every_undefined_group_is_reported_and_extra_of_another_shape(classic_editor):
    data = _grouped(classic_editor)
    data["extra"] = ["not", "an", "object"]
    with pytest.raises(WorkflowError) as err:
        expand_group_nodes(data, registry, "g.json")
    assert [p.node_id for p in err.value.problems] == ["10", "11"]


def test_inner_inputs_that_are_not_objects_are_skipped(classic_editor):
    data = _grouped(classic_editor)
    sampler = data["extra"]["groupNodes"]["sampling"]["nodes"][1]
    sampler["inputs"].insert(0, "x")  # the sockets move one slot on
    data["links"] = [ln if ln[0] != 1 else [1, 4, 0, 11, 0, "MODEL"] for ln in data["links"]]
    links = {ln[0]: ln[1:] for ln in expand_group_nodes(data, registry, "g.json")["links"]}
    assert links[1] == [4, 0, "11:1", 1, "MODEL"]
    assert links[4] == ["10:0", 0, "11:1", 2, "CONDITIONING"]


def test_the_expanded_nodes_share_nothing_with_the_document(classic_editor):
    data = _grouped(classic_editor)
    before = copy.deepcopy(data)
    out = expand_group_nodes(data, registry, "g.json")
    by_id(out)["11:1"]["inputs"][0]["link"] = 99
    by_id(out)["10:0"]["widgets_values"].append("x")
    assert data == before


# A group saved by ComfyUI: VAEDecode (no widgets in ComfyUI) then SaveImage, whose prefix is
# the instance's only widget value.
DECODE_SAVE_GROUP = {
    "nodes": [
        {"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "inputs": [],
         "outputs": [{"name": "MODEL", "type": "MODEL", "links": []},
                     {"name": "CLIP", "type": "CLIP", "links": []},
                     {"name": "VAE", "type": "VAE", "links": [2]}],
         "widgets_values": ["builtin:tiny-sd"]},
        {"id": 2, "type": "EmptyLatentImage", "mode": 0, "inputs": [],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [1]}],
         "widgets_values": [64, 64, 1]},
        {"id": 3, "type": "workflow>DecodeSave", "mode": 0,
         "inputs": [{"name": "samples", "type": "LATENT", "link": 1},
                    {"name": "vae", "type": "VAE", "link": 2}],
         "outputs": [], "widgets_values": ["my_prefix"]},
    ],
    "links": [[1, 2, 0, 3, 0, "LATENT"], [2, 1, 2, 3, 1, "VAE"]],
    "extra": {"groupNodes": {"DecodeSave": {
        "nodes": [
            {"type": "VAEDecode", "index": 0,
             "inputs": [{"name": "samples", "type": "LATENT", "link": None},
                        {"name": "vae", "type": "VAE", "link": None}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}]},
            {"type": "SaveImage", "index": 1,
             "inputs": [{"name": "images", "type": "IMAGE", "link": None}],
             "outputs": [], "widgets_values": ["ComfyUI"]},
        ],
        "links": [[0, 0, 1, 0, 9, "IMAGE"]], "external": []}}},
    "version": 0.4,
}  # fmt: skip


def test_a_groups_values_skip_latentgraphs_extra_inputs():
    """VAEDecode's `tiled` and `sliced` are latentgraph's (ComfyUI's node has no widgets): a
    group's values are ComfyUI's widgets in order, so the prefix is SaveImage's, as in ComfyUI
    (it was read as `tiled` and refused)."""
    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.graph import default_registry

    graph = graph_from_editor(DECODE_SAVE_GROUP, default_registry)
    assert graph["3:0"].inputs == {"samples": Link("2", 0), "vae": Link("1", 2)}
    assert graph["3:1"].inputs == {"images": Link("3:0", 0), "filename_prefix": "my_prefix"}


def test_a_group_with_an_extra_validates_and_converts_from_the_cli(tmp_path, capsys):
    import json

    from .conftest import run_cli

    source = tmp_path / "grp.json"
    source.write_text(json.dumps(DECODE_SAVE_GROUP))
    code, _, err = run_cli(capsys, "validate", source)
    assert code == 0, err
    code, _, err = run_cli(capsys, "convert", source, tmp_path / "api.json", "--to", "api")
    assert code == 0, err
    prompt = json.loads((tmp_path / "api.json").read_text())
    assert prompt["3:1"]["inputs"]["filename_prefix"] == "my_prefix"
    assert prompt["3:0"]["inputs"] == {"samples": ["2", 0], "vae": ["1", 2]}
