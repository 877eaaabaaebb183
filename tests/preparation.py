"""What some tests need the machine prepared with beyond `.venv` (Debian's chromium for the
editor's browser tests, `.venv-upscale` for the upscaler's spandrel tests; `.ci/run` prepares
both), and README's one rule for when it is missing: the test skips, saying how to prepare it,
except under CI (`CI=true`, set by .ci/run), where it fails: there nothing is skipped."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# How `.venv-upscale` is built (docs/upscaling.md; .ci/run builds it the same way).
UPSCALE_ENV_COMMAND = ("python3 -m venv .venv-upscale && .venv-upscale/bin/pip install -q "
                       "torch==2.14.1 torchvision==0.29.1 && .venv-upscale/bin/pip install -q "
                       "-e '.[test,upscale]'")  # fmt: skip


def unprepared(message: str) -> NoReturn:
    """Skip the calling test (or collector) for want of what `message` says to prepare; under
    CI, fail with it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (required under CI)")
    pytest.skip(message)
