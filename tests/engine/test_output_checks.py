"""What a node returns is checked against its outputs' declared types (graph/socket_checks.py)
before it is cached or passed on: the producing node fails, not the node it feeds."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import pytest
import torch

from latentgraph.graph import (
    ANY,
    BOOLEAN,
    FLOAT,
    IMAGE,
    INT,
    LATENT,
    MASK,
    STRING,
    NodeResult,
    Output,
    node,
)
from latentgraph.graph.cache import Cache
from latentgraph.nodes.values import Latent

from .conftest import build


class Level(IntEnum):
    HIGH = 3


FITS = [
    (INT, 3), (INT, Level.HIGH), (INT, 2**70),
    (FLOAT, 0.5), (FLOAT, 2), (FLOAT, np.float64(0.25)),
    (STRING, ""), (BOOLEAN, False),
    (IMAGE, torch.zeros(1, 8, 8, 3)), (IMAGE, torch.zeros(2, 8, 8, 4)),
    (IMAGE, torch.zeros(1, 8, 8, 3, dtype=torch.float16)), (MASK, torch.zeros(1, 8, 8)), (MASK, torch.zeros(8, 8)),
    (LATENT, Latent(torch.zeros(1, 4, 8, 8))),
    (ANY, None), ("MODEL", object()), ("SOMETHING_ELSE", [1, 2]),
]  # fmt: skip

REFUSED = [
    (INT, "not an int", "'not an int' (str)", " (an int)"),
    (INT, None, "None", " (an int)"),
    (INT, True, "True (bool)", " (an int)"),
    (INT, 2.0, "2.0 (float)", " (an int)"),
    (INT, np.int64(2), "int64", " (an int)"),
    (FLOAT, False, "False (bool)", " (a float or an int)"),
    (FLOAT, "0.5", "'0.5' (str)", " (a float or an int)"),
    (STRING, 5, "5 (int)", " (a str)"),
    (BOOLEAN, 1, "1 (int)", " (a bool)"),
    (IMAGE, [[0.0]], "list[1] (list)", " (a float torch.Tensor [B, H, W, C], C 3 or 4, in 0..1)"),
    (IMAGE, torch.zeros(8, 8, 3), "Tensor[8, 8, 3] torch.float32 (Tensor)",
     " (a float torch.Tensor [B, H, W, C], C 3 or 4, in 0..1)"),
    # channels first, and uint8: they passed, and SaveImage saved a 16x3 picture
    (IMAGE, torch.zeros(1, 3, 16, 16), "Tensor[1, 3, 16, 16] torch.float32 (Tensor)",
     " (a float torch.Tensor [B, H, W, C], C 3 or 4, in 0..1)"),
    (IMAGE, torch.zeros(1, 16, 16, 3, dtype=torch.uint8), "Tensor[1, 16, 16, 3] torch.uint8 (Tensor)",
     " (a float torch.Tensor [B, H, W, C], C 3 or 4, in 0..1)"),
    (IMAGE, np.zeros((1, 8, 8, 3)), "ndarray[1, 8, 8, 3] float64 (ndarray)",
     " (a float torch.Tensor [B, H, W, C], C 3 or 4, in 0..1)"),
    (MASK, np.zeros((8, 8)), "ndarray[8, 8] float64 (ndarray)", " (a torch.Tensor)"),
    (LATENT, {"samples": torch.zeros(1, 4, 8, 8)}, "dict[1] (dict)",
     " (a Latent: its .samples a torch.Tensor [B, C, h, w])"),
    (LATENT, Latent([0.0]), "Latent", " (a Latent: its .samples a torch.Tensor [B, C, h, w])"),
    ("MODEL", None, "None", ""),
]  # fmt: skip


def returning(toys, socket_type: str, value, *, name: str = "Returns", **kw) -> None:
    @node(name, outputs=[Output("v", socket_type)], registry=toys.registry, **kw)
    def returns(ctx):
        toys.calls[ctx.node_id] += 1
        return value


@pytest.mark.parametrize(("socket_type", "value"), FITS)
def test_values_of_the_declared_type_pass(toys, socket_type, value):
    returning(toys, socket_type, value)
    r = toys.scheduler().run(build({"n": ("Returns", {})}), targets=["n"])
    out = r.output("n")  # data comes out as a copy (tests/engine/test_api.py), the rest as is
    assert r.status == "success" and type(out) is type(value) and repr(out) == repr(value)


@pytest.mark.parametrize(("socket_type", "value", "shown", "want"), REFUSED)
def test_a_value_its_output_does_not_declare_fails_the_node_that_returned_it(
    toys, socket_type, value, shown, want
):
    returning(toys, socket_type, value)
    cache = Cache()
    r = toys.scheduler(cache).run(build({"n": ("Returns", {})}), targets=["n"])
    (f,) = r.failures
    assert r.status == "failed" and (f.node_id, f.node_type) == ("n", "Returns")
    assert f.exception_type == "TypeError" and not f.user_error
    assert f.message.startswith(f"returned {shown}")
    assert f.message.endswith(f" for output 'v', declared {socket_type}{want}")
    assert r.outputs == {} and cache.stats["puts"] == 0  # nothing cached, nothing passed on


def test_the_wrong_value_is_not_cached_and_what_it_feeds_is_skipped(toys):
    """The finding: a str for an INT was cached, and the next node was blamed for it."""
    returning(toys, INT, "not an int", name="WrongType")
    g = build({"n": ("WrongType", {}), "add": ("Inc", {"x": "@n"}), "o": ("Out", {"x": "@add"})})
    s = toys.scheduler()
    for _ in range(2):  # a second run runs it again: nothing was cached
        r = s.run(g)
        assert [(f.node_id, f.message) for f in r.failures] == [
            ("n", "returned 'not an int' (str) for output 'v', "
             "declared INT (an int)")]  # fmt: skip
        assert r.skipped == ["add", "o"] and r.cached == []
    assert toys.calls == {"n": 2}


def test_each_output_is_checked_against_its_own_type(toys):
    @node("Two", outputs=[Output("count", INT), Output("label", STRING)], registry=toys.registry)
    def two(ctx):
        return NodeResult((2, 3), {"text": ["x"]})

    r = toys.scheduler().run(build({"n": ("Two", {})}), targets=["n"])
    assert r.failures[0].message == ("returned 3 (int) for output 'label', "
                                     "declared STRING (a str)")  # fmt: skip


def test_a_random_node_is_checked_too(toys):
    returning(toys, INT, None, deterministic=False)
    r = toys.scheduler().run(build({"n": ("Returns", {})}), targets=["n"])
    assert r.failures[0].message == "returned None for output 'v', " \
                                    "declared INT (an int)"  # fmt: skip


def test_a_none_for_an_any_output_passes_on(toys):
    returning(toys, ANY, None)
    g = build({"n": ("Returns", {}), "e": ("Echo", {"x": "@n"})})
    r = toys.scheduler().run(g)
    assert r.ok and r.ui["e"] == {"value": ["None"]}


def test_a_text_longer_than_the_run_limit_fails_the_node_that_returned_it(toys):
    """Twelve StringConcatenate nodes, each joining the one before with itself, made 200
    million characters of a 99,000-character literal: each text a node returns is bounded by
    the run's max_string_chars, as a picture is by the pixel limits. A user error (no
    traceback), naming the output and the limit as its setter knows it; not cached."""
    from latentgraph.graph import Settings
    from latentgraph.graph.context import LIMIT_FLAGS

    returning(toys, STRING, "x" * 11)
    cache = Cache()
    r = toys.scheduler(cache, settings=Settings(max_string_chars=10)).run(
        build({"n": ("Returns", {})}), targets=["n"])  # fmt: skip
    (f,) = r.failures
    assert (f.node_id, f.user_error, f.traceback) == ("n", True, [])
    assert f.message == ("node 'n' (Returns): output 'v' is a text of 11 characters, more than "
                         "the limit of 10 (Settings.max_string_chars)")  # fmt: skip
    assert r.outputs == {} and cache.stats["puts"] == 0
    settings = Settings(max_string_chars=10, limit_labels=LIMIT_FLAGS)  # as the CLI's, the server's
    (f,) = toys.scheduler(settings=settings).run(build({"n": ("Returns", {})}),
                                                 targets=["n"]).failures  # fmt: skip
    assert f.message.endswith("more than the limit of 10 (--max-string-chars)")
    at_limit = toys.scheduler(settings=Settings(max_string_chars=11))
    assert at_limit.run(build({"n": ("Returns", {})}), targets=["n"]).output("n") == "x" * 11


def test_a_text_cached_under_a_higher_limit_is_no_hit_under_a_lower_one(toys):
    """The limit holds for a cached text too: a run at --max-string-chars 100 showed the
    150-character text an earlier run at the default had cached (the output node showing it a
    hit, the text's node never asked). The limit is part of the key of a node returning a
    STRING, so of what it feeds: the node runs and fails as it does uncached, and the entries
    stay for runs that allow them."""
    from latentgraph.graph import Settings

    returning(toys, STRING, "x" * 11)
    cache = Cache()
    g = build({"n": ("Returns", {}), "o": ("Out", {"x": "@n"})})
    wide, narrow = Settings(max_string_chars=20), Settings(max_string_chars=10)
    assert toys.scheduler(cache, settings=wide).run(g).ok
    r = toys.scheduler(cache, settings=narrow).run(g)
    (f,) = r.failures
    assert (f.node_id, f.user_error, r.cached, r.skipped) == ("n", True, [], ["o"])
    assert f.message == ("node 'n' (Returns): output 'v' is a text of 11 characters, more than "
                         "the limit of 10 (Settings.max_string_chars)")  # fmt: skip
    again = toys.scheduler(cache, settings=wide).run(g)
    assert again.ok and again.cached == ["o"] and toys.calls == {"n": 2, "o": 1}


def test_a_limit_for_text_leaves_the_keys_of_nodes_returning_no_text_as_they_were(toys):
    """Only a node returning a STRING is keyed by --max-string-chars: an INT's entry is a hit
    whatever the limit."""
    from latentgraph.graph import Settings

    cache = Cache()
    g = build({"c": ("Const", {"value": 3})})
    assert toys.scheduler(cache, settings=Settings(max_string_chars=20)).run(g, targets=["c"]).ok
    r = toys.scheduler(cache, settings=Settings(max_string_chars=10)).run(g, targets=["c"])
    assert r.ok and r.cached == ["c"] and toys.calls == {"c": 1}
