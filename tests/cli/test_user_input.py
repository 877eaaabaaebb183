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
