""".ci/run on a machine that cannot take a run: it says why and stops, before it installs
anything, and a failed install of README command 1 ends the run there (a CI run once went
on to a missing `.venv/bin/ruff` and reported only "No such file", exit 127).

The script runs from a copy in a temporary checkout, with fake `df`, `chromium` and `python3`
first on PATH, so nothing is installed for real."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / ".ci" / "run"


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run_ci(tmp_path: Path, free_kb: int, python3: str) -> subprocess.CompletedProcess:
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(SCRIPT, checkout / ".ci" / "run")
    upscale_python = checkout / ".venv-upscale" / "bin" / "python"  # built: not rebuilt
    upscale_python.parent.mkdir(parents=True)
    _tool(upscale_python.parent, "python", "exit 0")
    tools = tmp_path / "tools"
    tools.mkdir()
    _tool(tools, "df", "echo 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
          f"echo '/dev/vda 264000000 1000 {free_kb} 1% /work'")  # fmt: skip
    _tool(tools, "chromium", "exit 0")
    _tool(tools, "python3", python3)
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(checkout / ".ci" / "run")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_too_little_disk_stops_before_installing(tmp_path):
    done = _run_ci(tmp_path, free_kb=5 * 1024 * 1024, python3="touch python3-ran; exit 0")
    assert done.returncode == 1
    assert "needs about 10 GB free on /work, has 5 GB" in done.stderr
    assert not (tmp_path / "checkout" / "python3-ran").exists()


def test_a_failed_install_ends_the_run_there(tmp_path):
    done = _run_ci(tmp_path, free_kb=50 * 1024 * 1024, python3="exit 3")
    assert done.returncode == 1
    assert "README command 1 failed (exit 3)" in done.stderr
    assert "ruff" not in done.stderr  # command 2 never ran
