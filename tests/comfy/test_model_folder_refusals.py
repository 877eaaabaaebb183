"""What a ComfyUI user bringing a models folder or an extra_model_paths.yaml is told when a
model dropdown refuses a name (POST /prompt's `node_errors`, as a web client is shown the
server's folders): that no models folder has the kind's folder, with the flags that add
one."""

from __future__ import annotations

import pytest

from latentgraph.graph import Settings
from latentgraph.server.prompts import PromptRejected, check_prompt
from latentgraph.wiring import node_registry


@pytest.fixture(scope="module")
def registry():
    return node_registry()


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    return tmp_path


def refused(registry, settings: Settings, class_type: str, inputs: dict) -> str:
    """The message POST /prompt refuses a loader's name with (node 3, a checkpoint, is there
    for a loader's links; an upscale loader is refused without spandrel too)."""
    prompt = {"1": {"class_type": class_type, "inputs": inputs},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
              "3": {"class_type": "CheckpointLoaderSimple",
                    "inputs": {"ckpt_name": "builtin:tiny-sd"}}}  # fmt: skip
    with pytest.raises(PromptRejected) as caught:
        check_prompt(prompt, registry, settings)
    errors = caught.value.body["node_errors"]["1"]["errors"]
    [message] = [e["message"] for e in errors if e["type"] == "value_not_in_list"]
    return message


def test_no_checkpoints_folder_is_said_plainly_with_the_flags_that_add_one(registry, data):
    """It said "looked in no checkpoints/ folder under models", and never named
    --extra-model-paths, the flag a ComfyUI user has an answer for."""
    (data / "models").mkdir()
    settings = Settings(models_dirs=[data / "models"])
    message = refused(
        registry, settings, "CheckpointLoaderSimple", {"ckpt_name": "nope.safetensors"}
    )
    assert "looked in no" not in message
    assert (
        "(the choices are the .safetensors files in checkpoints/ of the models folders; no "
        "models folder has a checkpoints/ folder (models folders: models, models); pass "
        "--extra-models-dir DIR to look in another models folder too (or --extra-model-paths "
        "FILE to read ComfyUI's extra_model_paths.yaml); pickled files"
    ) in message
