"""The Python examples of README.md and docs/python.md run as written, after README's quick
start put the same run in the cache (and its image in output/); `on_event`'s and `cancel`'s
show what they describe."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# README's quick start: the example workflow at its default params, kept in the disk cache.
QUICK_START = 'import latentgraph\nlatentgraph.run("workflows/txt2img.yaml")\n'


def _blocks(doc: str) -> list[str]:
    """The python blocks of a document of the repository."""
    return re.findall(r"^```python\n(.*?)^```$", (ROOT / doc).read_text(), re.S | re.M)


def _example(marker: str) -> str:
    """The one python block of docs/python.md holding `marker`."""
    [block] = [b for b in _blocks("docs/python.md") if marker in b]
    return block


# The examples whose printed lines the tests below check; every other one is run as written.
CHECKED = ("on_event=show", "cancel=token")
EXAMPLES = [(f"{doc}#{n}", block) for doc in ("README.md", "docs/python.md")
            for n, block in enumerate(_blocks(doc), 1)
            if not any(marker in block for marker in CHECKED)]  # fmt: skip


def _run_after_quick_start(example: str, tmp_path: Path) -> str:
    """`example` run by Python in a folder holding the example workflows (its saves land
    there), after the quick start's run: its stdout."""
    (tmp_path / "workflows").symlink_to(ROOT / "workflows", target_is_directory=True)
    out = subprocess.run([sys.executable, "-c", f"{QUICK_START}\n{example}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_every_python_example_is_run_by_a_test():
    assert [name for name, _ in EXAMPLES if name.startswith("README")] == ["README.md#1"]
    assert len(EXAMPLES) + len(CHECKED) == len(_blocks("README.md") + _blocks("docs/python.md"))


@pytest.mark.usefixtures("cache_dir")
@pytest.mark.parametrize(("name", "example"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_a_python_example_runs_as_written(tmp_path, name, example):
    """Only python.md's two examples below were run: README's loaded a ComfyUI_00001_.png no
    checkout has (its saves are output/txt2img_*) and ran a `prompt` it never made."""
    _run_after_quick_start(example, tmp_path)


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
