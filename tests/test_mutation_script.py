"""`python -m tests.mutation` (docs/testing.md) without mutmut installed: it says to install
the mutation extra and exits 2, before it copies anything (it printed "No module named mutmut",
then "no mutant tested {}", and exited 0)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mutmut") is not None, reason="mutmut is installed")
def test_mutation_run_without_mutmut_says_to_install_the_extra():
    result = subprocess.run([sys.executable, "-m", "tests.mutation", "graph/cache.py"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2, result
    assert "mutmut is not installed: install the mutation extra" in result.stderr
    assert "pip install -e '.[test,mutation]'" in result.stderr
    assert "no mutant tested" not in result.stdout
