"""Fixtures shared by every test folder: a private cache dir and one tiny model per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """LATENTGRAPH_CACHE_DIR for the session, so tests never touch the user's cache."""
    path = tmp_path_factory.mktemp("lgcache")
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
