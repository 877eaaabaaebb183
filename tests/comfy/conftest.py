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


@pytest.fixture(scope="session")
def one_thread():
    import torch

    torch.set_num_threads(1)
    return torch
