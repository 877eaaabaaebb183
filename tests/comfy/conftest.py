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


@pytest.fixture(autouse=True)
def _restore_node_folders():
    """The CLI and the server set the process-wide models/input folders: put them back."""
    from latentgraph.nodes import input_files, models_dirs

    saved = (list(input_files._configured), list(models_dirs._configured))
    yield
    input_files._configured[:], models_dirs._configured[:] = saved


@pytest.fixture(scope="session")
def one_thread():
    import torch

    torch.set_num_threads(1)
    return torch
