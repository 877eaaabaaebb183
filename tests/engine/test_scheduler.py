"""Scheduler behaviour with toy nodes: what runs, what is cached, failures, events, freeing."""

from __future__ import annotations

import gc
import threading
import weakref
from dataclasses import replace

import pytest

from latentgraph.graph import (
    ANY,
    CancelToken,
    NodeResult,
    Output,
    Socket,
    WorkflowError,
    node,
    scheduler,
)
from latentgraph.graph.cache import Cache
from latentgraph.graph.context import Cancelled

from .conftest import build


def chains():
    """Two independent branches: a -> b -> c -> out1 and x -> y -> out2."""
    return {
        "a": ("Const", {"value": 1}),
        "b": ("Inc", {"x": "@a", "by": 10}),
        "c": ("Inc", {"x": "@b"}),
        "out1": ("Out", {"x": "@c"}),
        "x": ("Const", {"value": 5}),
        "y": ("Inc", {"x": "@x"}),
        "out2": ("Out", {"x": "@y"}),
    }


def test_only_outputs_and_their_ancestors_run(toys):
    spec = chains()
    spec["orphan"] = ("Const", {"value": 9})  # feeds no output
    spec["dangling"] = ("Inc", {"x": "@a"})
    r = toys.scheduler().run(build(spec))
    assert r.status == "success"
    assert set(r.executed) == {"a", "b", "c", "out1", "x", "y", "out2"}
    assert r.ui == {"out1": {"value": [12]}, "out2": {"value": [6]}}
    assert r.executed.index("a") < r.executed.index("b") < r.executed.index("c")


def test_targets_run_only_what_they_need(toys):
    r = toys.scheduler().run(build(chains()), targets=["b"])
    assert r.executed == ["a", "b"] and r.outputs == {"b": (11,)}


def test_unchanged_rerun_is_all_cached(toys):
    s = toys.scheduler()
    s.run(build(chains()))
    toys.calls.clear()
    r = s.run(build(chains()))
    assert r.executed == [] and sorted(r.cached) == ["out1", "out2"] and not toys.calls
    assert r.ui == {"out1": {"value": [12]}, "out2": {"value": [6]}}


def test_changed_upstream_literal_reruns_exactly_its_descendants(toys):
    s = toys.scheduler()
    s.run(build(chains()))
    spec = chains()
    spec["b"] = ("Inc", {"x": "@a", "by": 20})
    toys.calls.clear()
    r = s.run(build(spec))
    assert set(toys.calls) == {"b", "c", "out1"}
    assert r.ui["out1"] == {"value": [22]}
    assert set(r.cached) == {"a", "out2"}  # a feeds b; out2's branch did not change


def test_literal_equal_to_default_is_the_same_key(toys):
    s = toys.scheduler()
    s.run(build(chains()))
    spec = chains()
    spec["c"] = ("Inc", {"x": "@b", "by": 1})  # 1 is the declared default
    toys.calls.clear()
    assert s.run(build(spec)).executed == [] and not toys.calls


def test_version_bump_reruns_the_node_and_its_descendants(toys):
    s = toys.scheduler()
    s.run(build(chains()))
    toys.registry.add(replace(toys.registry["Inc"], version=2), replace=True)
    toys.calls.clear()
    s.run(build(chains()))
    assert set(toys.calls) == {"b", "c", "y", "out1", "out2"}


def test_identity_hook_change_reruns(toys):
    s = toys.scheduler()
    g = build({"i": ("Ident", {"path": "w.bin"}), "o": ("Echo", {"x": "@i"})})
    assert s.run(g).outputs["o"] == ("w.bin:v1",)
    assert s.run(g).executed == []
    toys.identity["token"] = "v2"  # e.g. the weights file changed on disk
    toys.calls.clear()
    r = s.run(g)
    assert r.outputs["o"] == ("w.bin:v2",) and set(toys.calls) == {"i", "o"}


def test_output_index_is_part_of_the_key(toys):
    s = toys.scheduler()
    g = build(
        {"a": ("Const", {"value": 7}), "d": ("DivMod", {"x": "@a"}), "o": ("Echo", {"x": "@d.0"})}
    )
    assert s.run(g).outputs["o"] == (3,)
    g2 = build(
        {"a": ("Const", {"value": 7}), "d": ("DivMod", {"x": "@a"}), "o": ("Echo", {"x": "@d.1"})}
    )
    r = s.run(g2)
    assert r.outputs["o"] == (1,) and r.executed == ["o"]


def test_failure_skips_dependants_and_independent_branch_finishes(toys):
    spec = chains()
    spec["c"] = ("Fail", {"x": "@b", "fail": True})
    spec["after"] = ("Inc", {"x": "@c"})
    spec["out1"] = ("Out", {"x": "@after"})
    s = toys.scheduler()
    events = []
    r = s.run(build(spec), on_event=events.append)
    assert r.status == "failed"
    assert set(r.skipped) == {"after", "out1"} and "out2" in r.executed
    (f,) = r.failures
    assert (f.node_id, f.node_type, f.exception_type) == ("c", "Fail", "ValueError")
    assert f.message == "told to fail on 11" and f.inputs == {"x": 11, "fail": True}
    assert any("told to fail" in line for line in f.traceback)
    finished = events[-1]
    assert finished.kind == "run_finished" and finished.status == "failed"
    assert finished.failed == ["c"] and set(finished.skipped) == {"after", "out1"}

    spec["c"] = ("Fail", {"x": "@b", "fail": False})  # fixed: continue from what was computed
    toys.calls.clear()
    r = s.run(build(spec))
    assert r.status == "success" and set(toys.calls) == {"c", "after", "out1"}


def test_wrong_number_of_returned_values_is_a_node_failure(toys):
    @node("Bad", outputs=[Output("a", ANY), Output("b", ANY)], registry=toys.registry)
    def bad(ctx):
        return (1, 2, 3)

    r = toys.scheduler().run(build({"b": ("Bad", {})}), targets=["b"])
    assert r.status == "failed" and "returned 3 value(s) but declares 2" in r.failures[0].message


def test_a_list_for_several_outputs_or_a_dict_for_none_says_what_was_meant(toys):
    """`return [1, 2]` for two outputs said only "returned 1 value(s)"."""

    @node("Listed", outputs=[Output("a", ANY), Output("b", ANY)], registry=toys.registry)
    def listed(ctx):
        return [1, 2]

    @node("Shown", output_node=True, registry=toys.registry)
    def shown(ctx):
        return {"text": ["hi"]}

    r = toys.scheduler().run(build({"l": ("Listed", {}), "s": ("Shown", {})}), targets=["l", "s"])
    assert sorted(f.message for f in r.failures) == [
        "node type 'Listed' returned 1 value(s) but declares 2 output(s); return a "
        "tuple, not a list (a list is one value: a list output's)",
        "node type 'Shown' returned 1 value(s) but declares 0 output(s); to show "
        "something, return NodeResult(ui={...})",
    ]


def test_returning_none_for_several_outputs_says_it_returned_nothing(toys):
    """A function that forgot its `return` was said to have "returned 1 value(s)"."""

    @node("Forgot", outputs=[Output("a", ANY), Output("b", ANY)], registry=toys.registry)
    def forgot(ctx):
        pass

    r = toys.scheduler().run(build({"f": ("Forgot", {})}), targets=["f"])
    assert r.status == "failed"
    assert r.failures[0].message == (
        "node type 'Forgot' returned None (nothing) but declares 2 output(s)")  # fmt: skip


def test_return_shapes_are_normalized(toys):
    @node("Shapes", outputs=[Output("t", ANY)], registry=toys.registry)
    def shapes(ctx):
        return (1, 2)  # one output whose value is a tuple

    @node("Listy", outputs=[Output("a", ANY), Output("b", ANY)], registry=toys.registry)
    def listy(ctx):
        return NodeResult([1, 2], {"k": ["v"]})

    r = toys.scheduler().run(build({"s": ("Shapes", {}), "l": ("Listy", {})}), targets=["s", "l"])
    assert r.outputs == {"s": ((1, 2),), "l": (1, 2)} and r.ui == {"l": {"k": ["v"]}}


def test_event_order(toys, monkeypatch):
    monkeypatch.setattr(scheduler, "PROGRESS_INTERVAL", 3600.0)
    spec = {
        "a": ("Const", {"value": 1}),
        "s": ("Steps", {"x": "@a", "n": 3}),
        "o": ("Echo", {"x": "@s"}),
        "k": ("Const", {"value": 2}),
        "o2": ("Out", {"x": "@k"}),
    }
    s = toys.scheduler()
    s.run(build({"k": ("Const", {"value": 2}), "o2": ("Out", {"x": "@k"})}))
    events = []
    r = s.run(build(spec), on_event=events.append, run_id="R1")
    kinds = [(e.kind, getattr(e, "node_id", None)) for e in events]
    assert kinds == [
        ("run_started", None),
        ("nodes_cached", None),
        ("node_finished", "o2"),  # cached output node still reports its ui
        ("node_started", "a"),
        ("node_finished", "a"),
        ("node_started", "s"),
        ("node_progress", "s"),
        ("node_progress", "s"),  # step 2 is coalesced away, the final step is always sent
        ("node_warning", "s"),
        ("node_finished", "s"),
        ("node_started", "o"),
        ("node_finished", "o"),
        ("run_finished", None),
    ]
    assert all(e.run_id == "R1" for e in events)
    assert events[0].nodes == ["a", "s", "o", "k", "o2"]
    assert events[1].nodes == ["o2"] and events[2].cached and events[2].ui == {"value": [2]}
    assert [(e.value, e.max) for e in events if e.kind == "node_progress"] == [(1, 3), (3, 3)]
    assert events[9].summary == ["value: 1"] and events[-1].executed == ["a", "s", "o"]
    assert r.warnings[0].message == "careful"


def test_progress_is_coalesced_per_node(toys, monkeypatch):
    monkeypatch.setattr(scheduler, "PROGRESS_INTERVAL", 3600.0)
    events = []
    g = build(
        {"a": ("Const", {}), "s": ("Steps", {"x": "@a", "n": 100000}), "o": ("Out", {"x": "@s"})}
    )
    toys.scheduler().run(g, on_event=events.append)
    progress = [e for e in events if e.kind == "node_progress"]
    assert [e.value for e in progress] == [1, 100000]  # the first, then only the final step


def test_cancel_mid_node(toys):
    g = build(
        {
            "a": ("Const", {}),
            "l": ("Loop", {"x": "@a"}),
            "b": ("Inc", {"x": "@l"}),
            "o": ("Out", {"x": "@b"}),
        }
    )
    cancel = CancelToken()
    events, result = [], {}
    t = threading.Thread(
        target=lambda: result.update(
            r=toys.scheduler().run(g, cancel=cancel, on_event=events.append)
        )
    )
    t.start()
    assert toys.loop_started.wait(10)
    cancel.cancel()
    t.join(10)
    r = result["r"]
    assert r.status == "interrupted" and r.interrupted_node == "l"
    assert r.executed == ["a"] and r.failures == [] and set(r.skipped) == {"b", "o"}
    assert events[-1].kind == "run_finished" and events[-1].interrupted_node == "l"
    assert events[-1].interrupted == ["l"]  # stopped while it ran: in no other list
    assert not any(e.kind == "node_failed" for e in events)


def test_cancel_between_nodes(toys):
    cancel = CancelToken()

    @node(
        "CancelNow", inputs=[Socket("x", ANY)], outputs=[Output("v", ANY)], registry=toys.registry
    )
    def cancel_now(ctx, x):
        cancel.cancel()  # e.g. the user pressed stop while this node was finishing
        return x

    g = build(
        {
            "a": ("Const", {}),
            "c": ("CancelNow", {"x": "@a"}),
            "b": ("Inc", {"x": "@c"}),
            "o": ("Out", {"x": "@b"}),
        }
    )
    events = []
    r = toys.scheduler().run(g, cancel=cancel, on_event=events.append)
    # c finished, b never started: no node was cut short (interrupted_node named b)
    assert r.status == "interrupted" and r.executed == ["a", "c"] and r.interrupted_node is None
    assert r.skipped == ["b", "o"]
    finished = events[-1]
    assert (finished.interrupted, finished.interrupted_node, finished.skipped) == (
        [], None, ["b", "o"])  # fmt: skip
    cancel.reset()
    toys.calls.clear()
    assert toys.scheduler().run(g).status == "success"


def test_cancelled_raised_without_token_is_an_interrupt(toys):
    @node("Quit", outputs=[Output("v", ANY)], registry=toys.registry)
    def quit_(ctx):
        raise Cancelled("stop")

    r = toys.scheduler().run(build({"q": ("Quit", {})}), targets=["q"])
    assert r.status == "interrupted" and r.interrupted_node == "q"


def test_a_run_left_at_once_still_ends_its_events_with_run_finished(toys):
    """`run`'s second Ctrl-C (or a KeyboardInterrupt) raised out of the node running ended
    the events without RunFinished: `run --json`'s reader never learned how the run ended. It
    is sent, status interrupted at that node, and the exception still leaves the run."""

    @node("Gone", inputs=[Socket("x", ANY)], outputs=[Output("v", ANY)], registry=toys.registry)
    def gone(ctx, x):
        raise KeyboardInterrupt  # as the CLI's StopNow is raised into whatever the node does

    g = build({"a": ("Const", {}), "g": ("Gone", {"x": "@a"}), "b": ("Inc", {"x": "@g"}),
               "o": ("Out", {"x": "@b"})})  # fmt: skip
    events = []
    with pytest.raises(KeyboardInterrupt):
        toys.scheduler().run(g, on_event=events.append)
    finished = events[-1]
    assert finished.kind == "run_finished" and finished.status == "interrupted"
    assert (finished.executed, finished.interrupted, finished.skipped) == (["a"], ["g"], ["b", "o"])
    assert finished.interrupted_node == "g"


def test_a_run_left_at_once_between_two_nodes_cut_no_node_short(toys):
    """A second Ctrl-C that comes once a node has finished, before the next starts (here from
    `on_event`, as `run`'s signal handler raises into whatever runs), named the next node as
    interrupted, a node that never started: no node was cut short, the rest are skipped."""

    def on_event(event):
        events.append(event)
        if event.kind == "node_finished" and event.node_id == "a":
            raise KeyboardInterrupt

    g = build({"a": ("Const", {}), "b": ("Inc", {"x": "@a"}), "o": ("Out", {"x": "@b"})})
    events = []
    with pytest.raises(KeyboardInterrupt):
        toys.scheduler().run(g, on_event=on_event)
    finished = events[-1]
    assert finished.kind == "run_finished" and finished.status == "interrupted"
    assert (finished.executed, finished.interrupted, finished.skipped) == (["a"], [], ["b", "o"])
    assert finished.interrupted_node is None


def test_nondeterministic_node_always_runs_but_same_output_hits_downstream(toys):
    s = toys.scheduler()
    g = build({"r": ("Rand", {}), "b": ("Inc", {"x": "@r"}), "o": ("Echo", {"x": "@b"})})
    toys.random_values[:] = [4, 4, 9]
    events = []
    assert s.run(g).outputs["o"] == (5,)
    toys.calls.clear()
    r = s.run(g, on_event=events.append)
    assert toys.calls == {"r": 1} and r.outputs["o"] == (5,) and set(r.cached) == {"b", "o"}
    finished = [e.node_id for e in events if e.kind == "node_finished" and e.cached]
    assert finished == ["b", "o"]  # late hits are reported when found
    toys.calls.clear()
    assert s.run(g).outputs["o"] == (10,) and set(toys.calls) == {"r", "b", "o"}


def test_nondeterministic_without_digest_never_hits_downstream(toys):
    @node("Obj", outputs=[Output("v", ANY)], deterministic=False, registry=toys.registry)
    def obj(ctx):
        return object()

    @node("Name", inputs=[Socket("x", ANY)], outputs=[Output("v", ANY)], registry=toys.registry)
    def name(ctx, x):
        toys.calls["name"] += 1
        return type(x).__name__

    s = toys.scheduler()
    g = build({"r": ("Obj", {}), "n": ("Name", {"x": "@r"})})
    s.run(g, targets=["n"])
    s.run(g, targets=["n"])
    assert toys.calls["name"] == 2


def test_intermediates_are_freed_after_their_last_consumer(toys):
    class Blob:
        pass

    refs = {}
    seen_alive = {}

    @node("MakeBlob", inputs=[Socket("x", ANY)], outputs=[Output("v", ANY)], registry=toys.registry)
    def make_blob(ctx, x):
        b = Blob()
        refs[ctx.node_id] = weakref.ref(b)
        return b

    @node("Probe", inputs=[Socket("x", ANY)], outputs=[Output("v", ANY)], registry=toys.registry)
    def probe(ctx, x):
        gc.collect()
        seen_alive[ctx.node_id] = {k: r() is not None for k, r in refs.items()}
        return 1

    g = build({
        "a": ("Const", {}),
        "blob": ("MakeBlob", {"x": "@a"}),
        "p1": ("Probe", {"x": "@blob"}),
        "p2": ("Probe", {"x": "@p1"}),
        "o": ("Out", {"x": "@p2"}),
    })  # fmt: skip
    r = toys.scheduler(cache=Cache(memory_bytes=1)).run(g)  # nothing fits: memory keeps none
    assert r.status == "success"
    assert seen_alive == {"p1": {"blob": True}, "p2": {"blob": False}}


def test_keep_holds_values_of_intermediates(toys):
    r = toys.scheduler().run(build(chains()), keep=["b"])
    assert r.outputs["b"] == (11,) and "out1" in r.outputs


def test_extra_reaches_node_code(toys):
    seen = []

    @node("SeeExtra", outputs=[Output("v", ANY)], output_node=True, registry=toys.registry)
    def see_extra(ctx):
        seen.append(ctx.extra)
        return 0

    toys.scheduler().run(build({"s": ("SeeExtra", {})}), extra={"prompt": {"1": {}}})
    assert seen == [{"prompt": {"1": {}}}]


def test_deep_chain_runs_without_recursion(toys):
    n = 100_000
    spec = {"n0": ("Const", {"value": 0})}
    for i in range(1, n):
        spec[f"n{i}"] = ("Inc", {"x": f"@n{i - 1}"})
    spec["out"] = ("Echo", {"x": f"@n{n - 1}"})
    s = toys.scheduler()
    r = s.run(build(spec))  # validation included: nothing recursive anywhere
    assert r.status == "success" and r.outputs["out"] == (n - 1,)
    assert r.seconds > 0 and len(r.executed) == n + 1
    r2 = s.run(build(spec), validate=False)
    assert r2.cached == ["out"] and r2.executed == []


@pytest.mark.parametrize(
    "spec, code",
    [
        ({"a": ("Const", {})}, "prompt_no_outputs"),
        ({"o": ("Out", {"x": "@nowhere"})}, "bad_linked_input"),
        ({"o": ("Out", {"x": "@m"}), "m": ("Mystery", {})}, "unknown_node_type"),
        (
            {"a": ("Inc", {"x": "@b"}), "b": ("Inc", {"x": "@a"}), "o": ("Out", {"x": "@a"})},
            "cycle",
        ),
    ],
)
def test_graphs_that_cannot_run_raise_workflow_errors(toys, spec, code):
    with pytest.raises(WorkflowError) as e:
        toys.scheduler().run(build(spec), validate=False)
    assert [p.code for p in e.value.problems] == [code]
    assert e.value.problems[0].node_id != "" or code == "prompt_no_outputs"


@pytest.mark.parametrize("targets", [None, ["out"]])
def test_a_node_of_a_type_the_registry_lacks_is_never_left_out_unvalidated(toys, targets):
    """A server's worker runs what the server validated with its own registry (validate=False):
    a plugin's output node its registry lacks (its plugin did not load there) was no output
    node to it, and the run said success without it. Whatever it feeds, it is refused."""
    spec = {"a": ("Const", {"value": 1}), "out": ("Out", {"x": "@a"}),
            "who": ("WhoAmI", {"x": "@a"})}  # fmt: skip
    with pytest.raises(WorkflowError) as e:
        toys.scheduler().run(build(spec), targets=targets, validate=False)
    [problem] = e.value.problems
    assert (problem.code, problem.node_id, problem.node_type) == ("unknown_node_type", "who",
                                                                  "WhoAmI")  # fmt: skip
    assert toys.calls == {}  # nothing ran
