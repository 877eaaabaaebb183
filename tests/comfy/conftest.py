import json
from pathlib import Path

import pytest

from latentgraph.nodes.values import UNetModel

DATA = Path(__file__).parent / "data"
# A MODEL with no weights and no scheduler config: sampled with Stable Diffusion's schedule,
# for tests of the schedulers KSampler builds (`comfy.sampler_spec`).
BARE_MODEL = UNetModel(None, "no-weights", "cpu", "fp32")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`latentgraph ARGV` in this process: (exit code, stdout, stderr)."""
    from latentgraph.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def png(path: Path, **chunks: str) -> Path:
    """A small noise picture saved as PNG with the given text chunks (a workflow's carrier)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.effect_noise((32, 32), 40).convert("RGB").save(path, pnginfo=info)
    return path


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
