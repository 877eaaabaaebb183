"""What a run's images carry after `--set`/`--sweep` on a ComfyUI file: the editor workflow
holding the values set (or none, the prompt alone, where they have no place in it), and a
value refused for a ComfyUI file named at the flag that gave it."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from latentgraph.graph.comfy_editor import editor_with_values
from latentgraph.graph.formats import load_file, load_text

from .conftest import DATA, png, run_cli
from .test_comfy_editor import _subgraph_workflow, add_node, node_by_id, relink
from .toy_nodes import registry


def widgets(workflow: dict, node_id: int) -> list:
    return node_by_id(workflow, node_id)["widgets_values"]


# --- 1. the editor workflow of an overridden run ------------------------------------------------


def test_a_png_saved_with_set_reloads_in_the_editor_with_the_value_set(one_thread, tmp_path,
                                                                       capsys):  # fmt: skip
    """`run classic.json --set 3.seed=7` saved seed 7 in the prompt but the file's 1234 in the
    workflow: the PNG converted to editor JSON and run made another image."""
    out = tmp_path / "out"
    args = ["--output-dir", out, "--no-cache", "-q"]
    code, _, err = run_cli(capsys, "run", DATA / "classic_editor.json", "--set", "3.seed=7", *args)
    assert code == 0, err
    [first] = sorted(out.glob("*.png"))
    with Image.open(first) as img:
        assert widgets(json.loads(img.text["workflow"]), 3)[:2] == [7, "randomize"]
        assert json.loads(img.text["prompt"])["3"]["inputs"]["seed"] == 7
    code, _, err = run_cli(capsys, "convert", first, tmp_path / "back.json", "--to", "editor")
    assert code == 0, err
    code, _, err = run_cli(capsys, "run", tmp_path / "back.json", *args)
    assert code == 0, err
    code, _, err = run_cli(capsys, "run", DATA / "classic_editor.json", *args)  # seed 1234
    assert code == 0, err
    first, again, unset = sorted(out.glob("*.png"))
    with Image.open(first) as a, Image.open(again) as b, Image.open(unset) as c:
        assert a.tobytes() == b.tobytes() != c.tobytes()


def test_each_png_of_a_sweep_carries_its_own_value(tmp_path):
    from latentgraph.api import sweep_workflows  # what the CLI's --sweep iterates

    path = tmp_path / "classic.json"
    path.write_text((DATA / "classic_editor.json").read_text())
    seeds = [widgets(w.extra["workflow"], 3)[0]
             for w in sweep_workflows(path, "3.seed", ["7", "8"], registry=registry)]  # fmt: skip
    assert seeds == [7, 8]


def test_an_api_body_or_a_png_carries_its_editor_workflow_with_the_values_set(tmp_path,
                                                                             classic_api,
                                                                             classic_editor):  # fmt: skip
    body = {"prompt": classic_api, "extra_data": {"extra_pnginfo": {"workflow": classic_editor}}}
    loaded = load_text(json.dumps(body), overrides={"3.steps": "9", "5.width": 32},
                       registry=registry)  # fmt: skip
    assert widgets(loaded.extra["workflow"], 3)[2] == 9
    assert widgets(loaded.extra["workflow"], 5) == [32, 64, 1]
    assert widgets(classic_editor, 3)[2] == 3  # the document read is not changed
    path = png(tmp_path / "a.png", prompt=json.dumps(classic_api),
               workflow=json.dumps(classic_editor))  # fmt: skip
    loaded = load_file(path, {"6.text": "a fox"}, registry=registry)
    assert widgets(loaded.extra["workflow"], 6) == ["a fox"]
    assert loaded.extra["prompt"]["6"]["inputs"]["text"] == "a fox"


def test_a_value_fed_by_a_primitive_node_is_set_in_the_primitive_node(classic_editor):
    add_node(classic_editor, 30, "PrimitiveNode", widgets=[99, "fixed"],
             outputs=[{"name": "INT", "type": "INT", "links": [31], "widget": {"name": "seed"}}])  # fmt: skip
    add_node(classic_editor, 31, "Reroute", inputs=[{"name": "", "type": "*", "link": 31}],
             outputs=[{"name": "", "type": "INT", "links": [30]}])  # fmt: skip
    ks = node_by_id(classic_editor, 3)
    ks["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 30})
    relink(classic_editor, 31, 30, 0, 31, 0, "INT")
    relink(classic_editor, 30, 31, 0, 3, 4, "INT")
    loaded = load_text(json.dumps(classic_editor), overrides={"3.seed": "5"}, registry=registry)
    assert loaded.graph["3"].inputs["seed"] == 5
    assert widgets(loaded.extra["workflow"], 30) == [5, "fixed"]
    assert widgets(loaded.extra["workflow"], 3) == widgets(classic_editor, 3)


def test_a_workflow_the_values_cannot_be_placed_in_is_left_out_and_the_prompt_kept(
        classic_editor):  # fmt: skip
    """A PrimitiveNode feeding two inputs (setting it would change both), a node inside a
    subgraph (its values are the definition's, shared): the image carries the prompt alone."""
    add_node(classic_editor, 30, "PrimitiveNode", widgets=[99, "fixed"],
             outputs=[{"name": "INT", "type": "INT", "links": [30, 31], "widget": {"name": "x"}}])  # fmt: skip
    latent = node_by_id(classic_editor, 5)
    for slot, name in enumerate(("width", "height")):
        latent["inputs"].append({"name": name, "type": "INT", "widget": {"name": name},
                                 "link": 30 + slot})  # fmt: skip
        relink(classic_editor, 30 + slot, 30, 0, 5, slot, "INT")
    loaded = load_text(json.dumps(classic_editor), overrides={"5.width": "32"}, registry=registry)
    assert loaded.graph["5"].inputs["width"] == 32 and loaded.graph["5"].inputs["height"] == 99
    assert "workflow" not in loaded.extra
    assert loaded.extra["prompt"]["5"]["inputs"]["width"] == 32
    subgraph = _subgraph_workflow()
    loaded = load_text(json.dumps(subgraph), overrides={"10:1.text": "a fox"}, registry=registry)
    assert "workflow" not in loaded.extra and loaded.graph["10:1"].inputs["text"] == "a fox"
    values = {("3", "steps"): 4}
    assert widgets(editor_with_values(subgraph, values, registry), 3)[2] == 4  # outside: placed


# --- 6. a value refused for a ComfyUI file is named at the flag ----------------------------------


@pytest.mark.parametrize("name", ["classic_editor.json", "classic_api.json", "png"])
def test_a_refused_set_value_for_a_comfyui_file_names_the_flag(tmp_path, capsys, name,
                                                                classic_api, classic_editor):  # fmt: skip
    path = (
        DATA / name
        if name != "png"
        else png(
            tmp_path / "a.png", prompt=json.dumps(classic_api), workflow=json.dumps(classic_editor)
        )
    )
    code, _, err = run_cli(capsys, "validate", path, "--set", "3.steps=abc")
    assert code == 2
    assert (
        "error: --set 3.steps=abc: node '3' input 'steps': expected an integer (INT), got 'abc'"
    ) in err, err
    code, _, err = run_cli(capsys, "run", path, "--sweep", "3.steps=2,abc", "--output-dir",
                           tmp_path / "out")  # fmt: skip
    assert code == 2
    assert "error: --sweep 3.steps=abc: node '3' input 'steps': expected an integer" in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    from latentgraph.api import load
    from latentgraph.graph.validate import validate

    problems = validate(load(path, params={"3.steps": "abc"}).graph)  # from Python: the param
    assert [str(p) for p in problems if p.input_name == "steps"] == [
        "param 3.steps='abc': node '3' input 'steps': expected an integer (INT), got 'abc'"
    ]
