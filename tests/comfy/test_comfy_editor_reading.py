"""Reading editor documents (`graph_from_editor`): widget values, links through editor-only
nodes, subgraphs, muting and the errors a malformed document gets, each at its edge."""

import copy

import pytest

from latentgraph.graph import Link, Location, WorkflowError
from latentgraph.graph.comfy_editor import editor_from_graph, graph_from_editor, map_widgets
from latentgraph.graph.problems import WorkflowWarning

from .toy_nodes import shapes as REG


def load(data, **kw):
    return graph_from_editor(data, REG, source="wf.json", **kw)


def problems(data):
    with pytest.raises(WorkflowError) as err:
        load(data)
    return err.value.problems


def doc(*nodes, links=()):
    return {"nodes": list(nodes), "links": [list(lk) for lk in links]}


def n(nid, type_, *, inputs=(), outputs=(), widgets=None, mode=0, **extra):
    out = {"id": nid, "type": type_, "mode": mode, "inputs": list(inputs),
           "outputs": list(outputs), **extra}  # fmt: skip
    if widgets is not None:
        out["widgets_values"] = widgets
    return out


def inp(name, type_, link=None, widget=None):
    entry = {"name": name, "type": type_, "link": link}
    if widget:
        entry["widget"] = {"name": widget}
    return entry


def out(type_, links=()):
    return {"name": type_, "type": type_, "links": list(links)}


IMAGE_SOURCE = n(1, "LoadImage", widgets=["a.png", "image"], outputs=[out("IMAGE"), out("MASK")])


# --- widget values ------------------------------------------------------------------------


def test_values_running_out_leave_the_rest_unset():
    ks = REG["KSampler"]
    assert map_widgets(ks, [7, "fixed", 3]) == ({"seed": 7, "steps": 3}, None)
    assert map_widgets(ks, [7]) == ({"seed": 7}, None)
    # a seed as the last widget, without its control value
    assert map_widgets(REG["Seeded"], [5]) == ({"seed": 5}, None)
    assert map_widgets(REG["Seeded"], [5, "increment"]) == ({"seed": 5}, None)


def test_a_null_value_fits_any_widget_and_is_left_to_validation():
    assert map_widgets(REG["EmptyLatentImage"], [None, 8, 1]) == (
        {"width": None, "height": 8, "batch_size": 1}, None)  # fmt: skip


def test_a_misfit_is_refused_with_the_widget_order():
    values = [7, "fixed", "many", 7.5, "euler", "normal", 1.0]
    assert map_widgets(REG["KSampler"], values) == (
        {"seed": 7},
        "widgets_values[2] = 'many' does not fit widget 'steps' (INT); KSampler widgets in "
        "order: seed (+ control value), steps, cfg, sampler_name, scheduler, denoise",
    )
    # a boolean is not a number, a number not a boolean or a string
    assert map_widgets(REG["EmptyLatentImage"], [True])[1].startswith(
        "widgets_values[0] = True does not fit widget 'width' (INT)")  # fmt: skip
    assert map_widgets(REG["CLIPTextEncode"], [3])[1].startswith(
        "widgets_values[0] = 3 does not fit widget 'text' (STRING)")  # fmt: skip


def test_values_left_over_are_refused_with_the_widget_order():
    assert map_widgets(REG["EmptyLatentImage"], [8, 8, 1, 2, 3]) == (
        {"width": 8, "height": 8, "batch_size": 1},
        "5 widgets_values for 3 widget(s) of EmptyLatentImage: [2, 3] left over; widgets in "
        "order: width, height, batch_size",
    )


def test_a_misfit_in_a_document_names_the_node_and_file():
    data = doc(n(5, "EmptyLatentImage", widgets=["wide", 8, 1]))
    [problem] = problems(data)
    assert (problem.code, problem.node_id, problem.node_type) == (
        "invalid_input_type", "5", "EmptyLatentImage")  # fmt: skip
    assert problem.location == Location("wf.json")
    assert problem.message.startswith("widgets_values[0] = 'wide' does not fit widget 'width'")


@pytest.mark.parametrize("type_, values, expected", [
    ("UploadWithOptions", ["m.png", 4, "image", 2], {"image": "m.png", "size": 4, "extra": 2}),
    # files that do not save the upload button's value
    ("UploadWithOptions", ["m.png", 4, 2], {"image": "m.png", "size": 4, "extra": 2}),
    ("UploadWithOptions", ["m.png", 4], {"image": "m.png", "size": 4}),
    ("LoadImage", ["b.png"], {"image": "b.png"}),
    # an optional upload widget, the only widget
    ("OptionalUpload", ["x.png", "image"], {"image": "x.png"}),
    ("OptionalUpload", ["x.png"], {"image": "x.png"}),
])  # fmt: skip
def test_the_upload_buttons_value_is_skipped_where_the_editor_puts_it(type_, values, expected):
    assert map_widgets(REG[type_], values) == (expected, None)


def test_a_link_only_socket_of_a_widget_type_is_not_a_widget():
    g = load(doc(n(1, "Seeded", widgets=[3, "fixed"], outputs=[out("INT", [1])]),
                 n(2, "TakesInt", widgets=[16], inputs=[inp("count", "INT", 1)]),
                 links=[[1, 1, 0, 2, 0, "INT"]]))  # fmt: skip
    assert g["2"].inputs == {"size": 16, "count": Link("1", 0)}
    written = editor_from_graph(g, REG)["nodes"]
    assert next(x for x in written if x["type"] == "TakesInt")["widgets_values"] == [16]


def test_a_link_goes_to_the_widget_named_in_the_input_entry():
    """The entry's `name` can be a label; `widget.name` is the widget it feeds."""
    data = doc(n(1, "Seeded", widgets=[3, "fixed"]),
               n(2, "EmptyLatentImage", widgets=[8, 8, 1],
                 inputs=[inp("Height (px)", "INT", 1, widget="height")]),
               links=[[1, 1, 0, 2, 0, "INT"]])  # fmt: skip
    assert load(data)["2"].inputs == {"width": 8, "height": Link("1", 0), "batch_size": 1}


def test_input_entries_that_say_nothing_are_passed_over():
    data = doc(IMAGE_SOURCE,
               n(2, "Blend", widgets=[0.5],
                 inputs=[{"name": 7, "type": "IMAGE", "link": 1}, "junk",
                         inp("b", "IMAGE", 2), inp("a", "IMAGE", 3)]),
               links=[[1, 1, 0, 2, 0, "IMAGE"], [2, 9, 0, 2, 2, "IMAGE"],
                      [3, 1, 0, 2, 3, "IMAGE"]])  # fmt: skip
    # a name that is not text, an entry that is not an object, a link from nowhere: skipped,
    # and the entries after them still read
    assert load(data)["2"].inputs == {"factor": 0.5, "a": Link("1", 0)}


# --- the document as a whole --------------------------------------------------------------


def test_the_graph_names_its_source_and_dialect():
    g = load(doc(n(3, "EmptyLatentImage", widgets=[8, 8, 1], title="Noise")))
    assert (g.source, g.dialect) == ("wf.json", "comfy")
    assert str(g["3"].location) == "wf.json" and g["3"].title == "Noise"
    assert graph_from_editor(doc(), REG).source == "<editor>"


def test_a_title_that_is_not_text_is_ignored():
    g = load(doc(n(3, "EmptyLatentImage", widgets=[8, 8, 1], title=["x"])))
    assert g["3"].title is None


def test_editor_only_nodes_before_others_do_not_stop_the_reading():
    data = doc(n(1, "Note", widgets=["hello"]), n(2, "EmptyLatentImage", mode=2),
               n(3, "EmptyLatentImage", widgets=[8, 8, 1]))  # fmt: skip
    assert set(load(data).nodes) == {"3"}


def test_a_mode_that_is_not_a_number_counts_as_normal():
    assert set(load(doc(n(3, "EmptyLatentImage", widgets=[8, 8, 1], mode="on"))).nodes) == {"3"}


def test_not_an_editor_workflow_is_a_located_syntax_error():
    with pytest.raises(WorkflowError) as err:
        load({"3": {"class_type": "KSampler"}})
    [problem] = err.value.problems
    assert (problem.code, problem.location) == ("syntax", Location("wf.json"))
    assert problem.message == "not an editor workflow: expected a 'nodes' list"


def test_an_undefined_group_node_is_reported_at_the_file():
    [problem] = problems(doc(n(4, "workflow>missing")))
    assert problem.location == Location("wf.json") and problem.node_id == "4"


@pytest.mark.parametrize("mutate, messages", [
    (lambda d: d["nodes"].extend([{"type": "KSampler"}, {"id": 9, "type": 5}]),
     ["a node without an 'id' and a 'type' string: {'type': 'KSampler'}",
      "a node without an 'id' and a 'type' string: {'id': 9, 'type': 5}"]),
    (lambda d: d["nodes"].append({"id": 3, "type": None, "widgets_values": ["a" * 100]}),
     ["a node without an 'id' and a 'type' string: "
      + str({"id": 3, "type": None, "widgets_values": ["a" * 100]})[:80]]),
    (lambda d: d.__setitem__("links", "nope"), ["workflow: 'links' must be a list"]),
    (lambda d: d["links"].extend([[1, 2], {"id": 2}]),
     ["a link of the wrong shape: [1, 2] (expected [id, from, from_slot, to, to_slot, type])",
      "a link of the wrong shape: {'id': 2} (expected [id, from, from_slot, to, to_slot, type])"]),
    (lambda d: d["links"].append([1, 1, 0, 2, 0, "x" * 100]),
     []),  # a long type is fine (not read)
    (lambda d: d["links"].extend([[1, 1, "0", 2, 0], [2, 1, 0, 2, None]]),
     ["a link with non-integer slots: [1, 1, '0', 2, 0]",
      "a link with non-integer slots: [2, 1, 0, 2, None]"]),
])  # fmt: skip
def test_every_malformed_part_is_reported_in_full(mutate, messages):
    data = doc(n(1, "EmptyLatentImage", widgets=[8, 8, 1]), n(2, "LatentUpscale"))
    mutate(data)
    if not messages:
        load(data)
        return
    found = problems(data)
    assert [p.message for p in found] == messages
    assert {(p.code, p.location) for p in found} == {("syntax", Location("wf.json"))}


def test_a_long_malformed_link_is_cut_at_80_characters():
    bad = [1, 1, 0, 2, "slot " + "x" * 100]
    [problem] = problems(doc(n(1, "EmptyLatentImage", widgets=[8, 8, 1]), n(2, "LatentUpscale"),
                             links=[bad]))  # fmt: skip
    assert problem.message == f"a link with non-integer slots: {str(bad)[:80]}"
    wrong = ["a" * 100]
    [problem] = problems(doc(links=[wrong]))
    assert problem.message == (f"a link of the wrong shape: {str(wrong)[:80]} "
                               "(expected [id, from, from_slot, to, to_slot, type])")  # fmt: skip


def test_each_repeated_id_is_reported_with_its_id():
    data = doc(*(n(7, "EmptyLatentImage", widgets=[8, 8, 1]) for _ in range(3)),
               n(8, "SaveImage", widgets=["x"]))  # fmt: skip
    found = problems(data)
    assert [(p.message, p.node_id, p.code) for p in found] == [
        ("node id 7 appears twice", "7", "syntax")] * 2 + [  # then the rest of the graph's
        ("this required IMAGE input is missing: give it a link", "8", "required_input_missing")]  # fmt: skip


def test_a_link_with_five_items_and_no_type_is_read():
    data = doc(n(1, "EmptyLatentImage", widgets=[8, 8, 1]), n(2, "LatentUpscale",
               inputs=[inp("samples", "LATENT", 1)], widgets=["bilinear", 8, 8, "center"]),
               links=[[1, 1, 0, 2, 0]])  # fmt: skip
    assert load(data)["2"].inputs["samples"] == Link("1", 0)


def test_links_from_or_to_nodes_not_in_the_file_are_dropped_and_the_rest_read():
    data = doc(n(1, "EmptyLatentImage", widgets=[8, 8, 1]),
               n(2, "LatentUpscale", widgets=["bilinear", 8, 8, "center"],
                 inputs=[inp("samples", "LATENT", 1)]),
               links=[[9, 40, 0, 2, 0, "LATENT"], [8, 1, 0, 41, 0, "LATENT"],
                      [1, 1, 0, 2, 0, "LATENT"]])  # fmt: skip
    assert load(data)["2"].inputs["samples"] == Link("1", 0)
    data["links"] = [[9, 40, 0, 2, 0, "LATENT"]]  # only from nowhere: the input is missing
    [problem] = [p for p in problems(data) if p.node_id == "2"]
    assert str(problem) == ("wf.json: node '2' input 'samples': link 1 is not in the file's "
                            "links, so this required LATENT input has no link")  # fmt: skip


# --- reroutes, primitives, bypassed and muted nodes ----------------------------------------


def test_a_loop_of_reroutes_leads_nowhere_instead_of_crashing():
    data = doc(n(1, "Reroute", inputs=[inp("", "*", 2)]), n(2, "Reroute", inputs=[inp("", "*", 1)]),
               n(3, "VAEDecode", inputs=[inp("samples", "LATENT", 3)]),
               links=[[1, 1, 0, 2, 0, "*"], [2, 2, 0, 1, 0, "*"], [3, 1, 0, 3, 0, "*"]])  # fmt: skip
    assert load(data)["3"].inputs == {}


def test_a_long_chain_of_reroutes_is_followed():
    nodes = [IMAGE_SOURCE]
    links = [[1, 1, 0, 100, 0, "IMAGE"]]
    for k in range(100, 2100):  # deeper than Python's recursion limit
        nodes.append(n(k, "Reroute", inputs=[inp("", "*", len(links))]))
        links.append([len(links) + 1, k, 0, k + 1, 0, "IMAGE"])
    nodes.append(n(2100, "Blend", widgets=[0.5], inputs=[inp("a", "IMAGE", len(links))]))
    assert load(doc(*nodes, links=links))["2100"].inputs["a"] == Link("1", 0)


def test_a_primitive_without_a_value_leaves_the_widget_its_own():
    data = doc(n(1, "PrimitiveNode", widgets=[], outputs=[out("INT", [1])]),
               n(2, "EmptyLatentImage", widgets=[8, 16, 1],
                 inputs=[inp("height", "INT", 1, widget="height")]),
               links=[[1, 1, 0, 2, 0, "INT"]])  # fmt: skip
    assert load(data)["2"].inputs["height"] == 16
    data["nodes"][0]["widgets_values"] = {"value": 3}  # not a list: no value either
    assert load(data)["2"].inputs["height"] == 16


def bypassed(inputs, outputs, links):
    """IMAGE_SOURCE (1) -> a bypassed node (5) -> Blend (6).a"""
    return doc(IMAGE_SOURCE, n(5, "Anything", mode=4, inputs=inputs, outputs=outputs),
               n(6, "Blend", widgets=[0.5], inputs=[inp("a", "IMAGE", 99)]),
               links=[*links, [99, 5, 0, 6, 0, "IMAGE"]])  # fmt: skip


def test_a_bypassed_node_passes_a_linked_input_of_the_outputs_type():
    # its first input is of the type but unlinked: the next one of the type is used
    data = bypassed([inp("x", "IMAGE"), inp("y", "IMAGE", 1)], [out("IMAGE")],
                    [[1, 1, 0, 5, 1, "IMAGE"]])  # fmt: skip
    assert load(data)["6"].inputs["a"] == Link("1", 0)


@pytest.mark.parametrize("in_type, out_type", [("*", "IMAGE"), ("MASK", "*")])
def test_a_bypassed_node_with_any_type_on_either_side_passes_through(in_type, out_type):
    data = bypassed([inp("x", in_type, 1)], [out(out_type)], [[1, 1, 1, 5, 0, in_type]])
    assert load(data)["6"].inputs["a"] == Link("1", 1)


def test_a_bypassed_node_without_saved_outputs_passes_its_first_linked_input():
    data = bypassed([inp("x", "MASK"), inp("y", "MASK", 1)], [], [[1, 1, 1, 5, 1, "MASK"]])
    assert load(data)["6"].inputs["a"] == Link("1", 1)


def test_a_bypassed_nodes_output_with_no_input_of_its_type_gives_nothing_as_muting_does():
    """Blend's required input is lost to the bypass: Blend goes, as it would for a muted
    source (it stayed, its input missing, with no word of the bypass)."""
    data = bypassed([inp("x", "MASK", 1)], [out("IMAGE")], [[1, 1, 1, 5, 0, "MASK"]])
    assert "6" not in load(data)
    # the second output of a node with one input
    data = bypassed([inp("x", "MASK", 1)], [out("IMAGE"), out("LATENT")],
                    [[1, 1, 1, 5, 0, "MASK"]])  # fmt: skip
    data["links"][-1] = [99, 5, 1, 6, 0, "LATENT"]
    assert "6" not in load(data)


def test_a_link_past_a_bypassed_nodes_saved_inputs_is_passed_over():
    data = bypassed([inp("x", "MASK", 1)], [out("IMAGE"), out("LATENT")],
                    [[1, 1, 1, 5, 0, "MASK"], [2, 1, 0, 5, 1, "IMAGE"]])  # fmt: skip
    data["links"][-1] = [99, 5, 1, 6, 0, "LATENT"]
    assert "6" not in load(data)


def test_an_input_that_leads_nowhere_does_not_stop_the_next_ones():
    data = doc(IMAGE_SOURCE, n(2, "Reroute", inputs=[inp("", "*")]),
               n(3, "Blend", widgets=[0.5], inputs=[inp("b", "IMAGE", 1), inp("a", "IMAGE", 2)]),
               links=[[1, 2, 0, 3, 0, "IMAGE"], [2, 1, 0, 3, 1, "IMAGE"]])  # fmt: skip
    assert load(data)["3"].inputs == {"factor": 0.5, "a": Link("1", 0)}


def test_a_muted_source_of_a_node_type_not_installed_drops_it():
    data = doc(n(4, "EmptyLatentImage", mode=2, widgets=[8, 8, 1]), IMAGE_SOURCE,
               n(3, "FancyNode", inputs=[inp("latent", "LATENT", 1), inp("image", "IMAGE", 2)]),
               links=[[1, 4, 0, 3, 0, "LATENT"], [2, 1, 0, 3, 1, "IMAGE"]])  # fmt: skip
    assert set(load(data).nodes) == {"1"}  # nothing says the input could be left out


def test_a_muted_source_of_an_optional_input_keeps_the_node():
    data = doc(IMAGE_SOURCE, n(2, "LoadImage", mode=2, widgets=["b.png", "image"]),
               n(3, "Blend", widgets=[0.5], inputs=[inp("a", "IMAGE", 1), inp("b", "IMAGE", 2)]),
               links=[[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "IMAGE"]])  # fmt: skip
    assert load(data)["3"].inputs == {"a": Link("1", 0), "factor": 0.5}
    data["links"][0] = [1, 2, 0, 3, 0, "IMAGE"]  # the required one too: the node goes
    assert "3" not in load(data)


def test_a_widget_fed_by_a_muted_node_falls_back_to_its_default():
    data = doc(n(1, "Seeded", mode=2, widgets=[4, "fixed"]),
               n(2, "EmptyLatentImage", widgets=[8, 16, 1],
                 inputs=[inp("height", "INT", 1, widget="height")]),
               links=[[1, 1, 0, 2, 0, "INT"]])  # fmt: skip
    assert load(data)["2"].inputs == {"width": 8, "batch_size": 1}


def test_muting_reaches_every_node_downstream_whatever_their_order():
    # 4 needs 3 needs 2 needs the muted 1, listed from the far end back
    data = doc(n(4, "SaveImage", widgets=["x"], inputs=[inp("images", "IMAGE", 3)]),
               n(3, "VAEDecode", inputs=[inp("samples", "LATENT", 2), inp("vae", "VAE", 4)]),
               n(2, "LatentUpscale", widgets=["bilinear", 8, 8, "center"],
                 inputs=[inp("samples", "LATENT", 1)]),
               n(1, "EmptyLatentImage", mode=2, widgets=[8, 8, 1]),
               n(5, "CheckpointLoaderSimple", widgets=["builtin:tiny-sd"]),
               links=[[1, 1, 0, 2, 0, "LATENT"], [2, 2, 0, 3, 0, "LATENT"],
                      [3, 3, 0, 4, 0, "IMAGE"], [4, 5, 2, 3, 1, "VAE"]])  # fmt: skip
    data["nodes"].append(n(6, "SaveImage", widgets=["y"], inputs=[inp("images", "IMAGE", 5)]))
    data["nodes"].append(n(7, "VAEDecode", inputs=[inp("samples", "LATENT", 6),
                                                   inp("vae", "VAE", 7)]))  # fmt: skip
    data["nodes"].append(n(8, "EmptyLatentImage", widgets=[8, 8, 1]))
    data["links"] += [[5, 7, 0, 6, 0, "IMAGE"], [6, 8, 0, 7, 0, "LATENT"], [7, 5, 2, 7, 1, "VAE"]]
    with pytest.warns(WorkflowWarning, match=r"node '4' \(SaveImage\) needs node '1'"):
        assert set(load(data).nodes) == {"5", "6", "7", "8"}


# --- subgraphs ------------------------------------------------------------------------------


def link_obj(lid, src, src_slot, dst, dst_slot, type_):
    return {"id": lid, "origin_id": src, "origin_slot": src_slot, "target_id": dst,
            "target_slot": dst_slot, "type": type_}  # fmt: skip


def concat_subgraph(sid="sg-concat"):
    """A subgraph wrapping StringConcatenate with its three widgets promoted."""
    return {
        "id": sid,
        "nodes": [n(1, "StringConcatenate", widgets=["ia", "ib", "id"],
                    inputs=[inp("string_a", "STRING", 1, widget="string_a"),
                            inp("string_b", "STRING", 2, widget="string_b"),
                            inp("delimiter", "STRING", 3, widget="delimiter")])],
        "links": [link_obj(1, -10, 0, 1, 0, "STRING"), link_obj(2, -10, 1, 1, 1, "STRING"),
                  link_obj(3, -10, 2, 1, 2, "STRING"), link_obj(4, 1, 0, -20, 0, "STRING")],
    }  # fmt: skip


def with_concat(values, first_linked=True):
    instance = n(10, "sg-concat", widgets=values, outputs=[out("STRING")],
                 inputs=[inp("string_a", "STRING", 1 if first_linked else None, widget="a"),
                         inp("string_b", "STRING", None, widget="b"),
                         inp("delimiter", "STRING", None, widget="c")])  # fmt: skip
    source = n(2, "StringConcatenate", widgets=["x", "y", "-"], outputs=[out("STRING")])
    data = doc(source, instance, links=[[1, 2, 0, 10, 0, "STRING"]] if first_linked else [])
    data["definitions"] = {"subgraphs": [concat_subgraph(), "junk", {"name": "no id"},
                                         {"id": 5}]}  # fmt: skip
    return data


def test_promoted_widgets_take_the_instances_values_in_order():
    g = load(with_concat(["va", "vb", "vc"]))
    # a linked promoted widget still has its place in the values
    assert g["10:1"].inputs == {"string_a": Link("2", 0), "string_b": "vb", "delimiter": "vc"}
    g = load(with_concat(["va", "vb", "vc"], first_linked=False))
    assert g["10:1"].inputs == {"string_a": "va", "string_b": "vb", "delimiter": "vc"}


def test_promoted_widgets_without_instance_values_keep_the_inner_ones():
    g = load(with_concat(["va"], first_linked=False))
    assert g["10:1"].inputs == {"string_a": "va", "string_b": "ib", "delimiter": "id"}


def test_a_link_from_a_subgraphs_output_node_leads_nowhere():
    data = with_concat(["va", "vb", "vc"])
    body = data["definitions"]["subgraphs"][0]
    body["links"][1] = link_obj(2, -20, 0, 1, 1, "STRING")
    assert load(data)["10:1"].inputs["string_b"] == "ib"


def nested(levels: int) -> dict:
    """`levels` subgraphs, each holding an instance of the next; the innermost holds the
    StringConcatenate. The text goes through every level's output to node 3 at the top."""
    defs = []
    for k in range(levels):
        inner = (n(1, "StringConcatenate", widgets=["deep", "", ""], outputs=[out("STRING")])
                 if k == levels - 1 else
                 n(1, f"sg-{k + 1}", outputs=[out("STRING")]))  # fmt: skip
        defs.append({"id": f"sg-{k}", "nodes": [inner],
                     "links": [link_obj(1, 1, 0, -20, 0, "STRING")]})  # fmt: skip
    data = doc(n(10, "sg-0", outputs=[out("STRING")]),
               n(3, "CLIPTextEncode", inputs=[inp("text", "STRING", 1, widget="text")]),
               links=[[1, 10, 0, 3, 0, "STRING"]])  # fmt: skip
    data["definitions"] = {"subgraphs": defs}
    return data


def test_subgraphs_nest_32_deep_and_no_deeper():
    g = load(nested(32))
    inner = "10" + ":1" * 32
    assert g[inner].type == "StringConcatenate"
    assert g["3"].inputs["text"] == Link(inner, 0)
    found = problems(nested(33))
    assert [p.message for p in found] == [
        "subgraphs nested more than 32 deep (a subgraph containing itself?)"]  # fmt: skip
    assert (found[0].code, found[0].location) == ("syntax", Location("wf.json"))


def test_a_subgraph_body_of_the_wrong_shape_names_its_instance():
    data = with_concat(["va", "vb", "vc"])
    data["definitions"]["subgraphs"][0]["nodes"] = "nope"
    assert [p.message for p in problems(data)] == ["subgraph instance 10: 'nodes' must be a list"]
    data = with_concat(["va", "vb", "vc"])
    data["definitions"]["subgraphs"][0]["links"] = "nope"
    assert [p.message for p in problems(data)] == ["subgraph instance 10: 'links' must be a list"]


# --- names kept in the properties -----------------------------------------------------------


def test_only_text_names_are_restored():
    data = doc(
        n(1, "EmptyLatentImage", widgets=[8, 8, 1], properties={"latentgraph_id": 5}),
        n(2, "EmptyLatentImage", widgets=[8, 8, 1], properties={"latentgraph_id": "a:b"}),
        n(3, "EmptyLatentImage", widgets=[8, 8, 1], properties={"latentgraph_id": "c"}),
    )
    g = load(data)
    assert list(g.nodes) == ["1", "a:b", "c"]  # a subgraph's inner id too
    assert (g.source, g.dialect) == ("wf.json", "comfy")
    assert g["c"].location == Location("wf.json")
    assert g.where("c", "width") == Location("wf.json")  # an input falls back to its node


def test_a_restored_name_keeps_a_title_of_its_own():
    data = doc(n(1, "EmptyLatentImage", widgets=[8, 8, 1], title="Noise",
                 properties={"latentgraph_id": "noise"}))  # fmt: skip
    assert load(data)["noise"].title == "Noise"


def test_a_document_copy_with_the_same_names_twice_keeps_the_numbers():
    g = load(doc(n(1, "EmptyLatentImage", widgets=[8, 8, 1], properties={"latentgraph_id": "a"})))
    first = editor_from_graph(g, REG)
    second = copy.deepcopy(first)
    second["nodes"][0]["id"] = 2
    first["nodes"] += second["nodes"]
    assert set(load(first).nodes) == {"1", "2"}


# --- every problem at once, each named with its cause ---------------------------------------


def txt2img(**changes):
    """A small text-to-image graph of our own: checkpoint 4, prompts 6 and 7, latent 5,
    KSampler 3, VAEDecode 8, SaveImage 9 (links numbered as the inputs they feed)."""
    nodes = {
        4: n(4, "CheckpointLoaderSimple", widgets=["builtin:tiny-sd"],
             outputs=[out("MODEL"), out("CLIP"), out("VAE")]),
        6: n(6, "CLIPTextEncode", widgets=["a cat"], inputs=[inp("clip", "CLIP", 3)]),
        7: n(7, "CLIPTextEncode", widgets=["blurry"], inputs=[inp("clip", "CLIP", 5)]),
        5: n(5, "EmptyLatentImage", widgets=[64, 64, 1]),
        3: n(3, "KSampler", widgets=[42, "fixed", 3, 7.0, "euler", "normal", 1.0],
             inputs=[inp("model", "MODEL", 1), inp("positive", "CONDITIONING", 4),
                     inp("negative", "CONDITIONING", 6), inp("latent_image", "LATENT", 2)]),
        8: n(8, "VAEDecode", inputs=[inp("samples", "LATENT", 7), inp("vae", "VAE", 8)]),
        9: n(9, "SaveImage", widgets=["cat"], inputs=[inp("images", "IMAGE", 9)]),
    }  # fmt: skip
    for nid, change in changes.items():
        nodes[int(nid.lstrip("n"))].update(change)
    return doc(*nodes.values(), links=[
        [1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"],
        [4, 6, 0, 3, 1, "CONDITIONING"], [5, 4, 1, 7, 0, "CLIP"],
        [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
        [9, 8, 0, 9, 0, "IMAGE"]])  # fmt: skip


def test_our_txt2img_reads():
    assert set(load(txt2img()).nodes) == {"3", "4", "5", "6", "7", "8", "9"}


def test_a_widgets_misfit_does_not_hide_the_other_problems():
    data = txt2img(n6={"widgets_values": [123]}, n4={"widgets_values": ["missing.safetensors"]},
                   n3={"widgets_values": [42, "fixed", 3, 7.0, "eulerx", "normal", 1.0]},
                   n8={"type": "VAEDecodeX"})  # fmt: skip
    data["links"][0] = [1, 4, 2, 3, 0, "VAE"]  # a VAE into KSampler's model
    found = [(p.node_id, p.input_name, p.code) for p in problems(data)]
    assert found == [
        ("6", None, "invalid_input_type"),  # the misfit first, then the rest of the graph's
        ("4", "ckpt_name", "value_not_in_list"),
        ("3", "sampler_name", "value_not_in_list"),
        ("3", "model", "return_type_mismatch"),
        ("8", None, "unknown_node_type"),
    ]  # nothing about node 6 itself again, nor about KSampler's link to it


def test_a_misfit_and_an_undefined_group_node_are_both_named():
    data = txt2img(n6={"widgets_values": [123]}, n7={"type": "workflow>missing"})
    found = [(p.node_id, p.code, p.message[:40]) for p in problems(data)]
    assert found == [
        ("7", "unknown_node_type", "group node 'workflow>missing' is not def"),
        ("6", "invalid_input_type", "widgets_values[0] = 123 does not fit wid"),
    ]


def test_muting_every_output_away_names_the_muted_node_they_need():
    [problem] = problems(txt2img(n7={"mode": 2}))
    assert str(problem) == (
        "wf.json: the workflow has no output node left to run: node '9' (SaveImage) needs node "
        "'7' (CLIPTextEncode), which is muted (node '3' (KSampler) input 'negative' takes it)"
    )
    assert problem.code == "prompt_no_outputs"
    [problem] = problems(txt2img(n8={"mode": 2}))
    assert problem.message.endswith(
        "node '9' (SaveImage) needs node '8' (VAEDecode), which is muted (its input 'images')"
    )
    [problem] = problems(txt2img(n9={"mode": 4}))
    assert problem.message.endswith(": node '9' (SaveImage) is bypassed")


def test_a_bypassed_node_with_nothing_to_pass_on_is_named_as_what_the_output_needs():
    """VAEDecode bypassed (IMAGE out, LATENT and VAE in) then SaveImage: validation said
    "node '9' input 'images': this required IMAGE input is missing", though the file links
    it. Named as a muted node is, and with a muted one too, both are."""
    decode_bypassed = {"mode": 4, "outputs": [out("IMAGE", [9])]}
    [problem] = problems(txt2img(n8=decode_bypassed))
    assert str(problem) == (
        "wf.json: the workflow has no output node left to run: node '9' (SaveImage) needs node "
        "'8' (VAEDecode), which is bypassed with no linked IMAGE input to pass on (its input "
        "'images')"
    )
    # one output needs a muted node, the other a bypassed one: both said
    data = txt2img(n7={"mode": 2})
    data["nodes"] += [
        n(11, "VAEDecode", mode=4, inputs=[inp("samples", "LATENT", 10), inp("vae", "VAE", 11)],
          outputs=[out("IMAGE", [12])]),
        n(12, "SaveImage", widgets=["dog"], inputs=[inp("images", "IMAGE", 12)]),
    ]  # fmt: skip
    data["links"] += [[10, 5, 0, 11, 0, "LATENT"], [11, 4, 2, 11, 1, "VAE"],
                      [12, 11, 0, 12, 0, "IMAGE"]]  # fmt: skip
    [problem] = problems(data)
    assert problem.code == "prompt_no_outputs"
    assert "node '9' (SaveImage) needs node '7' (CLIPTextEncode), which is muted" in str(problem)
    assert ("node '12' (SaveImage) needs node '11' (VAEDecode), which is bypassed with no "
            "linked IMAGE input to pass on (its input 'images')") in str(problem)  # fmt: skip
    # with an output left to run, the one the bypass stops is left out with a warning
    data = txt2img()
    data["nodes"] += [n(11, "VAEDecode", mode=4, inputs=[inp("samples", "LATENT", 10)],
                        outputs=[out("IMAGE", [12])]),
                      n(12, "SaveImage", widgets=["dog"], inputs=[inp("images", "IMAGE", 12)])]  # fmt: skip
    data["links"] += [[10, 5, 0, 11, 0, "LATENT"], [12, 11, 0, 12, 0, "IMAGE"]]
    with pytest.warns(WorkflowWarning, match=r"node '12' \(SaveImage\) needs node '11' "
                      r"\(VAEDecode\), which is bypassed with no linked IMAGE input"):  # fmt: skip
        assert "12" not in load(data)


def test_a_muted_node_with_other_problems_reports_them_all():
    data = txt2img(n7={"mode": 2}, n5={"widgets_values": ["wide", 64, 1]})
    assert [(p.node_id, p.code) for p in problems(data)] == [
        ("5", "invalid_input_type"),
        (None, "prompt_no_outputs"),
    ]


def test_a_link_an_input_names_that_is_not_in_the_links_is_named():
    data = txt2img()
    data["links"] = [lk for lk in data["links"] if lk[0] != 8]
    [problem] = problems(data)
    assert str(problem) == ("wf.json: node '8' input 'vae': link 8 is not in the file's links, "
                            "so this required VAE input has no link")  # fmt: skip
    assert problem.code == "required_input_missing"


def test_a_link_from_a_node_not_in_the_file_names_the_node():
    data = txt2img()
    data["links"][7] = [8, 77, 2, 8, 1, "VAE"]
    [problem] = problems(data)
    assert str(problem) == ("wf.json: node '8' input 'vae': link 8 comes from node '77', which "
                            "is not in the file, so this required VAE input has no link")  # fmt: skip


def test_a_dangling_link_into_a_widget_or_an_optional_input_is_only_dropped():
    data = txt2img()
    data["nodes"][3]["inputs"] = [inp("width", "INT", 50, widget="width")]
    assert load(data)["5"].inputs["width"] == 64  # the widget keeps its value, as in the editor
    blend = doc(IMAGE_SOURCE, n(2, "Blend", widgets=[0.5],
                                inputs=[inp("a", "IMAGE", 1), inp("b", "IMAGE", 60)]),
                links=[[1, 1, 0, 2, 0, "IMAGE"]])  # fmt: skip
    assert load(blend)["2"].inputs == {"a": Link("1", 0), "factor": 0.5}


def test_subgraph_ids_survive_editor_to_api_to_editor():
    from latentgraph.graph.comfy_api import graph_from_prompt, prompt_from_graph

    g = load(with_concat(["va", "vb", "vc"]))
    api = prompt_from_graph(g)
    back = load(editor_from_graph(graph_from_prompt(api, REG), REG))
    assert set(back.nodes) == set(g.nodes) == {"2", "10:1"}
    assert back["10:1"].inputs["string_a"] == Link("2", 0)


def test_a_restored_id_that_another_node_has_is_not_restored():
    data = doc(n(1, "EmptyLatentImage", widgets=[8, 8, 1], properties={"latentgraph_id": "2"}),
               n(2, "EmptyLatentImage", widgets=[8, 8, 1]))  # fmt: skip
    assert set(load(data).nodes) == {"1", "2"}
