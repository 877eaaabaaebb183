"""After `latentgraph tiny-model --addons models`, a name not found says where it was looked
for and how to point at another models folder (--models-dir), since the default models folder
is in the user data folder, not ./models."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentgraph.cli import main

WORKFLOWS = Path(__file__).parents[2] / "workflows"


@pytest.fixture
def addons(tmp_path, monkeypatch, capsys):
    """The tester's scratch folder: `tiny-model --addons models` run in it, the user data
    folder (and so the default models folder) empty."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    assert main(["tiny-model", "--addons", "models"]) == 0
    capsys.readouterr()
    return tmp_path


def latentgraph(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def test_a_name_not_found_says_how_to_point_at_a_models_folder(addons, capsys):
    """After `tiny-model --addons models`, `--set lora=tiny-lora-kohya.safetensors` said only
    'looked in no loras/ folder under ~/.local/share/latentgraph/models'."""
    default = addons / "data" / "models"
    lora = "lora=tiny-lora-kohya.safetensors"
    validate = ["validate", str(WORKFLOWS / "lora.yaml"), "--set", lora]
    code, err = latentgraph(capsys, *validate)
    assert code == 2
    assert "input 'lora': loras model 'tiny-lora-kohya.safetensors' not found (looked in no " \
        f"loras/ folder under {default}; pass --models-dir DIR to look in another models " \
        "folder)" in err  # fmt: skip
    assert latentgraph(capsys, *validate, "--models-dir", "models") == (0, "")
    code, err = latentgraph(capsys, "validate", str(WORKFLOWS / "txt2img.yaml"),
                            "--set", "model=sd15.safetensors")  # fmt: skip
    assert code == 2
    assert "input 'source': model file not found: 'sd15.safetensors' (looked at: " \
        f"sd15.safetensors; for a name in no checkpoints/ or diffusers/ folder under {default}; " \
        "pass --models-dir DIR to look in another models folder)" in err  # fmt: skip
