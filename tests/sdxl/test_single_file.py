"""SDXL single-file checkpoints (base and refiner): detected from their tensors, loaded offline
with shipped or generated configs."""

from __future__ import annotations

import json

import pytest

from latentgraph.graph import CancelToken, Context, Settings
from latentgraph.nodes import loaders
from latentgraph.nodes.ldm_layout import SDXL_CLIP_G_PREFIX, SDXL_CLIP_L_PREFIX
from latentgraph.nodes.model_presets import checkpoint_shapes, config_folder, detect_preset


@pytest.fixture(scope="module")
def files(sdxl_folder, refiner_folder, tmp_path_factory):
    from latentgraph.nodes.tiny_sdxl import write_single_file

    root = tmp_path_factory.mktemp("sdxl-files")
    return (write_single_file(root / "base.safetensors", folder=sdxl_folder),
            write_single_file(root / "refiner.safetensors", refiner=True, folder=refiner_folder))  # fmt: skip


def _load(path):
    return loaders.load_model(Context("m", "LoadModel", Settings(), CancelToken()), str(path))


def _same(a, b) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_files_use_sdxl_original_layout(files):
    shapes = checkpoint_shapes(str(files[0]))
    assert shapes["model.diffusion_model.label_emb.0.0.weight"][1] == 80  # 6 x 8 + pooled 32
    assert SDXL_CLIP_L_PREFIX + "text_model.embeddings.position_embedding.weight" in shapes
    assert shapes[SDXL_CLIP_G_PREFIX + "text_projection"] == [64, 32]  # hidden x projection
    assert shapes[SDXL_CLIP_G_PREFIX + "transformer.resblocks.0.attn.in_proj_weight"] == [192, 64]
    refiner = checkpoint_shapes(str(files[1]))
    assert not any(k.startswith(SDXL_CLIP_L_PREFIX) for k in refiner)
    assert "conditioner.embedders.0.model.positional_embedding" in refiner
    assert detect_preset(shapes) == "tiny-sdxl"
    assert detect_preset(refiner) == "tiny-sdxl-refiner"


def test_single_files_load_exactly_the_builtin_weights(files, sdxl, refiner):
    base = _load(files[0])
    for ours, theirs in ((base, sdxl), (_load(files[1]), refiner)):
        assert _same(ours[0].unet, theirs[0].unet) and _same(ours[2].vae, theirs[2].vae)
        assert _same(ours[1].text_encoder_2, theirs[1].text_encoder_2)
        assert (
            ours[1].tokenizer_2("a red fox").input_ids
            == theirs[1].tokenizer_2("a red fox").input_ids
        )
        assert ours[3].config["_class_name"] == "EulerDiscreteScheduler"
    assert _same(base[1].text_encoder, sdxl[1].text_encoder)
    assert _load(files[1])[1].text_encoder is None


def test_real_sdxl_checkpoints_are_recognised_from_their_tensor_names():
    unet = "model.diffusion_model.input_blocks.0.0.weight"
    base = {unet: [320, 4, 3, 3],
            SDXL_CLIP_L_PREFIX + "text_model.embeddings.position_embedding.weight": [77, 768],
            SDXL_CLIP_G_PREFIX + "positional_embedding": [77, 1280]}  # fmt: skip
    refiner = {unet: [384, 4, 3, 3], "conditioner.embedders.0.model.text_projection": [1280, 1280]}
    assert detect_preset(base) == "sdxl"
    assert detect_preset(refiner) == "sdxl-refiner"
    with pytest.raises(ValueError, match="unknown SDXL base architecture.*640"):
        detect_preset({**base, unet: [640, 4, 3, 3]})


@pytest.mark.parametrize("preset, time_ids", [("sdxl", 6), ("sdxl-refiner", 5)])
def test_shipped_sdxl_configs_are_consistent_and_load_offline(cache_dir, preset, time_ids):
    from transformers import CLIPTextConfig, CLIPTokenizer

    folder = config_folder(preset)
    unet = json.loads((folder / "unet" / "config.json").read_text())
    g = CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder_2")
    has_l = (folder / "text_encoder").is_dir()
    width_l = (
        CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder").hidden_size if has_l else 0
    )
    assert unet["cross_attention_dim"] == width_l + g.hidden_size  # both encoders' states
    assert unet["projection_class_embeddings_input_dim"] == (
        time_ids * unet["addition_time_embed_dim"] + g.projection_dim
    )
    assert CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2").pad_token == "!"
    assert has_l == (preset == "sdxl")
    assert json.loads((folder / "vae" / "config.json").read_text())["scaling_factor"] == 0.13025


def test_checkpoint_loader_simple_reads_an_sdxl_file_from_the_models_folder(files, tmp_path):
    """ComfyUI's loader on a file in checkpoints/: SDXL detected, its CLIP has both encoders
    and KSampler runs the SDXL UNet with them."""
    import shutil

    from latentgraph.nodes import comfy

    (tmp_path / "checkpoints").mkdir()
    shutil.copy(files[0], tmp_path / "checkpoints" / "sd_xl_tiny.safetensors")
    settings = Settings(models_dirs=[tmp_path], output_dir=tmp_path, input_dir=tmp_path,
                        temp_dir=tmp_path)  # fmt: skip

    def ctx(kind):
        return Context("n", kind, settings, CancelToken())

    assert "sd_xl_tiny.safetensors" in comfy.models_dirs.checkpoint_names(settings)
    model, clip, vae = comfy.checkpoint_loader(ctx("CheckpointLoaderSimple"),
                                               "sd_xl_tiny.safetensors")  # fmt: skip
    assert clip.is_sdxl and model.scheduler_config["_class_name"] == "EulerDiscreteScheduler"
    pos = comfy.clip_text_encode(ctx("CLIPTextEncode"), "a red fox", clip)
    neg = comfy.clip_text_encode(ctx("CLIPTextEncode"), "", clip)
    empty = comfy.empty_latent_image(ctx("EmptyLatentImage"), 32, 32, 1)
    out = comfy.ksampler(ctx("KSampler"), model, 1, 2, 5.0, "euler", "normal", pos, neg, empty)
    assert out.samples.shape == (1, 4, 4, 4) and bool(out.samples.isfinite().all())
