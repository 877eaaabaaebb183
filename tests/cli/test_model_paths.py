"""LoadLoRA and LoadControlNet take a path from the working directory as LoadModel does (and as
they take an absolute one), after `latentgraph tiny-model --addons models`; a name not found
says where it was looked for and how to point at another models folder (--models-dir), since
the default models folder is in the user data folder, not ./models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentgraph.cli import main

WORKFLOWS = Path(__file__).parents[2] / "workflows"
SMALL = ["--set", "steps=1", "--set", "width=64", "--set", "height=64"]


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


def test_a_relative_lora_path_runs_as_the_same_file_by_name_does(addons, capsys):
    """`--set lora=models/loras/x.safetensors` was refused as 'not inside the models folders'
    loras/' (the default models folder is not ./models), though LoadModel takes such a path."""
    run = ["run", str(WORKFLOWS / "lora.yaml"), *SMALL, "--output-dir", "out",
           "--cache-dir", "cache"]  # fmt: skip
    code, err = latentgraph(capsys, *run, "--set", "lora=models/loras/tiny-lora-kohya.safetensors",
                            "--set", "lora2=./models/loras/tiny-lora-diffusers.safetensors")  # fmt: skip
    assert code == 0, err
    code, err = latentgraph(capsys, *run, "--models-dir", "models",
                            "--set", "lora=tiny-lora-kohya.safetensors",
                            "--set", "lora2=tiny-lora-diffusers.safetensors")  # fmt: skip
    assert code == 0, err
    by_path, by_name = sorted((addons / "out").glob("lora_*.png"))
    assert np.array_equal(np.asarray(Image.open(by_path)), np.asarray(Image.open(by_name)))
    control = ["validate", str(WORKFLOWS / "controlnet.yaml")]
    for value in ("models/controlnet/tiny-controlnet.safetensors",
                  "models/controlnet/tiny-controlnet-diffusers"):  # fmt: skip
        assert latentgraph(capsys, *control, "--set", f"controlnet={value}")[0] == 0, value


def test_a_relative_path_to_a_missing_file_says_it_does_not_exist(addons, capsys):
    validate = ["validate", str(WORKFLOWS / "lora.yaml")]
    code, err = latentgraph(capsys, *validate, "--set", "lora=models/loras/gone.safetensors")
    assert code == 2 and "Traceback" not in err
    assert f"input 'lora': LoRA 'models/loras/gone.safetensors' not found (no " \
        f"models folder has a loras/ folder (models folders: {addons / 'data' / 'models'}); " \
        "pass --models-dir DIR to look in another models folder (or --extra-model-paths FILE " \
        "to read ComfyUI's extra_model_paths.yaml)), and as a path, " \
        f"{addons}/models/loras/gone.safetensors does not exist" in err  # fmt: skip
    code, err = latentgraph(capsys, *validate, "--set", "lora=../gone.safetensors")
    assert code == 2
    assert f"input 'lora': {addons}/../gone.safetensors does not exist (expected a " \
        ".safetensors file)" in err  # fmt: skip
    code, err = latentgraph(capsys, "validate", str(WORKFLOWS / "controlnet.yaml"),
                            "--set", "controlnet=models/controlnet/gone")  # fmt: skip
    assert code == 2
    assert f"and as a path, {addons}/models/controlnet/gone does not exist" in err


def test_a_name_not_found_says_how_to_point_at_a_models_folder(addons, capsys):
    """After `tiny-model --addons models`, `--set lora=tiny-lora-kohya.safetensors` said only
    'looked in no loras/ folder under ~/.local/share/latentgraph/models' (now: no models
    folder has a loras/ folder, naming them, and the flags that add one)."""
    default = addons / "data" / "models"
    lora = "lora=tiny-lora-kohya.safetensors"
    validate = ["validate", str(WORKFLOWS / "lora.yaml"), "--set", lora]
    code, err = latentgraph(capsys, *validate)
    assert code == 2
    assert "input 'lora': LoRA 'tiny-lora-kohya.safetensors' not found (no models " \
        f"folder has a loras/ folder (models folders: {default}); pass --models-dir DIR to " \
        "look in another models folder (or --extra-model-paths FILE to read ComfyUI's " \
        "extra_model_paths.yaml))" in err  # fmt: skip
    assert latentgraph(capsys, *validate, "--models-dir", "models") == (0, "")
    code, err = latentgraph(capsys, "validate", str(WORKFLOWS / "txt2img.yaml"),
                            "--set", "model=sd15.safetensors")  # fmt: skip
    assert code == 2
    assert "input 'source': model file not found: 'sd15.safetensors' (looked at: " \
        "sd15.safetensors; for a name, no models folder has a checkpoints/ or diffusers/ " \
        f"folder (models folders: {default}); pass --models-dir DIR to look in another " \
        "models folder (or --extra-model-paths FILE to read ComfyUI's " \
        "extra_model_paths.yaml))" in err  # fmt: skip


@pytest.mark.parametrize(("workflow", "param", "kind"), [
    ("lora.yaml", "lora", "a .safetensors file"),
    ("controlnet.yaml", "controlnet", "a .safetensors file or a diffusers folder"),
])  # fmt: skip
def test_a_name_not_found_says_a_relative_path_works_too(addons, capsys, workflow, param, kind):
    """The hint said 'or give an absolute path', though a path from the working directory
    works as well (models_dirs.weights_path, one rule for both loaders)."""
    code, err = latentgraph(capsys, "validate", str(WORKFLOWS / workflow), "--models-dir",
                            "models", "--set", f"{param}=nowhere.safetensors")  # fmt: skip
    assert code == 2 and "Traceback" not in err
    assert f"or give a path to {kind} (absolute, or from the working directory)" in err, err


def test_a_lora_named_without_its_extension_is_pointed_at_the_file(addons, capsys):
    """`--set lora=tiny-lora-kohya` (no .safetensors) said only 'not found': the file with
    the extension is named; a misspelled name gets a "did you mean" among the listed files."""
    validate = ["validate", str(WORKFLOWS / "lora.yaml"), "--models-dir", "models"]
    code, err = latentgraph(capsys, *validate, "--set", "lora=tiny-lora-kohya")
    assert code == 2
    assert "LoRA 'tiny-lora-kohya' not found; did you mean " \
        "'tiny-lora-kohya.safetensors', with its extension? (looked in " in err  # fmt: skip
    code, err = latentgraph(capsys, *validate, "--set", "lora=tiny-lora-koya.safetensors")
    assert code == 2
    assert "not found; did you mean 'tiny-lora-kohya.safetensors' or " in err
