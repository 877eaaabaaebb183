"""A single-file export of the tiny model, and the model loaded from both forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentgraph.graph import CancelToken, Context, Settings


@pytest.fixture(scope="session")
def tiny_file(tiny_folder, tmp_path_factory) -> Path:
    """The tiny model as one original-layout checkpoint, in a models folder's checkpoints/."""
    from latentgraph.nodes.tiny_model import write_single_file

    root = tmp_path_factory.mktemp("models")
    return write_single_file(root / "checkpoints" / "tiny.safetensors", tiny_folder)


def context(node_type: str = "Node", node_id: str = "n1", **settings_kw) -> Context:
    return Context(node_id, node_type, Settings(**settings_kw), CancelToken())


@pytest.fixture(scope="session")
def builtin(tiny_folder):
    """(unet, clip, vae, scheduler spec) of builtin:tiny-sd, through LoadModel."""
    from latentgraph.nodes import loaders

    return loaders.load_model(context("LoadModel", "builtin"), "builtin:tiny-sd")


@pytest.fixture(scope="session")
def single(tiny_file):
    """The same outputs, through LoadModel on the single-file checkpoint (config: auto)."""
    from latentgraph.nodes import loaders

    return loaders.load_model(context("LoadModel", "single"), str(tiny_file))
