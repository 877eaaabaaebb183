"""The server's rule for model paths in POST /prompt, kept when LoadLoRA and LoadControlNet
came to take a path from the working directory: ComfyUI's loaders (LoraLoader,
ControlNetLoader) take only names their models folders list, so a path out of the folders,
relative or absolute, is refused with a 400 naming the input; our own loaders take a path of the
server's file system by design (docs/reliability.md), a relative one as LoadModel's source and
as an absolute one."""

from __future__ import annotations

import shutil

import pytest

from ..server.conftest import RunningServer, free_port

# ComfyUI loader -> (its models folder, a file the folder lists)
LISTED = {"LoraLoader": ("loras", "tiny-lora-kohya.safetensors"),
          "ControlNetLoader": ("controlnet", "tiny-controlnet.safetensors")}  # fmt: skip


@pytest.fixture
def server(tmp_path, monkeypatch, one_thread):
    from latentgraph.nodes.tiny_addons import write_models_folder
    from latentgraph.nodes.tiny_control import write_controlnet_folder
    from latentgraph.server.config import ServerConfig
    from latentgraph.wiring import worker_setup

    write_models_folder(tmp_path / "models")
    write_controlnet_folder(tmp_path / "models")
    for kind, name in LISTED.values():  # the same files out of the models folders
        shutil.copy(tmp_path / "models" / kind / name, tmp_path / f"{kind}.safetensors")
    monkeypatch.chdir(tmp_path)  # the server's working folder: where relative paths start
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    config = ServerConfig(data_dir=tmp_path / "data", port=free_port(), disk_cache=False,
                          editor=False, models_dirs=[tmp_path / "models"])  # fmt: skip
    running = RunningServer(config, worker_setup()).start()
    yield running
    running.stop()


def refusal(server: RunningServer, prompt: dict) -> tuple[int, list[tuple[str, str]]]:
    """The answer's status and its (input, message) node errors."""
    r = server.http.post("/prompt", json={"prompt": prompt})
    return r.status_code, [(e["extra_info"].get("input_name"), e["message"])
                           for n in r.json().get("node_errors", {}).values() for e in n["errors"]]  # fmt: skip


def loader(class_type: str, inputs: dict) -> dict:
    """A checkpoint, the loader, and an output using what it gives."""
    if class_type == "ControlNetLoader":
        return {"2": {"class_type": class_type, "inputs": inputs},
                "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}  # fmt: skip
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
            "2": {"class_type": class_type, "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                       "strength_model": 1.0, "strength_clip": 1.0,
                                                       **inputs}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}}  # fmt: skip


def test_comfy_loaders_refuse_paths_out_of_the_models_folders_and_ours_take_them(server, tmp_path):
    inputs = {"LoraLoader": "lora_name", "ControlNetLoader": "control_net_name"}
    for class_type, (kind, listed) in LISTED.items():
        name, file = inputs[class_type], f"{kind}.safetensors"
        for value in (file, str(tmp_path / file), f"models/../{file}"):
            code, errors = refusal(server, loader(class_type, {name: value}))
            assert code == 400, (class_type, value)
            assert [input_name for input_name, _ in errors] == [name], errors
            assert "is not one of" in errors[0][1], errors
        assert refusal(server, loader(class_type, {name: listed})) == (200, [])
    lora = {"1": {"class_type": "LoadModel", "inputs": {"source": "builtin:tiny-sd"}},
            "2": {"class_type": "LoadLoRA", "inputs": {"unet": ["1", 0], "clip": ["1", 1],
                                                       "lora": "loras.safetensors"}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}}  # fmt: skip
    assert refusal(server, lora) == (200, [])
