"""Validation: every error code, with node id, input name and line number."""

from __future__ import annotations

import math

import pytest

from latentgraph.graph.context import Settings
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.validate import check_or_raise, output_nodes, validate
from latentgraph.graph.workflow import load_workflow

HEAD = "nodes:\n  c: {type: Const, value: 1}\n  o: {type: ShowNumber, value: c}\n"


def check(registry, lines: str, settings=None):
    """Validate HEAD plus `lines` (node definitions, one per line, starting at line 4)."""
    wf = load_workflow("v.yaml", text=HEAD + lines, registry=registry)
    return validate(wf.graph, registry, settings)


def only(problems, code):
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, problems
    return found[0]


def errors(problems):
    return [p for p in problems if p.severity == "error"]


def test_valid_graph_has_no_problems(registry):
    assert check(registry, "") == []


def test_unknown_node_type_suggests(registry):
    g = Graph(source="g")
    g.add(Node("x", "Sclae", {"x": Link("c", 0)}))
    g.add(Node("o", "Show", {"value": Link("x", 0)}))
    p = only(validate(g, registry), "unknown_node_type")
    assert p.node_id == "x" and "did you mean 'Scale'" in p.message


@pytest.mark.parametrize(
    ("line", "code", "input_name"),
    [
        ("  s: {type: Scale, x: c, factr: 2.0}", "unknown_input", "factr"),
        ("  s: {type: Scale, x: c, factor: '2'}", "invalid_input_type", "factor"),
        ("  s: {type: Scale, x: c, seed: true}", "invalid_input_type", "seed"),
        ("  s: {type: Scale, x: c, seed: 1.0}", "invalid_input_type", "seed"),
        ("  s: {type: Scale, x: c, flip: 1}", "invalid_input_type", "flip"),
        ("  s: {type: Scale, x: c, note: 5}", "invalid_input_type", "note"),
        ("  s: {type: Scale, x: c, factor: .nan}", "invalid_input_type", "factor"),
        ("  s: {type: Scale, x: c, factor: .inf}", "invalid_input_type", "factor"),
        ("  s: {type: Scale, x: c, factor: -0.5}", "value_smaller_than_min", "factor"),
        ("  s: {type: Scale, x: c, factor: 11}", "value_bigger_than_max", "factor"),
        ("  s: {type: Scale, x: c, width: 4}", "value_smaller_than_min", "width"),
        ("  s: {type: Scale, x: c, mode: medium}", "value_not_in_list", "mode"),
        ("  s: {type: Scale, x: c, note: abcdefghijk}", "value_bigger_than_max", "note"),
        ("  s: {type: Scale, x: 5}", "bad_linked_input", "x"),
        ("  s: {type: Scale, x: c, seed: {from: c}}", "return_type_mismatch", "seed"),
        ("  s: {type: Scale, x: c, factor: {from: c}}", "return_type_mismatch", "factor"),
        ("  s: {type: Scale, x: nowhere}", "bad_linked_input", "x"),
        ("  s: {type: Scale, x: s}", "cycle", "x"),
        ("  s: {type: Scale}", "required_input_missing", "x"),
        ("  s: {type: Range, low: 5, high: 1}", "invalid_value", "low"),
    ],
)
def test_input_errors(registry, line, code, input_name):
    problems = check(registry, line + "\n")
    p = only(problems, code)
    assert (p.node_id, p.input_name) == ("s", input_name)
    assert p.location is not None and p.location.line == 4 and p.location.file == "v.yaml"
    assert len(errors(problems)) == 1, problems


def test_float_accepts_int_and_infinite_when_unbounded(registry):
    assert errors(check(registry, "  s: {type: Scale, x: c, factor: 2, free: .inf}\n")) == []


def test_choice_message_lists_choices_and_suggests(registry):
    p = only(check(registry, "  s: {type: Scale, x: c, mode: fastt}\n"), "value_not_in_list")
    assert "'fast', 'slow', 'exact'" in p.message and "did you mean 'fast'" in p.message
    assert p.received == "fastt" and p.node_type == "Scale"


def test_any_type_socket_accepts_every_output(registry):
    assert (
        check(
            registry, "  f: {type: Format, template: x, value: c}\n  o2: {type: Show, value: f}\n"
        )
        == []
    )


def test_link_to_missing_output_index(registry):
    g = Graph()
    g.add(Node("c", "Const", {}))
    g.add(Node("o", "ShowNumber", {"value": Link("c", 3)}))
    p = only(validate(g, registry), "bad_linked_input")
    assert (p.node_id, p.input_name) == ("o", "value") and "1 output(s): value" in p.message


def test_cycle_names_its_nodes(registry):
    problems = check(
        registry,
        "  a: {type: Add, a: b}\n  b: {type: Add, a: d}\n  d: {type: Add, a: a}\n"
        "  o2: {type: ShowNumber, value: a}\n",
    )
    p = only(problems, "cycle")
    assert p.node_id == "a" and p.location.line == 4
    assert "a -> d -> b -> a" in p.message
    assert sorted(p.received) == ["a", "b", "d"]


def test_two_separate_cycles_are_both_reported(registry):
    g = Graph()
    for a, b in (("a", "b"), ("b", "a"), ("x", "y"), ("y", "x")):
        g.add(Node(a, "Add", {"a": Link(b, 0)}))
    g.add(Node("o", "ShowNumber", {"value": Link("a", 0)}))
    assert len([p for p in validate(g, registry) if p.code == "cycle"]) == 2


def test_no_output_node(registry):
    wf = load_workflow("n.yaml", text="nodes:\n  c: {type: Const}\n", registry=registry)
    p = only(validate(wf.graph, registry), "prompt_no_outputs")
    assert p.location.file == "n.yaml" and p.node_id is None
    assert only(validate(Graph(), registry), "prompt_no_outputs")


def test_unused_nodes_are_warnings(registry):
    problems = check(registry, "  lone: {type: Const}\n  sp: {type: Split, x: lone}\n")
    warnings = [p for p in problems if p.code == "unused_node"]
    assert {p.node_id for p in warnings} == {"lone", "sp"}
    assert all(p.severity == "warning" for p in warnings)
    assert errors(problems) == []


def test_all_errors_at_once(registry):
    problems = check(
        registry,
        "  s: {type: Scale, x: c, mode: medium, factor: 20}\n  t: {type: Nope}\n  u: {type: Add}\n",
    )
    assert {p.code for p in errors(problems)} == {
        "value_not_in_list", "value_bigger_than_max", "unknown_node_type", "required_input_missing",
    }  # fmt: skip


def test_settings_limits(registry):
    settings = Settings(max_image_pixels=100 * 100)
    p = only(
        check(registry, "  s: {type: Scale, x: c, width: 200, height: 200}\n", settings),
        "limit_exceeded",
    )
    assert (p.node_id, p.input_name) == ("s", "width")
    assert (
        errors(check(registry, "  s: {type: Scale, x: c, width: 100, height: 100}\n", settings))
        == []
    )


def test_check_hook_that_raises_is_a_problem_not_a_crash(registry):
    from latentgraph.graph.declare import Int, Registry, node

    reg = Registry()

    def boom(inputs, settings):
        raise RuntimeError("kaput")

    @node("B", inputs=[Int("v", 0)], check=boom, output_node=True, registry=reg)
    def b(ctx, v):
        return ()

    g = Graph()
    g.add(Node("b", "B", {"v": 1}))
    assert "kaput" in only(validate(g, reg), "invalid_value").message


def test_check_or_raise_and_output_nodes(registry):
    wf = load_workflow("v.yaml", text=HEAD + "  lone: {type: Const}\n", registry=registry)
    warnings = check_or_raise(wf.graph, registry)
    assert [p.code for p in warnings] == ["unused_node"]
    assert output_nodes(wf.graph, registry) == ["o"]
    wf.graph["c"].inputs["value"] = math.nan
    with pytest.raises(WorkflowError) as info:
        check_or_raise(wf.graph, registry)
    assert [p.node_id for p in info.value.errors] == ["c"]


def test_long_chain_validates_iteratively(registry):
    g = Graph()
    g.add(Node("n0", "Const", {"value": 1}))
    for i in range(1, 100_000):
        g.add(Node(f"n{i}", "Add", {"a": Link(f"n{i - 1}", 0)}))
    g.add(Node("out", "ShowNumber", {"value": Link("n99999", 0)}))
    assert validate(g, registry) == []
    g["n0"].inputs["a"] = Link("n99999", 0)  # close the loop: one cycle through 100,000 nodes
    g["n0"].type = "Add"
    del g["n0"].inputs["value"]
    p = only(validate(g, registry), "cycle")
    assert len(p.received) == 100_000


def _limited_registry():
    from latentgraph.graph.declare import Int, Registry, node

    reg = Registry()

    @node("Toy", inputs=[Int("steps", 1), Int("count", 1, limit="max_steps"),
                         Int("w", 1, limit="max_image_pixels"), Int("h", 1, limit="max_image_pixels")],
          output_node=True, registry=reg)  # fmt: skip
    def toy(ctx, steps, count, w, h):
        return ()

    return reg


def test_limits_bound_the_inputs_that_declare_them_not_inputs_by_name():
    reg = _limited_registry()
    settings = Settings(max_steps=5, max_image_pixels=100)

    def problems(**inputs):
        g = Graph()
        g.add(Node("t", "Toy", inputs))
        return validate(g, reg, settings)

    assert problems(steps=50, w=10, h=10) == []  # "steps" declares no limit: not bounded
    p = only(problems(count=6), "limit_exceeded")
    said = "count 6 is over the limit of 5 (Settings.max_steps)"  # from Python: the field
    assert (p.input_name, p.message) == ("count", said)
    p = only(problems(w=20, h=10), "limit_exceeded")  # bounded together: 20 x 10 > 100
    assert p.input_name == "w" and "20x10 is 200 pixels" in p.message
    assert problems(count=5, w=10, h=10) == []


def test_an_unknown_limit_name_is_refused_where_the_input_is_declared():
    from latentgraph.graph.declare import Int, Registry, node

    with pytest.raises(ValueError, match="node type 'N' input 'steps': unknown limit 'max_stepz'"):
        node("N", inputs=[Int("steps", 1, limit="max_stepz")], registry=Registry())(
            lambda ctx, steps: ())  # fmt: skip


def test_validate_names_no_diffusion_input():
    """Limits come from the declarations: the validator knows no input by name."""
    import inspect
    import re

    from latentgraph.graph import validate as module

    source = inspect.getsource(module)
    named = re.findall(r"""["'](steps|batch_size|batch|width|height)["']""", source)
    assert named == []


def test_a_dropdown_listed_at_run_time_judges_its_default_when_left_out(registry):
    """A Choice whose choices a function lists (a folder's files) never had its default
    checked when a workflow left the input out: 'missing.txt' reached the node, and a None
    default crashed it (`PosixPath / None`). The default is judged as a value written for it,
    and None is no default there: the input must be given (or declared optional)."""
    from latentgraph.graph import Choice, node

    def files(settings):
        return ["a.txt", "b.txt"]

    for name, default, optional in (("PickFile", "missing.txt", False),
                                    ("PickNone", None, False), ("PickMaybe", None, True)):  # fmt: skip
        node(name, inputs=[Choice("lut", files, default, optional=optional)],
             output_node=True, registry=registry)(lambda ctx, lut=None: ())  # fmt: skip

    p = only(check(registry, "  p: {type: PickFile}\n"), "value_not_in_list")
    assert str(p) == ("v.yaml:4:3: node 'p' input 'lut': left out, and its default is "
                      "refused: 'missing.txt' is not one of: 'a.txt', 'b.txt'")  # fmt: skip
    assert errors(check(registry, "  p: {type: PickFile, lut: b.txt}\n")) == []
    p = only(check(registry, "  p: {type: PickNone}\n"), "required_input_missing")
    assert (p.node_id, p.input_name) == ("p", "lut")
    p = only(check(registry, "  p: {type: PickNone, lut: null}\n"), "value_not_in_list")
    assert "null is not one of: 'a.txt', 'b.txt'" in p.message
    maybe = "  p: {type: PickMaybe}\n  q: {type: PickMaybe, lut: null}\n"
    assert errors(check(registry, maybe)) == []
    # a loader (no run settings) leaves what only the run's folders can judge to the run
    wf = load_workflow("v.yaml", text=HEAD + "  p: {type: PickFile}\n", registry=registry)
    assert errors(validate(wf.graph, registry, run_settings=False)) == []
