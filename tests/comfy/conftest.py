import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def classic_editor() -> dict:
    return json.loads((DATA / "classic_editor.json").read_text())


@pytest.fixture
def classic_api() -> dict:
    return json.loads((DATA / "classic_api.json").read_text())


@pytest.fixture
def settings(tmp_path, one_thread):
    """A run's Settings for the model tests: folders in the test's own tmp dir, the CPU (one
    torch thread), the nodes registered. A module needing other folders defines its own."""
    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.graph import Settings

    return Settings(output_dir=tmp_path / "out", input_dir=tmp_path / "in",
                    temp_dir=tmp_path / "tmp", device="cpu")  # fmt: skip


@pytest.fixture(scope="session")
def one_thread():
    import torch

    torch.set_num_threads(1)
    return torch
