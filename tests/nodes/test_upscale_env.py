"""Runs tests/upscale_env (the upscaler through the real spandrel) in `.venv-upscale`.

spandrel imports torchvision, and PyPI has no torchvision for this project's CPU torch, so the
upscaler is verified in a second environment holding a matching torch/torchvision pair
(docs/upscaling.md; `.ci/run` builds it). Without it the test is skipped, saying how to make
it, except in CI (CI=true), where it is required (`preparation.unprepared`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..preparation import UPSCALE_ENV_COMMAND, unprepared

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-upscale" / "bin" / "python"


def test_spandrel_upscaler_tests_pass_in_their_environment(tmp_path):
    if not PYTHON.exists():
        unprepared(f"the upscaler's spandrel environment ({PYTHON}) is not built: "
                   f"{UPSCALE_ENV_COMMAND}")  # fmt: skip
    env = {**os.environ, "LATENTGRAPH_UPSCALE_ENV": "1",
           "LATENTGRAPH_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    proc = subprocess.run([str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/upscale_env"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


def _folder_run_here(ci: str | None) -> subprocess.CompletedProcess:
    """`pytest tests/upscale_env` run with this environment's Python, as a contributor might."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "LATENTGRAPH_UPSCALE_ENV")}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rs", "tests/upscale_env"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.fixture
def without_spandrel():
    from latentgraph.nodes.upscale import UpscalerUnavailable, import_spandrel

    try:
        import_spandrel()
    except UpscalerUnavailable:
        return
    pytest.skip("spandrel imports in this environment: its tests run here")


def test_the_folder_run_without_spandrel_skips_saying_how_to_build_its_environment(
        without_spandrel):  # fmt: skip
    proc = _folder_run_here(ci=None)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # pytest's own verdict: one skip, no ERROR (the skip's reason names the import's error)
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("1 skipped in") and "ERROR" not in proc.stdout, proc.stdout
    assert "pip install 'latentgraph[upscale]'" in proc.stdout, proc.stdout
    assert UPSCALE_ENV_COMMAND in proc.stdout and "tests/nodes/test_upscale_env.py" in proc.stdout


def test_the_folder_run_without_spandrel_fails_under_ci(without_spandrel):
    proc = _folder_run_here(ci="true")
    assert proc.returncode != 0 and "skipped" not in proc.stdout, proc.stdout
    assert "required under CI" in proc.stdout and UPSCALE_ENV_COMMAND in proc.stdout, proc.stdout
