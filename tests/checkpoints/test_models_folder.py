"""The models-folder flow: `latentgraph tiny-model --single-file models/checkpoints/x`, then
ComfyUI's Load Checkpoint finds and loads it by name (nodes directly, and `latentgraph run`)."""

from __future__ import annotations

import json

import pytest

from latentgraph.cli import main
from latentgraph.nodes import models_dirs
from latentgraph.nodes.values import NodeInputError

from .conftest import context


@pytest.fixture
def models(tmp_path, tiny_folder, capsys):
    root = tmp_path / "models"
    assert (
        main(["tiny-model", "--single-file", str(root / "checkpoints" / "tiny.safetensors")]) == 0
    )
    assert "tiny.safetensors" in capsys.readouterr().out
    return root


def test_checkpoint_loader_simple_loads_the_file_by_name(models, single):
    import torch

    from latentgraph.nodes.comfy import checkpoint_loader

    assert models_dirs.list_files("checkpoints", [models]) == ["tiny.safetensors"]
    ctx = context("CheckpointLoaderSimple", "4", models_dirs=[models])
    unet, clip, vae = checkpoint_loader(ctx, "tiny.safetensors")
    ref = single[0].unet.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in unet.unet.state_dict().items())
    assert unet.scheduler_config["_class_name"] == "DDIMScheduler"


def test_pickle_name_is_refused_by_checkpoint_loader(models):
    from latentgraph.nodes.comfy import checkpoint_loader

    (models / "checkpoints" / "old.ckpt").write_bytes(b"not opened")
    ctx = context("CheckpointLoaderSimple", "4", models_dirs=[models])
    with pytest.raises(NodeInputError, match=r"'ckpt_name'.*pickle"):
        checkpoint_loader(ctx, "old.ckpt")


def test_latentgraph_run_with_models_dir(models, tmp_path):
    from PIL import Image

    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler",
              "inputs": {"seed": 1, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                         "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                         "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "fromfile",
                                                    "images": ["8", 0]}},
    }  # fmt: skip
    path = tmp_path / "classic_api.json"
    path.write_text(json.dumps(prompt), encoding="utf-8")
    out = tmp_path / "output"
    code = main(["run", str(path), "--models-dir", str(models), "--output-dir", str(out),
                 "--input-dir", str(tmp_path / "input"), "--device", "cpu", "--no-cache", "-q"])  # fmt: skip
    assert code == 0
    [image] = out.glob("fromfile_*.png")
    with Image.open(image) as img:
        assert img.size == (64, 64)  # what the graph asks for: the tiny VAE scales by 8, as SD


def test_tiny_model_addons_give_loras_and_embeddings_a_run_finds(tmp_path, tiny_folder, capsys):
    """`tiny-model --addons` then `run` of the ComfyUI LoRA graph (two LoraLoaders, prompt
    weights, an embedding) from tests/comfy/data, as a user would from a fresh clone."""
    from pathlib import Path

    root = tmp_path / "models"
    assert main(["tiny-model", "--addons", str(root)]) == 0
    assert "tiny-lora-kohya.safetensors" in capsys.readouterr().out
    source = Path(__file__).resolve().parents[1] / "comfy" / "data" / "lora_api.json"
    out = tmp_path / "output"

    def run(path: Path) -> int:
        return main(["run", str(path), "--models-dir", str(root), "--output-dir", str(out),
                     "--input-dir", str(tmp_path / "input"), "--device", "cpu", "--no-cache",
                     "-q"])  # fmt: skip

    assert run(source) == 0
    assert len(list(out.glob("lora_*.png"))) == 1
    prompt = json.loads(source.read_text(encoding="utf-8"))
    prompt["7"]["inputs"]["text"] = "embedding:not-there"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(prompt), encoding="utf-8")
    assert run(broken) == 2
    assert "embedding 'not-there' not found" in capsys.readouterr().err


def test_load_model_finds_names_in_checkpoints_and_keeps_paths_working(tiny_file, tiny_folder,
                                                                      tmp_path, monkeypatch):  # fmt: skip
    """LoadModel reads a name in the models folders' checkpoints/ (a file, or a diffusers
    folder; diffusers/ too), as CheckpointLoaderSimple and the LoRA loader do; paths from the
    current directory, from a models root, and absolute ones still load."""
    import shutil
    from pathlib import Path

    from latentgraph.nodes import loaders

    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    tiny_file = Path(shutil.copy(tiny_file, root / "checkpoints" / "tiny.safetensors"))
    shutil.copytree(tiny_folder, root / "diffusers" / "tiny-folder")
    monkeypatch.chdir(tmp_path)
    expected = str(tiny_file.resolve())
    for text in ("tiny.safetensors", "checkpoints/tiny.safetensors", str(tiny_file),
                 f"{root.name}/checkpoints/tiny.safetensors"):  # fmt: skip
        source = loaders.find_source(text, [root])
        assert (source.kind, source.location) == ("single_file", expected), text
    folder = loaders.find_source("tiny-folder/", [root])
    assert (folder.kind, folder.location) == ("folder", str((root / "diffusers" / "tiny-folder")
                                                             .resolve()))  # fmt: skip
    with pytest.raises(ValueError, match=r"model file not found: 'nope.safetensors' \(looked at: "
                       r"nope.safetensors, .*; for a name, looked in .*checkpoints"):  # fmt: skip
        loaders.find_source("nope.safetensors", [root])
    # the dropdown of LoadVAE's own folder: vae/ (a VAE file there by its name)
    (root / "vae").mkdir()
    shutil.copy(tiny_file, root / "vae" / "full.safetensors")
    assert loaders.find_source("full.safetensors", [root], loaders.VAE_FOLDERS).kind == \
        "single_file"  # fmt: skip
    with pytest.raises(ValueError, match="model file not found"):
        loaders.find_source("full.safetensors", [root])  # not a checkpoints/ name
    unet, *_ = loaders.load_model(context("LoadModel", "m", models_dirs=[root]), "tiny.safetensors")
    assert unet.unet.config.sample_size > 0


def test_a_lora_run_on_a_single_file_checkpoint_writes_nothing_to_stderr(tiny_file, tmp_path):
    """In a fresh process (the libraries warn once per process): no torchvision advice
    (installing it breaks the CPU torch build, docs/upscaling.md) and no 'should be kept in
    float32: []' warning on loading a single-file checkpoint; only our own output."""
    import subprocess
    import sys
    from pathlib import Path

    workflow = Path(__file__).resolve().parents[2] / "workflows" / "lora.yaml"
    run = ["run", str(workflow), "--models-dir", str(tiny_file.parent.parent), "--set",
           "model=tiny.safetensors", "--set", "steps=1", "--set", "width=64", "--set",
           "height=64", "--output-dir", str(tmp_path), "--device", "cpu", "-q"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", "import sys; from latentgraph.cli import main; "
                           f"raise SystemExit(main({run!r}))"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "torchvision" not in proc.stderr and "float32" not in proc.stderr
    assert proc.stderr == ""
