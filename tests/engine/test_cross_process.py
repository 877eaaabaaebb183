"""A second process with the same disk directory reuses the first one's outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
sys.path.insert(0, {here!r})
from conftest import build, make_toys
from latentgraph.graph.cache import Cache

toys = make_toys()
g = build({{
    "a": ("Const", {{"value": 3}}),
    "b": ("Inc", {{"x": "@a", "by": {by}}}),
    "o": ("Echo", {{"x": "@b"}}),
}})
r = toys.scheduler(Cache(disk_dir={disk!r})).run(g)
with open({counter!r}, "w") as f:
    json.dump({{"calls": dict(toys.calls), "out": r.outputs["o"][0], "cached": r.cached}}, f)
"""


def run_process(tmp_path: Path, by: int) -> dict:
    counter = tmp_path / "counter.json"
    script = SCRIPT.format(
        here=str(Path(__file__).parent), disk=str(tmp_path / "disk"), by=by, counter=str(counter)
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    return json.loads(counter.read_text())


def test_second_process_hits_the_disk_cache(tmp_path):
    first = run_process(tmp_path, by=1)
    assert first == {"calls": {"a": 1, "b": 1, "o": 1}, "out": 4, "cached": []}
    second = run_process(tmp_path, by=1)
    assert second == {"calls": {}, "out": 4, "cached": ["o"]}
    third = run_process(tmp_path, by=2)  # only what changed runs; `a` comes from disk
    assert third == {"calls": {"b": 1, "o": 1}, "out": 5, "cached": ["a"]}
