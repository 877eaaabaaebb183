"""What the user types on the command line (`--option`, `--set`, `--sweep`, folders and
devices) is read strictly and refused before anything runs, with the usage exit code."""

import json

import pytest

from .conftest import write
from .test_cli import GOOD


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.mark.parametrize(("option", "message"), [
    ("vae_tilling=true", "--option vae_tilling: no such option; did you mean 'vae_tiling'"),
    ("vram_headroom_gb=abc", "--option vram_headroom_gb: 'abc' is not a number of GB"),
    ("compile=maybe", "--option compile: 'maybe' is not a switch; write true or false"),
    ("compile", "--option 'compile': expected NAME=VALUE"),
])  # fmt: skip
def test_bad_options_are_refused_before_anything_runs(cli, tmp_path, option, message):
    path = write(tmp_path, "good.yaml", GOOD)
    code, out, err = cli("run", str(path), "--json", "--option", option)
    assert code == 2
    assert f"latentgraph: error: {message}" in err and "Traceback" not in err
    assert out == ""  # not one event: nothing ran
    assert not (tmp_path / "output").exists()


def test_good_options_are_accepted(cli, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    code, _, err = cli("run", str(path), "-q", "--option", "compile=off",
                       "--option", "vram_headroom_gb=1.5")  # fmt: skip
    assert code == 0, err


NAMED = GOOD.replace("params:\n  x: 2\n", "params:\n  x: 2\n  label: total\n").replace(
    "name: total", "name: $label"
)
API = {
    "a": {"class_type": "CliNumber", "inputs": {"value": 2}},
    "out": {"class_type": "CliWrite", "inputs": {"value": ["a", 0], "name": "x"}},
}


@pytest.mark.parametrize("text", ["[cat:dog:0.5]", "null", "5", "true", "[1, 2]", " spaced "])
def test_set_keeps_the_text_as_written_for_a_text_param(cli, tmp_path, text):
    """`[a:b:0.5]` is prompt syntax, not a list; `null` and `5` are text too."""
    path = write(tmp_path, "named.yaml", NAMED)
    code, _, err = cli("run", str(path), "-q", "--set", f"label={text}")
    assert code == 0, err
    assert (tmp_path / "output" / f"{text}.txt").read_text() == "5"


def test_set_types_a_number_param_and_refuses_text_for_it(cli, tmp_path):
    path = write(tmp_path, "named.yaml", NAMED)
    assert cli("run", str(path), "-q", "--set", "x=7")[0] == 0
    assert (tmp_path / "output" / "total.txt").read_text() == "10"
    code, _, err = cli("validate", str(path), "--set", "x=seven")
    assert code == 2 and "expected an integer (INT), got 'seven'" in err


def test_set_on_an_api_file_types_the_value_by_the_input_it_sets(cli, tmp_path):
    """The same rule as for params: a STRING input keeps `5` as text, an INT input reads 7."""
    path = write(tmp_path, "api.json", json.dumps(API))
    code, _, err = cli("run", str(path), "-q", "--set", "out.name=5", "--set", "a.value=7")
    assert code == 0, err
    assert (tmp_path / "output" / "5.txt").read_text() == "7"
    code, _, err = cli("validate", str(path), "--set", "out.name=[cat:dog:0.5]")
    assert code == 0, err
