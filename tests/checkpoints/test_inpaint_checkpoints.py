"""Inpainting checkpoints (a UNet with 9 input channels): the built-in tiny one, recognised in
a diffusers folder by its config and in a single file by its first convolution's shape."""

from __future__ import annotations

import json

import pytest

from .conftest import context


@pytest.fixture(scope="module")
def inpaint_folder(cache_dir, torch_1thread):
    from latentgraph.nodes.tiny_inpaint import ensure_tiny_inpaint

    return ensure_tiny_inpaint()


@pytest.fixture(scope="module")
def inpaint_file(inpaint_folder, tmp_path_factory):
    from latentgraph.nodes.tiny_model import write_single_file

    root = tmp_path_factory.mktemp("inpaint-models")
    return write_single_file(root / "checkpoints" / "tiny-inpaint.safetensors", inpaint_folder)


def load(source: str):
    from latentgraph.nodes import loaders

    return loaders.load_model(context("LoadModel", "inpaint"), source)


def test_builtin_inpaint_model_has_a_nine_channel_unet(inpaint_folder, tiny_folder):
    from latentgraph.nodes.inpaint_sampling import is_inpainting_unet

    config = json.loads((inpaint_folder / "unet" / "config.json").read_text())
    assert config["in_channels"] == 9 and config["out_channels"] == 4
    index = json.loads((inpaint_folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInpaintPipeline"
    unet, clip, vae, _ = load("builtin:tiny-sd-inpaint")
    assert is_inpainting_unet(unet.unet) and unet.unet.conv_in.weight.shape[1] == 9
    plain = load("builtin:tiny-sd")
    assert not is_inpainting_unet(plain[0].unet)
    # the text encoder and VAE are tiny-sd's
    same = plain[2].vae.state_dict()
    assert all(v.equal(same[k]) for k, v in vae.vae.state_dict().items())


def test_single_file_inpaint_checkpoint_is_detected_and_loads_the_same_weights(
    inpaint_file, inpaint_folder
):
    from latentgraph.nodes.model_presets import checkpoint_shapes, detect_preset

    shapes = checkpoint_shapes(str(inpaint_file))
    assert shapes["model.diffusion_model.input_blocks.0.0.weight"][1] == 9
    assert detect_preset(shapes) == "tiny-sd-inpaint"
    single = load(str(inpaint_file))
    builtin = load("builtin:tiny-sd-inpaint")
    a, b = single[0].unet.state_dict(), builtin[0].unet.state_dict()
    assert set(a) == set(b) and all(a[k].equal(b[k]) for k in a)
    assert single[0].unet.config.in_channels == 9


def test_diffusers_folder_inpaint_model_is_read_from_its_config(inpaint_folder, tmp_path):
    import shutil

    folder = tmp_path / "my-inpainting-model"
    shutil.copytree(inpaint_folder, folder)
    unet = load(str(folder))[0]
    assert unet.unet.config.in_channels == 9
