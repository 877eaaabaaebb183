"""The declaration helpers build the `Input` they say (the field a typo would drop or change),
choices are listed for the given settings, and limits checked one by one."""

from __future__ import annotations

import dataclasses
import math

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
    NodeType,
    Output,
    Socket,
    String,
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
    assert fields(Bool("b", True, kind="socket", description="d", optional=True)) == {
        "kind": "socket", "description": "d", "optional": True}  # fmt: skip
    assert fields(Int("i", 3, min=1, max=9, step=2, seed=True, kind="socket", description="d",
                      optional=True, limit="max_steps")) == {
        "kind": "socket", "min": 1, "max": 9, "step": 2, "seed": True, "description": "d",
        "optional": True, "limit": "max_steps"}  # fmt: skip
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
        ("batch", "batch 3 is over this server's limit of 2")]  # fmt: skip
