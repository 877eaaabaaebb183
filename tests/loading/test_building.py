"""Building a Graph from a workflow document: each refusal with its text and place, links in
every spelling, params everywhere a value can hold them. Each pinned by a survivor of a
mutation run of graph/workflow/building.py (docs/testing.md)."""

from __future__ import annotations

import pytest

from latentgraph.graph.model import Link, Location
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.workflow import load_workflow, parse_override

OUT = "  c: {type: Const}\n  o: {type: ShowNumber, value: c}\n"


def unknown(param: str, known: str) -> str:
    return (
        f"${param} is not a param of this workflow (params: {known}); write $$ for a literal dollar"
    )


def problems(text, registry, name="w.yaml", **kw):
    with pytest.raises(WorkflowError) as info:
        load_workflow(name, text=text, registry=registry, **kw)
    return [
        (p.code, p.node_id, p.input_name, (p.location.line, p.location.column), p.message)
        for p in info.value.problems
    ]


def test_every_top_level_problem_with_its_place(registry):
    text = "version: 2\nextra: 1\ndescription: [a]\nparams: [1]\nnodes: [1]\n"
    assert problems(text, registry) == [
        ("syntax", None, None, (2, 1), "unknown top-level key 'extra'; expected one of version, "
         "description, params, nodes, $schema"),
        ("invalid_value", None, None, (1, 10),
         "unsupported workflow version 2; this latentgraph reads version 1"),
        ("syntax", None, None, (3, 14), "'description' must be text"),
        ("syntax", None, None, (4, 9), "'params' must be a mapping of name to default value"),
        ("syntax", None, None, (5, 8), "'nodes' must be a mapping of node id to node, not a list"),
    ]  # fmt: skip


def test_no_nodes_and_nodes_of_each_wrong_kind(registry):
    assert problems("description: x\n", registry) == [
        ("syntax", None, None, (1, 1), "the workflow has no 'nodes' mapping")
    ]
    for text, kind in (("a string", "string"), ("3.5", "number"), ("true", "boolean")):
        assert problems(f"nodes: {text}\n", registry) == [
            ("syntax", None, None, (1, 8), f"'nodes' must be a mapping of node id to node, not a "
             f"{kind}")
        ]  # fmt: skip
    assert problems('"x"', registry, name="w.json") == [
        ("syntax", None, None, (1, 1), "a workflow is a mapping with a 'nodes' key, not a string")
    ]


def test_a_missing_or_null_description_is_empty(registry):
    for head in ("", "description: null\n"):
        wf = load_workflow("w.yaml", text=head + "nodes:\n" + OUT, registry=registry)
        assert wf.description == ""


def test_a_line_of_the_node_above_indented_as_a_node_id_is_named_as_one(registry):
    """`  factor: 2` under a node's `    x: c` (dedented to the node ids' column) was only 'node
    'factor': a node is a mapping...': it reads as an input (or the `type`) of the node above
    indented too little, and says so; a name the node above has no input for gets no hint."""
    text = ("nodes:\n  c: {type: Const}\n  s:\n    type: Scale\n    x: c\n  factor: 2\n"
            "  seed:\n  o: {type: Show, value: s}\n  mode: 3\n  e:\n  type: Show\n")  # fmt: skip
    slipped = "; it looks like {} above, indented as a node id: indent it under {}"
    mapping = "a node is a mapping with a 'type' key, not a "
    empty = "the node is empty: give it a 'type' (e.g. 'type: LatentNoise') and its inputs"
    assert [(p[1], p[3], p[4]) for p in problems(text, registry)] == [
        ("factor", (6, 3), mapping + "number"
         + slipped.format("input 'factor' of node 's' (Scale)", "'s'")),
        ("seed", (7, 3), empty + slipped.format("input 'seed' of node 's' (Scale)", "'s'")),
        ("mode", (9, 3), mapping + "number"),  # Show has no input 'mode'
        ("e", (10, 3), empty),
        ("type", (11, 3), mapping + "string" + slipped.format("the 'type' of node 'e'", "'e'")),
    ]  # fmt: skip


def test_every_broken_node_is_reported_and_the_rest_still_read(registry):
    text = ("nodes:\n  c: 5\n  d: null\n  e: {value: 1}\n  f: {type: 5}\n"
            "  g: {type: Const, value: $nope}\n")  # fmt: skip
    no_type = "the node has no 'type' (the node type name, e.g. 'type: LatentNoise')"
    assert problems(text, registry) == [
        ("syntax", "c", None, (2, 3), "a node is a mapping with a 'type' key, not a number"),
        ("syntax", "d", None, (3, 3), "the node is empty: give it a 'type' (e.g. "
         "'type: LatentNoise') and its inputs"),
        ("syntax", "e", None, (4, 3), no_type),
        ("syntax", "f", None, (5, 3), "'type' must be a node type name (text), not a number"),
        ("unknown_param", "g", "value", (6, 27), unknown("nope", "none declared")),
    ]  # fmt: skip


def test_a_link_that_is_not_text_and_the_inputs_after_it(registry):
    text = ("params: {n: 1}\nnodes:\n  c: {type: Const, value: {from: 5}, bogus: $nope}\n"
            "  o: {type: ShowNumber, value: c}\n")  # fmt: skip
    assert problems(text, registry) == [
        ("syntax", "c", "value", (3, 27), "a link is written {from: node.output}"),
        ("unknown_param", "c", "bogus", (3, 45), unknown("nope", "n")),
    ]  # fmt: skip


def test_titles_take_params(registry):
    text = "params: {label: x}\nnodes:\n  c: {type: Const, title: 'T $label'}\n  o: {type: Show, value: c}\n"
    assert load_workflow("w.yaml", text=text, registry=registry).graph["c"].title == "T x"
    assert problems(text.replace("$label", "$nop"), registry) == [
        ("unknown_param", "c", "title", (3, 27), unknown("nop", "label")),
    ]  # fmt: skip


def test_inputs_after_an_unknown_input_or_a_link_are_read(registry):
    text = ("nodes:\n  s: {type: Scale, bogus: 1, x: c, factor: 2.0}\n  c: {type: Const}\n"
            "  o: {type: ShowNumber, value: s}\n")  # fmt: skip
    wf = load_workflow("w.yaml", text=text, registry=registry)
    assert wf.graph["s"].inputs == {"bogus": 1, "x": Link("c", 0), "factor": 2.0}


def test_links_in_each_spelling(registry):
    text = ("nodes:\n  c: {type: Const}\n  sp: {type: Split, x: c}\n"
            "  a: {type: Add, a: sp.1, b: {from: sp.low}}\n"
            "  m: {type: Mystery}\n  u: {type: Add, a: m.1, b: m.x}\n"
            "  d: {type: Add, a: nowhere.y, b: nowhere}\n  o: {type: Show, value: a}\n")  # fmt: skip
    g = load_workflow("w.yaml", text=text, registry=registry).graph
    assert g["a"].inputs == {"a": Link("sp", 1), "b": Link("sp", 0)}
    # an unknown type's outputs are numbers or the first; validation then names the type
    assert g["u"].inputs == {"a": Link("m", 1), "b": Link("m", 0)}
    # dangling: kept for validation to report with the graph's other problems
    assert g["d"].inputs == {"a": Link("nowhere", 0), "b": Link("nowhere", 0)}


def test_links_to_outputs_that_do_not_exist(registry):
    text = ("nodes:\n  c: {type: Const}\n  f: {type: Format, template: 'a', value: o}\n"
            "  o: {type: Show, value: c}\n  p: {type: Format, template: b, value: o.x}\n"
            "  sp: {type: Split, x: c}\n  r: {type: ShowNumber, value: sp.2}\n")  # fmt: skip
    assert problems(text, registry) == [
        ("bad_linked_input", "f", "value", (3, 43), "node 'o' (Show) has no outputs"),
        ("bad_linked_input", "p", "value", (5, 41),
         "node 'o' (Show) has no output 'x'; outputs: none"),
        ("bad_linked_input", "r", "value", (7, 32),
         "node 'sp' (Split) has no output '2'; outputs: low (0), high (1)"),
    ]  # fmt: skip


COMFY = "a link is written node.output, not [node, output] as in ComfyUI: "


def test_a_link_written_as_comfyui_writes_it_is_shown_by_an_output_the_node_has(registry):
    """ComfyUI's `[sp, 1]` was told to write `sp.1`, and `[sp, 2]` `sp.2`, an output Split
    does not have: the link is now named by its output's name, and an index out of range gets
    the outputs the node has, with their indices."""
    text = ("nodes:\n  c: {type: Const}\n  sp: {type: Split, x: c}\n"
            "  a: {type: Add, a: [sp, 1], b: [sp, 2]}\n  f: {type: Add, a: {from: [sp, 5]}}\n"
            "  o: {type: ShowNumber, value: a}\n")  # fmt: skip
    outputs = "outputs: low (0), high (1))"
    assert problems(text, registry) == [
        ("bad_linked_input", "a", "a", (4, 21), COMFY + "write sp.high"),
        ("bad_linked_input", "a", "b", (4, 33),
         COMFY + f"write sp.<output> (node 'sp' (Split) has no output 2; {outputs}"),
        ("syntax", "f", "a", (5, 21), "a link is written {from: node.output}, not [node, "
         f"output] as in ComfyUI: write {{from: sp.<output>}} (node 'sp' (Split) has no output 5; "
         f"{outputs}"),
    ]  # fmt: skip


def test_a_comfyui_link_naming_its_output_is_shown_with_that_output(registry):
    """`[sp, high]` (the output's name where ComfyUI has its index) got only 'write
    node.output': the link is now written with that name, or the closest one the node has."""
    text = ("nodes:\n  c: {type: Const}\n  sp: {type: Split, x: c}\n"
            "  a: {type: Add, a: [sp, high], b: ['sp', HIGH]}\n"
            "  f: {type: Add, a: {from: [sp, lowe]}}\n  o: {type: ShowNumber, value: a}\n")  # fmt: skip
    assert problems(text, registry) == [
        ("bad_linked_input", "a", "a", (4, 21), COMFY + "write sp.high"),
        ("bad_linked_input", "a", "b", (4, 36), COMFY + "write sp.high (node 'sp' (Split) has no "
         "output 'HIGH'; outputs: low (0), high (1))"),
        ("syntax", "f", "a", (5, 21), "a link is written {from: node.output}, not [node, "
         "output] as in ComfyUI: write {from: sp.low} (node 'sp' (Split) has no output 'lowe'; "
         "outputs: low (0), high (1))"),
    ]  # fmt: skip


def test_a_comfyui_link_to_its_own_node_is_never_shown_as_a_link_to_write(registry):
    """`[a, 0]` in node a's own input was told to 'write a.sum', a link from the node to
    itself: a cycle, refused next."""
    text = ("nodes:\n  c: {type: Const}\n  a: {type: Add, a: [a, 0], b: {from: [a, sum]}}\n"
            "  o: {type: ShowNumber, value: a}\n")  # fmt: skip
    itself = ", not [node, output] as in ComfyUI; 'a' is this node, which cannot link to itself "
    assert problems(text, registry) == [
        ("bad_linked_input", "a", "a", (3, 21), f"a link is written node.output{itself}(a cycle)"),
        ("syntax", "a", "b", (3, 32), f"a link is written {{from: node.output}}{itself}(a cycle)"),
    ]  # fmt: skip


def test_a_link_to_a_node_nearly_named_or_to_its_own_node_names_the_one_meant(registry):
    """ComfyUI's `[cc, 0]`, naming no node, got only 'write node.output' (`cc.value` got a did
    you mean), never the node holding it (`[ad, 0]` in node d); `a.value` in node a, which has
    no output value, was told a's outputs: it is a link to itself, a cycle, meant from another
    node's output of that name, as `[e, value]` in node e."""
    text = ("nodes:\n  c: {type: Const}\n  a: {type: Add, a: [cc, 0], b: a.value}\n"
            "  d: {type: Add, a: {from: [ad, 0]}}\n  e: {type: Add, a: [e, value]}\n"
            "  o: {type: ShowNumber, value: a}\n")  # fmt: skip
    assert problems(text, registry) == [
        ("bad_linked_input", "a", "a", (3, 21), "a link is written node.output, not [node, "
         "output] as in ComfyUI; there is no node 'cc'; did you mean 'c'?"),
        ("cycle", "a", "b", (3, 33), "links the node to itself (a cycle); did you mean 'c.value'?"),
        ("syntax", "d", "a", (4, 21), "a link is written {from: node.output}, not [node, output] "
         "as in ComfyUI; there is no node 'ad'; did you mean 'a'?"),
        ("bad_linked_input", "e", "a", (5, 21), "a link is written node.output, not [node, "
         "output] as in ComfyUI; 'e' is this node, which cannot link to itself (a cycle); did "
         "you mean 'c.value'?"),
    ]  # fmt: skip


def test_a_comfyui_link_from_an_output_of_another_type_is_not_shown_as_one_to_write(registry):
    """`[f, 0]` in a NUMBER input, f's output a TEXT, was told to 'write f.text', refused next
    as a TEXT for a NUMBER: the types are said instead. An index the node has no output at is
    shown as its one output the input takes (`[c, 9]`: c.value), if it has one."""
    text = ("nodes:\n  c: {type: Const}\n  f: {type: Format, template: x, value: c}\n"
            "  a: {type: Add, a: [f, 0], b: [c, 9]}\n  g: {type: Add, a: {from: [f, 2]}}\n"
            "  o: {type: ShowNumber, value: a}\n")  # fmt: skip
    assert problems(text, registry) == [
        ("bad_linked_input", "a", "a", (4, 21), "a link is written node.output, not [node, "
         "output] as in ComfyUI; f.text is a TEXT output; this input takes a NUMBER one"),
        ("bad_linked_input", "a", "b", (4, 32), COMFY + "write c.value (node 'c' (Const) has no "
         "output 9; outputs: value (0))"),
        ("syntax", "g", "a", (5, 21), "a link is written {from: node.output}, not [node, output] "
         "as in ComfyUI; node 'f' (Format) has no NUMBER output, which this input takes"),
    ]  # fmt: skip


def test_validation_problems_come_after_reading_ones_without_echoes(registry):
    text = ("params: {n: 1}\nnodes:\n  lone: {type: Const}\n  c: {type: Const, value: 5000}\n"
            "  f: {type: Format, template: 'x $nope y', value: c}\n")  # fmt: skip
    no_outputs = "the workflow has no output node (e.g. SaveImage), so nothing would run"
    assert problems(text, registry) == [
        ("unknown_param", "f", "template", (5, 31), unknown("nope", "n")),
        ("value_bigger_than_max", "c", "value", (4, 27), "5000 is above the maximum 1000"),
        ("prompt_no_outputs", None, None, (0, 0), no_outputs),  # the unused warning is left out
    ]  # fmt: skip
    broken = "nodes:\n  c: {type: Const, value: 5000}\n  d: {value: 1}\n  e: {type: Add, a: d}\n"
    assert [p[:3] for p in problems(broken, registry)] == [
        ("syntax", "d", None),
        ("value_bigger_than_max", "c", "value"),
    ]  # no output node: not said when a broken node may have been it; no echo of the link to d


def test_param_problems_name_the_param_and_its_place(registry):
    text = "params: {1x: 2, ok: 3}\nnodes:\n" + OUT
    assert problems(text, registry, overrides={"zz": "1", "ok2": "2"}) == [
        ("syntax", None, None, (1, 10),
         "param name '1x' must be ASCII letters, digits and '_' (not starting with a digit)"),
        ("unknown_param", None, None, (1, 9), "--set zz: the workflow has no param 'zz' "
         "(params: 1x, ok)"),
        ("unknown_param", None, None, (1, 9), "--set ok2: the workflow has no param 'ok2'; did "
         "you mean 'ok'? (params: 1x, ok)"),
    ]  # fmt: skip
    assert problems("nodes:\n" + OUT, registry, overrides={"zz": "1"}) == [
        ("unknown_param", None, None, (0, 0), "--set zz: the workflow has no param 'zz' "
         "(params: none)"),
    ]  # fmt: skip


def test_a_param_name_is_ascii_by_one_rule_for_declaring_setting_and_referencing(registry):
    """`params: {プロンプト: 猫}` was refused as not "letters" (katakana are letters): the
    message says ASCII letters, as the rule is, and `$プロンプト` in text is text, no reference."""
    text = "params: {プロンプト: 猫}\nnodes:\n" + OUT
    assert problems(text, registry) == [
        ("syntax", None, None, (1, 10),
         "param name 'プロンプト' must be ASCII letters, digits and '_' (not starting with a digit)"),
    ]  # fmt: skip
    with pytest.raises(WorkflowError) as err:
        parse_override("プロンプト=犬", "--set")
    assert "NAME a param (ASCII letters, digits and '_')" in str(err.value)
    text = "params: {p: 猫}\nnodes:\n  f: {type: Format, template: '$p と $プロンプト'}\n" + OUT
    graph = load_workflow("w.yaml", text=text, registry=registry).graph
    assert graph["f"].inputs["template"] == "猫 と $プロンプト"


def test_params_inside_lists_and_mappings_and_booleans_as_text(registry):
    text = ("params: {n: 2, flag: false, on: true}\nnodes:\n"
            "  f: {type: Format, template: '${flag}/${on}', value: c, more: [$n, {k: $n}]}\n"
            "  c: {type: Const}\n  o: {type: Show, value: f}\n")  # fmt: skip
    f = load_workflow("w.yaml", text=text, registry=registry).graph["f"].inputs
    assert f["template"] == "false/true" and f["more"] == [2, {"k": 2}]
    for nested in ("[[$nope]]", "[{k: $nope}]"):
        assert problems(text.replace("[$n, {k: $n}]", nested), registry)[0] == (
            "unknown_param", "f", "more", (3, 64), unknown("nope", "flag, n, on")
        )  # fmt: skip


def test_json_or_yaml_by_name_then_content(registry):
    # a trailing comma: YAML's flow mappings take it, JSON refuses it (the reader is known by it)
    json_doc = ('{"nodes": {"c": {"type": "Const", "value": 1,}, '
                '"o": {"type": "ShowNumber", "value": "c"}}}')  # fmt: skip
    for name, text in (("w.txt", "  " + json_doc), ("w.JSON", json_doc), ("w", json_doc)):
        assert problems(text, registry, name=name)[0][4].startswith("JSON syntax error")
    for name in ("w.yml", "w.yaml", "w.YAML"):
        assert load_workflow(name, text=json_doc, registry=registry).graph["c"].inputs == {
            "value": 1
        }
    assert problems("null", registry, name="w.json") == [
        ("syntax", None, None, (0, 0), "the workflow is empty")
    ]
    yaml_doc = "{nodes: {f: {type: Format, template: a}, o: {type: Show, value: f}}}"
    for name in ("w.yml", "w.YAML"):
        assert load_workflow(name, text=yaml_doc, registry=registry).graph["f"].inputs == {
            "template": "a"
        }
    assert problems(yaml_doc, registry, name="w.json")[0][0] == "syntax"
    assert problems("", registry, name="w.json") == [
        ("syntax", None, None, (0, 0), "the workflow is empty")
    ]
    assert problems('{"nodes": [], "links": []}', registry, name="w.json") == [
        ("syntax", None, None, (0, 0), "this is a ComfyUI editor workflow (nodes + links); "
         "export it in API format or convert it with the editor-format loader"),
    ]  # fmt: skip


@pytest.mark.parametrize(("given", "shown"), [
    ("bad name=1", "'bad name=1'"),
    ("C:\\x", "'C:\\x'"),  # as typed: repr doubled the backslash
])  # fmt: skip
def test_a_bad_override_says_what_is_expected_naming_its_flag(given, shown):
    with pytest.raises(WorkflowError) as info:
        parse_override(given, "--set")
    assert str(info.value) == (
        f"--set {shown}: expected NAME=VALUE with NAME a param (ASCII "
        "letters, digits and '_') or, for ComfyUI workflows, <node id>.<input>"
    )


def test_an_api_prompt_is_read_as_one(registry):
    text = ('{"1": {"class_type": "Const", "inputs": {"value": 2, "ui_only": 1}},'
            ' "2": {"class_type": "ShowNumber", "inputs": {"value": ["1", 0]}}}')  # fmt: skip
    wf = load_workflow("p.json", text=text, registry=registry, overrides={"n": "1"})
    assert (wf.format, wf.params, wf.graph.source) == ("api", {}, "p.json")
    assert wf.raw["1"] == {"class_type": "Const", "inputs": {"value": 2, "ui_only": 1}}
    assert wf.graph["2"].inputs == {"value": Link("1", 0)}
    assert wf.graph["1"].inputs == {"value": 2}  # the given registry knows Const's inputs


def test_problems_are_placed_at_the_file_when_positions_are_lost(registry):
    """A key longer than YAML's 1024-character limit: the JSON reads, its positions do not."""
    long_key = '"' + "k" * 2000 + '"'
    text = ('{"version": 2, "description": [1], "params": {"1x": 1}, "nodes": {"c": 5}, '
            f"{long_key}: 1}}")  # fmt: skip
    with pytest.raises(WorkflowError) as info:
        load_workflow("w.json", text=text, registry=registry, overrides={"zz": "1"})
    found = info.value.problems
    assert len(found) == 6 and {p.code for p in found} >= {"invalid_value", "unknown_param"}
    assert all(p.location == Location("w.json") for p in found)
    with pytest.raises(WorkflowError) as info:
        load_workflow("w.json", text=f"[{{{long_key}: 1}}]", registry=registry)
    (p,) = info.value.problems
    assert p.message.endswith("not a list") and p.location == Location("w.json")


def test_echoes_are_left_out_and_the_problems_after_them_kept(registry):
    # the input whose link was refused is then missing: not said twice
    text = ("nodes:\n  c: {type: Const}\n  sp: {type: Split, x: c.nope}\n"
            "  d: {type: Const, value: 5000}\n  o: {type: ShowNumber, value: sp.low}\n")  # fmt: skip
    assert [p[:3] for p in problems(text, registry)] == [
        ("bad_linked_input", "sp", "x"), ("value_bigger_than_max", "d", "value")
    ]  # fmt: skip
    # a link to a node that could not be read: not reported again on the linking node
    text = ("nodes:\n  bad: {value: 1}\n  e: {type: Add, a: bad}\n"
            "  f: {type: Const, value: 5000}\n  o: {type: ShowNumber, value: e}\n")  # fmt: skip
    assert [p[:3] for p in problems(text, registry)] == [
        ("syntax", "bad", None), ("value_bigger_than_max", "f", "value")
    ]  # fmt: skip


def test_a_version_written_as_text_is_named_as_such(registry):
    assert problems('version: "1"\nnodes:\n' + OUT, registry) == [
        ("invalid_value", None, None, (1, 10), "'version' must be the number 1, not the text '1'")
    ]


def test_a_param_written_where_a_link_goes_is_named_as_a_param(registry):
    text = ("params:\n  src: c\nnodes:\n  c: {type: Const}\n"
            "  o: {type: ShowNumber, value: $src}\n")  # fmt: skip
    assert problems(text, registry) == [
        ("bad_linked_input", "o", "value", (5, 32), "$src is a param, and a param cannot feed a "
         "link input: write the link itself here (<node>.<output>)"),
    ]  # fmt: skip


def test_a_misspelled_param_reference_gets_a_did_you_mean(registry):
    """`seed: $sed` listed the params but did not say which was meant, as `--set sed=1` does."""
    text = "params: {seed: 1, steps: 2}\nnodes:\n  c: {type: Const, value: $sed}\n" + OUT[19:]
    [(code, *_, message)] = problems(text, registry)
    assert (code, message) == ("unknown_param", "$sed is not a param of this workflow; did you "
                               "mean 'seed'? (params: seed, steps); write $$ for a literal dollar")  # fmt: skip
