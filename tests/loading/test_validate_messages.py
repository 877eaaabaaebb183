"""Validation problems in full: the text a user reads, the input it names and the line of that
input, what was received and the node's type; the boundaries each check accepts."""

from __future__ import annotations

import math
import sys

import pytest

from latentgraph.graph.context import Settings
from latentgraph.graph.declare import (
    COMBO,
    Choice,
    Float,
    Input,
    Int,
    Output,
    Registry,
    Socket,
    String,
    node,
)
from latentgraph.graph.model import Graph, Link, Location, Node
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.validate import PLUGIN_HINT, check_or_raise, validate
from latentgraph.graph.workflow import load_workflow

# The node `s` starts at line 4; its input written last is on line 7.
HEAD = "nodes:\n  c: {type: Const, value: 1}\n  o: {type: ShowNumber, value: c}\n"


def scale_with(registry, line: str) -> list:
    """The errors of a Scale node `s` whose input on line 7 is `line`."""
    before = "flip: false" if line.startswith("x:") else "x: c"
    text = HEAD + f"  s:\n    type: Scale\n    {before}\n    {line}\n"
    graph = load_workflow("v.yaml", text=text, registry=registry).graph
    return [p for p in validate(graph, registry) if p.severity == "error"]


def full(p) -> tuple:
    return (p.code, p.node_id, p.input_name, p.location.line, p.node_type, p.received, p.message)


@pytest.mark.parametrize(
    ("line", "code", "received", "message"),
    [
        ("factr: 2.0", "unknown_input", 2.0, "Scale has no input 'factr'; did you mean 'factor'?"),
        ("zzz: 1", "unknown_input", 1,
         "Scale has no input 'zzz'; its inputs are: x, factor, free, seed, flip, mode, note, width,"
         " height"),
        ("seed: 1.5", "invalid_input_type", 1.5, "expected an integer (INT), got 1.5"),
        ("seed: true", "invalid_input_type", True, "expected an integer (INT), got true"),
        ("seed: false", "invalid_input_type", False, "expected an integer (INT), got false"),
        ("seed: null", "invalid_input_type", None, "expected an integer (INT), got null"),
        ("seed: [1]", "invalid_input_type", [1], "expected an integer (INT), got a list"),
        ("seed: {a: 1}", "invalid_input_type", {"a": 1}, "expected an integer (INT), got a dict"),
        ("seed: '" + "x" * 40 + "'", "invalid_input_type", "x" * 40,
         f"expected an integer (INT), got '{'x' * 40}'"),
        ("seed: '" + "x" * 41 + "'", "invalid_input_type", "x" * 41,
         f"expected an integer (INT), got '{'x' * 37}...'"),
        ("factor: '2'", "invalid_input_type", "2", "expected a number (FLOAT), got '2'"),
        ("factor: .inf", "invalid_input_type", math.inf, "expected a finite number, got inf"),
        ("factor: 1" + "0" * 400, "invalid_input_type", 10**400,
         "expected a number, got an integer of 401 digits, too large for FLOAT"),
        ("note: 5", "invalid_input_type", 5, "expected text (STRING), got 5"),
        ("flip: 1", "invalid_input_type", 1, "expected true or false (BOOLEAN), got 1"),
        ("note: abcdefghijk", "value_bigger_than_max", "abcdefghijk",
         "the text is 11 characters long; at most 10 are allowed"),
        ("factor: -0.5", "value_smaller_than_min", -0.5, "-0.5 is below the minimum 0"),
        ("factor: 11", "value_bigger_than_max", 11, "11 is above the maximum 10"),
        ("width: 4", "value_smaller_than_min", 4, "4 is below the minimum 8"),
        ("mode: 1", "value_not_in_list", 1, "1 is not one of: 'fast', 'slow', 'exact'"),
        ("mode: Fast", "value_not_in_list", "Fast",
         "'Fast' is not one of: 'fast', 'slow', 'exact'; did you mean 'fast'?"),
        ("seed: {from: c}", "return_type_mismatch", ["c", 0], "expects INT but c.value is NUMBER"),
    ],
)  # fmt: skip
def test_each_problem_in_full(registry, line, code, received, message):
    [p] = scale_with(registry, line)
    assert full(p) == (code, "s", line.split(":")[0], 7, "Scale", received, message)


@pytest.mark.parametrize(
    "line",
    ["flip: true", "flip: false", "seed: -3", "factor: 0", "factor: 10", "factor: 2.5",
     "free: -.inf", "mode: exact", "note: ''", "width: 8"],
)  # fmt: skip
def test_values_within_the_rules_are_accepted(registry, line):
    assert scale_with(registry, line) == []


def test_nan_in_full(registry):
    [p] = scale_with(registry, "factor: .nan")
    assert full(p)[:5] == ("invalid_input_type", "s", "factor", 7, "Scale")
    assert math.isnan(p.received) and p.message == "expected a number, got NaN"


def test_text_at_its_max_length_is_accepted_and_a_long_one_received_cut(registry):
    assert scale_with(registry, "note: abcdefghij") == []
    [p] = scale_with(registry, "note: " + "y" * 100)
    assert p.received == "y" * 80


@pytest.mark.parametrize(
    ("line", "message", "received"),
    [
        ("x: 5", "takes a link from a NUMBER output, not a literal (5); write node.output", 5),
        ("x: s", "links the node to itself (a cycle)", ["s", 0]),
        ("x: nowhere", "links to node 'nowhere', which does not exist", ["nowhere", 0]),
        ("x: cc", "links to node 'cc', which does not exist; did you mean 'c'?", ["cc", 0]),
        # in node s, whose own id is the closest: a link to itself is never suggested
        ("x: ss", "links to node 'ss', which does not exist", ["ss", 0]),
    ],
)  # fmt: skip
def test_link_problems_in_full(registry, line, message, received):
    problems = scale_with(registry, line)
    [p] = [p for p in problems if p.input_name == "x"]
    code = "cycle" if "itself" in message else "bad_linked_input"
    assert full(p) == (code, "s", "x", 7, "Scale", received, message)


def test_a_link_to_its_own_node_suggests_another_nodes_output_of_that_name(registry):
    """A link from node a to its own output `sum` (a cycle) was meant from another node's
    `sum`: it is suggested, the closest id first; none when no other node has one."""
    g = Graph()
    g.add(Node("c", "Const", {}))
    g.add(Node("a", "Add", {"a": Link("c", 0), "b": Link("a", 0)}))
    g.add(Node("a2", "Add", {"a": Link("c", 0)}))
    g.add(Node("o", "ShowNumber", {"value": Link("a", 0)}))
    g.add(Node("s", "Scale", {"x": Link("s", 0)}))
    assert [(p.node_id, p.message) for p in validate(g, registry) if p.code == "cycle"] == [
        ("a", "links the node to itself (a cycle); did you mean 'a2.sum'?"),
        ("s", "links the node to itself (a cycle)"),
    ]  # fmt: skip


def test_a_link_one_past_the_last_output(registry):
    g = Graph()
    g.add(Node("c", "Const", {}))
    g.add(Node("o", "ShowNumber", {"value": Link("c", 1)}))  # Const has one output
    [p] = validate(g, registry)
    assert (p.code, p.input_name, p.received, p.message) == (
        "bad_linked_input", "value", ["c", 1],
        "links to output 1 of node 'c' (Const), which has 1 output(s): value")  # fmt: skip


def test_a_link_past_the_outputs_lists_them_all(registry):
    g = Graph()
    g.add(Node("c", "Const", {}))
    g.add(Node("sp", "Split", {"x": Link("c", 0)}))
    g.add(Node("o", "ShowNumber", {"value": Link("sp", 5)}))
    [p] = validate(g, registry)
    assert p.message == "links to output 5 of node 'sp' (Split), which has 2 output(s): low, high"


def test_required_inputs_missing_say_what_to_give(registry):
    text = (
        HEAD + "  s: {type: Scale}\n  f: {type: Format, value: c}\n  o2: {type: Show, value: f}\n"
    )
    problems = validate(load_workflow("v.yaml", text=text, registry=registry).graph, registry)
    assert [
        (p.node_id, p.input_name, p.node_type, p.message) for p in problems if p.severity == "error"
    ] == [
        ("s", "x", "Scale", "this required NUMBER input is missing: give it a link"),
        ("f", "template", "Format", "this required STRING input is missing: give it a value"),
    ]


def test_an_unknown_input_given_a_link_received_it(registry):
    g = Graph()
    g.add(Node("c", "Const", {}))
    g.add(Node("o", "ShowNumber", {"value": Link("c", 0), "extra": Link("c", 0)}))
    [p] = validate(g, registry)
    assert (p.code, p.input_name, p.received) == ("unknown_input", "extra", ["c", 0])


def test_unknown_types_in_full(registry):
    g = Graph(source="g.json")
    g.add(Node("u", "Sclae", {}))
    g.add(Node("o", "ShowNumber", {"value": Link("u", 0)}))
    [p] = validate(g, registry)
    assert (p.code, p.node_id, p.node_type, p.message) == (
        "unknown_node_type", "u", "Sclae", "unknown node type 'Sclae'; did you mean 'Scale'?")  # fmt: skip


@pytest.mark.parametrize(
    ("name", "message"),
    [("const", "unknown node type 'const'; did you mean 'Const'?"),
     ("Constt", "unknown node type 'Constt'; did you mean 'Const'?"),
     ("KSamplerAdvanced", None), ("ConstantMatrix", None)],
)  # fmt: skip
def test_a_missing_comfy_node_is_named_as_such(registry, name, message):
    """In a ComfyUI graph (types written by its editor) an unknown type is a node latentgraph
    lacks; only one of ours misspelled by hand (a letter off, another case) is suggested. A
    custom node may have been ported to a plugin not loaded: how to load one is said, as in
    our YAML (it was not)."""
    g = Graph(source="api.json", dialect="comfy")
    g.add(Node("7", name, {}))
    g.add(Node("o", "ShowNumber", {"value": Link("7", 0)}))
    [p] = validate(g, registry)
    lacking = (f"unknown node type {name!r}: a ComfyUI core or custom node latentgraph does "
               f"not have (docs/comfy-compat.md lists the ones it has){PLUGIN_HINT}")  # fmt: skip
    assert p.message == (message or lacking)


def test_our_yaml_suggests_close_names_for_an_unknown_type(registry):
    g = Graph(source="wf.yaml")
    g.add(Node("7", "Constant", {}))
    g.add(Node("o", "ShowNumber", {"value": Link("7", 0)}))
    [p] = validate(g, registry)
    assert p.message == "unknown node type 'Constant'; did you mean 'Const'?"


def test_an_unknown_type_close_to_none_of_ours_says_how_to_load_a_plugin(registry):
    """A type no known name is close to is likely a plugin's node not loaded: the message
    said only 'unknown node type', not how to load one. A close name is suggested instead."""
    g = Graph(source="wf.yaml")
    g.add(Node("7", "MyPluginNode", {}))
    g.add(Node("o", "ShowNumber", {"value": Link("7", 0)}))
    [p] = validate(g, registry)
    assert p.message == ("unknown node type 'MyPluginNode'; if a plugin declares it, give its "
                         "folder with --nodes-dir or install its package")  # fmt: skip


def _raise(settings):
    raise OSError("models/ is gone")


def _record_check(inputs, settings):
    """Returns what it was given, as problems: one per literal, and one about the settings."""
    found = [(name, f"saw {value!r}") for name, value in sorted(inputs.items())]
    return [*found, (None, f"max_steps {settings.max_steps}")]


@pytest.fixture(scope="module")
def toys() -> Registry:
    reg = Registry()
    out = [Output("v", "NUMBER")]

    @node("Bounds", inputs=[
        Float("pos", 1.0, min=0.0), Float("neg", -1.0, max=0.0), Float("half", 1.0, min=0.5),
        Float("big", 1.0, max=1000.0), Float("huge", 1.0, max=2.0**63), Float("free", 0.0),
        Int("maybe", None), Int("opt", 1, optional=True), Input("thing", "CUSTOM", 0),
        Input("pick", "CUSTOM", "a", choices=["a", "b"]), Input("empty", COMBO, "x"),
        Choice("twenty", [f"c{i}" for i in range(20)], "c0"),
        Choice("many", [f"c{i}" for i in range(21)], "c0"),
        Choice("nums", ["1", "2"], "1"), Choice("broken", _raise, optional=True),
        Choice("by_settings", lambda s: [f"steps{s.max_steps}"], "steps1000"),
        Choice("accented", ["example.png", "e\u0301.png"], "example.png"),  # é decomposed
    ], output_node=True, registry=reg)  # fmt: skip
    def bounds(ctx, **inputs):
        return ()

    @node("Bare", outputs=[], output_node=True, registry=reg)
    def bare(ctx):
        return ()

    @node("Checked", inputs=[Socket("link", "NUMBER", optional=True), Int("given", 1),
                             Int("kept", 2), String("needed"), Int("wired", 3, kind="socket")],
          outputs=out, check=_record_check, output_node=True, registry=reg)  # fmt: skip
    def checked(ctx, **inputs):
        return 0

    @node("Sized", inputs=[Int("width", 8, min=8, limit="max_image_pixels"),
                           Int("height", 8, limit="max_image_pixels")],
          output_node=True, registry=reg)  # fmt: skip
    def sized(ctx, width, height):
        return ()

    return reg


def one(reg: Registry, node_type: str, settings: Settings | None = None, **inputs) -> list:
    g = Graph()
    g.add(Node("n", node_type, inputs))
    return [(p.input_name, p.received, p.message) for p in validate(g, reg, settings)]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        # a number is refused infinite when either bound is finite, accepted within its bounds
        ({"pos": math.inf}, [("pos", math.inf, "expected a finite number, got inf")]),
        ({"neg": -math.inf}, [("neg", -math.inf, "expected a finite number, got -inf")]),
        ({"pos": 0.0, "neg": 0.0, "half": 0.5, "big": 1000.0, "huge": 2.0**63}, []),
        # an integer too large for a float is refused (it crashed validation with OverflowError)
        ({"pos": 10**400}, [("pos", 10**400, "expected a number, got an integer of 401 digits, "
                                             "too large for FLOAT")]),
        ({"free": -(10**309)}, [("free", -(10**309), "expected a number, got an integer of 310 "
                                                    "digits, too large for FLOAT")]),
        ({"free": 10**308, "huge": -int(sys.float_info.max)}, []),  # the largest float holds
        # bounds are shown as written, integral ones without ".0"
        ({"half": 0.1}, [("half", 0.1, "0.1 is below the minimum 0.5")]),
        ({"big": 1001}, [("big", 1001, "1001 is above the maximum 1000")]),
        ({"huge": 1e19}, [("huge", 1e19, "1e+19 is above the maximum 9.223372036854776e+18")]),
        # null is accepted where the default is null or the input optional, else refused
        ({"maybe": None, "opt": None}, []),
        ({"maybe": "x"}, [("maybe", "x", "expected an integer (INT), got 'x'")]),
        ({"opt": "x"}, [("opt", "x", "expected an integer (INT), got 'x'")]),
        ({"pos": None}, [("pos", None, "expected a number (FLOAT), got null")]),
        # a widget type without choices is not checked; one with choices is
        ({"thing": "anything"}, []),
        ({"pick": "z"}, [("pick", "z", "'z' is not one of: 'a', 'b'")]),
        ({"empty": "x"}, [("empty", "x", "'x' is not one of: (no choices)")]),
        # twenty choices are all listed, more are cut with a count
        ({"twenty": "zz"}, [("twenty", "zz", "'zz' is not one of: "
                             + ", ".join(f"'c{i}'" for i in range(20)))]),
        ({"many": "zz"}, [("many", "zz", "'zz' is not one of: "
                           + ", ".join(f"'c{i}'" for i in range(20)) + ", ... (21 in all)")]),
        # a number is not taken for its text, and gets no text suggestion
        ({"nums": 1}, [("nums", 1, "1 is not one of: '1', '2'")]),
        ({"broken": "x"}, [("broken", "x", "could not list the choices: models/ is gone")]),
        # a listed name in another Unicode form (é composed, the list's decomposed) says so
        ({"accented": "\u00e9.png"}, [("accented", "\u00e9.png", "'\u00e9.png' is not one of: "
                                       "'example.png', 'e\u0301.png'; it differs from "
                                       "'e\u0301.png' only in Unicode form (NFC/NFD)")]),
    ],
)  # fmt: skip
def test_literal_rules(toys, inputs, expected):
    assert one(toys, "Bounds", **inputs) == expected


def test_choices_that_cannot_be_listed_are_a_problem_of_their_input(toys):
    g = Graph()
    g.add(Node("n", "Bounds", {"broken": "x"}))
    [p] = validate(g, toys)
    assert (p.code, p.node_id, p.input_name, p.node_type) == (
        "value_not_in_list", "n", "broken", "Bounds")  # fmt: skip


def test_choices_are_listed_for_the_run_settings(toys):
    assert one(toys, "Bounds", Settings(max_steps=7), by_settings="steps7") == []
    assert one(toys, "Bounds", by_settings="steps7") == [
        ("by_settings", "steps7",
         "'steps7' is not one of: 'steps1000'; did you mean 'steps1000'?")]  # fmt: skip


def test_inputs_and_links_of_a_node_without_any(toys):
    g = Graph()
    g.add(Node("b", "Bare", {"x": 1}))
    g.add(Node("k", "Checked", {"link": Link("b", 0), "needed": "t"}))
    found = {(p.node_id, p.code): p.message for p in validate(g, toys) if p.code != "invalid_value"}
    assert found == {
        ("b", "unknown_input"): "Bare has no input 'x'; its inputs are: none",
        ("k", "bad_linked_input"): "links to output 0 of node 'b' (Bare), which has 0 output(s): none",
    }  # fmt: skip


def test_the_check_hook_sees_literals_and_defaults_and_the_run_settings(toys):
    """Given literals over defaults; no socket (even one with a default), no missing required
    input; its problems name the input and what it received."""
    g = Graph()
    g.add(Node("c", "Checked", {"given": 5, "needed": "t"}))
    found = [(p.input_name, p.received, p.message, p.node_type)
             for p in validate(g, toys, Settings(max_steps=7))]  # fmt: skip
    assert found == [("given", 5, "saw 5", "Checked"), ("kept", None, "saw 2", "Checked"),
                     ("needed", "t", "saw 't'", "Checked"), (None, None, "max_steps 7", "Checked")]  # fmt: skip
    g["c"].inputs.pop("needed")
    assert [(p.code, p.input_name, p.message) for p in validate(g, toys)] == [
        ("required_input_missing", "needed", "this required STRING input is missing: give it a value"),
        ("invalid_value", "given", "saw 5"), ("invalid_value", "kept", "saw 2"),
        ("invalid_value", None, "max_steps 1000")]  # fmt: skip


def test_a_check_hook_that_raises_names_its_node_type_and_the_exception(toys):
    """The exception's type is kept: a KeyError's message alone is just the quoted key."""
    reg = Registry()
    raised: list[Exception] = []

    def boom(inputs, settings):
        raise raised[0]

    @node("Boom", check=boom, output_node=True, registry=reg)
    def b(ctx):
        return ()

    g = Graph()
    g.add(Node("b", "Boom", {}))
    found = []
    for exc in (RuntimeError("kaput"), KeyError("oops"), ValueError()):
        raised[:] = [exc]
        [p] = validate(g, reg)
        found.append((p.code, p.input_name, p.node_type, p.message))
    assert found == [
        ("invalid_value", None, "Boom", "Boom could not check its inputs: RuntimeError: kaput"),
        ("invalid_value", None, "Boom", "Boom could not check its inputs: KeyError: 'oops'"),
        ("invalid_value", None, "Boom", "Boom could not check its inputs: ValueError"),
    ]  # fmt: skip


def test_limits_are_checked_per_node(toys):
    """An input reported on one node does not hide the same input's limit on another."""
    g = Graph()
    g.add(Node("a", "Sized", {"width": 4}))  # below its minimum
    g.add(Node("b", "Sized", {"width": 20, "height": 10}))
    found = [(p.node_id, p.code, p.input_name, p.received, p.message)
             for p in validate(g, toys, Settings(max_image_pixels=100))]  # fmt: skip
    assert found == [
        ("a", "value_smaller_than_min", "width", 4, "4 is below the minimum 8"),
        ("b", "limit_exceeded", "width", 20,
         "20x10 is 200 pixels, over the limit of 100 (Settings.max_image_pixels)"),
    ]  # fmt: skip


def test_check_or_raise_uses_the_settings_given(toys):
    g = Graph()
    g.add(Node("b", "Sized", {"width": 20, "height": 10}))
    assert check_or_raise(g, toys) == []
    with pytest.raises(WorkflowError):
        check_or_raise(g, toys, Settings(max_image_pixels=100))


def test_graph_problems_in_full(registry):
    [p] = validate(Graph(source="empty.yaml"), registry)
    assert (p.code, p.message, p.location) == (
        "prompt_no_outputs", "the workflow has no nodes", Location("empty.yaml"))  # fmt: skip
    g = Graph(source="g.yaml")
    g.add(Node("c", "Const", {}))
    [p] = validate(g, registry)
    assert (p.code, p.node_id, p.message, p.location) == (
        "prompt_no_outputs", None,
        "the workflow has no output node (e.g. SaveImage), so nothing would run",
        Location("g.yaml"))  # fmt: skip
    g.add(Node("o", "ShowNumber", {"value": Link("c", 0)}))
    g.add(Node("lone", "Const", {}))
    [p] = validate(g, registry)
    assert (p.code, p.node_id, p.node_type, p.severity, p.message) == (
        "unused_node", "lone", "Const", "warning",
        "the node feeds no output node, so it will not run")  # fmt: skip


def test_a_node_of_unknown_type_may_be_an_output_node(registry):
    """Validation cannot know whether a node of unknown type (a plugin that failed to load)
    is an output node: neither it nor what feeds it is said to feed no output node, and the
    workflow is not said to have no output node."""
    g = Graph(source="g.yaml")
    g.add(Node("c", "Const", {}))
    g.add(Node("show", "MyShowText", {"text": Link("c", 0)}))
    assert [(p.node_id, p.code, p.message) for p in validate(g, registry)] == [
        ("show", "unknown_node_type", f"unknown node type 'MyShowText'{PLUGIN_HINT}")]  # fmt: skip
    g.add(Node("c2", "Const", {}))
    g.add(Node("o", "ShowNumber", {"value": Link("c2", 0)}))
    g.add(Node("lone", "Const", {}))  # the unknown node may take it by a value read as text
    assert [(p.node_id, p.code) for p in validate(g, registry)] == [
        ("show", "unknown_node_type")]  # fmt: skip
    del g.nodes["show"]
    assert [(p.node_id, p.code) for p in validate(g, registry)] == [
        ("c", "unused_node"), ("lone", "unused_node")]  # fmt: skip


def test_what_feeds_an_unknown_node_in_our_yaml_is_not_said_to_feed_nothing(registry):
    """In YAML `value: c.v` is a link only for a declared input: for an unknown node type it
    stays text, so the node it names looked unused ('feeds no output node')."""
    text = (
        "version: 1\nnodes:\n  c: {type: Const, value: 1}\n  show: {type: MyShowText, value: c.v}\n"
    )
    graph = load_workflow("g.yaml", text=text, registry=registry).graph
    assert [(p.node_id, p.code) for p in validate(graph, registry)] == [
        ("show", "unknown_node_type")]  # fmt: skip


@pytest.mark.parametrize("inputs", [{"value": Link("cc", 0)}, {"value": 5}, {},
                                    {"valeu": "c"}])  # fmt: skip
def test_a_link_that_reaches_no_node_is_one_error_not_every_node_above_it_unused(registry,
                                                                                  inputs):  # fmt: skip
    """SaveImage's `images` linking to a missing node (or given a literal, nothing, or under a
    misspelled name) was followed by 'feeds no output node' for every node above it: the one
    error again, once per node. Those are not said; once the link is fixed, a node that still
    feeds nothing is."""
    g = Graph(source="g.yaml")
    g.add(Node("c", "Const", {}))
    g.add(Node("o", "ShowNumber", inputs))
    assert {p.severity for p in validate(g, registry)} == {"error"}
    g.nodes["o"].inputs = {"value": Link("c", 0)}
    g.add(Node("lone", "Const", {}))
    assert [(p.node_id, p.code) for p in validate(g, registry)] == [("lone", "unused_node")]


def test_a_literal_for_a_link_names_the_socket_type_with_its_article(registry):
    """'takes a link from a IMAGE output': "an" before a vowel (`with_article`)."""
    from latentgraph.graph.problems import with_article

    assert [with_article(t) for t in ("IMAGE", "INT", "UPSCALE_MODEL", "LATENT", "")] == [
        "an IMAGE", "an INT", "an UPSCALE_MODEL", "a LATENT", "a "]  # fmt: skip
    g = Graph(source="g.yaml")
    g.add(Node("o", "ShowNumber", {"value": 5}))
    [p] = validate(g, registry)
    assert p.message.startswith("takes a link from a NUMBER output, not a literal (5)")
    reg = Registry()
    node("ShowImage", inputs=[Socket("images", "IMAGE")], output_node=True,
         registry=reg)(lambda ctx, images: ())  # fmt: skip
    g = Graph(source="g.yaml")
    g.add(Node("s", "ShowImage", {"images": [4, 0]}))
    [p] = validate(g, reg)
    assert p.message.startswith("takes a link from an IMAGE output, not a literal (a list)")


@pytest.mark.parametrize(("line", "said"), [
    ("seed: c.value", "expected an integer (INT), got 'c.value'; to link it, write {from: c.value}"),
    ("seed: c", "expected an integer (INT), got 'c'; to link it, write {from: c}"),
    # c's output is a NUMBER: not linked in an INT input (test_a_widget_given_comfyuis_list...)
    ("seed: [c, 0]", "expected an integer (INT), got a list; c.value is a NUMBER output; this "
     "input takes an INT one"),
    ("seed: nowhere.value", "expected an integer (INT), got 'nowhere.value'"),
    ("x: [nowhere, 0]", "takes a link from a NUMBER output, not a literal (a list); write "
     "node.output"),
])  # fmt: skip
def test_a_link_written_in_another_spelling_is_shown_in_ours(registry, line, said):
    """A widget given `c.value` (a plain string is a literal there) or ComfyUI's `[c, 0]` was
    refused without the spelling that links it: `{from: c.value}`, `{from: c}`, for a node the
    graph has (a socket input given `[c, 0]` is refused as it is read: test_building)."""
    [p] = scale_with(registry, line)
    assert p.message == said


def test_a_widget_given_comfyuis_list_is_told_the_link_meant_as_a_socket_input_is():
    """ComfyUI's `[node, output]` in a widget was shown as `{from: node.index}` whatever it
    named: a link to the node itself (`[noise2, 0]`), an output the node lacks (`count.7`), one
    of a type the input does not take (`model.1`, a CLIP for a STRING); a name (`[txt,
    STRING]`) or a misspelled node (`[cont, 0]`) got nothing. They are now told as a socket
    input's are; a list naming no node, nor nearly one, may be a value: nothing is said."""
    reg = Registry()
    node("LoadModel", outputs=[Output("unet", "MODEL"), Output("clip", "CLIP")],
         registry=reg)(lambda ctx: (None, None))  # fmt: skip
    node("PrimitiveInt", inputs=[Int("value", 0)], outputs=[Output("INT", "INT")],
         registry=reg)(lambda ctx, value: value)  # fmt: skip
    node("PrimitiveString", inputs=[String("value", "")], outputs=[Output("STRING", "STRING")],
         registry=reg)(lambda ctx, value: value)  # fmt: skip
    node("TextEncode", inputs=[Socket("clip", "CLIP"), String("text", "")],
         outputs=[Output("conditioning", "CONDITIONING")], registry=reg)(lambda ctx, clip, text: 0)  # fmt: skip
    node("LatentNoise", inputs=[Int("width", 64), Int("height", 64)],
         outputs=[Output("latent", "LATENT")], registry=reg)(lambda ctx, width, height: 0)  # fmt: skip
    node("Show", inputs=[Socket("value", "LATENT")], output_node=True,
         registry=reg)(lambda ctx, value: ())  # fmt: skip
    text = (
        "nodes:\n  model: {type: LoadModel}\n  count: {type: PrimitiveInt, value: 64}\n"
        "  txt: {type: PrimitiveString, value: hi}\n"
        "  a: {type: TextEncode, clip: model.clip, text: [model, 1]}\n"
        "  b: {type: TextEncode, clip: model.clip, text: ['txt', 'STRING']}\n"
        "  noise: {type: LatentNoise, width: [count, 7], height: [cont, 0]}\n"
        "  noise2: {type: LatentNoise, width: [noise2, 0], height: [512, 512]}\n"
        "  show: {type: Show, value: noise}\n"
    )
    graph = load_workflow("w.yaml", text=text, registry=reg).graph
    list_for = "got a list; "
    assert [(p.node_id, p.input_name, p.message) for p in validate(graph, reg)
            if p.severity == "error"] == [
        ("a", "text", f"expected text (STRING), {list_for}model.clip is a CLIP output; this "
         "input takes a STRING one"),
        ("b", "text", f"expected text (STRING), {list_for}to link it, write {{from: txt.STRING}}"),
        ("noise", "width", f"expected an integer (INT), {list_for}to link it, write {{from: "
         "count.INT} (node 'count' (PrimitiveInt) has no output 7; outputs: INT (0))"),
        ("noise", "height", f"expected an integer (INT), {list_for}there is no node 'cont'; did "
         "you mean 'count'?"),
        ("noise2", "width", f"expected an integer (INT), {list_for}'noise2' is this node, which "
         "cannot link to itself (a cycle)"),
        ("noise2", "height", "expected an integer (INT), got a list"),
    ]  # fmt: skip


def _cycles(graph: Graph, registry) -> list[str]:
    return [p.message for p in validate(graph, registry) if p.code == "cycle"]


def test_a_cycle_is_named_without_the_nodes_that_lead_into_it(registry):
    g = Graph()
    g.add(Node("t", "Add", {"a": Link("a", 0)}))  # below the cycle, first in graph order
    g.add(Node("a", "Add", {"a": Link("b", 0)}))
    g.add(Node("b", "Add", {"a": Link("a", 0)}))
    g.add(Node("o", "ShowNumber", {"value": Link("t", 0)}))
    assert _cycles(g, registry) == ["the graph has a cycle: a -> b -> a; links must not loop back"]


def test_a_cycle_among_more_ordered_nodes_than_cycle_nodes_is_found(registry):
    g = Graph()
    g.add(Node("c", "Const", {}))
    for n in range(4):
        g.add(Node(f"o{n}", "ShowNumber", {"value": Link("c", 0)}))
    g.add(Node("a", "Add", {"a": Link("b", 0)}))
    g.add(Node("b", "Add", {"a": Link("a", 0)}))
    assert len(_cycles(g, registry)) == 1


def test_cycles_after_one_reached_twice_are_still_named(registry):
    g = Graph()
    g.add(Node("a", "Add", {"a": Link("b", 0)}))
    g.add(Node("b", "Add", {"a": Link("a", 0)}))
    g.add(Node("t", "Add", {"a": Link("a", 0)}))  # its walk ends in the cycle found first
    g.add(Node("x", "Add", {"a": Link("y", 0)}))
    g.add(Node("y", "Add", {"a": Link("x", 0)}))
    g.add(Node("o", "ShowNumber", {"value": Link("t", 0)}))
    assert len(_cycles(g, registry)) == 2
