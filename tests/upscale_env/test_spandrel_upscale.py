"""The upscaler through the real spandrel, in an environment where it imports.

These tests run under `.venv-upscale` (torch with the torchvision built for it, and the
`upscale` extra), driven by tests/nodes/test_upscale_env.py: the main environment's CPU torch
has no matching torchvision on PyPI (docs/upscaling.md). Nothing here is a stand-in: the
models are spandrel's own ESRGAN class, detected and loaded by spandrel from .safetensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spandrel
import torch
from PIL import Image

from latentgraph.graph import CancelToken, Context, Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.workflow import load_workflow
from latentgraph.nodes import upscale
from latentgraph.nodes.tiny_addons import save_atomic
from latentgraph.nodes.tiny_upscaler import BUILTIN_UPSCALER, tiny_esrgan_tensors
from latentgraph.nodes.values import NodeInputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def registry(cache_dir):
    import latentgraph.nodes  # noqa: F401 - registers the built-in and ComfyUI nodes

    torch.set_num_threads(1)
    return default_registry


@pytest.fixture
def settings(tmp_path) -> Settings:
    models = tmp_path / "models"
    (models / "upscale_models").mkdir(parents=True)
    return Settings(output_dir=tmp_path / "out", input_dir=tmp_path / "in",
                    temp_dir=tmp_path / "tmp", device="cpu", models_dirs=[models])  # fmt: skip


def _ctx(settings: Settings, node_type: str = "UpscaleModelLoader") -> Context:
    return Context("up", node_type, settings, CancelToken())


def _image(h: int = 24, w: int = 40) -> torch.Tensor:
    return torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(3))


def _direct(handle, image: torch.Tensor) -> torch.Tensor:
    """The model run by spandrel on the whole image at once, in the node's layout."""
    with torch.no_grad():
        return handle.model(image.movedim(-1, 1)).movedim(1, -1).clamp(0, 1)


def test_builtin_tiny_esrgan_is_recognised_by_spandrel_as_a_2x_esrgan(settings):
    handle = upscale.upscale_model_loader(_ctx(settings), BUILTIN_UPSCALER)
    assert isinstance(handle.model, spandrel.ImageModelDescriptor)
    assert handle.model.architecture.name == "ESRGAN"
    assert handle.scale == 2 and handle.model.scale == 2


def test_a_user_file_in_upscale_models_is_listed_and_loaded(settings):
    folder = settings.models_dirs[0] / "upscale_models"
    save_atomic(tiny_esrgan_tensors(spandrel, seed=7), folder / "my-2x.safetensors")
    names = upscale._model_names(settings)
    assert names == [BUILTIN_UPSCALER, "my-2x.safetensors"]
    mine = upscale.upscale_model_loader(_ctx(settings), "my-2x.safetensors")
    builtin = upscale.upscale_model_loader(_ctx(settings), BUILTIN_UPSCALER)
    image = _image()
    assert not torch.equal(_direct(mine, image), _direct(builtin, image))  # other weights


def test_a_state_dict_spandrel_does_not_know_is_refused_naming_the_input(settings):
    folder = settings.models_dirs[0] / "upscale_models"
    save_atomic({"something.weight": torch.zeros(3, 3)}, folder / "mystery.safetensors")
    with pytest.raises(NodeInputError, match="model_name"):
        upscale.upscale_model_loader(_ctx(settings), "mystery.safetensors")


def test_one_tile_equals_spandrel_on_the_whole_image(settings):
    handle = upscale.upscale_model_loader(_ctx(settings), BUILTIN_UPSCALER)
    image = _image()
    out = upscale.image_upscale_with_model(_ctx(settings, "ImageUpscaleWithModel"), handle,
                                              image, tile_size=64, overlap=8)  # fmt: skip
    assert out.shape == (1, 48, 80, 3)
    assert torch.equal(out, _direct(handle, image))


def test_tiles_blend_close_to_the_whole_image(settings):
    handle = upscale.upscale_model_loader(_ctx(settings), BUILTIN_UPSCALER)
    image = _image(40, 56)
    whole = _direct(handle, image)
    ctx = _ctx(settings, "ImageUpscaleWithModel")
    tiled = upscale.image_upscale_with_model(ctx, handle, image, tile_size=24, overlap=8)
    assert tiled.shape == whole.shape
    # Inside a tile the network sees the same pixels; only near tile borders does its receptive
    # field differ, and the ramps blend those (measured: mean 0.0002, max 0.009). The whole
    # image shifted by 4 pixels already differs from itself by 0.01 on average.
    assert (tiled - whole).abs().mean() < 0.001
    assert (tiled - whole).abs().max() < 0.05


def _png(settings: Settings, result, node: str) -> np.ndarray:
    record = result.ui[node]["images"][0]
    path = settings.output_dir / record["subfolder"] / record["filename"]
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_the_upscale_workflow_doubles_the_generated_image(settings, tiny_folder):
    small = {"width": "32", "height": "32", "steps": "2"}
    workflow = load_workflow(ROOT / "workflows" / "upscale.yaml", overrides=small)
    result = Scheduler(settings=settings).run(workflow.graph)
    assert result.ok, result.failures
    assert _png(settings, result, "save").shape == (64, 64, 3)


def test_a_comfyui_esrgan_prompt_runs_unchanged(settings, tiny_folder):
    """Shaped like ComfyUI's published ESRGAN example: an image from input/, a model from
    upscale_models/, ImageUpscaleWithModel, SaveImage (our own graph and files)."""
    folder = settings.models_dirs[0] / "upscale_models"
    save_atomic(tiny_esrgan_tensors(spandrel), folder / "RealESRGAN_tiny.safetensors")
    settings.input_dir.mkdir(parents=True)
    pixels = (np.random.default_rng(0).random((20, 28, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(settings.input_dir / "photo.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "UpscaleModelLoader",
              "inputs": {"model_name": "RealESRGAN_tiny.safetensors"}},
        "3": {"class_type": "ImageUpscaleWithModel",
              "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x2"}},
    }  # fmt: skip
    result = Scheduler(default_registry, settings=settings).run(
        graph_from_prompt(prompt, default_registry)
    )
    assert result.ok, result.failures
    out = _png(settings, result, "4")
    assert out.shape == (40, 56, 3)
    handle = upscale.upscale_model_loader(_ctx(settings), "RealESRGAN_tiny.safetensors")
    expected = _direct(handle, torch.from_numpy(pixels).float().div(255)[None])
    assert np.abs(out.astype(int) - (expected[0].numpy() * 255).round().astype(int)).max() <= 1
