"""`latentgraph convert` to YAML writes YAML, also from our own workflow format written as JSON
(which it once copied unchanged), keeping its params and their references."""

from __future__ import annotations

import json

import pytest
import yaml

from latentgraph.graph.comfy_api import prompt_from_graph
from latentgraph.graph.formats import load_file

from .conftest import write

OURS_JSON = {
    "version": 1,
    "description": "a grey square, saved",
    "params": {"shade": 40, "prefix": "no"},
    "nodes": {
        "pic": {"type": "EmptyImage", "width": 8, "height": 8, "color": "$shade"},
        "save": {"type": "SaveImage", "images": "pic", "filename_prefix": "$prefix $$5"},
    },
}


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("how", [["out.yaml"], ["out.txt", "--to", "yaml"], ["-", "--to", "yaml"]])
def test_our_json_becomes_yaml_that_reads_back_the_same(cli, tmp_path, how):
    src = write(tmp_path, "t.json", json.dumps(OURS_JSON, indent=2))
    code, out, err = cli("convert", str(src), *how)
    assert code == 0, err
    text = out if how[0] == "-" else (tmp_path / how[0]).read_text()
    assert not is_json(text) and not text.lstrip().startswith("{")
    assert yaml.safe_load(text) == OURS_JSON  # params and $references kept as written
    back = write(tmp_path, "back.yaml", text)
    before, after = load_file(src), load_file(back)
    assert prompt_from_graph(after.graph) == prompt_from_graph(before.graph)  # positions aside
    assert (after.params, after.description) == (before.params, before.description)
    assert after.graph.nodes["save"].inputs["filename_prefix"] == "no $5"


def test_our_yaml_is_copied_as_written(cli, tmp_path):
    text = "# kept\n" + yaml.safe_dump(OURS_JSON, sort_keys=False)
    src = write(tmp_path, "t.yaml", text)
    assert cli("convert", str(src), "out.yaml")[0] == 0
    assert (tmp_path / "out.yaml").read_text() == text


@pytest.mark.parametrize("to", ["api", "editor"])
def test_converting_to_comfyui_says_the_params_are_written_in(cli, tmp_path, to):
    """ComfyUI's formats have no params: converting to them wrote each `$param`'s value in
    and said nothing, so the YAML converted back had no params for `--set` to set."""
    src = write(tmp_path, "t.yaml", yaml.safe_dump(OURS_JSON, sort_keys=False))
    code, _, err = cli("convert", str(src), "out.json", "--to", to)
    assert code == 0, err
    name = {"api": "API", "editor": "editor"}[to]
    assert err.splitlines() == [
        f"latentgraph: warning: {src}: ComfyUI's {name} format has no params, so the current "
        "values of shade and prefix are written in where used; convert to YAML (.yaml) to keep "
        "params"
    ]
    no_params = {key: value for key, value in OURS_JSON.items() if key != "params"}
    no_params["nodes"] = {"pic": {"type": "EmptyImage", "width": 8, "height": 8}}
    plain = write(tmp_path, "plain.yaml", yaml.safe_dump(no_params))
    for args in ([str(plain), "p.json", "--to", to], [str(src), "back.yaml"]):
        code, _, err = cli("convert", *args)
        assert (code, err) == (0, "")
