"""`${name}` (the braced form) is the same reference as `$name`: the param's typed value."""

from __future__ import annotations

import pytest

from latentgraph.graph.workflow import load_workflow

TEXT = """\
params: {n: 3, f: 2.5, flip: true, mode: slow, none: null}
nodes:
  c: {type: Const, value: "${n}"}
  s: {type: Scale, x: c, factor: "${f}", flip: "${flip}", mode: "${mode}", note: "${none}"}
  o: {type: Show, value: s}
"""


def test_braced_param_is_the_typed_value(registry):
    wf = load_workflow("w.yaml", text=TEXT, registry=registry)
    assert wf.graph["c"].inputs["value"] == 3 and type(wf.graph["c"].inputs["value"]) is int
    s = wf.graph["s"].inputs
    assert (s["factor"], s["flip"], s["mode"], s["note"]) == (2.5, True, "slow", None)
    assert type(s["factor"]) is float and type(s["flip"]) is bool


@pytest.mark.parametrize("override, value", [("7", 7), ("-2", -2)])
def test_braced_param_takes_the_typed_override(registry, override, value):
    wf = load_workflow("w.yaml", text=TEXT, registry=registry, overrides={"n": override})
    assert wf.graph["c"].inputs["value"] == value


def test_braced_param_inside_text_is_interpolated(registry):
    text = TEXT.replace('note: "${none}"', 'note: "n${n}x"')
    wf = load_workflow("w.yaml", text=text, registry=registry)
    assert wf.graph["s"].inputs["note"] == "n3x"


LINKED = """\
params: {x: 1}
nodes:
  c: {type: Const, value: 1}
  o: {type: Show, value: "c$x"}
"""


@pytest.mark.parametrize("written", ['"c$x"', '{from: "c$x"}'])
def test_a_link_naming_a_given_param_is_placed_at_its_line_not_the_flag(registry, written):
    """A link is never substituted (`c$x` names node 'c$x'), so a given `--set x=2` did not
    make it: its problem is the file's line, as without `--set`. It said
    '--set x=2 ($x at w.yaml:4:26): ... links to node 'c$x'', blaming the flag."""
    from latentgraph.graph.validate import validate

    text = LINKED.replace('"c$x"', written)
    wf = load_workflow("w.yaml", text=text, registry=registry, overrides={"x": "2"})
    said = [str(p) for p in validate(wf.graph, registry) if p.severity == "error"]
    assert said == ["w.yaml:4:26: node 'o' input 'value': links to node 'c$x', which does not "
                    "exist"]  # fmt: skip


@pytest.mark.parametrize(("written", "value", "uses_n"), [
    ('"$n"', 7, True), ('"${n}"', 7, True), ('"a${n}b$n"', "a7b7", True),
    ('"$$n"', "$n", False), ('"$${n}"', "${n}", False), ('"$$$n"', "$7", True),
    ('"5$"', "5$", False), ("[1, [x, $n]]", [1, ["x", 7]], True),
    ('{k: {j: "${n}"}}', {"k": {"j": 7}}, True), ('{"$n": 1}', {"$n": 1}, False),
])  # fmt: skip
def test_a_value_is_placed_at_the_flag_exactly_when_the_given_param_is_put_in(
    registry, written, value, uses_n
):
    """Which params a value uses is recorded by substituting it (one rule): every form
    substitution reads ($$ escapes, lists, mappings, not keys) names `--set n=7` in the value's
    place when, and only when, the 7 went in."""
    text = f"params: {{n: 3}}\nnodes:\n  f: {{type: Format, template: {written}}}\n"
    wf = load_workflow("w.yaml", text=text, registry=registry, overrides={"n": "7"})
    line = _use(load_workflow("w.yaml", text=text, registry=registry).graph.where("f", "template"))
    assert wf.graph["f"].inputs["template"] == value
    placed = str(wf.graph.where("f", "template"))
    assert placed == (f"--set n=7 ($n at {line})" if uses_n else line)


@pytest.mark.parametrize(("given", "placed"), [("3.0", True), ("3", False), ("true", True)])
def test_a_given_value_equal_to_the_default_but_of_another_type_is_placed_at_the_flag(
    registry, given, placed
):
    """`--set n=3.0` with the default 3: 3.0 == 3, so it was taken for the file's own value and
    its refusal ('expected an integer (INT), got 3.0') blamed the file's line, not the flag.
    The same value as written in the file (`--set n=3`) changes nothing, and is not named."""
    from latentgraph.graph.problems import WorkflowError

    line = _use(load_workflow("w.yaml", text=TEXT, registry=registry).graph.where("c", "value"))
    try:
        wf = load_workflow("w.yaml", text=TEXT, registry=registry, overrides={"n": given})
        where = str(wf.graph.where("c", "value"))
    except WorkflowError as exc:
        [problem] = exc.problems
        where = str(problem.location)
    assert where == (f"--set n={given} ($n at {line})" if placed else line)


def _use(where) -> str:
    """The file:line:column of a value's place, without what gave its params' values."""
    return f"{where.file}:{where.line}:{where.column}"


@pytest.mark.parametrize("default", ["one", "[1, 2]"])
def test_a_default_the_input_refuses_names_the_param_and_its_declaration(registry, default):
    """`params: {n: one}` used as `value: $n` of an INT input: the refusal named only the
    `$n` line, so the author had to work out that 'one' came from the params block. It is
    placed as a `--set` value is: the declaration's file:line:column in the flag's place."""
    from latentgraph.graph.validate import validate

    text = TEXT.replace("n: 3", f"n: {default}")
    wf = load_workflow("w.yaml", text=text, registry=registry)
    said = [str(p) for p in validate(wf.graph, registry) if p.input_name == "value"]
    assert said and all(
        s.startswith("w.yaml:1:13: param n's default ($n at w.yaml:3:27): node 'c' input 'value'")
        for s in said
    ), said


@pytest.mark.parametrize(("written", "opened"), [
    ('"${n"', "${n"), ('"a ${n photo"', "${n"), ('"${f}x${flip"', "${flip"),
])  # fmt: skip
def test_a_braced_reference_left_open_is_named_as_one(registry, written, opened):
    """`"${n"` was kept as text: refused as an integer input's wrong type ('got '${n''), and
    in text taken as it stands. It is a param reference missing its `}`, said at its place;
    `$${` is a literal dollar before the brace."""
    from latentgraph.graph.problems import WorkflowError

    text = TEXT.replace('note: "${none}"', f"note: {written}")
    with pytest.raises(WorkflowError) as info:
        load_workflow("w.yaml", text=text, registry=registry)
    assert [(p.node_id, p.input_name, p.message) for p in info.value.problems] == [
        ("s", "note", f"{opened} is a param reference missing its '}}': write {opened}}} (or $$ "
         "for a literal dollar)")]  # fmt: skip
    escaped = load_workflow("w.yaml", text=TEXT.replace('"${none}"', '"$${n"'), registry=registry)
    assert escaped.graph["s"].inputs["note"] == "${n"


PARAM_USED = """\
params: {n: 3}
nodes:
  c: {type: Const, value: $n}
  o: {type: ShowNumber, value: c}
"""


def _errors(text: str, registry, overrides=None) -> list[str]:
    """The errors loading and validating `text` (as w.yaml) says, each with its place."""
    from latentgraph.graph.context import Settings
    from latentgraph.graph.problems import WorkflowError
    from latentgraph.graph.validate import validate

    try:
        wf = load_workflow("w.yaml", text=text, registry=registry, overrides=overrides or {})
    except WorkflowError as exc:
        return [str(p) for p in exc.problems if p.severity == "error"]
    return [str(p) for p in validate(wf.graph, registry, Settings()) if p.severity == "error"]


@pytest.mark.parametrize("overrides", [{}, {"n": "7"}])
def test_an_input_name_typo_using_a_param_is_placed_at_the_input_not_the_param(registry, overrides):
    """`valeu: $n`: the input's name is wrong, not n's value. It was placed at n's default
    ('w.yaml:1:13: param n's default ($n at w.yaml:3:27): ...'), where editors and CI jump,
    blaming line 1; with `--set n=7` at the flag ('--set n=7 ($n at ...)'). Whatever gave
    the value, the typo is the input's line."""
    text = PARAM_USED.replace("value: $n", "valeu: $n")
    assert _errors(text, registry, overrides) == [
        "w.yaml:3:27: node 'c' input 'valeu': Const has no input 'valeu'; did you mean 'value'?"
    ]


@pytest.mark.parametrize("overrides", [{}, {"n": "7"}])
def test_a_param_feeding_a_socket_input_is_placed_at_the_input(registry, overrides):
    """A socket input takes a link: `$n` there is said at the input's line, the param's
    default (or flag) blameless."""
    text = PARAM_USED.replace("ShowNumber, value: c", "ShowNumber, value: $n")
    assert _errors(text, registry, overrides) == [
        "w.yaml:4:32: node 'o' input 'value': $n is a param, and a param cannot feed a link "
        "input: write the link itself here (<node>.<output>)"]  # fmt: skip


@pytest.mark.parametrize(("default", "said"), [
    ("5000", "5000 is above the maximum 1000"),
    ("[1]", "expected an integer (INT), got a list"),
])  # fmt: skip
def test_a_default_refused_is_placed_at_its_declaration_and_a_set_value_at_its_flag(
    registry, default, said
):
    """The value's own refusal is the default's, at its declaration; a `--set` value's, at
    the flag, as before: only the input's other problems stay at its line."""
    text = PARAM_USED.replace("n: 3", f"n: {default}")
    assert _errors(text, registry) == [
        f"w.yaml:1:13: param n's default ($n at w.yaml:3:27): node 'c' input 'value': {said}"
    ]
    assert _errors(text, registry, {"n": "-5000"}) == [
        "--set n=-5000 ($n at w.yaml:3:27): node 'c' input 'value': -5000 is below the minimum -1000"
    ]


@pytest.mark.parametrize(("use", "said"), [
    ("Scale, x: c, mode: $m", "w.yaml:1:13: param m's default ($m at w.yaml:4:32): node 's' "
     "input 'mode': 'slo' is not one of: 'fast', 'slow', 'exact'; did you mean 'slow'?"),
    ("Range, low: $lo", "w.yaml:1:22: param lo's default ($lo at w.yaml:4:25): node 's' "
     "input 'low': low must not be above high"),
])  # fmt: skip
def test_a_default_refused_by_a_choice_or_a_check_is_placed_at_its_declaration(registry, use, said):
    """A dropdown's refusal and a node's `check` are the value's too: the default's."""
    text = (f"params: {{m: slo, lo: 20}}\nnodes:\n  c: {{type: Const}}\n  s: {{type: {use}}}\n"
            "  o: {type: Show, value: s}\n")  # fmt: skip
    assert _errors(text, registry) == [said]
