import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from latentgraph.graph import Link, WorkflowError
from latentgraph.graph.convert import convert
from latentgraph.graph.formats import detect, load_file

from .toy_nodes import registry


def shape(graph):
    return {n.id: (n.type, n.inputs) for n in graph}


@pytest.fixture
def files(tmp_path, classic_editor, classic_api):
    editor = tmp_path / "classic_editor.json"
    editor.write_text(json.dumps(classic_editor))
    api = tmp_path / "classic_api.json"
    api.write_text(json.dumps(classic_api))
    return editor, api


def test_detect(classic_editor, classic_api):
    assert detect(classic_editor) == "editor"
    assert detect(classic_api) == "api"
    assert detect({"prompt": classic_api, "client_id": "x"}) == "api"
    assert detect({"version": 1, "nodes": {}}) == "yaml"


def test_editor_and_api_files_load_to_the_same_graph(files, classic_editor):
    editor, api = files
    loaded = load_file(editor, registry=registry)
    g1, extra1 = loaded.graph, loaded.extra
    loaded = load_file(api, registry=registry)
    g2, extra2 = loaded.graph, loaded.extra
    assert shape(g1) == shape(g2)
    assert extra1["workflow"] == classic_editor  # embedded unchanged in saved PNGs
    assert extra1["prompt"]["3"]["inputs"]["seed"] == 1234
    assert extra2["prompt"]["3"]["class_type"] == "KSampler"


def test_overrides_set_node_inputs_in_comfy_formats(files):
    editor, api = files
    loaded = load_file(api, overrides={"3.seed": "77", "6.text": "a cat"}, registry=registry)
    g, extra = loaded.graph, loaded.extra
    assert g["3"].inputs["seed"] == 77 and g["6"].inputs["text"] == "a cat"
    assert extra["prompt"]["3"]["inputs"]["seed"] == 77
    with pytest.raises(WorkflowError, match="<node id>.<input>"):
        load_file(editor, overrides={"seed": "1"}, registry=registry)


@pytest.mark.parametrize("chain", [["api", "editor", "yaml", "api"], ["yaml", "editor", "api"]])
def test_conversions_are_lossless(tmp_path, files, chain):
    editor, _ = files
    original = load_file(editor, registry=registry).graph
    src = editor
    for step, fmt in enumerate(chain):
        dst = tmp_path / f"step{step}.{'yaml' if fmt == 'yaml' else 'json'}"
        assert convert(src, dst, to=fmt, registry=registry).format == fmt
        src = dst
    final = load_file(src, registry=registry).graph
    assert sorted(final.nodes) == sorted(original.nodes)
    assert shape(final) == shape(original)


def test_yaml_from_editor_is_readable(tmp_path, files):
    editor, _ = files
    out = tmp_path / "classic.yaml"
    convert(editor, out, registry=registry)
    text = out.read_text()
    assert "type: KSampler" in text and "model: 4.MODEL" in text


def test_editor_to_editor_keeps_the_layout(tmp_path, files, classic_editor):
    editor, _ = files
    out = tmp_path / "copy.json"
    convert(editor, out, to="editor", registry=registry)
    assert json.loads(out.read_text()) == classic_editor


def test_target_format_from_suffix_or_refused(tmp_path, files):
    editor, _ = files
    assert convert(editor, tmp_path / "x.yml", registry=registry).format == "yaml"
    assert convert(editor, tmp_path / "x.json", registry=registry).format == "api"
    with pytest.raises(ValueError, match="cannot tell"):
        convert(editor, tmp_path / "x.txt", registry=registry)
    assert not (tmp_path / "x.txt").exists()


def test_unknown_types_are_not_converted_lossily(tmp_path, files, classic_api):
    _, api = files
    classic_api["8"]["class_type"] = "MysteryDecode"
    api.write_text(json.dumps(classic_api))
    with pytest.raises(WorkflowError, match="MysteryDecode"):
        convert(api, tmp_path / "out.json", to="editor", registry=registry)
    assert not (tmp_path / "out.json").exists()


def _png(path, **chunks):
    info = PngInfo()
    for k, v in chunks.items():
        info.add_text(k, v)
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    return path


def test_png_with_prompt_and_workflow(tmp_path, classic_api, classic_editor):
    png = _png(
        tmp_path / "a.png", prompt=json.dumps(classic_api), workflow=json.dumps(classic_editor)
    )
    loaded = load_file(png, registry=registry)
    g, extra = loaded.graph, loaded.extra
    assert g["8"].inputs == {"samples": Link("3", 0), "vae": Link("4", 2)}
    assert extra == {"prompt": classic_api, "workflow": classic_editor}
    out = tmp_path / "wf.json"
    convert(png, out, to="editor", registry=registry)
    assert json.loads(out.read_text()) == classic_editor


def test_png_with_only_the_editor_workflow(tmp_path, classic_editor):
    png = _png(tmp_path / "b.png", workflow=json.dumps(classic_editor))
    loaded = load_file(png, registry=registry)
    g, extra = loaded.graph, loaded.extra
    assert g["3"].inputs["seed"] == 1234 and extra["workflow"] == classic_editor


@pytest.mark.parametrize(
    "chunks, message",
    [({}, "a PNG image with no workflow in it"), ({"prompt": "{not json"}, "not valid JSON")],
)
def test_png_errors_are_clear(tmp_path, chunks, message):
    png = _png(tmp_path / "c.png", **chunks)
    with pytest.raises(WorkflowError, match=message) as err:
        load_file(png, registry=registry)
    assert "c.png" in str(err.value)


YAML_WITH_DECODE = """\
version: 1
nodes:
  ckpt: {type: CheckpointLoaderSimple, ckpt_name: builtin:tiny-sd}
  latent: {type: EmptyLatentImage, width: 64, height: 64, batch_size: 1}
  decode: {type: VAEDecode, samples: latent.LATENT, vae: ckpt.VAE%s}
  save: {type: SaveImage, images: decode.IMAGE, filename_prefix: x}
"""


@pytest.mark.parametrize("extra, values", [("", []), (", tiled: true", [True])])
def test_yaml_to_editor_writes_comfyuis_widgets_for_its_node_types(tmp_path, capsys, extra,
                                                                   values):  # fmt: skip
    """VAEDecode was written with latentgraph's `tiled` and `sliced` ([false, false]), two
    widgets ComfyUI's VAEDecode does not have: unset optional widgets at the end are left
    out; a value given for one is kept, and each file reads back to the same graph."""
    from .conftest import run_cli

    source = tmp_path / "wf.yaml"
    source.write_text(YAML_WITH_DECODE % extra)
    out = tmp_path / "wf.json"
    code, _, err = run_cli(capsys, "convert", source, out, "--to", "editor")
    assert code == 0, err
    doc = json.loads(out.read_text())
    [decode] = [n for n in doc["nodes"] if n["type"] == "VAEDecode"]
    assert decode["widgets_values"] == values
    assert load_file(out).graph["decode"].inputs == load_file(source).graph["decode"].inputs


def test_an_extra_is_a_socket_of_the_editor_file_and_its_values_after_comfyuis_are_read(
        tmp_path, capsys):  # fmt: skip
    """VAEDecode's `tiled` linked is written as the editor has it (a socket, no widget
    behind it); a file our served editor saved while `tiled`/`sliced` were widgets holds their
    values after ComfyUI's (none for VAEDecode), and they are still read."""
    from latentgraph.graph import default_registry
    from latentgraph.graph.comfy_editor import graph_from_editor

    from .conftest import run_cli

    source = tmp_path / "wf.yaml"
    source.write_text(YAML_WITH_DECODE.replace("  save:", "  flag: {type: PrimitiveBoolean, "
                                               "value: true}\n  save:")
                      % ", tiled: {from: flag.BOOLEAN}")  # fmt: skip
    out = tmp_path / "wf.json"
    code, _, err = run_cli(capsys, "convert", source, out, "--to", "editor")
    assert code == 0, err
    doc = json.loads(out.read_text())
    [decode] = [n for n in doc["nodes"] if n["type"] == "VAEDecode"]
    assert decode["inputs"][2] == {"name": "tiled", "type": "BOOLEAN", "link": 3}
    assert load_file(out).graph["decode"].inputs == load_file(source).graph["decode"].inputs
    del decode["inputs"][2]
    decode["widgets_values"] = [True, True]
    graph = graph_from_editor(doc, default_registry)
    decoded = graph["decode"].inputs
    assert (decoded["tiled"], decoded["sliced"]) == (True, True)
