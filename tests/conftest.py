"""Fixtures shared by every test folder: a private cache dir and one tiny model per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Hypothesis profiles. "ci" (the default) is derandomized and keeps no example database, so a
# clean tree gives the same result on every run; "explore" draws fresh random examples, many
# more of them, and saves failures under .hypothesis/. Select with LATENTGRAPH_HYPOTHESIS
# (docs/testing.md); a failure found while exploring becomes an @example on its test.
settings.register_profile("ci", derandomize=True, database=None, max_examples=60, deadline=None,
                          print_blob=True)  # fmt: skip
settings.register_profile("explore", derandomize=False, max_examples=2000, deadline=None,
                          print_blob=True)  # fmt: skip
settings.load_profile(os.environ.get("LATENTGRAPH_HYPOTHESIS", "ci"))

# tests/upscale_env runs in its own environment, where spandrel imports (docs/upscaling.md):
# tests/nodes/test_upscale_env.py starts it there with this variable set.
collect_ignore = [] if os.environ.get("LATENTGRAPH_UPSCALE_ENV") else ["upscale_env"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """LATENTGRAPH_CACHE_DIR for the session, so tests never touch the user's cache."""
    path = tmp_path_factory.mktemp("lgcache")
    # A mutation run (tests/mutation.py) starts one session per mutant: the tiny models it
    # builds are kept in LATENTGRAPH_TEST_MODELS across sessions, not rebuilt (seconds) each time.
    models = os.environ.get("LATENTGRAPH_TEST_MODELS")
    if models:
        Path(models).mkdir(parents=True, exist_ok=True)
        (path / "models").symlink_to(Path(models).resolve(), target_is_directory=True)
    old = os.environ.get("LATENTGRAPH_CACHE_DIR")
    os.environ["LATENTGRAPH_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LATENTGRAPH_CACHE_DIR", None)
    else:
        os.environ["LATENTGRAPH_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def torch_1thread():
    """One torch thread: results are bit-identical only at a fixed thread count."""
    import torch

    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def tiny_folder(cache_dir, torch_1thread) -> Path:
    """The built-in tiny model, built once per session."""
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    return ensure_tiny_sd()
