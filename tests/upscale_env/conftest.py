"""tests/upscale_env runs where spandrel imports: `.venv-upscale`, where
tests/nodes/test_upscale_env.py runs it (docs/testing.md). Run from an environment where
spandrel does not import (`.venv`: its CPU torch has no matching torchvision), each test file
is skipped whole, before its imports fail, saying how to build `.venv-upscale`; under CI it
fails instead (`preparation.unprepared`, the browser tests' rule)."""

from __future__ import annotations

import functools

import pytest

from latentgraph.nodes.upscale import UpscalerUnavailable, import_spandrel

from ..preparation import UPSCALE_ENV_COMMAND, unprepared


@functools.cache
def _spandrel_problem() -> str | None:
    """Why spandrel cannot be used in this environment (not installed, or its torchvision does
    not match torch), or None when it can."""
    try:
        import_spandrel()
    except UpscalerUnavailable as exc:
        return str(exc)
    return None


class _WithoutSpandrel(pytest.Module):
    """A test file of this folder where spandrel does not import: not imported; one test in
    its place says why (skipped, failed under CI), so the run ends as a skip (exit 0), not as
    "no tests collected" (exit 5)."""

    def collect(self):
        return [_SpandrelNeeded.from_parent(self, name="spandrel_needed")]


class _SpandrelNeeded(pytest.Item):
    """Stands in for a test file of this folder, saying what it needs."""

    def runtest(self) -> None:
        unprepared(f"{_spandrel_problem()}; these tests run in .venv-upscale: build it "
                   f"({UPSCALE_ENV_COMMAND}), then `.venv/bin/pytest -q "
                   "tests/nodes/test_upscale_env.py` runs them there")  # fmt: skip

    def reportinfo(self):
        return self.path, None, self.name


def pytest_pycollect_makemodule(module_path, parent):
    if _spandrel_problem() is None:
        return None  # pytest's own Module
    return _WithoutSpandrel.from_parent(parent, path=module_path)
