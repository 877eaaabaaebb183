"""The declaration helpers build the `Input` they say (the field a typo would drop or change),
choices are listed for the given settings, and limits checked one by one."""

from __future__ import annotations

import dataclasses
import math

import pytest

from latentgraph.graph.context import Settings
from latentgraph.graph.declare import (
    BOOLEAN,
    COMBO,
    FLOAT,
    INT,
    REQUIRED,
    STRING,
    Bool,
    Choice,
    Float,
    Input,
    Int,
    NameClash,
    NodeType,
    Output,
    Registry,
    Socket,
    String,
    node,
)

BARE = {f.name: f.default for f in dataclasses.fields(Input)
        if f.name not in ("name", "type", "default")}  # fmt: skip


def fields(i: Input) -> dict:
    """The fields that differ from a bare `Input`'s."""
    return {k: getattr(i, k) for k, v in BARE.items() if getattr(i, k) != v or k == "kind"}


def test_helper_defaults():
    assert (Int("i").type, fields(Int("i"))) == (INT, {"kind": "widget", "min": -(2**63),
                                                       "max": 2**63 - 1, "step": 1})  # fmt: skip
    assert (Float("f").type, fields(Float("f"))) == (FLOAT, {"kind": "widget", "min": -math.inf,
                                                            "max": math.inf, "step": 0.01})  # fmt: skip
    assert (String("s").type, fields(String("s"))) == (STRING, {"kind": "widget"})
    assert (Bool("b").type, fields(Bool("b"))) == (BOOLEAN, {"kind": "widget"})
    assert (Choice("c", ["a"]).type, fields(Choice("c", ["a"]))) == (COMBO, {"kind": "widget",
                                                                            "choices": ["a"]})  # fmt: skip
    assert (Socket("k", "LATENT").type, fields(Socket("k", "LATENT"))) == ("LATENT",
                                                                           {"kind": "socket"})  # fmt: skip
    assert all(i.name == n and i.default is REQUIRED and i.required
               for n, i in [("i", Int("i")), ("f", Float("f")), ("s", String("s")),
                            ("b", Bool("b")), ("c", Choice("c", [])), ("k", Socket("k", "X"))])  # fmt: skip
    assert repr(REQUIRED) == "REQUIRED"


def test_helpers_pass_every_option_on():
    assert fields(Float("f", 1.5, min=0, max=2, step=0.5, round=0.1, kind="socket",
                        description="d", optional=True)) == {
        "kind": "socket", "min": 0, "max": 2, "step": 0.5, "round": 0.1, "description": "d",
        "optional": True}  # fmt: skip
    assert Float("f", 1.5).default == 1.5 and String("s", "x").default == "x"
    assert fields(String("s", multiline=True, kind="socket", description="d", optional=True,
                         max_length=9)) == {"kind": "socket", "multiline": True, "description": "d",
                                            "optional": True, "max_length": 9}  # fmt: skip
    assert fields(Choice("c", ["a", "b"], "b", description="d", optional=True, image_upload=True,
                         kind="socket")) == {"kind": "socket", "choices": ["a", "b"],
                                             "description": "d", "optional": True,
                                             "image_upload": True}  # fmt: skip
    assert Choice("c", ["a", "b"], "b").default == "b"
    assert fields(Bool("b", True, kind="socket", description="d", optional=True,
                       comfy_extra=True)) == {
        "kind": "socket", "description": "d", "optional": True, "comfy_extra": True}  # fmt: skip
    assert fields(Int("i", 3, min=1, max=9, step=2, seed=True, kind="socket", description="d",
                      optional=True, limit="max_steps", comfy_extra=True)) == {
        "kind": "socket", "min": 1, "max": 9, "step": 2, "seed": True, "description": "d",
        "optional": True, "limit": "max_steps", "comfy_extra": True}  # fmt: skip
    assert fields(Socket("k", "X", description="d", optional=True)) == {
        "kind": "socket", "description": "d", "optional": True}  # fmt: skip


def test_choices_are_listed_for_the_given_settings():
    seen = []
    i = Choice("c", lambda settings: seen.append(settings) or ["x"])
    given = Settings(max_steps=5)
    assert i.choice_list(given) == ["x"] and seen[-1] is given
    assert i.choice_list() == ["x"] and isinstance(seen[-1], Settings) and seen[-1] is not given


def test_every_limit_of_a_node_is_checked():
    """A limit whose inputs are not all given as ints is skipped, not the ones after it."""
    node = NodeType("N", lambda ctx: None,
                    inputs=(Int("steps", 1, limit="max_steps"), Int("batch", 1, limit="max_batch")),
                    outputs=(Output("o", "X"),))  # fmt: skip
    settings = Settings(max_steps=10, max_batch=2)
    assert node.limit_problems({"steps": "x", "batch": 3}, settings) == [
        ("batch", "batch 3 is over the limit of 2 (Settings.max_batch)")]  # fmt: skip


def test_a_limit_checked_within_bounds_does_not_stop_the_next():
    node = NodeType("N", lambda ctx: None,
                    inputs=(Int("steps", 1, limit="max_steps"), Int("batch", 1, limit="max_batch")),
                    outputs=())  # fmt: skip
    settings = Settings(max_steps=10, max_batch=2)
    assert node.limit_problems({"steps": 10, "batch": 3}, settings) == [
        ("batch", "batch 3 is over the limit of 2 (Settings.max_batch)")]  # fmt: skip


def test_an_unknown_limit_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        NodeType("N", lambda ctx, steps: (), (Int("steps", 1, limit="max_stepz"),), ())
    assert str(info.value) == ("node type 'N' input 'steps': unknown limit 'max_stepz'; known: "
                               "max_image_pixels, max_batch, max_batch_pixels, max_steps, "
                                   "max_string_chars")  # fmt: skip


def test_node_type_names_and_output_indexes():
    bare = NodeType("N", lambda ctx: None, inputs=(), outputs=(Output("a", "X"), Output("b", "X")))
    assert bare.display_name == "N"
    assert (bare.output_index("a"), bare.output_index("b"), bare.output_index("c")) == (0, 1, None)
    named = NodeType("N", lambda ctx: None, inputs=(), outputs=(), display_name="Nice N")
    assert named.display_name == "Nice N"


def test_bool_keeps_its_default():
    assert Bool("b", True).default is True and Bool("b", False).default is False


def test_registry_refuses_a_second_type_of_the_same_name_unless_replacing():
    reg = Registry()
    first = NodeType("N", lambda ctx: None, inputs=(), outputs=())
    second = NodeType("N", lambda ctx: None, inputs=(), outputs=())
    reg.add(first)
    with pytest.raises(ValueError) as info:
        reg.add(second)
    assert str(info.value) == "node type 'N' is already registered" and reg["N"] is first
    clash = info.value
    assert isinstance(clash, NameClash) and (clash.held, clash.new) == (first, second)
    assert reg.add(second, replace=True) is second and reg["N"] is second
    assert "N" in reg and "M" not in reg and len(reg) == 1


def test_a_clash_names_the_module_holding_the_name():
    reg = Registry()
    reg.add(NodeType("N", lambda ctx: None, inputs=(), outputs=(), module="some.pack"))
    with pytest.raises(NameClash) as info:
        reg.add(NodeType("N", lambda ctx: None, inputs=(), outputs=(), module="other.pack"))
    assert str(info.value) == "node type 'N' is already registered by some.pack"


def test_a_node_declared_again_by_its_own_module_says_to_restart_or_rename():
    """Running a notebook cell declaring a node again said only "already registered by
    __main__": what to do is restart the kernel (docs/custom-nodes.md) or rename it."""
    reg = Registry()
    reg.add(NodeType("Brighten", lambda ctx: None, inputs=(), outputs=(), module="__main__"))
    with pytest.raises(NameClash) as info:
        reg.add(NodeType("Brighten", lambda ctx: None, inputs=(), outputs=(), module="__main__"))
    assert str(info.value) == (
        "node type 'Brighten' is already registered by __main__; a node type name is declared "
        "once per process: to declare it again (a notebook cell run again), restart the kernel "
        "(a new process), or give it a new name"
    )


def test_clashes_are_reported_and_skipped_only_inside_clashes_reported():
    reg, reported = Registry(), []
    first = reg.add(NodeType("N", lambda ctx: None, inputs=(), outputs=()))
    second = NodeType("N", lambda ctx: None, inputs=(), outputs=())
    with reg.clashes_reported(reported.append):
        assert reg.add(second) is first
        assert reg.add(NodeType("M", lambda ctx: None, inputs=(), outputs=())) is reg["M"]
    assert [(c.held, c.new) for c in reported] == [(first, second)] and reg["N"] is first
    with pytest.raises(NameClash):
        reg.add(second)
    with pytest.raises(RuntimeError), reg.clashes_reported(reported.append):
        raise RuntimeError("the caller's own error")
    with pytest.raises(NameClash):  # the report is dropped however the block ends
        reg.add(second)


def test_node_decorator_defaults():
    reg = Registry()

    @node("Plain", registry=reg)
    def plain(ctx):
        return ()

    @node("Documented", registry=reg)
    def documented(ctx):
        """First paragraph,
        on two lines.

        Second paragraph."""

    t = plain.node_type
    assert reg["Plain"] is t and t.fn is plain
    assert (t.version, t.category, t.display_name, t.description, t.module) == (
        1, "latentgraph", "Plain", "", __name__)  # fmt: skip
    assert (t.identity, t.check, t.reuse, t.deterministic, t.output_node) == (
        None, None, None, True, False)  # fmt: skip
    assert documented.node_type.description == "First paragraph,\n        on two lines."


def test_node_decorator_passes_every_option_on():
    reg = Registry()

    def identity(inputs, settings):
        return "id"

    def check(inputs, settings):
        return []

    def reuse(ui, literals, settings):
        return True

    @node("Full", inputs=[Int("i", 1)], outputs=[Output("o", "X")], version=3, category="cat",
          display_name="Full node", description="given", deterministic=False, output_node=True,
          identity=identity, check=check, reuse=reuse, registry=reg)  # fmt: skip
    def full(ctx, i):
        """Not the description: one is given."""

    t = reg["Full"]
    assert full.node_type is t
    assert (t.inputs, t.outputs) == ((Int("i", 1),), (Output("o", "X"),))
    assert (t.version, t.category, t.display_name, t.description, t.deterministic,
            t.output_node) == (3, "cat", "Full node", "given", False, True)  # fmt: skip
    assert (t.identity, t.check, t.reuse) == (identity, check, reuse)


# --- declarations are checked when `@node` builds them ------------------------------------


def _declare(*inputs: Input) -> NodeType:
    return NodeType("N", lambda ctx, **inputs: (), inputs, ())


@pytest.mark.parametrize("i, problem", [
    (Int("x", 500, min=0, max=100), "default 500 is above its max 100"),
    (Int("x", -1, min=0), "default -1 is below its min 0"),
    (Float("f", 1.5, min=0.0, max=1.0), "default 1.5 is above its max 1"),
    (Float("f", 0.005, min=0.01), "default 0.005 is below its min 0.01"),
    (Int("x", 5, min=10, max=0), "min 10 is above max 0"),
    (Int("x", min=10, max=0), "min 10 is above max 0"),
    (Choice("c", ["a", "b"], "z"), "default 'z' is not one of its choices: 'a', 'b'"),
    (Choice("c", [], "z"), "default 'z' is not one of its choices: (none)"),
    (Int("x", "hello"), "default 'hello' is not an integer (INT)"),
    (Int("x", True), "default True is not an integer (INT)"),
    (Int("x", 1.0), "default 1.0 is not an integer (INT)"),
    (Float("f", "0.5"), "default '0.5' is not a number (FLOAT)"),
    (Float("f", False), "default False is not a number (FLOAT)"),
    (String("s", 3), "default 3 is not text (STRING)"),
    (Bool("b", 1), "default 1 is not true or false (BOOLEAN)"),
    (Bool("b", False, comfy_extra=True),
     "comfy_extra needs optional=True: files ComfyUI saves hold no value for it"),
])  # fmt: skip
def test_an_input_declared_wrong_is_refused_naming_the_node_type_and_the_input(i, problem):
    with pytest.raises(ValueError) as info:
        _declare(i)
    assert str(info.value) == f"node type 'N' input {i.name!r}: {problem}"
    assert i.problems() == [problem]


@pytest.mark.parametrize("i", [String("type", "a"), Socket("title", "LATENT")])
def test_an_input_named_as_a_key_of_the_node_itself_is_refused(i):
    """`type` and `title` beside a node's inputs in a workflow file are the node's own: no
    workflow could set such an input, and `convert --to yaml` wrote it as the node's type."""
    with pytest.raises(ValueError) as info:
        node("Named", inputs=[Int("n", 1), i])(lambda ctx, n, **rest: ())
    problem = (f"{i.name!r} is the node's own key in a workflow file (reserved: type, title), "
               "so no workflow could set this input; rename it")  # fmt: skip
    assert str(info.value) == f"node type 'Named' input {i.name!r}: {problem}"
    assert i.problems() == [problem]


@pytest.mark.parametrize("i", [
    Int("x", 100, min=0, max=100), Int("x", 0, min=0, max=100), Int("x"), Int("x", None, optional=True),
    Float("f", 1, min=0, max=1), Float("f", 0.5), Choice("c", ["a", "b"], "b"), Choice("c", []),
    Choice("c", lambda settings: [], "anything"), String("s", ""), Bool("b", False),
    Int("n", 3, kind="socket"), Socket("k", "LATENT"), Input("x", "CUSTOM", object()),
    Bool("b", False, optional=True, comfy_extra=True),
])  # fmt: skip
def test_an_input_declared_right_is_accepted(i):
    assert i.problems() == [] and _declare(i).inputs == (i,)


def test_every_problem_of_a_declaration_is_said_at_once():
    with pytest.raises(ValueError) as info:
        _declare(Int("x", 1), String("x", "s"), Int("y", 500, max=100), Choice("c", ["a"], 1))
    assert str(info.value) == (
        "node type 'N' input 'x': declared twice (input names are unique); "
        "node type 'N' input 'y': default 500 is above its max 100; "
        "node type 'N' input 'c': default 1 is not one of its choices: 'a'")  # fmt: skip


def test_a_function_that_does_not_fit_hides_no_other_problem_of_its_declaration():
    def f(ctx, y):
        return ()

    message = _refused(f, Int("x", 500, min=0, max=100))
    assert message.startswith("node type 'K' input 'x': default 500 is above its max 100; ")
    assert "has no parameter 'x'" in message and "needs 'y'" in message


@pytest.mark.parametrize("name", ["", "  "])
def test_a_node_type_without_a_name_is_refused(name):
    def blank(ctx):
        return ()

    with pytest.raises(ValueError) as info:
        node(name, registry=Registry())(blank)
    assert str(info.value) == (f"node type {name!r} (function test_a_node_type_without_a_name_"
                               "is_refused.<locals>.blank): a node type needs a name")  # fmt: skip


def _refused(fn, *inputs: Input) -> str:
    reg = Registry()
    with pytest.raises(ValueError) as info:
        node("K", inputs=inputs, registry=reg)(fn)
    assert "K" not in reg
    return str(info.value)


def test_a_function_must_take_the_context_first():
    def none():
        return ()

    def keyword_only(*, ctx):
        return ()

    def only_kwargs(**inputs):
        return ()

    def no_ctx(x):
        return x

    tail = "must take the context as its first parameter, then the inputs by name"
    assert _refused(none) == f"node type 'K': its function {none.__qualname__}() {tail}"
    assert _refused(keyword_only) == (
        f"node type 'K': its function {keyword_only.__qualname__}(*, ctx) {tail}")  # fmt: skip
    assert _refused(only_kwargs, Int("x", 1)) == (
        f"node type 'K': its function {only_kwargs.__qualname__}(**inputs) {tail}")  # fmt: skip
    # def k(x) with an input x: the engine's k(ctx, x=...) said "got multiple values for 'x'"
    assert _refused(no_ctx, Int("x", 1)) == (
        f"node type 'K' input 'x': its function {no_ctx.__qualname__}(x) takes the context as "
        "'x', its first parameter; the inputs come after the context (ctx, x, ...)")  # fmt: skip


def test_a_function_must_accept_every_input_by_name():
    def badparam(ctx, cnt):
        return cnt

    def positional(ctx, count, /):
        return count

    shown = f"its function {badparam.__qualname__}(ctx, cnt)"
    assert _refused(badparam, Int("count", 1)) == (
        f"node type 'K' input 'count': {shown} has no parameter 'count' (nor **kwargs); "
        f"node type 'K': {shown} needs 'cnt', which is no declared input: declare it, or give "
        "the parameter a default")  # fmt: skip
    assert _refused(positional, Int("count", 1)) == (
        f"node type 'K' input 'count': its function {positional.__qualname__}(ctx, count, /) "
        "takes 'count' positional-only; inputs are passed by name")  # fmt: skip


def test_a_parameter_the_engine_may_not_pass_needs_a_default():
    def needs_b(ctx, a, b):
        return a

    assert _refused(needs_b, Socket("a", "X"), Socket("b", "X", optional=True)) == (
        "node type 'K' input 'b': optional, so it may not be given, but its function "
        f"{needs_b.__qualname__}(ctx, a, b) has no default for it (b=None)")  # fmt: skip


def test_functions_that_fit_the_engines_call_are_accepted():
    reg = Registry()
    inputs = [Int("a", 1), Socket("b", "X", optional=True), Int("c", optional=True)]

    def named(ctx, a, b=None, *, c=0, extra=1):
        return ()

    def kwargs(context, a, **rest):
        return ()

    def star(*args, **kwargs):
        return ()

    class Callable:
        def __call__(self, ctx, a, b=None, c=None):
            return ()

    for n, fn in enumerate((named, kwargs, star, lambda ctx, **kw: (), Callable())):
        node(f"N{n}", inputs=inputs, registry=reg)(fn)
    assert len(reg) == 5


def test_every_builtin_node_passes_its_declaration_checks():
    """Checked again here: a test may have imported the built-in nodes before."""
    from latentgraph.graph.declare import _signature_problems
    from latentgraph.graph.node_docs import builtin_only
    from latentgraph.wiring import node_registry

    builtin = list(builtin_only(node_registry(errors=[])))
    assert len(builtin) > 50 and "KSampler" in {t.name for t in builtin}
    assert [(t.name, t.declaration_problems() + _signature_problems(t.name, t.fn, t.inputs))
            for t in builtin if t.declaration_problems() or
            _signature_problems(t.name, t.fn, t.inputs)] == []  # fmt: skip


# --- socket types, outputs and the lists themselves ------------------------------------------

_ADVICE = "give a socket type's name (STRING, IMAGE, ..., or your own: 'MY_THING')"


@pytest.mark.parametrize("inputs, outputs, problem", [
    ([], [Output("t", str)],
     "output 't': type str is a Python type, not a socket type: use STRING"),
    ([Socket("x", str)], [], "input 'x': type str is a Python type, not a socket type: use STRING"),
    ([Socket("x", float)], [], "input 'x': type float is a Python type, not a socket type: use FLOAT"),
    ([Socket("x", dict)], [], f"input 'x': type dict is a Python type, not a socket type: {_ADVICE}"),
    ([Socket("x", 42)], [], f"input 'x': type 42 is not a socket type: {_ADVICE}"),
    ([], [Output("t", " ")], f"output 't': an empty socket type: {_ADVICE}"),
])  # fmt: skip
def test_a_socket_type_that_is_no_name_is_refused(inputs, outputs, problem):
    """`Output("t", str)` was accepted: `nodes describe` showed `<class 'str'>`, `nodes --json`
    crashed and the server's /object_info answered 500 (the editor never loaded)."""
    with pytest.raises(ValueError) as info:
        NodeType("N", lambda ctx, **inputs: (), tuple(inputs), tuple(outputs))
    assert str(info.value) == f"node type 'N' {problem}"


def test_an_output_declared_twice_is_refused():
    with pytest.raises(ValueError) as info:
        NodeType("N", lambda ctx: (), (), (Output("t", STRING), Output("t", STRING)))
    assert str(info.value) == "node type 'N' output 't': declared twice (output names are unique)"


@pytest.mark.parametrize("inputs, outputs, problem", [
    (String("s", "a"), [], "inputs must be a list ([String(...), Int(...), Socket(...), ...]), "
     "not an Input ('s')"),
    ([String("s", "a"), "t"], [], "inputs[1] is str 't', not an Input declaration "
     "(String(...), Int(...), Socket(...), ...)"),
    ([], Output("t", STRING), "outputs must be a list ([Output(name, TYPE), ...]), not an Output ('t')"),
    ([], [String("s")], "outputs[0] is an Input ('s'), not an Output declaration (Output(name, TYPE), ...)"),
])  # fmt: skip
def test_inputs_and_outputs_are_lists_of_declarations(inputs, outputs, problem):
    """`inputs=String("s", "a")` was `TypeError: 'Input' object is not iterable`, naming no
    node type."""
    reg = Registry()
    with pytest.raises(ValueError) as info:
        node("K", inputs=inputs, outputs=outputs, registry=reg)(lambda ctx, s="a", t="": ())
    assert str(info.value) == f"node type 'K': {problem}" and "K" not in reg


def test_a_choices_function_that_fails_is_an_empty_list_and_a_warning_naming_its_input(caplog):
    """`nodes describe` stopped with the bare OSError (no node, input or file named) and
    `nodes --json` and /object_info showed an empty list without a word: each lists none and
    warns in the words validation refuses a value with."""
    from latentgraph.graph.node_docs import describe
    from latentgraph.graph.object_info import node_info

    def files(settings):
        raise FileNotFoundError(2, "No such file or directory", "/nonexistent/folder")

    def bad_choices(ctx, f=None):
        return ()

    node_type = NodeType("M_BadChoices", bad_choices, (Choice("f", files, None),), ())
    said = ("node type 'M_BadChoices' input 'f' (" + node_type.declared_at + "): could not list "
            "the choices: [Errno 2] No such file or directory: '/nonexistent/folder'; its list "
            "is shown empty")  # fmt: skip
    assert node_type.declared_at == f"{__file__}:{bad_choices.__code__.co_firstlineno}"
    with caplog.at_level("WARNING", logger="latentgraph.declare"):
        assert node_info(node_type, Settings())["input"]["required"]["f"] == [[], {}]
        assert "  f: COMBO (value or link, default None)" in describe(
            node_type, settings=Settings()
        )
    assert [r.getMessage() for r in caplog.records] == [said, said]


def test_clashes_reported_in_one_thread_are_raised_in_another():
    """`clashes_reported` swapped one report for the whole process: a clash in a thread that
    was not loading plugins went into the loading thread's failures, and the loading thread's
    exit put back the report another thread had set (its clash then raised)."""
    import threading

    reg, reported = Registry(), []
    first = reg.add(NodeType("N", lambda ctx: None, inputs=(), outputs=()))
    second = NodeType("N", lambda ctx: None, inputs=(), outputs=())
    inside, done = threading.Event(), threading.Event()

    def reporting() -> None:
        with reg.clashes_reported(reported.append):
            inside.set()
            assert done.wait(30)
            reg.add(second)  # this thread's clash: reported

    thread = threading.Thread(target=reporting)
    thread.start()
    try:
        assert inside.wait(30)
        with pytest.raises(NameClash):  # not this thread's report: raised here
            reg.add(second)
    finally:
        done.set()
        thread.join(30)
    assert [(c.held, c.new) for c in reported] == [(first, second)]
