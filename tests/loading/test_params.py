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
