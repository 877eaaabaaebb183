"""Editor documents in the shapes recent frontends save: values promoted onto subgraph
instances (`proxyWidgets`, 1.35+; widget inputs on the instance, 1.24), null links, links no
input refers to, and the node modes that run."""

import pytest

from latentgraph.graph import Link, WorkflowError
from latentgraph.graph.comfy_editor import graph_from_editor

from .toy_nodes import shapes as REG


def load(data):
    return graph_from_editor(data, REG, source="wf.json")


def sock(name, type_, link=None, widget=None):
    entry = {"name": name, "type": type_, "link": link}
    if widget:
        entry["widget"] = {"name": widget}
    return entry


def edge(lid, src, src_slot, dst, dst_slot, type_):
    return {"id": lid, "origin_id": src, "origin_slot": src_slot, "target_id": dst,
            "target_slot": dst_slot, "type": type_}  # fmt: skip


SAMPLER_SOCKETS = [("model", "MODEL"), ("positive", "CONDITIONING"),
                   ("negative", "CONDITIONING"), ("latent_image", "LATENT")]  # fmt: skip


def sampler_subgraph(seed_from_input=True):
    """A subgraph wrapping KSampler 3 (inner seed 1); its four sockets come from the subgraph's
    inputs 0-3, its seed from input 4 (an INT) when `seed_from_input`."""
    inputs = [{"id": f"i{k}", "name": name, "type": type_} for k, (name, type_)
              in enumerate(SAMPLER_SOCKETS + [("seed", "INT")])]  # fmt: skip
    sampler_inputs = [sock(name, type_, k + 1) for k, (name, type_) in enumerate(SAMPLER_SOCKETS)]
    links = [edge(k + 1, -10, k, 3, k, type_) for k, (_, type_) in enumerate(SAMPLER_SOCKETS)]
    links.append(edge(9, 3, 0, -20, 0, "LATENT"))
    if seed_from_input:
        sampler_inputs.append(sock("seed", "INT", 15, widget="seed"))
        links.append(edge(15, -10, 4, 3, 4, "INT"))
    sampler = {"id": 3, "type": "KSampler", "mode": 0, "inputs": sampler_inputs,
               "outputs": [{"name": "LATENT", "type": "LATENT", "links": [9]}],
               "widgets_values": [1, "increment", 2, 8, "euler", "normal", 1]}  # fmt: skip
    return {"id": "sg-sampler", "name": "sampler", "inputs": inputs,
            "outputs": [{"id": "o0", "name": "LATENT", "type": "LATENT", "linkIds": [9]}],
            "nodes": [sampler], "links": links}  # fmt: skip


def txt2img_with_instances(*instances, subgraphs=None):
    """Loader 4, prompts 6/7, latent 5, then each instance (id, extra fields) fed by them and
    decoded by its own VAEDecode (id + 1)."""
    nodes = [
        {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "inputs": [],
         "widgets_values": ["builtin:tiny-sd"]},
        {"id": 6, "type": "CLIPTextEncode", "mode": 0, "inputs": [sock("clip", "CLIP", 1)],
         "widgets_values": ["a cat"]},
        {"id": 7, "type": "CLIPTextEncode", "mode": 0, "inputs": [sock("clip", "CLIP", 2)],
         "widgets_values": ["blurry"]},
        {"id": 5, "type": "EmptyLatentImage", "mode": 0, "inputs": [],
         "widgets_values": [64, 64, 1]},
    ]  # fmt: skip
    links = [[1, 4, 1, 6, 0, "CLIP"], [2, 4, 1, 7, 0, "CLIP"]]
    for iid, extra in instances:
        base = len(links) + 1
        feeds = [(4, 0), (6, 0), (7, 0), (5, 0)]
        inst_inputs = [
            sock(name, type_, base + k) for k, (name, type_) in enumerate(SAMPLER_SOCKETS)
        ]
        links += [[base + k, src, slot, iid, k, SAMPLER_SOCKETS[k][1]]
                  for k, (src, slot) in enumerate(feeds)]  # fmt: skip
        node = {"id": iid, "type": "sg-sampler", "mode": 0, "inputs": inst_inputs,
                "outputs": [{"name": "LATENT", "type": "LATENT", "links": [len(links) + 1]}],
                "properties": {}}  # fmt: skip
        node.update(extra)
        if "inputs" in extra:
            node["inputs"] = inst_inputs + extra["inputs"]
        nodes.append(node)
        links.append([len(links) + 1, iid, 0, iid + 1, 0, "LATENT"])
        nodes.append({"id": iid + 1, "type": "VAEDecode", "mode": 0,
                      "inputs": [sock("samples", "LATENT", len(links)), sock("vae", "VAE", len(links) + 1)]})  # fmt: skip
        links.append([len(links) + 1, 4, 2, iid + 1, 1, "VAE"])
    return {"nodes": nodes, "links": links, "version": 0.4,
            "definitions": {"subgraphs": subgraphs or [sampler_subgraph()]}}  # fmt: skip


def seeds(g, *instance_ids):
    return [g[f"{iid}:3"].inputs["seed"] for iid in instance_ids]


# --- values promoted onto subgraph instances ------------------------------------------------


def test_proxy_widgets_of_the_subgraph_input_give_each_instance_its_seed():
    proxy = {"properties": {"proxyWidgets": [["-1", "seed"]]}}
    data = txt2img_with_instances((10, {**proxy, "widgets_values": [111]}),
                                  (20, {**proxy, "widgets_values": [222]}))  # fmt: skip
    g = load(data)
    assert seeds(g, 10, 20) == [111, 222]
    assert g["10:3"].inputs["latent_image"] == Link("5", 0)
    assert g["10:3"].inputs["steps"] == 2


def test_proxy_widgets_saved_as_json_text_are_read():
    proxy = {"properties": {"proxyWidgets": '[["-1", "seed"]]'}, "widgets_values": [111]}
    assert seeds(load(txt2img_with_instances((10, proxy))), 10) == [111]


def test_widget_inputs_on_a_1_24_instance_give_each_instance_its_seed():
    def widget_input(value):
        return {"inputs": [sock("seed", "INT", None, widget="seed")], "widgets_values": [value]}

    g = load(txt2img_with_instances((10, widget_input(111)), (20, widget_input(222))))
    assert seeds(g, 10, 20) == [111, 222]


def test_promoted_inner_widgets_take_their_values_and_skip_the_control_value():
    proxy = {"properties": {"proxyWidgets": [["3", "seed"], ["3", "control_after_generate"],
                                             ["3", "steps"]]},
             "widgets_values": [111, "fixed", 1]}  # fmt: skip
    data = txt2img_with_instances((10, proxy), subgraphs=[sampler_subgraph(seed_from_input=False)])
    g = load(data)
    assert (g["10:3"].inputs["seed"], g["10:3"].inputs["steps"]) == (111, 1)


def test_a_linked_subgraph_input_keeps_its_link_over_a_promoted_value():
    proxy = {"properties": {"proxyWidgets": [["-1", "seed"]]}, "widgets_values": [111],
             "inputs": [sock("seed", "INT", 99, widget="seed")]}  # fmt: skip
    data = txt2img_with_instances((10, proxy))
    data["nodes"].append({"id": 30, "type": "IntValue", "mode": 0, "inputs": [],
                          "widgets_values": [5]})  # fmt: skip
    data["links"].append([99, 30, 0, 10, 4, "INT"])
    assert load(data)["10:3"].inputs["seed"] == Link("30", 0)


def outer_subgraph(inner_extra):
    """A subgraph holding instance 1 of sg-sampler (its sockets passed through)."""
    inner = {"id": 1, "type": "sg-sampler", "mode": 0,
             "inputs": [sock(name, type_, k + 1) for k, (name, type_) in enumerate(SAMPLER_SOCKETS)],
             "outputs": [{"name": "LATENT", "type": "LATENT", "links": [9]}], **inner_extra}  # fmt: skip
    links = [edge(k + 1, -10, k, 1, k, type_) for k, (_, type_) in enumerate(SAMPLER_SOCKETS)]
    return {"id": "sg-outer", "inputs": [{"name": name, "type": type_} for name, type_ in SAMPLER_SOCKETS],
            "nodes": [inner], "links": links + [edge(9, 1, 0, -20, 0, "LATENT")]}  # fmt: skip


@pytest.mark.parametrize("inner_extra", [
    {},
    {"properties": {"proxyWidgets": [["-1", "seed"]]}, "widgets_values": [5]},
])  # fmt: skip
def test_a_value_promoted_through_nested_subgraphs_reaches_the_innermost_node(inner_extra):
    proxy = {"type": "sg-outer", "properties": {"proxyWidgets": [["1", "seed"]]},
             "widgets_values": [111]}  # fmt: skip
    data = txt2img_with_instances(
        (10, proxy), subgraphs=[outer_subgraph(inner_extra), sampler_subgraph()]
    )
    assert load(data)["10:1:3"].inputs["seed"] == 111


def test_the_inner_instances_own_promoted_value_counts_when_the_outer_says_nothing():
    inner_extra = {"properties": {"proxyWidgets": [["-1", "seed"]]}, "widgets_values": [5]}
    data = txt2img_with_instances((10, {"type": "sg-outer"}),
                                  subgraphs=[outer_subgraph(inner_extra), sampler_subgraph()])  # fmt: skip
    assert load(data)["10:1:3"].inputs["seed"] == 5


def test_proxy_widgets_of_the_wrong_shape_are_reported_at_the_instance():
    proxy = {"properties": {"proxyWidgets": [["-1"]]}, "widgets_values": [111]}
    with pytest.raises(WorkflowError) as err:
        load(txt2img_with_instances((10, proxy)))
    [problem] = [p for p in err.value.problems if p.code == "syntax"]  # then the graph's own
    assert problem.node_id == "10"
    assert "proxyWidgets" in problem.message


# --- links -----------------------------------------------------------------------------------


def test_a_null_in_the_links_is_skipped_as_the_editor_skips_it():
    proxy = {"properties": {"proxyWidgets": [["-1", "seed"]]}, "widgets_values": [111]}
    data = txt2img_with_instances((10, proxy))
    data["links"].insert(1, None)
    data["definitions"]["subgraphs"][0]["links"].append(None)
    g = load(data)
    assert g["6"].inputs["clip"] == Link("4", 1)
    assert g["10:3"].inputs["model"] == Link("4", 0)


def classic(*, extra_nodes=(), extra_links=()):
    """Loader 4, prompts 6/7, latent 5 -> KSampler 3 (its inputs naming links 1-4, 7)."""
    nodes = [
        {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["builtin:tiny-sd"]},
        {"id": 6, "type": "CLIPTextEncode", "mode": 0, "inputs": [sock("clip", "CLIP", 1)],
         "widgets_values": ["a cat"]},
        {"id": 7, "type": "CLIPTextEncode", "mode": 0, "inputs": [sock("clip", "CLIP", 2)],
         "widgets_values": ["blurry"]},
        {"id": 5, "type": "EmptyLatentImage", "mode": 0, "widgets_values": [64, 64, 1]},
        {"id": 3, "type": "KSampler", "mode": 0,
         "inputs": [sock("model", "MODEL", 3), sock("positive", "CONDITIONING", 4),
                    sock("negative", "CONDITIONING", 5), sock("latent_image", "LATENT", 7)],
         "widgets_values": [1, "fixed", 2, 8, "euler", "normal", 1]},
        *extra_nodes,
    ]  # fmt: skip
    links = [[1, 4, 1, 6, 0, "CLIP"], [2, 4, 1, 7, 0, "CLIP"], [3, 4, 0, 3, 0, "MODEL"],
             [4, 6, 0, 3, 1, "CONDITIONING"], [5, 7, 0, 3, 2, "CONDITIONING"],
             [7, 5, 0, 3, 3, "LATENT"], *extra_links]  # fmt: skip
    return {"nodes": nodes, "links": links, "version": 0.4}


@pytest.mark.parametrize("order", ["leftover last", "leftover first"])
def test_an_input_takes_the_link_it_names_not_a_leftover_to_its_slot(order):
    second = {"id": 15, "type": "EmptyLatentImage", "mode": 0, "widgets_values": [128, 64, 1]}
    data = classic(extra_nodes=[second], extra_links=[[50, 15, 0, 3, 3, "LATENT"]])
    if order == "leftover first":
        data["links"].insert(0, data["links"].pop())
    assert load(data)["3"].inputs["latent_image"] == Link("5", 0)


def test_a_leftover_link_to_an_unlinked_input_is_ignored():
    data = classic()
    data["nodes"][4]["inputs"][3]["link"] = None
    assert "latent_image" not in load(data)["3"].inputs


def test_an_input_takes_the_link_it_names_whatever_slot_that_link_says():
    data = classic()
    data["links"][5] = [7, 5, 0, 3, 9, "LATENT"]  # a stale target slot
    assert load(data)["3"].inputs["latent_image"] == Link("5", 0)


# --- node modes ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [1, 3])
def test_on_event_and_on_trigger_nodes_run_like_always(mode):
    data = classic(extra_nodes=[{"id": 8, "type": "VAEDecode", "mode": 0,
                                 "inputs": [sock("samples", "LATENT", 8), sock("vae", "VAE", 9)]}],
                   extra_links=[[8, 3, 0, 8, 0, "LATENT"], [9, 4, 2, 8, 1, "VAE"]])  # fmt: skip
    data["nodes"][4]["mode"] = mode
    g = load(data)
    assert g["3"].inputs["latent_image"] == Link("5", 0)
    assert g["8"].inputs["samples"] == Link("3", 0)


@pytest.mark.parametrize("mode", [1, 3])
def test_a_subgraph_instance_on_event_or_on_trigger_is_expanded(mode):
    proxy = {"properties": {"proxyWidgets": [["-1", "seed"]]}, "widgets_values": [111],
             "mode": mode}  # fmt: skip
    g = load(txt2img_with_instances((10, proxy)))
    assert g["11"].inputs["samples"] == Link("10:3", 0)
    assert seeds(g, 10) == [111]
