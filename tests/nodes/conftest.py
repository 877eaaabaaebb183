"""One tiny model per test session, built in a private cache dir; one torch thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from latentgraph.graph import CancelToken, Context, Settings


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
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
    import torch

    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def tiny_folder(cache_dir, torch_1thread) -> Path:
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    return ensure_tiny_sd()


class Recorder:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.progress: list[tuple[int, int]] = []


@pytest.fixture
def make_ctx(tmp_path):
    """make_ctx(node_type, **settings) -> Context whose warnings/progress are recorded."""

    def make(node_type: str = "Node", node_id: str = "n1", cancel: CancelToken | None = None,
             **settings_kw) -> Context:  # fmt: skip
        settings_kw.setdefault("output_dir", tmp_path / "output")
        settings_kw.setdefault("input_dir", tmp_path / "input")
        settings_kw.setdefault("temp_dir", tmp_path / "temp")
        rec = Recorder()
        ctx = Context(node_id, node_type, Settings(**settings_kw), cancel or CancelToken(),
                      emit_progress=lambda v, t, p: rec.progress.append((v, t)),
                      emit_warning=rec.warnings.append)  # fmt: skip
        ctx.rec = rec
        return ctx

    return make


@pytest.fixture(scope="session")
def tiny(tiny_folder):
    """(unet, clip, vae, scheduler spec) of builtin:tiny-sd, through LoadModel."""
    from latentgraph.nodes import loaders

    ctx = Context("model", "LoadModel", Settings(), CancelToken())
    return loaders.load_model(ctx, "builtin:tiny-sd")
