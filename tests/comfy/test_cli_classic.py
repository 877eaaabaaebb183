"""Acceptance through the `latentgraph` command: ComfyUI's classic graph in editor and API
format, a saved PNG re-run, conversions between the three formats, img2img with the built-in
example picture, and unknown node types refused with their names (exit 2, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from .conftest import DATA, run_cli

ROOT = Path(__file__).resolve().parents[2]


def run_args(tmp_path: Path) -> list[str]:
    return ["--output-dir", tmp_path / "out", "--input-dir", tmp_path / "in", "--no-cache", "-q"]


def shape(graph) -> dict:
    """Node types and inputs; optional inputs left at their default count as absent (the
    editor format writes every widget, e.g. VAEDecode's tiled/sliced)."""
    from latentgraph.graph import default_registry

    out = {}
    for n in graph:
        t = default_registry[n.type]
        out[n.id] = (n.type, {k: v for k, v in n.inputs.items()
                              if not (t.input(k).optional and v == t.input(k).default)})  # fmt: skip
    return out


def saved_pngs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "out").glob("*.png"))


@pytest.mark.parametrize("name", ["classic_editor.json", "classic_api.json"])
def test_classic_graph_runs_from_the_cli(one_thread, tmp_path, capsys, name):
    code, _, err = run_cli(capsys, "run", DATA / name, *run_args(tmp_path))
    assert code == 0, err
    [png] = saved_pngs(tmp_path)
    assert png.name == "classic_00001_.png"
    with Image.open(png) as img:
        assert img.size == (64, 64)  # what the graph asks for: the tiny VAE scales by 8, as SD
        prompt = json.loads(img.text["prompt"])
        assert prompt["3"]["class_type"] == "KSampler"
        assert prompt["8"]["inputs"]["samples"] == ["3", 0]
        if name == "classic_editor.json":  # the editor graph rides along for drag-and-drop
            assert json.loads(img.text["workflow"]) == json.loads((DATA / name).read_text())


def test_saved_png_re_runs_and_gives_the_same_pixels(one_thread, tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", DATA / "classic_editor.json", *run_args(tmp_path))
    assert code == 0, err
    [first] = saved_pngs(tmp_path)
    code, _, err = run_cli(capsys, "run", first, *run_args(tmp_path))
    assert code == 0, err
    second = [p for p in saved_pngs(tmp_path) if p != first]
    assert [p.name for p in second] == ["classic_00002_.png"]
    with Image.open(first) as a, Image.open(second[0]) as b:
        assert a.tobytes() == b.tobytes()
        assert a.text["workflow"] == b.text["workflow"]


def test_convert_between_the_three_formats(one_thread, tmp_path, capsys):
    from latentgraph.graph.formats import load_file

    src = DATA / "classic_editor.json"
    chain = [(tmp_path / "classic.yaml", "yaml"), (tmp_path / "api.json", "api"),
             (tmp_path / "editor.json", "editor"), (tmp_path / "back.yaml", "yaml")]  # fmt: skip
    prev = src
    for dst, fmt in chain:
        code, _, err = run_cli(capsys, "convert", prev, dst, "--to", fmt)
        assert code == 0, err
        prev = dst
    original = load_file(src).graph
    for dst, _fmt in chain:
        graph = load_file(dst).graph
        assert shape(graph) == shape(original), dst.name
    assert "type: VAEDecode" in (tmp_path / "classic.yaml").read_text()
    assert json.loads((tmp_path / "api.json").read_text())["9"]["class_type"] == "SaveImage"
    assert isinstance(json.loads((tmp_path / "editor.json").read_text())["nodes"], list)
    code, _, err = run_cli(capsys, "run", tmp_path / "back.yaml", *run_args(tmp_path))
    assert code == 0, err
    assert len(saved_pngs(tmp_path)) == 1


def test_unknown_node_types_are_named_exit_2_no_traceback(tmp_path, capsys):
    data = json.loads((DATA / "classic_editor.json").read_text())
    types = {n["id"]: n["type"] for n in data["nodes"]}
    for node in data["nodes"]:
        if node["type"] == "SaveImage":
            node["type"] = "UltimateSDUpscale"
        if node["type"] == "CheckpointLoaderSimple":
            node["type"] = "CheckpointLoaderGGUF"
    assert "SaveImage" in types.values()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    for command in ("run", "validate"):
        extra = run_args(tmp_path) if command == "run" else []
        code, _, err = run_cli(capsys, command, bad, *extra)
        assert code == 2, err
        assert "UltimateSDUpscale" in err and "CheckpointLoaderGGUF" in err
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists() or not saved_pngs(tmp_path)


def test_img2img_runs_with_the_built_in_example(one_thread, tmp_path, capsys):
    wf = ROOT / "workflows" / "img2img.yaml"
    code, _, err = run_cli(capsys, "validate", wf, "--input-dir", tmp_path / "in")
    assert code == 0, err
    code, _, err = run_cli(capsys, "run", wf, "--set", "steps=2", *run_args(tmp_path))
    assert code == 0, err
    [png] = saved_pngs(tmp_path)
    with Image.open(png) as img:
        assert img.size == (128, 128)  # the example picture's size
    assert not (tmp_path / "in").exists()  # the example is drawn, never written by the CLI


def test_img2img_reads_the_configured_input_folder(one_thread, tmp_path, capsys):
    wf = ROOT / "workflows" / "img2img.yaml"
    (tmp_path / "in" / "mine").mkdir(parents=True)
    Image.new("RGB", (40, 24), (200, 30, 30)).save(tmp_path / "in" / "mine" / "red.png")
    code, _, err = run_cli(capsys, "run", wf, "--set", "image=mine/red.png", "--set", "steps=2",
                           *run_args(tmp_path))  # fmt: skip
    assert code == 0, err
    [png] = saved_pngs(tmp_path)
    with Image.open(png) as img:
        assert img.size == (40, 24)
    code, _, err = run_cli(capsys, "validate", wf, "--set", "image=nothere.png",
                           "--input-dir", tmp_path / "in")  # fmt: skip
    assert code == 2
    assert "'nothere.png' is not one of" in err and "'mine/red.png'" in err
    assert "picture" in err  # names the node


def test_library_progress_bars_are_off_once_a_model_loaded(one_thread, tmp_path, capsys):
    import diffusers.utils.logging as dl
    import transformers.utils.logging as tl

    code, _, err = run_cli(capsys, "run", DATA / "classic_api.json", *run_args(tmp_path))
    assert code == 0, err
    assert not dl.is_progress_bar_enabled() and not tl.is_progress_bar_enabled()
    assert "Loading weights" not in err and "it/s]" not in err


def _classic_editor_with(tmp_path: Path, change) -> Path:
    data = json.loads((DATA / "classic_editor.json").read_text())
    change({n["id"]: n for n in data["nodes"]}, data)
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(data))
    return path


def test_validate_lists_every_problem_of_an_editor_file_at_once(tmp_path, capsys):
    def six_mistakes(nodes, data):
        nodes[4]["widgets_values"] = ["missing.safetensors"]
        nodes[5]["widgets_values"] = [64, 0, 1]
        nodes[3]["widgets_values"][4] = "eulerx"
        nodes[8]["type"] = "VAEDecodeX"
        data["links"][0] = [1, 4, 2, 3, 0, "VAE"]  # the VAE into KSampler's model
        nodes[6]["widgets_values"] = [123]

    wf = _classic_editor_with(tmp_path, six_mistakes)
    code, _, err = run_cli(capsys, "validate", wf)
    assert code == 2
    for said in (f"{wf}: node '6' (CLIPTextEncode): widgets_values[0] = 123 does not fit "
                 "widget 'text'",
                 f"{wf}: node '5' input 'height': 0 is below the minimum 16",
                 f"{wf}: node '3' input 'sampler_name': 'eulerx'",
                 f"{wf}: node '3' input 'model': expects MODEL",
                 f"{wf}: node '8' (VAEDecodeX): unknown node type 'VAEDecodeX'"):  # fmt: skip
        assert said in err
    # a model name is judged by the run's models folders (--models-dir ...), which the
    # reader does not know: once the file reads, validate names it
    assert "missing.safetensors" not in err and f"{wf}: 5 error(s)" in err
    wf = _classic_editor_with(tmp_path, lambda nodes, data: nodes[4].update(
        widgets_values=["missing.safetensors"]))  # fmt: skip
    code, _, err = run_cli(capsys, "validate", wf)
    assert code == 2 and f"{wf}: node '4' input 'ckpt_name': 'missing.safetensors'" in err


def test_api_file_problems_name_the_file(tmp_path, capsys):
    prompt = json.loads((DATA / "classic_api.json").read_text())
    prompt["5"]["inputs"]["height"] = 0
    wf = tmp_path / "x.json"
    wf.write_text(json.dumps(prompt))
    code, _, err = run_cli(capsys, "validate", wf)
    assert code == 2
    assert f"error: {wf}: node '5' input 'height': 0 is below the minimum 16" in err
    code, out, _ = run_cli(capsys, "validate", wf, "--json")
    [row] = [r for r in json.loads(out) if r["node"] == "5"]
    assert row["location"] == str(wf)


def test_muting_what_the_output_needs_names_the_muted_node(tmp_path, capsys):
    def mute_negative(nodes, data):
        nodes[7]["mode"] = 2

    wf = _classic_editor_with(tmp_path, mute_negative)
    code, _, err = run_cli(capsys, "validate", wf)
    assert code == 2
    assert (f"error: {wf}: the workflow has no output node left to run: node '9' (SaveImage) "
            "needs node '7' (CLIPTextEncode), which is muted (node '3' (KSampler) input "
            "'negative' takes it)") in err  # fmt: skip


@pytest.mark.parametrize("title, named", [
    ("Portrait size", "node '5' \"Portrait size\" (EmptyLatentImage)"),
    ("Empty Latent Image", "node '5'"),  # the type's own name: what the editor shows untitled
])  # fmt: skip
def test_a_node_the_user_titled_is_named_with_its_title(tmp_path, capsys, title, named):
    def titled(nodes, data):
        nodes[5]["title"] = title
        nodes[5]["widgets_values"] = [7, 64, 1]

    wf = _classic_editor_with(tmp_path, titled)
    code, _, err = run_cli(capsys, "validate", wf)
    assert code == 2
    assert f"error: {wf}: {named} input 'width': 7 is below the minimum 16\n" in err


def _primitive_feeding_the_size(nodes, data):
    """PrimitiveNode 30 "Size" (7) feeding EmptyLatentImage 5's width and height."""
    nodes[5]["inputs"] = [{"name": name, "type": "INT", "widget": {"name": name}, "link": link}
                          for name, link in (("width", 30), ("height", 31))]  # fmt: skip
    data["nodes"].append({"id": 30, "type": "PrimitiveNode", "title": "Size", "mode": 0,
                          "outputs": [{"name": "INT", "type": "INT", "links": [30, 31],
                                       "widget": {"name": "width"}}],
                          "widgets_values": [7, "fixed"]})  # fmt: skip
    data["links"] += [[30, 30, 0, 5, 0, "INT"], [31, 30, 0, 5, 1, "INT"]]


def test_a_primitive_nodes_bad_value_names_the_primitive_node(tmp_path, capsys):
    wf = _classic_editor_with(tmp_path, _primitive_feeding_the_size)
    code, _, err = run_cli(capsys, "validate", wf)
    assert code == 2
    for name in ("width", "height"):
        assert (f"error: {wf}: node '5' input '{name}': 7 is below the minimum 16 (the value "
                "comes from node '30' \"Size\" (PrimitiveNode))\n") in err  # fmt: skip


def test_set_on_a_primitive_node_sets_every_input_it_feeds(tmp_path, capsys):
    """`--set 30.value=` said 'the workflow has no node '30'': the PrimitiveNode is folded into
    the inputs it feeds, and its value goes to each, as editing it in the editor does."""
    wf = _classic_editor_with(tmp_path, _primitive_feeding_the_size)
    code, out, err = run_cli(capsys, "validate", wf, "--set", "30.value=32")
    assert (code, err) == (0, "")
    code, _, err = run_cli(capsys, "validate", wf, "--set", "30.value=8")
    assert code == 2
    for name in ("width", "height"):
        assert (f"error: --set 30.value=8: node '5' input '{name}': 8 is below the minimum 16 "
                "(the value comes from node '30' \"Size\" (PrimitiveNode))\n") in err  # fmt: skip
    code, _, err = run_cli(capsys, "validate", wf, "--set", "30.width=32")
    assert code == 2
    assert (f"error: {wf}: --set 30.width: node '30' (PrimitiveNode) is folded into the inputs "
            "it feeds (5.width, 5.height): set its value, all of them, with --set "
            "30.value=...\n") in err  # fmt: skip


def test_a_bad_set_on_a_primitive_node_names_the_nodes_as_the_file_does(tmp_path, capsys):
    """`--set 30.value=8` said `node '5' input 'width': ...` without the title of node 5 or
    the PrimitiveNode the value went through, which the same value in the file names."""

    def titled(nodes, data):
        _primitive_feeding_the_size(nodes, data)
        nodes[5]["title"] = "Portrait size"

    wf = _classic_editor_with(tmp_path, titled)
    in_file = run_cli(capsys, "validate", wf)[2]
    code, _, err = run_cli(capsys, "validate", wf, "--set", "30.value=8")
    assert code == 2
    for name in ("width", "height"):
        said = (f"node '5' \"Portrait size\" (EmptyLatentImage) input '{name}': {{}} is below "
                "the minimum 16 (the value comes from node '30' \"Size\" (PrimitiveNode))\n")  # fmt: skip
        assert f"error: {wf}: {said.format(7)}" in in_file
        assert f"error: --set 30.value=8: {said.format(8)}" in err
    code, _, err = run_cli(capsys, "validate", wf, "--set", "5.width=8")  # not the primitive
    assert code == 2
    assert ("error: --set 5.width=8: node '5' \"Portrait size\" (EmptyLatentImage) input "
            "'width': 8 is below the minimum 16\n") in err  # fmt: skip


def test_muting_one_output_away_while_another_runs_is_a_warning(tmp_path, capsys):
    """SaveImage 20 needs the muted VAEDecode 21: it was left out without a word while
    SaveImage 9 ran."""

    def second_output(nodes, data):
        data["nodes"] += [
            {"id": 21, "type": "VAEDecode", "mode": 2,
             "inputs": [{"name": "samples", "type": "LATENT", "link": 40},
                        {"name": "vae", "type": "VAE", "link": 41}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [42]}]},
            {"id": 20, "type": "SaveImage", "mode": 0, "title": "Preview", "widgets_values": ["p"],
             "inputs": [{"name": "images", "type": "IMAGE", "link": 42}]},
        ]  # fmt: skip
        data["links"] += [[40, 5, 0, 21, 0, "LATENT"], [41, 4, 2, 21, 1, "VAE"],
                          [42, 21, 0, 20, 0, "IMAGE"]]  # fmt: skip

    wf = _classic_editor_with(tmp_path, second_output)
    code, out, err = run_cli(capsys, "validate", wf)
    assert code == 0 and "ok (7 nodes)" in out
    assert err == (f"latentgraph: warning: {wf}: node '20' \"Preview\" (SaveImage) needs node "
                   "'21' (VAEDecode), which is muted (its input 'images'): it is left out, the "
                   "other outputs run\n")  # fmt: skip
