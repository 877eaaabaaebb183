"""SDXL test fixtures: the tiny SDXL base and refiner, built once per session, through LoadModel."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentgraph.graph import CancelToken, Context, Settings

from ..nodes.conftest import make_ctx, tiny  # noqa: F401 - the recording Context, tiny-sd


@pytest.fixture(scope="session")
def sdxl_folder(cache_dir, torch_1thread) -> Path:
    from latentgraph.nodes.tiny_sdxl import ensure_tiny_sdxl

    return ensure_tiny_sdxl()


@pytest.fixture(scope="session")
def refiner_folder(cache_dir, torch_1thread) -> Path:
    from latentgraph.nodes.tiny_sdxl import ensure_tiny_sdxl_refiner

    return ensure_tiny_sdxl_refiner()


def _load(source: str):
    from latentgraph.nodes import loaders

    return loaders.load_model(Context("model", "LoadModel", Settings(), CancelToken()), source)


@pytest.fixture(scope="session")
def sdxl(sdxl_folder):
    """(unet, clip, vae, scheduler spec) of builtin:tiny-sdxl."""
    return _load("builtin:tiny-sdxl")


@pytest.fixture(scope="session")
def refiner(refiner_folder):
    """(unet, clip, vae, scheduler spec) of builtin:tiny-sdxl-refiner."""
    return _load("builtin:tiny-sdxl-refiner")
