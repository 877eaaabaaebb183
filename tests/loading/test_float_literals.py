"""An int written for a FLOAT input is the float it equals (`Input.literal`): `--set v=0` and
`--set v=0.0` are one value, so the second run is served from the cache (it ran again)."""

from __future__ import annotations

import pytest

from latentgraph.cli import main
from latentgraph.graph.comfy_editor import map_widgets
from latentgraph.wiring import node_registry

WORKFLOW = """\
version: 1
params:
  v: 1.5
nodes:
  n:
    type: PrimitiveFloat
    value: $v
  show:
    type: PreviewAny
    source: n
"""


@pytest.mark.parametrize(("first", "second"), [("0", "0.0"), ("2.0", "2"), ("-3", "-3.0")])
def test_an_int_and_its_float_are_one_cached_value(tmp_path, capsys, first, second):
    path = tmp_path / "f.yaml"
    path.write_text(WORKFLOW)
    run = ["run", str(path), "--cache-dir", str(tmp_path / "cache"), "--output-dir",
           str(tmp_path / "out")]  # fmt: skip
    assert main([*run, "--set", f"v={first}"]) == 0
    assert "2 ran" in capsys.readouterr().err
    assert main([*run, "--set", f"v={second}"]) == 0
    assert "0 ran" in capsys.readouterr().err


def test_an_editor_widget_int_for_a_float_is_a_float():
    ksampler = node_registry().get("KSampler")
    values, misfit = map_widgets(ksampler, [5, "fixed", 20, 8, "euler", "normal", 1])
    assert misfit is None
    assert type(values["cfg"]) is float and values["cfg"] == 8.0
    assert type(values["denoise"]) is float and type(values["steps"]) is int
    by_name, _ = map_widgets(ksampler, {"cfg": 7, "steps": 3})
    assert type(by_name["cfg"]) is float and type(by_name["steps"]) is int


def test_an_int_too_big_for_a_float_is_kept_for_validation_to_refuse():
    cfg = node_registry().get("KSampler").input("cfg")
    huge = 10**400
    assert cfg.literal(huge) is huge
    assert cfg.literal(True) is True  # a bool is no int here: validation refuses it
