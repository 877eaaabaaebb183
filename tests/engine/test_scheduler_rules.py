"""The scheduler's smaller rules, each pinned by a survivor of a mutation run (docs/testing.md):
value summaries, return shapes, order, the plan's problems, late hits, uncached results,
progress throttling, failures and the result."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from PIL import Image

from latentgraph.graph import (
    ANY,
    INT,
    CancelToken,
    Int,
    NodeResult,
    NodeType,
    Output,
    Settings,
    Socket,
    WorkflowError,
    default_registry,
    node,
    scheduler,
)
from latentgraph.graph.cache import Cache
from latentgraph.graph.model import Graph, Link, Location, Node
from latentgraph.graph.scheduler import (
    REPORTED_TEXT_CHARS,
    Scheduler,
    describe_value,
    normalize,
    reported,
)
from latentgraph.graph.validate import PLUGIN_HINT

from .conftest import build


class Shaped:
    def __init__(self, shape, dtype=None):
        self.shape = shape
        if dtype is not None:
            self.dtype = dtype


class Summarized:
    def summary(self) -> str:
        return "of mine"


class Sized:
    size, mode = (2, 3), 7  # a size but no PIL mode


class ToldToFail(Exception):
    pass


def test_describe_each_kind_of_value():
    # no hook of the value's type is asked: a `summary` method, declared nowhere, was
    assert describe_value(Summarized()) == "Summarized"
    assert describe_value(np.zeros((2, 3), dtype=np.float32)) == "ndarray[2, 3] float32"
    assert describe_value(Shaped((4, 5))) == "Shaped[4, 5]"  # no dtype: nothing trailing
    assert describe_value(Shaped(lambda: (1,))) == "Shaped"  # a shape() method is not a shape
    assert describe_value(Shaped(7)) == "Shaped"  # not iterable
    assert describe_value(2**128 - 1) == str(2**128 - 1)
    assert describe_value(2**128) == "int (129 bits)"
    assert [describe_value(v) for v in (None, True, 1.5)] == ["None", "True", "1.5"]
    assert describe_value("a" * 58) == repr("a" * 58)  # 60 characters with its quotes: whole
    assert describe_value("a" * 59) == "'" + "a" * 55 + "...'"
    assert [describe_value(v) for v in ([1, 2, 3], (1,), {"a": 1}, {1, 2})] == [
        "list[3]", "tuple[1]", "dict[1]", "set[2]"
    ]  # fmt: skip
    assert describe_value(Image.new("RGB", (64, 32))) == "Image[64, 32] RGB"
    assert describe_value(Sized()) == "Sized"
    assert describe_value(object()) == "object"


def test_a_failures_inputs_keep_json_values_as_they_are_and_describe_the_rest():
    """ComfyUI's execution_error reports an input's number, text, bool or null as it is: ours
    were repr strings ("'dpmpp_2m'", "500")."""
    kept = [None, True, 500, 2**128 - 1, 0.5, "dpmpp_2m", "a" * REPORTED_TEXT_CHARS]
    assert [reported(v) for v in kept] == kept
    assert [reported(v) for v in (float("nan"), 2**128, "a" * (REPORTED_TEXT_CHARS + 1))] == [
        "nan", "int (129 bits)", "'" + "a" * 55 + "...'"
    ]  # fmt: skip
    assert [reported(v) for v in ([1], np.float32(1), Image.new("L", (2, 2)))] == [
        "list[1]", "float32[] float32", "Image[2, 2] L"
    ]  # fmt: skip


def one_output(*outputs: str) -> NodeType:
    return NodeType(
        "T", fn=lambda ctx: None, inputs=(), outputs=tuple(Output(o, ANY) for o in outputs)
    )


def test_normalize_return_shapes():
    assert normalize(one_output("a"), (5,)) == ((5,), None)  # already a 1-tuple
    assert normalize(one_output("a"), (5, 6)) == (((5, 6),), None)  # one tuple value
    assert normalize(one_output("a"), ()) == (((),), None)
    assert normalize(one_output("a", "b"), (5, 6)) == ((5, 6), None)
    assert normalize(one_output("a"), NodeResult(5, {"k": 1})) == ((5,), {"k": 1})
    assert normalize(one_output("a", "b"), NodeResult([5, 6])) == ((5, 6), None)
    assert normalize(one_output(), None) == ((), None)
    assert normalize(one_output("a"), None) == ((None,), None)
    assert normalize(one_output("a"), [1, 2]) == (([1, 2],), None)
    with pytest.raises(TypeError, match=r"node type 'T' returned 1 value\(s\) but declares 2"):
        normalize(one_output("a", "b"), 5)
    with pytest.raises(TypeError, match="returned 1 value"):
        normalize(one_output(), 5)


def test_order_is_dependency_first_then_written_order(toys):
    g = build({
        "o2": ("Out", {"x": "@y"}),
        "x": ("Const", {"value": 1}),
        "y": ("Inc", {"x": "@x"}),
        "a": ("Const", {"value": 2}),
        "o1": ("Out", {"x": "@a"}),
    })  # fmt: skip
    events = []
    r = toys.scheduler().run(g, on_event=events.append)
    assert r.executed == ["x", "y", "o2", "a", "o1"]
    assert events[0].nodes == ["x", "y", "o2", "a", "o1"]
    written = build({"a": ("Const", {}), "b": ("Inc", {"x": "@a"}), "o": ("Out", {"x": "@b"})})
    assert toys.scheduler().run(written).executed == ["a", "b", "o"]


def test_a_self_link_is_a_cycle(toys):
    g = build({"a": ("Inc", {"x": "@a"}), "o": ("Out", {"x": "@a"})})
    with pytest.raises(WorkflowError) as e:
        toys.scheduler().run(g, validate=False)
    (p,) = e.value.problems
    assert (p.code, p.node_id, p.message) == (
        "cycle",
        "a",
        "the graph has a cycle: a -> a; links must not loop back",
    )  # as validation says


def test_a_cycle_is_named_from_its_first_node(toys):
    g = build({
        "a": ("Inc", {"x": "@b"}),
        "b": ("Inc", {"x": "@a"}),
        "o": ("Out", {"x": "@a"}),
    })  # fmt: skip
    with pytest.raises(WorkflowError) as e:
        toys.scheduler().run(g, validate=False)
    (p,) = e.value.problems
    assert p.message == "the graph has a cycle: a -> b -> a; links must not loop back"
    assert p.node_id == "a" and p.location == g.where("a")  # validation's rule names its place


def problems_of(toys, graph, **kw):
    with pytest.raises(WorkflowError) as e:
        toys.scheduler().run(graph, validate=False, **kw)
    return e.value.problems


def test_plan_problems_name_their_node_input_and_place(toys):
    g = Graph(source="w.yaml")
    g.add(Node("m", "Mystery", {}, location=Location("w.yaml", 3, 2)))
    g.add(Node("o", "Add", {"a": Link("nowhere", 0), "b": Link("m", 0)},
               input_locations={"a": Location("w.yaml", 5, 6)}))  # fmt: skip
    problems = problems_of(toys, g, targets=["o"])  # every problem at once, in walk order
    assert [(p.code, p.node_id, p.input_name) for p in problems] == [
        ("bad_linked_input", "o", "a"), ("unknown_node_type", "m", None)
    ]  # fmt: skip
    bad, unknown = problems
    assert bad.message == "links to missing node 'nowhere'" and bad.location.line == 5
    assert unknown.message == "unknown node type 'Mystery'" + PLUGIN_HINT  # validation's words
    assert unknown.node_type == "Mystery"
    assert (unknown.location.line, unknown.location.column) == (3, 2)


def test_links_after_literals_are_followed(toys):
    g = build({"a": ("Const", {"value": 2}), "b": ("Inc", {"by": 5, "x": "@a"})})
    assert toys.scheduler().run(g, targets=["b"]).outputs == {"b": (7,)}


def test_targets_and_keep_must_exist(toys):
    g = build({"a": ("Const", {}), "o": ("Out", {"x": "@a"})})
    problems = problems_of(toys, g, targets=["zz"], keep=["yy"])
    assert [(p.code, p.node_id, p.message) for p in problems] == [
        ("invalid_value", "zz", "no node 'zz' to run"),
        ("invalid_value", "yy", "no node 'yy' to keep"),  # (said "to run")
    ]
    assert toys.scheduler().run(g, targets=["a"], keep=["a"]).outputs == {"a": (0,)}


def test_no_output_node_unless_an_unknown_type_may_be_the_output(toys):
    """Unvalidated, a graph without output nodes says so; one holding a node of an unknown
    type names that node instead: it may be the output (a plugin not loaded here)."""
    (p,) = problems_of(toys, build({"a": ("Const", {})}))
    assert (p.code, p.message) == ("prompt_no_outputs", "the workflow has no output node to run")
    (p,) = problems_of(toys, build({"m": ("Cosnt", {}), "a": ("Const", {})}))
    assert (p.code, p.node_id) == ("unknown_node_type", "m")
    assert p.message == "unknown node type 'Cosnt'; did you mean 'Const'?"  # validation's words


def test_explicit_targets_need_no_output_node_even_when_validating(toys):
    g = build({"a": ("Const", {"value": 3}), "b": ("Inc", {"x": "@a"})})
    with pytest.raises(WorkflowError):
        toys.scheduler().run(g)
    assert toys.scheduler().run(g, targets=["b"]).outputs == {"b": (4,)}


def test_validation_errors_stop_the_run_before_anything_runs(toys):
    g = build({"a": ("Const", {"valeu": 3}), "o": ("Out", {"x": "@a"})})
    with pytest.raises(WorkflowError) as e:
        toys.scheduler().run(g)
    assert [(p.code, p.node_id, p.input_name) for p in e.value.problems] == [
        ("unknown_input", "a", "valeu")
    ]
    assert not toys.calls


def test_validation_warnings_become_warning_events(toys):
    g = build({"a": ("Const", {}), "o": ("Out", {"x": "@a"}), "lone": ("Const", {})})
    events = []
    r = toys.scheduler().run(g, on_event=events.append)
    (w,) = r.warnings
    assert w.node_id == "lone" and "feeds no output node" in w.message
    # the problem's message: the node and its place are the renderer's to name, once
    assert w.message == "the node feeds no output node, so it will not run"
    assert w.input_name is None
    assert [e for e in events if e.kind == "node_warning"] == [w] and w.run_id == r.run_id
    assert events[1] is w  # right after run_started
    assert toys.scheduler().run(g, validate=False).warnings == []


def test_scheduler_defaults():
    s = Scheduler()
    assert s.registry is default_registry and s.settings == Settings()
    assert s.cache.disk is None


def test_a_stale_defaults_entry_for_a_recycled_id_is_not_served(toys):
    s = toys.scheduler()
    inc = toys.registry["Inc"]
    other = NodeType("Inc", fn=inc.fn, inputs=(Socket("x", INT), Int("by", 5)),
                     outputs=inc.outputs)  # fmt: skip
    s._defaults[id(other)] = (inc, {"by": 1})  # as if `inc` had lived at that address
    assert s.type_defaults(other) == {"by": 5}
    assert s.type_defaults(other) is s.type_defaults(other)  # memoized


def test_run_ids_are_fresh_and_extra_defaults_to_empty(toys):
    seen = []

    @node("See", outputs=[Output("v", ANY)], output_node=True, registry=toys.registry)
    def see(ctx):
        seen.append((ctx.node_id, ctx.node_type, ctx.extra, ctx.settings))
        return 0

    s = toys.scheduler()
    first = s.run(build({"s": ("See", {})}))
    second = s.run(build({"s": ("See", {})}), validate=False)
    assert len(first.run_id) == 32 and first.run_id != second.run_id
    assert seen == [("s", "See", {}, s.settings)]  # the second run was a cache hit


def test_reuse_hook_sees_the_cached_ui_literals_and_settings_and_can_refuse(toys):
    """The literals as the identity hook gets them (defaults in, linked inputs out); a refused
    hit's ui reaches the node's run (`Context.earlier_ui`: a save writes only what is missing)."""
    seen, earlier = [], []
    allow = [True]

    @node("Saved", inputs=[Socket("x", ANY), Int("n", 3), Int("m", 1), Socket("y", ANY)],
          outputs=[], output_node=True, registry=toys.registry,
          reuse=lambda ui, literals, settings: seen.append((ui, literals, settings))
          or allow[0])  # fmt: skip
    def saved(ctx, x, y, n=3, m=1):
        toys.calls[ctx.node_id] += 1
        earlier.append(ctx.earlier_ui)
        return NodeResult((), {"file": [x, toys.calls[ctx.node_id]]})

    s = toys.scheduler(settings=Settings(max_steps=7))
    g = build({"a": ("Const", {"value": 4}),
               "o": ("Saved", {"x": "@a", "m": 2, "y": "@a"})})  # fmt: skip
    s.run(g)
    assert s.run(g).cached == ["o"] and toys.calls["o"] == 1
    assert seen == [({"file": [4, 1]}, {"n": 3, "m": 2}, s.settings)]
    allow[0] = False  # e.g. the saved file was deleted
    r = s.run(g)
    assert r.executed == ["o"] and r.cached == ["a"] and toys.calls["o"] == 2
    assert earlier == [None, {"file": [4, 1]}]  # the first run had none: nothing was cached


def test_reuse_hook_is_asked_for_a_late_hit_downstream_of_a_random_node(toys):
    allow = [True]

    @node("Kept", inputs=[Socket("x", ANY)], outputs=[], output_node=True, registry=toys.registry,
          reuse=lambda ui, literals, settings: allow[0])  # fmt: skip
    def kept(ctx, x):
        toys.calls[ctx.node_id] += 1
        return NodeResult((), {"file": [x]})

    toys.random_values[:] = [5, 5, 5]
    s = toys.scheduler()
    g = build({"r": ("Rand", {}), "o": ("Kept", {"x": "@r"})})
    s.run(g)
    assert s.run(g).cached == ["o"] and toys.calls["o"] == 1  # the same value: a late hit
    allow[0] = False  # e.g. its file now holds another run's image
    r = s.run(g)
    assert r.executed == ["r", "o"] and r.cached == [] and toys.calls["o"] == 2


def test_a_cached_output_node_reports_its_type_and_summary(toys):
    s = toys.scheduler()
    g = build({"a": ("Const", {"value": 4}), "e": ("Echo", {"x": "@a"})})
    s.run(g)
    events = []
    s.run(g, on_event=events.append)
    (done,) = [e for e in events if e.kind == "node_finished"]
    assert (done.node_id, done.node_type, done.cached) == ("e", "Echo", True)
    assert done.summary == ["value: 4"] and done.ui == {"value": ["4"]}


def test_cancel_between_nodes_skips_the_rest_in_order_and_wins_over_a_failure(toys):
    cancel = CancelToken()

    @node("Stop", inputs=[Socket("x", ANY)], outputs=[Output("v", ANY)], registry=toys.registry)
    def stop(ctx, x):
        cancel.cancel()
        return x

    g = build({
        "a": ("Const", {}),
        "f": ("Fail", {"x": "@a"}),
        "c": ("Stop", {"x": "@a"}),
        "b": ("Inc", {"x": "@c"}),
        "o": ("Out", {"x": "@b"}),
        "o2": ("Out", {"x": "@f"}),
    })  # fmt: skip
    r = toys.scheduler().run(g, targets=["o", "o2"], cancel=cancel)
    assert r.status == "interrupted" and [f.node_id for f in r.failures] == ["f"]
    assert r.interrupted_node is None and r.skipped == ["b", "o", "o2"]  # b never started


def test_a_link_to_an_output_the_parent_does_not_have_is_a_node_failure(toys):
    g = Graph()
    g.add(Node("a", "Const", {"value": 1}))
    g.add(Node("b", "Inc", {"x": Link("a", 3), "by": 2}))
    g.add(Node("o", "Out", {"x": Link("b", 0)}))
    r = toys.scheduler().run(g, validate=False)
    (f,) = r.failures
    assert (f.node_id, f.exception_type, f.inputs) == ("b", "IndexError", {})
    assert r.skipped == ["o"] and r.status == "failed"


def test_failure_details(toys):
    raised = []

    @node("Raise", inputs=[Int("n", 3)], outputs=[Output("v", ANY)], registry=toys.registry)
    def raise_(ctx, n):
        exc = ToldToFail() if n else KeyError()
        raised.append(exc)
        raise exc

    r = toys.scheduler().run(build({"r": ("Raise", {}), "k": ("Raise", {"n": 0})}),
                             targets=["r", "k"])  # fmt: skip
    mine, builtin = r.failures
    assert mine.traceback[0].startswith("Traceback") and mine.traceback[-1] == (
        f"{__name__}.ToldToFail\n"
    )
    assert builtin.traceback[-1] == "KeyError\n" and mine.run_id == r.run_id
    assert mine.message == "ToldToFail"  # no text: the type's name
    assert mine.exception_type == f"{__name__}.ToldToFail"
    assert builtin.exception_type == "KeyError" and builtin.inputs == {"n": 0}
    assert mine.inputs == {"n": 3} and mine.node_type == "Raise"
    assert all(e.__traceback__ is None for e in raised)  # its frames (inputs) are let go


def test_progress_first_last_and_throttled_previews(toys, monkeypatch):
    built = []

    @node("Previews", inputs=[Socket("x", ANY), Int("n", 5)], outputs=[Output("v", ANY)],
          registry=toys.registry)  # fmt: skip
    def previews(ctx, x, n):
        for i in range(n):
            ctx.progress(i + 1, n, preview=lambda i=i: built.append(i) or f"img{i}")
        return x

    g = build({"a": ("Const", {}), "p": ("Previews", {"x": "@a"}), "o": ("Out", {"x": "@p"})})
    monkeypatch.setattr(scheduler, "PROGRESS_INTERVAL", 3600.0)
    events = []
    toys.scheduler().run(g, on_event=events.append)
    sent = [(e.value, e.max, e.preview) for e in events if e.kind == "node_progress"]
    assert sent == [(1, 5, "img0"), (5, 5, "img4")] and built == [0, 4]

    clock = itertools.count(0.0, 0.5)  # one reading per report
    monkeypatch.setattr(scheduler.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(scheduler, "PROGRESS_INTERVAL", 1.0)
    events.clear()
    toys.scheduler().run(g, on_event=events.append)
    progress = [e for e in events if e.kind == "node_progress"]
    assert [e.value for e in progress] == [1, 3, 5]  # a full interval apart, and the last
    assert all(e.node_id == "p" and e.run_id == events[0].run_id for e in progress)


def test_warnings_are_kept_without_an_event_listener(toys):
    g = build({"a": ("Const", {}), "s": ("Steps", {"x": "@a", "n": 2}), "o": ("Out", {"x": "@s"})})
    r = toys.scheduler().run(g)
    assert [(w.node_id, w.message, w.run_id) for w in r.warnings] == [("s", "careful", r.run_id)]


def test_late_hits_and_runs_report_type_summary_ui_and_time(toys):
    s = toys.scheduler()
    g = build({"r": ("Rand", {}), "b": ("Inc", {"x": "@r"}), "o": ("Echo", {"x": "@b"})})
    toys.random_values[:] = [4, 4]
    before = time.perf_counter()
    s.run(g)
    events = []
    r = s.run(g, on_event=events.append, run_id="R")
    done = {e.node_id: e for e in events if e.kind == "node_finished"}
    started = [(e.node_id, e.node_type) for e in events if e.kind == "node_started"]
    assert started == [("r", "Rand")]
    assert (done["r"].node_type, done["r"].cached, done["r"].summary) == ("Rand", False,
                                                                          ["value: 4"])  # fmt: skip
    assert 0 <= done["r"].seconds <= r.seconds <= time.perf_counter() - before
    assert (done["o"].run_id, done["o"].node_type, done["o"].cached) == ("R", "Echo", True)
    assert (done["o"].summary, done["o"].ui) == (["value: 5"], {"value": ["5"]})
    assert (done["b"].node_type, done["b"].ui) == ("Inc", None)
    s.cache.clear_memory()
    events.clear()
    toys.random_values[:] = [4]
    s.run(g, on_event=events.append)
    ran = [e for e in events if e.kind == "node_finished" and e.node_id == "o"]
    assert [(e.cached, e.ui) for e in ran] == [(False, {"value": ["5"]})] and ran[0].seconds > 0


def test_a_result_marked_not_to_cache_and_its_dependants_are_computed_again(toys):
    @node("Shaky", inputs=[Socket("x", INT)], outputs=[Output("v", INT)], registry=toys.registry)
    def shaky(ctx, x):
        toys.calls[ctx.node_id] += 1
        ctx.do_not_cache()  # e.g. a NaN from fp16
        return x

    s = toys.scheduler()
    g = build({
        "a": ("Const", {"value": 2}),
        "k": ("Shaky", {"x": "@a"}),
        "b": ("Inc", {"x": "@k"}),
        "o": ("Echo", {"x": "@b"}),
    })  # fmt: skip
    assert s.run(g).outputs["o"] == (3,)
    toys.calls.clear()
    r = s.run(g)
    assert r.outputs["o"] == (3,) and r.cached == ["a"]
    assert toys.calls == {"k": 1, "b": 1, "o": 1}


def test_an_uncached_random_node_never_hits_downstream(toys):
    @node("Noise", outputs=[Output("v", INT)], deterministic=False, registry=toys.registry)
    def noise(ctx):
        ctx.do_not_cache()
        return 1

    s = toys.scheduler()
    g = build({"r": ("Noise", {}), "b": ("Inc", {"x": "@r"}), "o": ("Echo", {"x": "@b"})})
    s.run(g)
    toys.calls.clear()
    stats = dict(s.cache.stats)
    r = s.run(g)
    assert r.executed == ["r", "b", "o"] and r.cached == [] and toys.calls == {"b": 1, "o": 1}
    assert s.cache.stats == stats  # nothing looked up under an unknown key, nothing stored


def test_a_random_node_with_one_output_without_digest_never_hits_downstream(toys, tmp_path):
    @node("Half", outputs=[Output("n", INT), Output("thing", ANY)], deterministic=False,
          registry=toys.registry)  # fmt: skip
    def half(ctx):
        return 1, object()

    s = toys.scheduler(Cache(disk_dir=tmp_path))
    g = build({"r": ("Half", {}), "b": ("Inc", {"x": "@r.0"}), "o": ("Echo", {"x": "@b"})})
    assert s.run(g).outputs["o"] == (2,)
    r = s.run(g)
    assert r.status == "success" and r.executed == ["r", "b", "o"] and r.cached == []
    # what uses it can never be asked for again: it is not stored (it was, under a random key,
    # filling memory and disk with entries that evicted live ones)
    assert s.cache.stats["puts"] == 0 and not list(tmp_path.rglob("*"))


def test_the_result_holds_target_and_keep_outputs_with_their_ui(toys):
    g = build({"a": ("Const", {"value": 1}), "e": ("Echo", {"x": "@a"}), "o": ("Out", {"x": "@a"})})
    r = toys.scheduler().run(g, keep=["a"])
    assert r.outputs == {"e": (1,), "o": (), "a": (1,)}
    assert r.ui == {"e": {"value": ["1"]}, "o": {"value": [1]}}  # none for `a`: it has no ui
    assert r.ok and r.seconds > 0 and r.output("e") == 1


def test_run_finished_tells_everything(toys):
    s = toys.scheduler()
    spec = {"a": ("Const", {}), "f": ("Fail", {"x": "@a"}), "g": ("Inc", {"x": "@f"}),
            "o": ("Out", {"x": "@g"}), "o2": ("Out", {"x": "@a"})}  # fmt: skip
    s.run(build({"a": ("Const", {}), "o2": ("Out", {"x": "@a"})}))
    events = []
    before = time.perf_counter()
    r = s.run(build(spec), on_event=events.append, run_id="R")
    assert 0 < r.seconds <= time.perf_counter() - before
    done = events[-1]
    assert (done.kind, done.run_id, done.status) == ("run_finished", "R", "failed")
    assert (done.executed, done.cached, done.failed, done.skipped) == ([], ["a", "o2"], ["f"],
                                                                       ["g", "o"])  # fmt: skip
    assert done.seconds == r.seconds > 0 and done.interrupted_node is None
    assert [e.kind for e in events if e.kind == "node_failed"] == ["node_failed"]


def test_a_plugins_input_error_is_named_as_a_validation_problem_is():
    """A plugin's `InputError("no file number 3", "x")` reached the CLI as 'file:line: no file
    number 3'; the built-in nodes' refusals name their node and input, and one that does is
    left as it is."""
    from latentgraph.graph import InputError, Registry

    reg = Registry()

    @node("NeedsFile", inputs=[Int("x", 3)], outputs=[Output("v", INT)], output_node=True,
          registry=reg)  # fmt: skip
    def needs_file(ctx, x):
        raise InputError(f"no file number {x}", "x")

    @node("NamesItself", inputs=[Int("x", 3)], outputs=[Output("v", INT)], output_node=True,
          registry=reg)  # fmt: skip
    def names_itself(ctx, x):
        raise InputError(f"node {ctx.node_id!r} (NamesItself) input 'x': {x} is odd", "x")

    g = Graph()
    g.add(Node("n", "NeedsFile", {}))
    g.add(Node("m", "NamesItself", {}))
    result = Scheduler(reg, Cache()).run(g)
    assert [(f.node_id, f.message, f.user_error) for f in result.failures] == [
        ("n", "node 'n' (NeedsFile) input 'x': no file number 3", True),
        ("m", "node 'm' (NamesItself) input 'x': 3 is odd", True),
    ]


@pytest.mark.parametrize("kind", ["run_started", "nodes_cached", "node_started", "node_progress",
                                  "node_warning", "node_finished", "run_finished"])  # fmt: skip
def test_an_on_event_callback_that_raises_raises_out_of_run_never_a_node_failure(toys, kind):
    """The caller's callback is the caller's bug: whichever event it raises on (progress and
    warnings are sent from inside a node's code), the exception leaves `run` as it was raised,
    not recorded as the failure of the node that was running."""

    class CallbackBug(Exception):
        pass

    def on_event(event):
        if event.kind == kind:
            raise CallbackBug(kind)

    g = build({"a": ("Const", {}), "s": ("Steps", {"x": "@a", "n": 2}), "o": ("Echo", {"x": "@s"})})
    with pytest.raises(CallbackBug, match=kind) as raised:
        toys.scheduler().run(g, on_event=on_event)
    assert raised.value.__context__ is None  # raised as the callback raised it, nothing around


def test_targets_and_keep_take_one_node_id_as_a_str(toys):
    g = build({"a": ("Const", {"value": 2}), "b": ("Inc", {"by": 5, "x": "@a"})})
    r = toys.scheduler().run(g, targets="b", keep="a")  # not the nodes 'b' and 'a' by letter
    assert r.outputs == {"b": (7,), "a": (2,)}
    long_names = build({"decode": ("Const", {"value": 1}), "save": ("Echo", {"x": "@decode"})})
    assert toys.scheduler().run(long_names, keep="decode").outputs == {"save": (1,), "decode": (1,)}


@pytest.mark.parametrize(("given", "keyword"), [
    ({"keep": 5}, "keep"), ({"targets": 5}, "targets"), ({"keep": ["a", 5]}, "keep"),
])  # fmt: skip
def test_targets_and_keep_of_another_type_are_refused_naming_the_keyword(toys, given, keyword):
    """`keep=5` raised "'int' object is not iterable", naming neither keep nor a node id."""
    g = build({"a": ("Const", {"value": 2}), "o": ("Out", {"x": "@a"})})
    with pytest.raises(TypeError) as caught:
        toys.scheduler().run(g, **given)
    assert str(caught.value).startswith(f"{keyword}= takes a node id or a list of node ids, not ")
