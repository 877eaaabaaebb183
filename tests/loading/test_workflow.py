"""Reading workflow files: positions, params, links, and refusing bad documents clearly."""

from __future__ import annotations

import json
import math

import pytest

from latentgraph.graph.model import Link
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.workflow import (
    MAX_BYTES,
    dump_workflow,
    graph_to_document,
    load_workflow,
    override_value,
    parse_override,
)

GOOD = """\
# yaml-language-server: $schema=../workflows/schema.json
version: 1
description: a small chain
params:
  n: 5
  label: hello
nodes:
  c: {type: Const, value: $n}
  s:
    type: Scale
    title: Scaled
    x: c                       # single-output node: bare id is a link
    factor: {from: c.value}
    note: "${label}!"
  sp: {type: Split, x: s.y}
  out: {type: Show, value: sp.high}
"""


def problems_of(text, registry, name="w.yaml", **kwargs):
    with pytest.raises(WorkflowError) as info:
        load_workflow(name, text=text, registry=registry, **kwargs)
    return info.value.problems


def one(problems, code):
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, problems
    return found[0]


def test_good_workflow_builds_graph_with_links_params_and_positions(registry):
    wf = load_workflow("w.yaml", text=GOOD, registry=registry)
    g = wf.graph
    assert g.source == "w.yaml"
    assert list(g.nodes) == ["c", "s", "sp", "out"]
    assert wf.description == "a small chain"
    assert wf.params == {"n": 5, "label": "hello"}
    assert g["c"].inputs == {"value": 5}
    assert g["s"].inputs == {"x": Link("c", 0), "factor": Link("c", 0), "note": "hello!"}
    assert g["s"].title == "Scaled"
    assert g["out"].inputs == {"value": Link("sp", 1)}
    assert (g["c"].location.line, g["c"].location.column) == (8, 3)
    assert g.where("s", "note").line == 14
    assert g.where("s", "x").line == 12
    assert wf.raw["params"] == {"n": 5, "label": "hello"}
    assert wf.raw["nodes"]["c"]["value"] == "$n"  # raw is before substitution


def test_overrides_are_typed_and_string_params_keep_text(registry):
    wf = load_workflow("w.yaml", text=GOOD, registry=registry, overrides={"n": "7", "label": "42"})
    assert wf.graph["c"].inputs["value"] == 7
    assert wf.graph["s"].inputs["note"] == "42!"
    assert wf.params == {"n": 7, "label": "42"}


def test_unknown_override_is_an_error(registry):
    p = one(problems_of(GOOD, registry, overrides={"seed": "1"}), "unknown_param")
    assert "seed" in p.message and "label, n" in p.message


def test_unknown_param_reference_points_at_input(registry):
    text = "nodes:\n  c: {type: Const, value: $nope}\n  o: {type: ShowNumber, value: c}\n"
    p = one(problems_of(text, registry), "unknown_param")
    assert (p.node_id, p.input_name, p.location.line) == ("c", "value", 2)


def test_dollar_escape_and_interpolation_of_non_strings(registry):
    text = (
        "params: {k: 3, on: true}\n"
        "nodes:\n"
        "  f: {type: Format, template: 'cost $$5, k=$k, ${on}'}\n"
        "  o: {type: Show, value: f}\n"
    )
    wf = load_workflow("w.yaml", text=text, registry=registry)
    assert wf.graph["f"].inputs["template"] == "cost $5, k=3, true"


@pytest.mark.parametrize(
    ("text", "value"),
    [("seed=7", 7), ("x=1.5", 1.5), ("b=true", True), ("s=a red fox", "a red fox"),
     ("e=", ""), ("n=010", 10), ("y=yes", "yes"), ("l=[1, 2]", [1, 2]), ("x=.inf", math.inf),
     ("q=a=b", "a=b"), ("s= spaced ", " spaced ")],
)  # fmt: skip
def test_parse_override_keeps_the_text_and_override_value_types_it(text, value):
    """The name is checked, the value kept as written; typed by what it sets."""
    name, raw = parse_override(text)
    assert raw == text.partition("=")[2]
    assert override_value(raw, takes_text=False) == value
    assert override_value(raw, takes_text=True) == raw


@pytest.mark.parametrize("text", ["novalue", "=3", "bad name=1", "1x=2"])
def test_parse_override_refuses_bad_assignments(text):
    with pytest.raises(WorkflowError) as info:
        parse_override(text)
    assert info.value.problems[0].code == "invalid_value"


def test_yaml_12_scalars_no_norway_problem(registry):
    text = "nodes:\n  f: {type: Format, template: no}\n  o: {type: Show, value: f}\n"
    assert load_workflow("w.yaml", text=text, registry=registry).graph["f"].inputs == {
        "template": "no"
    }


def test_duplicate_node_ids_are_reported_with_line(registry):
    text = "nodes:\n  c: {type: Const}\n  c: {type: Const, value: 2}\n  o: {type: ShowNumber, value: c}\n"
    p = one(problems_of(text, registry), "duplicate_node")
    assert (p.node_id, p.location.line, p.location.column) == ("c", 3, 3)
    assert "line 2" in p.message


def test_duplicate_input_keys_are_reported(registry):
    text = "nodes:\n  c:\n    type: Const\n    value: 1\n    value: 2\n  o: {type: ShowNumber, value: c}\n"
    p = one(problems_of(text, registry), "syntax")
    assert (p.node_id, p.input_name, p.location.line) == ("c", "value", 5)


def test_json_duplicates_and_positions(registry):
    text = '{"nodes": {\n "c": {"type": "Const", "value": 3},\n\t"c": {"type": "Const"},\n "o": {"type": "ShowNumber", "value": "c"}}}'
    p = one(problems_of(text, registry, name="w.json"), "duplicate_node")
    assert p.location.line == 3


def test_json_workflow_loads_with_exact_json_strings(registry):
    doc = {
        "nodes": {
            "f": {"type": "Format", "template": "\U0001f600 / x"},
            "o": {"type": "Show", "value": "f.text"},
        }
    }
    wf = load_workflow("w.json", text=json.dumps(doc), registry=registry)
    assert wf.graph["f"].inputs["template"] == "\U0001f600 / x"
    assert wf.graph["o"].inputs["value"] == Link("f", 0)
    assert wf.graph["f"].location.line == 1


def test_comfy_prompt_file_is_accepted(registry):
    prompt = {
        "1": {"class_type": "Const", "inputs": {"value": 2}},
        "2": {"class_type": "ShowNumber", "inputs": {"value": ["1", 0]}},
    }
    wf = load_workflow("p.json", text=json.dumps({"prompt": prompt}), registry=registry)
    assert wf.graph["2"].inputs["value"] == Link("1", 0)


def test_aliases_are_refused(registry):
    bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nnodes: {}\n'
    p = one(problems_of(bomb, registry), "syntax")
    assert "alias" in p.message and p.location.line == 2


def test_deep_nesting_is_refused(registry):
    text = "nodes:\n  c: {type: Const, value: " + "[" * 200 + "]" * 200 + "}\n"
    p = one(problems_of(text, registry), "limit_exceeded")
    assert "nested" in p.message


def test_deep_json_nesting_is_refused(registry):
    text = '{"nodes": ' + "[" * 5000 + "]" * 5000 + "}"
    assert problems_of(text, registry, name="w.json")[0].code == "limit_exceeded"


def test_non_utf8_file(tmp_path, registry):
    path = tmp_path / "w.yaml"
    path.write_bytes(b"nodes:\n  c: {type: Const}\n  # caf\xe9\n")
    p = one(problems_of(None, registry, name=path), "syntax")
    assert "UTF-8" in p.message and (p.location.line, p.location.column) == (3, 8)


def test_control_character_is_refused_at_its_line_and_column(registry):
    p = one(problems_of('nodes:\n  c: {type: Const, value: "a\x07"}\n', registry), "syntax")
    assert "U+0007" in p.message and (p.location.line, p.location.column) == (2, 29)


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_empty_documents(text, registry):
    p = one(problems_of(text, registry), "syntax")
    assert "empty" in p.message


def test_too_large(tmp_path, registry):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_BYTES + 1))
    assert one(problems_of(None, registry, name=path), "limit_exceeded").location.file == str(path)


def test_missing_file(tmp_path, registry):
    p = one(problems_of(None, registry, name=tmp_path / "nope.yaml"), "invalid_value")
    assert "cannot read" in p.message


def test_yaml_syntax_error_has_position(registry):
    p = one(problems_of("nodes:\n  c: {type: Const\n  d: [\n", registry), "syntax")
    assert p.location.line >= 2


def test_python_tags_are_refused_never_run(registry):
    text = "nodes:\n  c: !!python/object/apply:os.system ['echo hi']\n"
    assert "tag" in one(problems_of(text, registry), "syntax").message


def test_structure_errors(registry):
    problems = problems_of("version: 2\nextra: 1\nnodes: [1]\n", registry)
    assert {p.code for p in problems} >= {"invalid_value", "syntax"}
    assert any("extra" in p.message for p in problems)
    assert problems_of("- 1\n- 2\n", registry)[0].message.startswith("a workflow is a mapping")


def test_node_without_type(registry):
    text = "nodes:\n  c: {value: 1}\n  o: {type: ShowNumber, value: c}\n"
    problems = problems_of(text, registry)
    p = one(problems, "syntax")
    assert (p.node_id, p.location.line) == ("c", 2)
    assert len(problems) == 1  # the link to the broken node is not reported again


def test_link_to_missing_output_and_ambiguous_bare_link(registry):
    text = (
        "nodes:\n  c: {type: Const}\n  sp: {type: Split, x: c.nope}\n"
        "  o: {type: ShowNumber, value: sp}\n"
    )
    problems = problems_of(text, registry)
    codes = [(p.code, p.node_id, p.input_name, p.location.line) for p in problems]
    assert ("bad_linked_input", "sp", "x", 3) in codes
    assert ("bad_linked_input", "o", "value", 4) in codes
    assert "low, high" in [p for p in problems if p.node_id == "o"][0].message


def test_load_errors_come_with_validation_errors(registry):
    text = "nodes:\n  c: {type: Const, value: $nope}\n  d: {type: Const, value: 5000}\n  o: {type: ShowNumber, value: c}\n"
    codes = {(p.code, p.node_id) for p in problems_of(text, registry)}
    assert codes == {("unknown_param", "c"), ("value_bigger_than_max", "d")}


def test_dump_round_trip(registry):
    wf = load_workflow("w.yaml", text=GOOD, registry=registry)
    text = dump_workflow(wf.graph, registry, params=wf.params, description="d")
    again = load_workflow("again.yaml", text=text, registry=registry)
    for node in wf.graph:
        other = again.graph[node.id]
        assert (other.type, other.inputs, other.title) == (node.type, node.inputs, node.title)
    assert again.params == wf.params and again.description == "d"
    doc = graph_to_document(wf.graph, registry)
    assert doc["nodes"]["s"]["factor"] == {"from": "c.value"}
    assert doc["nodes"]["out"]["value"] == "sp.high"
    assert json.loads(json.dumps(doc)) == doc


def test_dump_escapes_dollars(registry):
    wf = load_workflow(
        "w.yaml",
        text="nodes:\n  f: {type: Format, template: 'a $$b'}\n  o: {type: Show, value: f}\n",
        registry=registry,
    )
    assert wf.graph["f"].inputs["template"] == "a $b"
    again = load_workflow("x.yaml", text=dump_workflow(wf.graph, registry), registry=registry)
    assert again.graph["f"].inputs["template"] == "a $b"


def test_pre_typed_override_of_a_text_param_becomes_text(registry):
    wf = load_workflow("w.yaml", text=GOOD, registry=registry, overrides={"label": 7, "n": 9})
    assert wf.graph["s"].inputs["note"] == "7!" and wf.params["label"] == "7"
    assert wf.graph["c"].inputs["value"] == 9
