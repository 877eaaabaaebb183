"""Runs tests/upscale_env (the upscaler through the real spandrel) in `.venv-upscale`.

spandrel imports torchvision, and PyPI has no torchvision for this project's CPU torch, so the
upscaler is verified in a second environment holding a matching torch/torchvision pair
(docs/upscaling.md; `.ci/run` builds it). Without it the test is skipped, saying how to make
it, except in CI (CI=true), where it is required."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-upscale" / "bin" / "python"
MAKE_IT = ("python3 -m venv .venv-upscale && .venv-upscale/bin/pip install -q torch==2.14.1 "
           "torchvision==0.29.1 && .venv-upscale/bin/pip install -q -e '.[test,upscale]'")  # fmt: skip


def test_spandrel_upscaler_tests_pass_in_their_environment(tmp_path):
    if not PYTHON.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PYTHON} is missing; .ci/run builds it: {MAKE_IT}")
        pytest.skip(f"the upscaler's spandrel environment is not built: {MAKE_IT}")
    env = {**os.environ, "LATENTGRAPH_UPSCALE_ENV": "1",
           "LATENTGRAPH_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    proc = subprocess.run([str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/upscale_env"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
