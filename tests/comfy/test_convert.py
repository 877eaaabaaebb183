"""graph/convert.py: the target format and its refusals, the text written for each format,
our YAML kept as written, "-" handed back (no file), and unknown node types refused by node."""

from __future__ import annotations

import json
import os

import pytest

from latentgraph.graph import WorkflowError
from latentgraph.graph.comfy_api import prompt_from_graph
from latentgraph.graph.comfy_editor import editor_from_graph
from latentgraph.graph.convert import Converted, convert, render
from latentgraph.graph.formats import load_file
from latentgraph.graph.problems import WorkflowWarning

from .test_load_formats import OURS
from .toy_nodes import registry


@pytest.fixture
def api_file(tmp_path, classic_api):
    path = tmp_path / "api.json"
    path.write_text(json.dumps(classic_api))
    return path


def test_an_unknown_target_format_is_refused_with_the_known_ones(tmp_path, api_file):
    with pytest.raises(ValueError) as err:
        convert(api_file, tmp_path / "out.json", to="png", registry=registry)
    assert str(err.value) == "unknown target format 'png'; one of api, editor, yaml"
    assert not (tmp_path / "out.json").exists()


def test_a_suffix_that_names_no_format_is_refused_with_the_options(tmp_path, api_file):
    """The Python API asks for its keyword; `latentgraph convert` passes its flag's wording."""
    dst = tmp_path / "out.txt"
    with pytest.raises(ValueError) as err:
        convert(api_file, dst, registry=registry)
    assert str(err.value) == (f"cannot tell the target format from {str(dst)!r}: give "
                              "to='api', to='editor' or to='yaml'")  # fmt: skip
    assert "--to" not in str(err.value)


def test_api_and_editor_text_is_indented_json_with_a_final_newline(api_file):
    graph = load_file(api_file, registry=registry).graph
    api = render(graph, "api", registry)
    assert api == json.dumps(prompt_from_graph(graph, registry), indent=2) + "\n"
    editor = render(graph, "editor", registry)
    assert editor == json.dumps(json.loads(editor), indent=2) + "\n"
    fresh = editor_from_graph(graph, registry)  # a new document id each time
    assert json.loads(editor) | {"id": None} == fresh | {"id": None}


def test_an_editor_workflow_copied_to_editor_is_indented_json(tmp_path, classic_editor):
    src = tmp_path / "editor.json"
    src.write_text(json.dumps(classic_editor))  # one line
    dst = tmp_path / "copy.json"
    converted = convert(src, dst, to="editor", registry=registry)
    assert dst.read_text() == json.dumps(classic_editor, indent=2) + "\n"
    assert converted == Converted("editor", dst.read_text())  # what it wrote, handed back too


def test_our_yaml_to_yaml_is_kept_as_written_with_params_and_comments(tmp_path):
    src = tmp_path / "ours.yaml"
    src.write_text(OURS)
    dst = tmp_path / "copy.yml"
    assert convert(src, dst, registry=registry).format == "yaml"
    assert dst.read_text() == OURS
    # to another format the params are resolved: the graph, not the text
    assert json.loads(render(load_file(src, registry=registry).graph, "api", registry))


def test_dash_writes_no_file_and_leaves_stdout_to_the_caller(tmp_path, api_file, capsys,
                                                              monkeypatch):  # fmt: skip
    """A dst of "-" hands the text back: a library writes to no stream of its caller's process (it
    wrote to stdout itself); `latentgraph convert SRC -` prints it (tests/cli)."""
    monkeypatch.chdir(tmp_path)
    converted = convert(api_file, "-", to="api", registry=registry)
    graph = load_file(api_file, registry=registry).graph
    assert converted == Converted("api", render(graph, "api", registry))
    assert capsys.readouterr().out == ""
    assert os.listdir(tmp_path) == ["api.json"]


def test_unknown_node_types_are_refused_node_by_node(tmp_path, classic_api):
    classic_api["8"]["class_type"] = "MysteryDecode"
    classic_api["9"]["class_type"] = "MysteryDecode"
    src = tmp_path / "api.json"
    src.write_text(json.dumps(classic_api))
    with pytest.raises(WorkflowError) as err:
        convert(src, tmp_path / "out.yaml", registry=registry)
    problems = sorted(err.value.problems, key=lambda p: p.node_id)
    assert [(p.code, p.node_id, p.node_type) for p in problems] == [
        ("unknown_node_type", "8", "MysteryDecode"), ("unknown_node_type", "9", "MysteryDecode")]  # fmt: skip
    assert problems[0].message == (  # as `latentgraph validate` and the server say it
        "unknown node type 'MysteryDecode': a ComfyUI core or custom node latentgraph does not have "
        "(docs/comfy-compat.md lists the ones it has); if a plugin declares it, give its folder "
        "with --nodes-dir or install its package")  # fmt: skip
    assert not (tmp_path / "out.yaml").exists()


def test_an_unknown_node_type_in_our_yaml_is_refused_at_its_line(tmp_path):
    src = tmp_path / "ours.yaml"
    src.write_text(OURS.replace("type: CLIPTextEncode", "type: MysteryEncode"))
    with pytest.raises(WorkflowError) as err:
        convert(src, tmp_path / "out.json", registry=registry)
    [problem] = err.value.problems
    assert (problem.node_id, problem.node_type) == ("encode", "MysteryEncode")
    assert problem.message.startswith("unknown node type 'MysteryEncode'")
    assert str(problem.location).startswith(f"{src}:9")


def test_json_is_written_as_utf8_text_a_person_can_read(tmp_path):
    """Japanese text and an emoji are written as themselves, as ComfyUI saves them (they were
    `\\u732b` escapes), in UTF-8 whatever the locale; a lone surrogate, which has no UTF-8
    form, keeps its escape. Each file reads back the same, and an editor file copied to the
    editor format is written as it was read."""
    src = tmp_path / "ours.yaml"
    src.write_text(OURS.replace("'a cat'", '"猫 🐱 \\ud800"'), encoding="utf-8")
    for to in ("api", "editor"):
        dst = tmp_path / f"編集 {to}.json"
        with pytest.warns(WorkflowWarning, match="has no params"):
            assert convert(src, dst, to=to, registry=registry).format == to
        text = dst.read_bytes().decode("utf-8")
        assert '"猫 🐱 \\ud800"' in text and "\\u732b" not in text
        graph = load_file(dst, registry=registry).graph
        texts = [n.inputs["text"] for n in graph if n.type == "CLIPTextEncode"]
        assert texts == ["猫 🐱 \ud800"]
    copy = tmp_path / "copy.json"
    convert(tmp_path / "編集 editor.json", copy, to="editor", registry=registry)
    assert copy.read_bytes() == (tmp_path / "編集 editor.json").read_bytes()
