"""ControlNet fixtures: the tiny control models written into a models folder once per session."""

from __future__ import annotations

import pytest

from ..nodes.conftest import make_ctx, tiny  # noqa: F401 - shared node fixtures


@pytest.fixture(scope="session")
def control_root(tmp_path_factory, tiny_folder):
    """A models root whose controlnet/ holds every tiny control file (tiny_control.py)."""
    from latentgraph.nodes.tiny_control import write_controlnet_folder

    root = tmp_path_factory.mktemp("models")
    write_controlnet_folder(root)
    return root
