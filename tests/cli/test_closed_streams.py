"""`latentgraph` started with stdout closed (`>&-`, as some daemons and CI steps start
commands) or with a stderr that cannot be written (`2>/dev/full`): a command that needs no
stdout does its work (exit 0), one whose product is stdout refuses before any work (exit 1,
saying so on stderr); stderr's lines are diagnostics, lost when refused, not the run."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import write

SAVE = """
version: 1
nodes:
  pic: {type: EmptyImage, width: 8, height: 8, color: 123456}
  save: {type: SaveImage, images: pic, filename_prefix: t}
"""


def _latentgraph(tmp_path, *args: str, stdout_closed: bool = False, **streams):
    """`python -m latentgraph.cli ARGS` in `tmp_path`, its cache there; with `stdout_closed`, fd 1
    closed in the child before it starts (as a shell's `>&-`: DEVNULL is an open stdout)."""
    env = {**os.environ, "LATENTGRAPH_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "latentgraph.cli", *args], cwd=tmp_path, env=env,
                          text=True, timeout=300, preexec_fn=(lambda: os.close(1)) if stdout_closed
                          else None, **streams)  # fmt: skip


def test_run_with_stdout_closed_saves_and_exits_0(tmp_path):
    """It exited 70, "AttributeError: 'NoneType' object has no attribute 'flush'" (Python
    sets sys.stdout None), its image saved all the same. The PNG is whole: no file the run
    opened took fd 1."""
    path = write(tmp_path, "wf.yaml", SAVE)
    proc = _latentgraph(tmp_path, "run", str(path), "--output-dir", "out", stdout_closed=True,
                        stderr=subprocess.PIPE)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "saved out/t_00001_.png" in proc.stderr
    assert (tmp_path / "out" / "t_00001_.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_command_printing_its_product_refuses_a_closed_stdout_before_any_work(tmp_path):
    """`run --json >&-` exited 70 (after running), `schema >&-` 70: now the closed-stdout
    case, exit 1 said on stderr, and the run does nothing it could not report."""
    path = write(tmp_path, "wf.yaml", SAVE)
    for args in (["run", str(path), "--output-dir", "out", "--json"], ["schema"]):
        proc = _latentgraph(tmp_path, *args, stdout_closed=True, stderr=subprocess.PIPE)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr == (f"latentgraph: error: stdout was closed before {args[0]} started, "
                               f"and {args[0]} prints its output there: nothing was done\n")  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_run_with_stderr_on_a_full_disk_saves_and_exits_0(tmp_path):
    """`run ... 2>/dev/full` exited 1 without running: its progress lines failed (ENOSPC) and
    stopped it. stderr's lines are diagnostics: lost, and the run goes on."""
    path = write(tmp_path, "wf.yaml", SAVE)
    with open("/dev/full", "w") as full:
        proc = _latentgraph(tmp_path, "run", str(path), "--output-dir", "out", stderr=full,
                            stdout=subprocess.PIPE)  # fmt: skip
    assert proc.returncode == 0
    assert (tmp_path / "out" / "t_00001_.png").is_file()
