import copy

import pytest

from latentgraph.graph import Link, WorkflowError
from latentgraph.graph.comfy_editor import editor_from_graph, graph_from_editor
from latentgraph.graph.problems import WorkflowWarning

from .toy_nodes import registry


def load(data):
    return graph_from_editor(data, registry, source="wf.json")


def node_by_id(data, nid):
    return next(n for n in data["nodes"] if n["id"] == nid)


def add_node(data, nid, type_, inputs=(), outputs=(), widgets=(), mode=0, **extra):
    data["nodes"].append(
        {
            "id": nid,
            "type": type_,
            "mode": mode,
            "inputs": list(inputs),
            "outputs": list(outputs),
            "widgets_values": list(widgets),
            **extra,
        }
    )


def relink(data, link_id, src, src_slot, dst, dst_slot, type_):
    data["links"] = [lk for lk in data["links"] if lk[0] != link_id]
    data["links"].append([link_id, src, src_slot, dst, dst_slot, type_])


def test_classic_graph_widgets_and_links(classic_editor):
    g = load(classic_editor)
    assert set(g.nodes) == {"3", "4", "5", "6", "7", "8", "9"}
    ks = g["3"].inputs
    # the seed-control value "randomize" after the seed is editor-only and skipped
    assert ks["seed"] == 1234 and ks["steps"] == 3 and ks["cfg"] == 7.5
    assert ks["sampler_name"] == "euler" and ks["scheduler"] == "normal" and ks["denoise"] == 1.0
    assert ks["model"] == Link("4", 0)
    assert ks["positive"] == Link("6", 0) and ks["negative"] == Link("7", 0)
    assert ks["latent_image"] == Link("5", 0)
    assert g["8"].inputs == {"samples": Link("3", 0), "vae": Link("4", 2)}
    assert g["6"].inputs == {
        "text": "a lighthouse on a cliff at dusk, oil painting",
        "clip": Link("4", 1),
    }
    assert g["5"].inputs == {"width": 64, "height": 64, "batch_size": 1}
    assert g["9"].inputs["filename_prefix"] == "classic"


def test_seed_without_control_value_from_older_files(classic_editor):
    node_by_id(classic_editor, 3)["widgets_values"] = [7, 3, 7.5, "ddim", "karras", 0.5]
    ks = load(classic_editor)["3"].inputs
    assert (ks["seed"], ks["steps"], ks["sampler_name"], ks["scheduler"], ks["denoise"]) == (
        7,
        3,
        "ddim",
        "karras",
        0.5,
    )


def test_widgets_values_as_mapping(classic_editor):
    node_by_id(classic_editor, 5)["widgets_values"] = {"width": 96, "height": 32, "batch_size": 2}
    assert load(classic_editor)["5"].inputs == {"width": 96, "height": 32, "batch_size": 2}


def test_load_image_upload_value_is_skipped():
    data = {"nodes": [], "links": []}
    add_node(data, 1, "LoadImage", widgets=["b.png", "image"])
    assert load(data)["1"].inputs == {"image": "b.png"}


def with_preview(data):
    """`data` with a second SaveImage (20) fed by VAEDecode 8: muting SaveImage 9 leaves an
    output to run."""
    add_node(data, 20, "SaveImage", inputs=[{"name": "images", "type": "IMAGE", "link": 99}],
             widgets=["other"])  # fmt: skip
    data["links"].append([99, 8, 0, 20, 0, "IMAGE"])
    node_by_id(data, 8)["outputs"][0]["links"].append(99)
    return data


def test_muted_output_node_is_dropped(classic_editor):
    node_by_id(with_preview(classic_editor), 9)["mode"] = 2
    g = load(classic_editor)
    assert "9" not in g and "8" in g


def test_muting_every_output_is_refused_naming_them(classic_editor):
    node_by_id(classic_editor, 9)["mode"] = 2
    with pytest.raises(WorkflowError) as err:
        load(classic_editor)
    assert [str(p) for p in err.value.problems] == [
        "wf.json: the workflow has no output node left to run: node '9' (SaveImage) is muted"
    ]


def test_muted_node_drops_what_needs_it(classic_editor):
    node_by_id(classic_editor, 3)["mode"] = 2
    add_node(classic_editor, 20, "SaveImage", widgets=["other"],
             inputs=[{"name": "images", "type": "IMAGE", "link": 97}])  # fmt: skip
    add_node(classic_editor, 21, "VAEDecode", inputs=[
        {"name": "samples", "type": "LATENT", "link": 98},
        {"name": "vae", "type": "VAE", "link": 99}])  # fmt: skip
    classic_editor["links"] += [[97, 21, 0, 20, 0, "IMAGE"], [98, 5, 0, 21, 0, "LATENT"],
                                [99, 4, 2, 21, 1, "VAE"]]  # fmt: skip
    with pytest.warns(WorkflowWarning, match=r"node '9' \(SaveImage\) needs node '3'"):
        g = load(classic_editor)
    assert {"3", "8", "9"}.isdisjoint(g.nodes)
    assert {"4", "5", "6", "7", "20", "21"} <= set(g.nodes)


def test_bypassed_node_passes_its_input_through(classic_editor):
    # KSampler -> LatentUpscale(bypassed) -> VAEDecode
    add_node(
        classic_editor,
        10,
        "LatentUpscale",
        mode=4,
        inputs=[{"name": "samples", "type": "LATENT", "link": 7}],
        outputs=[{"name": "LATENT", "type": "LATENT", "links": [20]}],
        widgets=["bilinear", 128, 128, "disabled"],
    )
    relink(classic_editor, 7, 3, 0, 10, 0, "LATENT")
    relink(classic_editor, 20, 10, 0, 8, 0, "LATENT")
    node_by_id(classic_editor, 8)["inputs"][0]["link"] = 20
    g = load(classic_editor)
    assert "10" not in g
    assert g["8"].inputs["samples"] == Link("3", 0)
    # the same node not bypassed is used
    node_by_id(classic_editor, 10)["mode"] = 0
    g = load(classic_editor)
    assert g["8"].inputs["samples"] == Link("10", 0)
    assert g["10"].inputs == {
        "samples": Link("3", 0),
        "upscale_method": "bilinear",
        "width": 128,
        "height": 128,
        "crop": "disabled",
    }


def test_bypass_matches_by_type_not_slot():
    data = {"nodes": [], "links": []}
    add_node(data, 1, "CheckpointLoaderSimple", widgets=["builtin:tiny-sd"])
    add_node(data, 2, "EmptyLatentImage", widgets=[8, 8, 1])
    add_node(
        data,
        3,
        "KSampler",
        mode=4,
        inputs=[
            {"name": "model", "type": "MODEL", "link": 1},
            {"name": "latent_image", "type": "LATENT", "link": 2},
        ],
        outputs=[{"name": "LATENT", "type": "LATENT", "links": [3]}],
        widgets=[1, "fixed", 1, 1.0, "euler", "normal", 1.0],
    )
    add_node(
        data,
        4,
        "VAEDecode",
        inputs=[
            {"name": "samples", "type": "LATENT", "link": 3},
            {"name": "vae", "type": "VAE", "link": 4},
        ],
    )
    data["links"] = [
        [1, 1, 0, 3, 0, "MODEL"],
        [2, 2, 0, 3, 1, "LATENT"],
        [3, 3, 0, 4, 0, "LATENT"],
        [4, 1, 2, 4, 1, "VAE"],
    ]
    g = load(data)
    assert g["4"].inputs == {"samples": Link("2", 0), "vae": Link("1", 2)}


def test_reroutes_are_followed(classic_editor):
    add_node(
        classic_editor,
        20,
        "Reroute",
        inputs=[{"name": "", "type": "*", "link": 8}],
        outputs=[{"name": "", "type": "VAE", "links": [21]}],
    )
    add_node(
        classic_editor,
        21,
        "Reroute",
        inputs=[{"name": "", "type": "*", "link": 21}],
        outputs=[{"name": "", "type": "VAE", "links": [22]}],
    )
    relink(classic_editor, 8, 4, 2, 20, 0, "VAE")
    relink(classic_editor, 21, 20, 0, 21, 0, "VAE")
    relink(classic_editor, 22, 21, 0, 8, 1, "VAE")
    g = load(classic_editor)
    assert "20" not in g and "21" not in g
    assert g["8"].inputs["vae"] == Link("4", 2)


def test_primitive_node_value_goes_into_the_widget(classic_editor):
    add_node(
        classic_editor,
        30,
        "PrimitiveNode",
        outputs=[{"name": "INT", "type": "INT", "links": [30, 31], "widget": {"name": "seed"}}],
        widgets=[99, "fixed"],
    )
    ks = node_by_id(classic_editor, 3)
    ks["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 30})
    ks["widgets_values"][0] = 5  # stale copy in the target: the primitive wins
    relink(classic_editor, 30, 30, 0, 3, 4, "INT")
    g = load(classic_editor)
    assert "30" not in g
    assert g["3"].inputs["seed"] == 99


def test_widget_converted_to_input_takes_the_link():
    data = {"nodes": [], "links": []}
    add_node(data, 1, "StringConcatenate", widgets=["a", "b", "-"])
    add_node(
        data,
        2,
        "CLIPTextEncode",
        widgets=["ignored"],
        inputs=[
            {"name": "clip", "type": "CLIP", "link": None},
            {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 1},
        ],
    )
    data["links"] = [[1, 1, 0, 2, 1, "STRING"]]
    assert load(data)["2"].inputs == {"text": Link("1", 0)}


def _subgraph_workflow():
    """Top: Loader(1) -> [subgraph instance 10: CLIPTextEncode inside] -> KSampler positive."""
    sub = {
        "id": "9d3c1f7a-0000-4000-8000-000000000001",
        "name": "encode",
        "inputs": [
            {"id": "i0", "name": "clip", "type": "CLIP", "linkIds": [1]},
            {"id": "i1", "name": "text", "type": "STRING", "linkIds": [2]},
        ],
        "outputs": [{"id": "o0", "name": "CONDITIONING", "type": "CONDITIONING", "linkIds": [3]}],
        "nodes": [
            {
                "id": 1,
                "type": "CLIPTextEncode",
                "mode": 0,
                "widgets_values": ["inner"],
                "inputs": [
                    {"name": "clip", "type": "CLIP", "link": 1},
                    {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 2},
                ],
                "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [3]}],
            }
        ],
        "links": [
            {
                "id": 1,
                "origin_id": -10,
                "origin_slot": 0,
                "target_id": 1,
                "target_slot": 0,
                "type": "CLIP",
            },
            {
                "id": 2,
                "origin_id": -10,
                "origin_slot": 1,
                "target_id": 1,
                "target_slot": 1,
                "type": "STRING",
            },
            {
                "id": 3,
                "origin_id": 1,
                "origin_slot": 0,
                "target_id": -20,
                "target_slot": 0,
                "type": "CONDITIONING",
            },
        ],
    }
    data = {"nodes": [], "links": [], "definitions": {"subgraphs": [sub]}, "version": 0.4}
    add_node(data, 1, "CheckpointLoaderSimple", widgets=["builtin:tiny-sd"])
    add_node(
        data,
        10,
        sub["id"],
        widgets=["promoted text"],
        inputs=[
            {"name": "clip", "type": "CLIP", "link": 1},
            {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": None},
        ],
        outputs=[{"name": "CONDITIONING", "type": "CONDITIONING", "links": [2]}],
    )
    add_node(data, 2, "EmptyLatentImage", widgets=[8, 8, 1])
    add_node(
        data,
        3,
        "KSampler",
        widgets=[1, "fixed", 2, 5.0, "euler", "normal", 1.0],
        inputs=[
            {"name": "model", "type": "MODEL", "link": 3},
            {"name": "positive", "type": "CONDITIONING", "link": 2},
            {"name": "negative", "type": "CONDITIONING", "link": 2},
            {"name": "latent_image", "type": "LATENT", "link": 4},
        ],
    )
    data["links"] = [
        [1, 1, 1, 10, 0, "CLIP"],
        [2, 10, 0, 3, 1, "CONDITIONING"],
        [3, 1, 0, 3, 0, "MODEL"],
        [4, 2, 0, 3, 3, "LATENT"],
        [5, 10, 0, 3, 2, "CONDITIONING"],
    ]
    data["nodes"][-1]["inputs"][2]["link"] = 5
    return data


def test_subgraph_instances_are_expanded_inline():
    g = load(_subgraph_workflow())
    assert "10" not in g
    inner = g["10:1"]
    assert inner.type == "CLIPTextEncode"
    assert inner.inputs == {"clip": Link("1", 1), "text": "promoted text"}
    assert g["3"].inputs["positive"] == Link("10:1", 0)
    assert g["3"].inputs["negative"] == Link("10:1", 0)


def test_subgraph_instance_twice_gets_distinct_ids():
    data = _subgraph_workflow()
    second = copy.deepcopy(node_by_id(data, 10))
    second["id"] = 11
    second["widgets_values"] = ["other text"]
    data["nodes"].append(second)
    data["links"] = [lk for lk in data["links"] if lk[0] != 5]
    data["links"] += [[5, 11, 0, 3, 2, "CONDITIONING"], [6, 1, 1, 11, 0, "CLIP"]]
    second["inputs"][0]["link"] = 6
    g = load(data)
    assert g["11:1"].inputs["text"] == "other text"
    assert g["3"].inputs["negative"] == Link("11:1", 0)


def test_unknown_node_type_is_kept_for_validation_to_name(classic_editor):
    node_by_id(classic_editor, 8)["type"] = "FancyUpscalerPlus"
    g = load(classic_editor)
    assert g["8"].type == "FancyUpscalerPlus"
    assert g["8"].inputs == {"samples": Link("3", 0), "vae": Link("4", 2)}


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d["links"].append([1, 2]), "wrong shape"),
        (lambda d: d["nodes"].append({"type": "KSampler"}), "without an 'id'"),
        (lambda d: d["nodes"].append(dict(d["nodes"][0])), "appears twice"),
        (lambda d: d.__setitem__("links", "nope"), "'links' must be a list"),
    ],
)
def test_malformed_editor_json_is_a_clear_error(classic_editor, mutate, fragment):
    mutate(classic_editor)
    with pytest.raises(WorkflowError) as err:
        load(classic_editor)
    assert fragment in str(err.value) and "wf.json" in str(err.value)


def test_not_an_editor_workflow():
    with pytest.raises(WorkflowError, match="nodes"):
        load({"3": {"class_type": "KSampler"}})


def test_round_trip_through_editor_format(classic_editor):
    g = load(classic_editor)
    back = load(editor_from_graph(g, registry))
    assert {n.id: (n.type, n.inputs) for n in back} == {n.id: (n.type, n.inputs) for n in g}


def test_named_ids_survive_and_layout_is_by_depth(classic_editor):
    g = load(classic_editor)
    names = {
        "3": "sample",
        "4": "model",
        "5": "noise",
        "6": "pos",
        "7": "neg",
        "8": "decode",
        "9": "save",
    }
    from latentgraph.graph.comfy_editor import _rename

    named = _rename(g, names)
    editor = editor_from_graph(named, registry)
    assert all(isinstance(n["id"], int) for n in editor["nodes"])
    x = {n["properties"]["latentgraph_id"]: n["pos"][0] for n in editor["nodes"]}
    assert x["model"] < x["pos"] < x["sample"] < x["decode"] < x["save"]
    assert x["pos"] == x["neg"] == x["noise"]
    ys = sorted(n["pos"][1] for n in editor["nodes"] if n["pos"][0] == x["pos"])
    assert len(set(ys)) == 3  # stacked, not overlapping
    ks = next(n for n in editor["nodes"] if n["type"] == "KSampler")
    assert ks["widgets_values"] == [1234, "fixed", 3, 7.5, "euler", "normal", 1.0]
    back = load(editor)
    assert set(back.nodes) == set(names.values())
    assert back["decode"].inputs == {"samples": Link("sample", 0), "vae": Link("model", 2)}
