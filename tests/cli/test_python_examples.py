"""docs/python.md's `on_event` and `cancel` examples show what they describe when a reader
runs them as written, after README's quick start put the same run in the cache."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# README's quick start: the example workflow at its default params, kept in the disk cache.
QUICK_START = 'import latentgraph\nlatentgraph.run("workflows/txt2img.yaml")\n'


def _example(marker: str) -> str:
    """The one python block of docs/python.md holding `marker`."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "python.md").read_text(), re.S)
    [block] = [b for b in blocks if marker in b]
    return block


def _run_after_quick_start(example: str, tmp_path: Path) -> str:
    """`example` run by Python in a folder holding the example workflows (its saves land
    there), after the quick start's run: its stdout."""
    (tmp_path / "workflows").symlink_to(ROOT / "workflows", target_is_directory=True)
    out = subprocess.run([sys.executable, "-c", f"{QUICK_START}\n{example}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.usefixtures("cache_dir")
def test_the_on_event_example_prints_the_samplers_progress(tmp_path):
    """It ran the quick start's run, all cached: it printed nothing."""
    printed = _run_after_quick_start(_example("on_event=show"), tmp_path).splitlines()
    assert printed[0] == "denoise: 1/20" and printed[-1] == "denoise: 20/20", printed


@pytest.mark.usefixtures("cache_dir")
def test_the_cancel_example_stops_the_run_and_the_next_goes_on_from_there(tmp_path):
    """It ran the quick start's run, all cached, with a 5 s timer: nothing to stop."""
    printed = _run_after_quick_start(_example("cancel=token"), tmp_path).splitlines()
    assert printed == ["interrupted denoise",
                       "success ['model', 'positive', 'negative', 'noise', 'sampler']"]  # fmt: skip
