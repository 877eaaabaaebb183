"""The editor document `editor_from_graph` writes, checked against what ComfyUI's editor reads.

Facts from ComfyUI's frontend (its zod schema for workflow version 0.4, and LiteGraph): a
document has `last_node_id`, `last_link_id`, `nodes`, `links` as arrays
`[id, origin node, origin slot, target node, target slot, type]`, optional `id` (a UUID),
`revision`, `groups`, `config`, `extra.ds` (the view: `scale`, `offset`) and a numeric
`version`. A node has `id`, `type`, `pos`, `size`, `flags`, `order`, `mode`, `properties`
(`"Node name for S&R"`: its type), and optionally `inputs` (`name`, `type`, `link`, and
`widget: {name}` for a widget fed by a link), `outputs` (`name`, `type`, `links`,
`slot_index`), `widgets_values` and `title`. New ids are allocated after `last_node_id` and
`last_link_id`. LiteGraph draws a node's title bar (30 px) above `pos`, a slot row 20 px high
and a widget 20 px high plus 4 px of spacing. ComfyUI's own files save a seed widget followed
by its control value and an upload widget followed by "image" (LoadImage: `["example.png",
"image"]`).
"""

import json
import uuid

import pytest

from latentgraph.graph import (
    Graph,
    Link,
    Node,
)
from latentgraph.graph.comfy_editor import editor_from_graph, graph_from_editor
from latentgraph.graph.editor_layout import EDITOR_WINDOW, fitted_view, opened_view

from . import toy_nodes

TITLE_HEIGHT = 30  # LiteGraph.NODE_TITLE_HEIGHT
SLOT_HEIGHT = 20  # LiteGraph.NODE_SLOT_HEIGHT
WIDGET_HEIGHT = 20 + 4  # LiteGraph.NODE_WIDGET_HEIGHT and the spacing under each widget
# ComfyUI opens LoadImage 315 x 314: about 190 px under its widgets for the picture it shows
PICTURE_HEIGHT = 190


REG = toy_nodes.shapes


def txt2img(named: bool = False) -> Graph:
    """The classic text-to-image graph; `named` gives some nodes names instead of numbers."""
    ids = {"ckpt": "4", "pos": "6", "neg": "7", "latent": "5", "ks": "3", "dec": "8", "save": "9"}
    if named:
        ids.update(ckpt="model", latent="noise", ks="sample", save="save")
    g = Graph()
    g.add(Node(ids["ckpt"], "CheckpointLoaderSimple", {"ckpt_name": "builtin:tiny-sd"}))
    g.add(Node(ids["pos"], "CLIPTextEncode", {"text": "a cat", "clip": Link(ids["ckpt"], 1)}))
    g.add(Node(ids["neg"], "CLIPTextEncode", {"text": "", "clip": Link(ids["ckpt"], 1)},
               title="Negative"))  # fmt: skip
    g.add(Node(ids["latent"], "EmptyLatentImage", {"width": 64, "height": 32, "batch_size": 2}))
    g.add(Node(ids["ks"], "KSampler", {
        "model": Link(ids["ckpt"], 0), "seed": 7, "steps": 3, "cfg": 6.5, "sampler_name": "ddim",
        "scheduler": "karras", "positive": Link(ids["pos"], 0), "negative": Link(ids["neg"], 0),
        "latent_image": Link(ids["latent"], 0), "denoise": 0.75}))  # fmt: skip
    g.add(
        Node(ids["dec"], "VAEDecode", {"samples": Link(ids["ks"], 0), "vae": Link(ids["ckpt"], 2)})
    )
    g.add(Node(ids["save"], "SaveImage", {"images": Link(ids["dec"], 0), "filename_prefix": "x"}))
    return g


# the node fields of the schema (it lets others through; we write none)
NODE_KEYS = {"id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs",
             "properties", "widgets_values", "color", "bgcolor", "title"}  # fmt: skip


def by_id(doc: dict, nid: int) -> dict:
    return next(n for n in doc["nodes"] if n["id"] == nid)


def by_type(doc: dict, type_: str) -> dict:
    return next(n for n in doc["nodes"] if n["type"] == type_)


def is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def check_document(doc: dict) -> None:
    """What ComfyUI's editor needs to open `doc` and connect its links (see the module doc)."""
    assert json.loads(json.dumps(doc)) == doc  # plain JSON, nothing Python-only inside
    assert uuid.UUID(doc["id"]).version == 4
    assert doc["revision"] == 0 and doc["version"] == 0.4  # links as arrays: schema 0.4
    assert doc["groups"] == [] and doc["config"] == {}
    assert doc["extra"] == {"ds": opened_view(doc["nodes"])}
    node_ids = [n["id"] for n in doc["nodes"]]
    link_ids = [lk[0] for lk in doc["links"]]
    assert len(set(node_ids)) == len(node_ids) and len(set(link_ids)) == len(link_ids)
    assert all(type(i) is int and i > 0 for i in node_ids + link_ids)
    # new ids are allocated after these: no lower than any in use, and no gap left
    assert doc["last_node_id"] == max(node_ids, default=0)
    assert doc["last_link_id"] == max(link_ids, default=0) == len(link_ids)
    assert sorted(n["order"] for n in doc["nodes"]) == list(range(len(node_ids)))
    nodes = {n["id"]: n for n in doc["nodes"]}
    for n in doc["nodes"]:
        assert set(n) <= NODE_KEYS
        assert isinstance(n["type"], str) and n["mode"] == 0 and n["flags"] == {}
        assert len(n["pos"]) == 2 and all(is_number(v) for v in n["pos"])
        assert len(n["size"]) == 2 and all(is_number(v) and v > 0 for v in n["size"])
        assert n["properties"]["Node name for S&R"] == n["type"]
        assert isinstance(n["widgets_values"], list)
        for entry in n["inputs"]:
            assert set(entry) in ({"name", "type", "link"}, {"name", "type", "link", "widget"})
            assert isinstance(entry["name"], str) and isinstance(entry["type"], str)
            if "widget" in entry:
                assert entry["widget"] == {"name": entry["name"]}
        for k, out in enumerate(n["outputs"]):
            assert set(out) == {"name", "type", "links", "slot_index"}
            assert out["slot_index"] == k and isinstance(out["links"], list)
    seen_inputs = set()
    for link in doc["links"]:
        assert len(link) == 6
        link_id, src, src_slot, dst, dst_slot, type_ = link
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id
        assert type_ == out["type"] and (inp["type"] == type_ or "*" in (type_, inp["type"]))
        assert nodes[src]["order"] < nodes[dst]["order"]  # the order it runs in
        seen_inputs.add((dst, dst_slot))
    # no input or output names a link that is not in the list
    for n in doc["nodes"]:
        for slot, entry in enumerate(n["inputs"]):
            assert (entry["link"] is None) == ((n["id"], slot) not in seen_inputs)
        for out in n["outputs"]:
            assert set(out["links"]) <= set(link_ids)


def connections(doc: dict) -> set[tuple[int, int, int, str]]:
    """(from node, from slot, to node, input name) of every link in the document."""
    nodes = {n["id"]: n for n in doc["nodes"]}
    return {(src, slot, dst, nodes[dst]["inputs"][dst_slot]["name"])
            for _, src, slot, dst, dst_slot, _ in doc["links"]}  # fmt: skip


@pytest.mark.parametrize("named", [False, True])
def test_the_document_is_what_the_editor_reads(named):
    graph = txt2img(named)
    doc = editor_from_graph(graph, REG)
    check_document(doc)
    assert len(doc["nodes"]) == len(graph) and len(doc["links"]) == 9
    ids = {n["properties"].get("latentgraph_id", str(n["id"])): n["id"] for n in doc["nodes"]}
    assert set(ids) == set(graph.nodes)
    assert {n["type"] for n in doc["nodes"]} == {n.type for n in graph}
    expected = {(ids[link.node], link.output, ids[n.id], name)
                for n in graph for name, link in n.links()}  # fmt: skip
    assert connections(doc) == expected


def test_the_document_is_fresh_each_time():
    first, second = (editor_from_graph(txt2img(), REG) for _ in range(2))
    assert first["id"] != second["id"]


def test_an_empty_graph_is_an_empty_document():
    doc = editor_from_graph(Graph(), REG)
    check_document(doc)
    assert (doc["nodes"], doc["links"], doc["last_node_id"], doc["last_link_id"]) == ([], [], 0, 0)


def test_numeric_ids_are_kept_and_names_numbered_after_them():
    g = Graph()
    g.add(Node("a", "EmptyLatentImage", {"width": 8, "height": 8, "batch_size": 1}))
    g.add(Node("2", "EmptyLatentImage", {"width": 8, "height": 8, "batch_size": 1}))
    g.add(Node("b", "LatentUpscale", {"samples": Link("a", 0), "upscale_method": "bilinear",
                                      "width": 8, "height": 8, "crop": "center"}))  # fmt: skip
    g.add(Node("10", "LatentUpscale", {"samples": Link("2", 0), "upscale_method": "bilinear",
                                       "width": 8, "height": 8, "crop": "center"}))  # fmt: skip
    doc = editor_from_graph(g, REG)
    check_document(doc)
    ids = {n["properties"].get("latentgraph_id", str(n["id"])): n["id"] for n in doc["nodes"]}
    assert ids == {"a": 11, "2": 2, "b": 12, "10": 10}
    assert doc["last_node_id"] == 12


def test_an_all_named_graph_is_numbered_from_one_in_graph_order():
    g = Graph()
    for name in ("z", "y", "x"):
        g.add(Node(name, "EmptyLatentImage", {"width": 8, "height": 8, "batch_size": 1}))
    doc = editor_from_graph(g, REG)
    assert {n["properties"]["latentgraph_id"]: n["id"] for n in doc["nodes"]} == {
        "z": 1, "y": 2, "x": 3}  # fmt: skip
    assert doc["last_node_id"] == 3


def test_links_are_numbered_from_one_typed_by_their_output():
    doc = editor_from_graph(txt2img(), REG)
    assert [lk[0] for lk in doc["links"]] == list(range(1, 10))
    types = {(src, slot): type_ for _, src, slot, _, _, type_ in doc["links"]}
    assert types == {(4, 0): "MODEL", (4, 1): "CLIP", (4, 2): "VAE", (6, 0): "CONDITIONING",
                     (7, 0): "CONDITIONING", (5, 0): "LATENT", (3, 0): "LATENT",
                     (8, 0): "IMAGE"}  # fmt: skip
    clip = by_id(doc, 4)["outputs"][1]
    assert clip["name"] == "CLIP" and len(clip["links"]) == 2  # one output, two targets


def test_sockets_and_outputs_in_declaration_order():
    doc = editor_from_graph(txt2img(), REG)
    ks = by_id(doc, 3)
    assert [(i["name"], i["type"]) for i in ks["inputs"]] == [
        ("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
        ("latent_image", "LATENT")]  # fmt: skip
    assert all(set(i) == {"name", "type", "link"} and i["link"] for i in ks["inputs"])
    loader = by_id(doc, 4)
    assert loader["inputs"] == []
    assert [(o["name"], o["type"], o["slot_index"]) for o in loader["outputs"]] == [
        ("MODEL", "MODEL", 0), ("CLIP", "CLIP", 1), ("VAE", "VAE", 2)]  # fmt: skip
    assert by_id(doc, 9)["outputs"] == []  # SaveImage has none
    g = Graph()
    g.add(Node("1", "LoadImage", {"image": "a.png"}))
    doc = editor_from_graph(g, REG)
    assert [(o["name"], o["links"]) for o in doc["nodes"][0]["outputs"]] == [
        ("IMAGE", []), ("MASK", [])]  # fmt: skip


def test_widgets_values_in_the_editors_order():
    doc = editor_from_graph(txt2img(), REG)
    # the seed's control value right after it, as in ComfyUI's default workflow
    assert by_id(doc, 3)["widgets_values"] == [7, "fixed", 3, 6.5, "ddim", "karras", 0.75]
    assert by_id(doc, 5)["widgets_values"] == [64, 32, 2]
    assert by_id(doc, 6)["widgets_values"] == ["a cat"]
    assert by_id(doc, 4)["widgets_values"] == ["builtin:tiny-sd"]


@pytest.mark.parametrize("type_, inputs, values", [
    ("LoadImage", {"image": "b.png"}, ["b.png", "image"]),
    # the upload button's value after the required widgets, before the optional ones
    ("LoadImageMask", {"image": "m.png", "channel": "red"}, ["m.png", "red", "image"]),
    ("UploadWithOptions", {"image": "m.png", "size": 4, "extra": 2}, ["m.png", 4, "image", 2]),
])  # fmt: skip
def test_an_upload_widget_is_followed_by_its_button_value(type_, inputs, values):
    g = Graph()
    g.add(Node("1", type_, inputs))
    doc = editor_from_graph(g, REG)
    assert doc["nodes"][0]["widgets_values"] == values
    assert graph_from_editor(doc, REG)["1"].inputs == inputs


def test_unset_widgets_show_their_default_or_null():
    """Optional widgets left unset at the end are left out (latentgraph's own extras, which
    ComfyUI's node of that name does not have, are optional and last)."""
    g = Graph()
    g.add(Node("1", "UploadWithOptions", {"image": "m.png"}))
    g.add(Node("2", "CLIPTextEncode", {}))  # required text, no default: null, not a crash
    g.add(Node("3", "Blend", {}))  # `note` is optional without a default
    g.add(Node("4", "UploadWithOptions", {"image": "m.png", "extra": 2}))
    doc = editor_from_graph(g, REG)
    check_document(doc)
    assert by_id(doc, 1)["widgets_values"] == ["m.png", 8, "image"]
    assert by_id(doc, 2)["widgets_values"] == [None]
    assert by_id(doc, 3)["widgets_values"] == [0.5]
    assert by_id(doc, 4)["widgets_values"] == ["m.png", 8, "image", 2]


def test_a_widget_fed_by_a_link_is_an_input_with_its_widget_name():
    g = txt2img()
    g.add(Node("20", "IntValue", {"value": 5}))
    g["3"].inputs["steps"] = Link("20", 0)  # a widget with a default (20)
    g["3"].inputs["seed"] = Link("20", 0)  # a widget without one
    g.add(Node("21", "StringConcatenate", {"string_a": "a", "string_b": "b", "delimiter": ","}))
    g["6"].inputs["text"] = Link("21", 0)
    doc = editor_from_graph(g, REG)
    check_document(doc)
    ks = by_id(doc, 3)
    assert [i["name"] for i in ks["inputs"]] == [
        "model", "positive", "negative", "latent_image", "seed", "steps"]  # fmt: skip
    seed, steps = ks["inputs"][4:]
    assert seed == {"name": "seed", "type": "INT", "widget": {"name": "seed"},
                    "link": seed["link"]}  # fmt: skip
    assert steps["widget"] == {"name": "steps"} and steps["type"] == "INT"
    # the widget keeps a value in its place: its default (the seed's is 0)
    assert ks["widgets_values"] == [0, "fixed", 20, 6.5, "ddim", "karras", 0.75]
    links = {lk[0]: lk for lk in doc["links"]}
    assert links[seed["link"]][1:] == [20, 0, 3, 4, "INT"]
    assert links[steps["link"]][1:] == [20, 0, 3, 5, "INT"]
    enc = by_id(doc, 6)
    assert enc["inputs"][1]["widget"] == {"name": "text"}
    assert links[enc["inputs"][1]["link"]][5] == "STRING"
    back = graph_from_editor(doc, REG)
    assert back["3"].inputs["seed"] == back["3"].inputs["steps"] == Link("20", 0)
    assert back["6"].inputs["text"] == Link("21", 0)


def test_a_node_type_not_installed_keeps_its_links():
    g = txt2img()
    g["8"].type = "FancyDecode"  # its two inputs are links; its output feeds SaveImage
    g.add(Node("30", "FancyPreview", {"images": Link("8", 0), "extra": Link("8", 2)}))
    g.add(Node("31", "FancyPreview", {"images": Link("8", 1)}))  # a lower slot after
    doc = editor_from_graph(g, REG)
    check_document(doc)
    dec = by_id(doc, 8)
    assert dec["inputs"] == [
        {"name": "samples", "type": "*", "link": dec["inputs"][0]["link"]},
        {"name": "vae", "type": "*", "link": dec["inputs"][1]["link"]}]  # fmt: skip
    # one "*" output slot up to the highest its links use, so every link has a slot
    assert [(o["name"], o["type"], len(o["links"])) for o in dec["outputs"]] == [
        ("*", "*", 2), ("*", "*", 1), ("*", "*", 1)]  # fmt: skip
    assert dec["widgets_values"] == [] and by_id(doc, 30)["outputs"] == []
    assert {tuple(lk[1:]) for lk in doc["links"] if lk[1] == 8} == {
        (8, 0, 9, 0, "*"), (8, 0, 30, 0, "*"), (8, 2, 30, 1, "*"), (8, 1, 31, 0, "*")}  # fmt: skip
    back = graph_from_editor(doc, REG)
    assert back["8"].inputs == {"samples": Link("3", 0), "vae": Link("4", 2)}
    assert back["30"].inputs == {"images": Link("8", 0), "extra": Link("8", 2)}


def test_links_that_point_nowhere_are_left_unconnected():
    g = Graph()
    g.add(Node("1", "LoadImage", {"image": "a.png"}))
    # `b` (an optional socket) unset, `a` from a node not in the graph, `factor` from the
    # output after LoadImage's two: written, typed "*" (validation names the mistake)
    g.add(Node("2", "Blend", {"a": Link("99", 0), "factor": Link("1", 2)}))
    doc = editor_from_graph(g, REG)
    blend = by_id(doc, 2)
    assert [(i["name"], i["link"]) for i in blend["inputs"]] == [
        ("a", None), ("b", None), ("factor", 1)]  # fmt: skip
    assert doc["links"] == [[1, 1, 2, 2, 2, "*"]]


def test_titles_and_ids_in_the_properties():
    doc = editor_from_graph(txt2img(named=True), REG)
    props = {n["id"]: (n["properties"], n.get("title")) for n in doc["nodes"]}
    sample = next(n for n in doc["nodes"] if n["type"] == "KSampler")
    assert sample["properties"] == {"Node name for S&R": "KSampler", "latentgraph_id": "sample"}
    assert sample["title"] == "sample"  # a name shows as the title when there is none
    assert props[7] == ({"Node name for S&R": "CLIPTextEncode"}, "Negative")
    assert props[6] == ({"Node name for S&R": "CLIPTextEncode"}, None)
    assert "title" not in by_id(doc, 6)
    g = Graph()
    g.add(Node("n", "IntValue", {"value": 1}, title="Steps"))
    assert editor_from_graph(g, REG)["nodes"][0]["title"] == "Steps"


def test_the_layout_puts_columns_by_depth_without_overlaps():
    g = txt2img()
    g.add(Node("40", "LoadImage", {"image": "a.png"}))  # not linked to anything
    doc = editor_from_graph(g, REG)
    check_document(doc)
    nodes = doc["nodes"]
    x = {n["id"]: n["pos"][0] for n in nodes}
    # sources, then what they feed, left to right; the latent pulled next to its sampler
    assert x[4] < x[6] == x[7] == x[5] < x[3] < x[8] < x[9]
    assert x[40] == x[4] == min(x.values())
    # the first column at the left edge, every title bar below the top
    assert 0 <= min(x.values()) < nodes[0]["size"][0]
    assert all(n["pos"][1] >= TITLE_HEIGHT for n in nodes)
    columns = sorted(set(x.values()))
    width = max(n["size"][0] for n in nodes)
    assert all(b - a >= width for a, b in zip(columns, columns[1:], strict=False))
    for col in columns:
        stack = sorted((n["pos"][1], n["size"][1]) for n in nodes if n["pos"][0] == col)
        for (y, h), (next_y, _) in zip(stack, stack[1:], strict=False):
            assert next_y - (y + h) >= TITLE_HEIGHT  # the next title bar clears this node


def on_screen(node: dict, ds: dict) -> tuple[float, float, float, float]:
    """Where the editor draws `node`, its title bar included, at view `ds` (left, top, right,
    bottom in window pixels: `DragAndScale.convertOffsetToCanvas`)."""
    (x, y), (w, h), s = node["pos"], node["size"], ds["scale"]
    dx, dy = ds["offset"]
    return (x + dx) * s, (y - TITLE_HEIGHT + dy) * s, (x + w + dx) * s, (y + h + dy) * s


def test_a_written_document_opens_with_every_node_in_a_laptops_window():
    """`convert --to editor` wrote scale 1 at the origin: in a 1400x900 window the first
    column's titles sat under the editor's top bar and sidebar, and a SaveImage at x=1570 was
    off-screen. Then it carried the editor's own fit, 56% for txt2img, where the editor draws
    untitled grey boxes. Now every node is inside the window, clear of the bars, centred, at a
    scale the editor draws text at."""
    g = txt2img()
    g.add(Node("40", "LoadImage", {"image": "a.png"}))
    doc = editor_from_graph(g, REG)
    assert max(n["pos"][0] for n in doc["nodes"]) > EDITOR_WINDOW[0]  # wider than the window
    ds = doc["extra"]["ds"]
    assert ds["scale"] >= 0.6 > fitted_view(doc["nodes"])["scale"]  # the editor's fit: unreadable
    rects = [on_screen(n, ds) for n in doc["nodes"]]
    left, top = min(r[0] for r in rects), min(r[1] for r in rects)
    right, bottom = max(r[2] for r in rects), max(r[3] for r in rects)
    assert left >= 100 and top >= 80  # clear of the sidebar and the top bar
    assert right <= EDITOR_WINDOW[0] - 100 and bottom <= EDITOR_WINDOW[1] - 80
    assert abs((left + right) / 2 - EDITOR_WINDOW[0] / 2) < 15
    assert abs((top + bottom) / 2 - EDITOR_WINDOW[1] / 2) < 15
    assert opened_view([]) == {"scale": 1.0, "offset": [0, 0]}


def test_a_graph_too_big_to_read_whole_opens_readable_at_its_corner():
    """A long chain fitted whole would be specks: it opens at the readable scale with its
    first node just clear of the sidebar, the rest a pan to the right."""
    g = Graph()
    g.add(Node("1", "EmptyLatentImage", {"width": 64, "height": 64, "batch_size": 1}))
    for k in range(2, 21):
        g.add(Node(str(k), "LatentUpscale", {"samples": Link(str(k - 1), 0),
                                             "upscale_method": "nearest-exact", "width": 64,
                                             "height": 64, "crop": "disabled"}))  # fmt: skip
    doc = editor_from_graph(g, REG)
    ds = doc["extra"]["ds"]
    assert fitted_view(doc["nodes"])["scale"] < 0.3 and ds["scale"] == 0.6
    first = on_screen(next(n for n in doc["nodes"] if n["id"] == 1), ds)
    assert 56 < first[0] < 120  # its left edge just clear of the sidebar
    rects = [on_screen(n, ds) for n in doc["nodes"]]
    top, bottom = min(r[1] for r in rects), max(r[3] for r in rects)
    assert top > 82 and abs((top + bottom) / 2 - EDITOR_WINDOW[1] / 2) < 15  # one row: centred
    assert max(on_screen(n, ds)[2] for n in doc["nodes"]) > EDITOR_WINDOW[0]  # a pan away


def test_columns_given_are_stacked_as_listed_without_overlaps():
    """A template's own arrangement (the classic default graph's, server/api_templates.py):
    each column's nodes top to bottom as listed, spaced by the same rule."""
    doc = editor_from_graph(txt2img(), REG, columns=[["4"], ["6", "7", "5"], ["3"], ["8", "9"]])
    check_document(doc)
    x = {n["id"]: n["pos"][0] for n in doc["nodes"]}
    y = {n["id"]: n["pos"][1] for n in doc["nodes"]}
    assert x[4] < x[6] == x[7] == x[5] < x[3] < x[8] == x[9]
    assert y[6] < y[7] < y[5] and y[8] < y[9] and y[4] == y[6] == y[3] == y[8]
    for k, a in enumerate(doc["nodes"]):
        for b in doc["nodes"][k + 1 :]:
            assert not rectangles_overlap(a, b), (a["type"], b["type"])
    with pytest.raises(ValueError, match="each node of the graph once"):
        editor_from_graph(txt2img(), REG, columns=[["4"], ["6", "7", "5"], ["3"], ["8"]])


def _chain(length: int) -> Graph:
    g = Graph()
    g.add(Node("1", "EmptyLatentImage", {"width": 64, "height": 64, "batch_size": 1}))
    for k in range(2, length + 1):
        g.add(Node(str(k), "LatentUpscale", {"samples": Link(str(k - 1), 0),
                                             "upscale_method": "nearest-exact", "width": 64,
                                             "height": 64, "crop": "disabled"}))  # fmt: skip
    return g


@pytest.mark.parametrize(("length", "node_width", "columns"), [(20, 320, 4), (24, 260, 6)])
def test_a_template_is_flowed_into_the_columns_the_editors_fit_reads(length, node_width, columns):
    """`fitted`: the editor fits a template into its window whatever view the file carries,
    so the layout itself must read there. One column per depth, a 20-node chain fitted at
    17%; flowed in depth order, top to bottom then left to right, into the columns a 1400x900
    window holds at 60% (four of 320 px; six narrower ones for a graph those cannot hold), it
    fits at 60% or more, and every link still comes from the left or from higher up."""
    assert fitted_view(editor_from_graph(_chain(length), REG)["nodes"])["scale"] < 0.2
    doc = editor_from_graph(_chain(length), REG, fitted=True)
    check_document(doc)
    nodes = doc["nodes"]
    assert fitted_view(nodes)["scale"] >= 0.6
    assert {n["size"][0] for n in nodes} == {node_width}
    assert len({n["pos"][0] for n in nodes}) == columns
    for k, a in enumerate(nodes):
        for b in nodes[k + 1 :]:
            assert not rectangles_overlap(a, b), (a["pos"], b["pos"])
    pos = {n["id"]: tuple(n["pos"]) for n in nodes}
    assert all(pos[origin] < pos[target] for _, origin, _, target, _, _ in doc["links"])


def test_latentgraphs_extra_sockets_have_rows_on_a_comfyui_node():
    """VAEDecode's `tiled` and `sliced` (`comfy_extra`) are sockets in the editor even when
    unlinked, so not written: it draws four rows, 86 px; it was laid out 74 px tall for two,
    and the node under it overlapped its last row."""
    import latentgraph.nodes  # noqa: F401 - registers the built-in nodes
    from latentgraph.graph import default_registry

    g = Graph()
    g.add(Node("1", "EmptyLatentImage", {"width": 64, "height": 64, "batch_size": 1}))
    g.add(Node("2", "CheckpointLoaderSimple", {"ckpt_name": "builtin:tiny-sd"}))
    g.add(Node("3", "VAEDecode", {"samples": Link("1", 0), "vae": Link("2", 2)}))
    decode = by_type(editor_from_graph(g, default_registry), "VAEDecode")
    assert [i["name"] for i in decode["inputs"]] == ["samples", "vae"]
    assert decode["size"][1] >= 4 * SLOT_HEIGHT


def rectangles_overlap(a: dict, b: dict) -> bool:
    """Whether two nodes' rectangles, title bar (drawn above `pos`) included, overlap."""
    (ax, ay), (aw, ah) = a["pos"], a["size"]
    (bx, by), (bw, bh) = b["pos"], b["size"]
    return (ax < bx + bw and bx < ax + aw
            and ay - TITLE_HEIGHT < by + bh and by - TITLE_HEIGHT < ay + ah)  # fmt: skip


def test_nodes_showing_a_picture_have_room_for_it_and_overlap_nothing():
    """LoadImage was converted 320 x 126, its slots and widgets alone: the editor then drew
    the picture it loaded over the node below. A node showing a picture (an upload widget's,
    an output node's images) gets about ComfyUI's room for it, and the column is spaced so."""
    import latentgraph.nodes  # noqa: F401 - registers the built-in nodes
    from latentgraph.graph import default_registry

    g = Graph()
    g.add(Node("1", "LoadImage", {"image": "example.png"}))
    g.add(Node("2", "LoadImageMask", {"image": "example.png", "channel": "alpha"}))
    g.add(Node("3", "ImageInvert", {"image": Link("1", 0)}))
    g.add(Node("4", "ImageInvert", {"image": Link("1", 0)}))
    g.add(Node("5", "PreviewImage", {"images": Link("3", 0)}))
    g.add(Node("6", "SaveImage", {"images": Link("3", 0), "filename_prefix": "x"}))
    g.add(Node("7", "SaveImage", {"images": Link("4", 0), "filename_prefix": "y"}))
    g.add(Node("8", "MaskToImage", {"mask": Link("2", 0)}))
    doc = editor_from_graph(g, default_registry)
    check_document(doc)
    nodes = {n["type"]: n for n in doc["nodes"]}
    load = nodes["LoadImage"]
    assert load["size"][0] >= 315 and load["size"][1] >= 2 * SLOT_HEIGHT + 2 * WIDGET_HEIGHT + (
        PICTURE_HEIGHT)  # fmt: skip
    for type_ in ("LoadImageMask", "PreviewImage", "SaveImage"):
        n = nodes[type_]
        rows = max(sum("widget" not in i for i in n["inputs"]), len(n["outputs"]))
        needed = rows * SLOT_HEIGHT + len(n["widgets_values"]) * WIDGET_HEIGHT
        assert n["size"][1] >= needed + PICTURE_HEIGHT, type_
    plain = nodes["ImageInvert"]  # shows no picture: no room for one
    assert plain["size"][1] < SLOT_HEIGHT + PICTURE_HEIGHT
    every = doc["nodes"]
    for k, a in enumerate(every):
        for b in every[k + 1 :]:
            assert not rectangles_overlap(a, b), (a["type"], a["pos"], b["type"], b["pos"])


@pytest.mark.parametrize("linked_widgets", [False, True])
def test_each_node_is_tall_enough_for_its_slots_and_widgets(linked_widgets):
    g = txt2img()
    doc = editor_from_graph(g, REG)
    assert by_id(doc, 3)["size"][1] >= 4 * SLOT_HEIGHT + 7 * WIDGET_HEIGHT  # 4 sockets
    g["8"].type = "FancyDecode"
    g.add(Node("40", "UploadWithOptions", {"image": "m.png"}))
    g.add(Node("41", "IntValue", {"value": 5}))
    if linked_widgets:  # widget inputs: drawn by their widget, no rows of their own
        g["3"].inputs["steps"] = g["3"].inputs["seed"] = Link("41", 0)
    doc = editor_from_graph(g, REG)
    for n in doc["nodes"]:
        rows = max(sum("widget" not in i for i in n["inputs"]), len(n["outputs"]))
        needed = rows * SLOT_HEIGHT + len(n["widgets_values"]) * WIDGET_HEIGHT
        if n["type"] in ("SaveImage", "UploadWithOptions"):  # and its picture under them
            needed += PICTURE_HEIGHT
        # and no taller than that with a title bar's height or two to spare
        assert needed <= n["size"][1] <= needed + 2 * TITLE_HEIGHT
    assert by_id(doc, 4)["size"][1] >= 3 * SLOT_HEIGHT + WIDGET_HEIGHT  # three outputs


@pytest.mark.parametrize("named", [False, True])
def test_round_trip_graph_document_graph(named):
    graph = txt2img(named)
    back = graph_from_editor(editor_from_graph(graph, REG), REG)
    assert list(back.nodes) != [] and set(back.nodes) == set(graph.nodes)
    assert {n.id: (n.type, n.inputs, n.title) for n in back} == {
        n.id: (n.type, n.inputs, n.title) for n in graph}  # fmt: skip


def test_round_trip_document_graph_document(classic_editor):
    """A document we wrote, read and written again, connects the same nodes the same way."""
    first = editor_from_graph(graph_from_editor(classic_editor, REG), REG)
    again = editor_from_graph(graph_from_editor(first, REG), REG)
    check_document(again)
    for key in ("links", "last_node_id", "last_link_id"):
        assert again[key] == first[key]
    assert [(n["id"], n["type"], n["inputs"], n["outputs"], n["widgets_values"], n["pos"])
            for n in again["nodes"]] == [
        (n["id"], n["type"], n["inputs"], n["outputs"], n["widgets_values"], n["pos"])
        for n in first["nodes"]]  # fmt: skip
