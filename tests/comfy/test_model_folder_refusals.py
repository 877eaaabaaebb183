"""What a ComfyUI user bringing a models folder or an extra_model_paths.yaml is told when a
model dropdown refuses a name (POST /prompt's `node_errors`, as a web client is shown the
server's folders): which folders were searched, named apart; that no models folder has the
kind's folder, with the flags that add one; and a pickled file that is there, refused as such."""

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
        "models folder has a checkpoints/ folder (models folders: models, models-2); pass "
        "--extra-models-dir DIR to look in another models folder too (or --extra-model-paths "
        "FILE to read ComfyUI's extra_model_paths.yaml); pickled files"
    ) in message


def test_the_folders_of_an_extra_model_paths_file_are_named_by_their_entries(registry, data):
    """An a111 section and a comfyui one both naming checkpoints were shown to the client as
    "looked in models/checkpoints, models/checkpoints"; a web client is not shown the server's
    paths, so each is named by its entry, as the CLI's warnings name it, and an entry naming
    several folders names them apart."""
    from latentgraph.nodes.extra_model_paths import read_model_paths

    for folder in ("sdwebui/models/Stable-diffusion", "sdwebui/models/Lora",
                   "sdwebui/models/LyCORIS", "comfy/models/checkpoints"):  # fmt: skip
        (data / folder).mkdir(parents=True)
    (data / "extra_model_paths.yaml").write_text(
        "a111:\n  base_path: sdwebui/\n  checkpoints: models/Stable-diffusion\n"
        "  loras: |\n    models/Lora\n    models/LyCORIS\n"
        "comfyui:\n  base_path: comfy/\n  checkpoints: models/checkpoints/\n"
    )
    found = read_model_paths(data / "extra_model_paths.yaml")
    settings = Settings(models_dirs=[*found.first, *found.others])
    message = refused(
        registry, settings, "CheckpointLoaderSimple", {"ckpt_name": "nope.safetensors"}
    )
    assert "; looked in a111.checkpoints, comfyui.checkpoints; " in message, message
    message = refused(registry, settings, "LoraLoader", {
        "model": ["3", 0], "clip": ["3", 1], "lora_name": "nope.safetensors",
        "strength_model": 1.0, "strength_clip": 1.0})  # fmt: skip
    assert "; looked in a111.loras, a111.loras-2; " in message, message
    assert str(data) not in message


@pytest.mark.parametrize(("class_type", "input_name", "kind", "name"), [
    ("VAELoader", "vae_name", "vae", "x.ckpt"),
    ("UpscaleModelLoader", "model_name", "upscale_models", "4x-UltraSharp.pth"),
    ("ControlNetLoader", "control_net_name", "controlnet", "sub/canny.pt"),
])  # fmt: skip
def test_a_pickled_file_in_the_folder_is_refused_as_a_pickle(
    registry, data, class_type, input_name, kind, name
):
    """A pickled file that is in the folder got only the generic "is not one of: ... pickled
    files are never listed": it is named as the pickle it is, as `embedding:NAME` names one;
    one that is not there is still told where the choices come from."""
    (data / "models" / kind / name).parent.mkdir(parents=True)
    (data / "models" / kind / name).write_bytes(b"not unpickled")
    settings = Settings(models_dirs=[data / "models"])
    message = refused(registry, settings, class_type, {input_name: name})
    assert message.endswith(
        f"('{name}' is a pickle-based file, which can run code when loaded; it is refused: "
        "convert it to .safetensors (or use its .safetensors version))"
    ), message
    other = name.replace(".", "-other.")
    message = refused(registry, settings, class_type, {input_name: other})
    assert f"the choices are the .safetensors files in {kind}/ of the models folders" in message
