"""The shipped SD 1.5 / SD 2.x config folders and architecture detection.

Real weights are far too big for tests, so the architectures are built on the meta device
(shapes, no memory) from the shipped configs and checked against the known parameter counts;
their original-layout names (via ldm_layout) feed the detector, and diffusers' own
original -> diffusers conversion must undo ldm_layout exactly.
"""

from __future__ import annotations

import pytest

from latentgraph.nodes import ldm_layout
from latentgraph.nodes.model_presets import config_folder, detect_preset

# (UNet, VAE, text encoder) parameter counts of the published models
PARAMS = {
    "sd15": (859_520_964, 83_653_863, 123_060_480),
    "sd2": (865_910_724, 83_653_863, 340_387_840),
    "sd2-base": (865_910_724, 83_653_863, 340_387_840),
    # inpainting: the same, with 5 more input channels in the UNet's first conv (5 * 320 * 3 * 3)
    "sd15-inpaint": (859_535_364, 83_653_863, 123_060_480),
    "sd2-inpaint": (865_925_124, 83_653_863, 340_387_840),
}
SD15 = ("sd15", "sd15-inpaint")
PROMPT_IDS = [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]


@pytest.fixture(scope="module", params=list(PARAMS))
def preset(request, cache_dir):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = config_folder(request.param)
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(folder, subfolder="unet")
        )
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder"))
    return request.param, folder, unet, vae, text


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_configs_describe_the_published_architectures(preset):
    name, folder, unet, vae, text = preset
    assert (count(unet), count(vae), count(text)) == PARAMS[name]
    assert next(unet.parameters()).device.type == "meta"  # nothing was allocated
    context = 768 if name in SD15 else 1024
    assert unet.config.in_channels == (9 if name.endswith("-inpaint") else 4)
    assert unet.config.cross_attention_dim == context == text.config.hidden_size
    assert vae.config.scaling_factor == pytest.approx(0.18215)


def test_scheduler_and_tokenizer_of_each_preset(preset):
    from diffusers import DDIMScheduler
    from transformers import CLIPTokenizer

    name, folder = preset[:2]
    sched = DDIMScheduler.load_config(folder, subfolder="scheduler")
    expected = "v_prediction" if name == "sd2" else "epsilon"
    assert sched.get("prediction_type", "epsilon") == expected
    assert sched["beta_schedule"] == "scaled_linear"
    tok = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
    ids = tok("a photograph of an astronaut riding a horse", padding="max_length").input_ids
    assert len(ids) == 77 and ids[:10] == PROMPT_IDS
    assert ids[10] == (49407 if name in SD15 else 0)  # SD 2 pads with "!"


def original_shapes(unet, vae) -> dict[str, list[int]]:
    shapes = {
        ldm_layout.UNET_PREFIX + ldm_layout.unet_key(k, unet.config): list(v.shape)
        for k, v in unet.state_dict().items()
    }
    for k, v in vae.state_dict().items():
        shapes[ldm_layout.VAE_PREFIX + ldm_layout.vae_key(k, vae.config)] = list(v.shape)
    return shapes


def test_detection_from_original_layout_shapes(preset):
    name, _, unet, vae, _ = preset
    shapes = original_shapes(unet, vae)
    # the names diffusers' own single-file code probes for SD 1.x and SD 2.x
    assert "model.diffusion_model.output_blocks.11.0.skip_connection.weight" in shapes
    probe = shapes["model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"]
    assert probe[-1] == (768 if name in SD15 else 1024)
    assert detect_preset(shapes) == {"sd2-base": "sd2"}.get(name, name)  # 9 channels: inpaint


def test_diffusers_conversion_undoes_ldm_layout(preset):
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    _, _, unet, vae, _ = preset
    state = unet.state_dict()
    original = {ldm_layout.UNET_PREFIX + ldm_layout.unet_key(k, unet.config): k for k in state}
    assert len(original) == len(state)
    back = convert_ldm_unet_checkpoint(original, dict(unet.config))
    assert back == {k: k for k in state}  # every tensor lands where it came from

    state = vae.state_dict()
    original = {}
    for k, v in state.items():
        name = ldm_layout.vae_key(k, vae.config)
        if ldm_layout.is_vae_attention_weight(name):
            v = v.reshape(*v.shape, 1, 1)
        original[ldm_layout.VAE_PREFIX + name] = v
    back = convert_ldm_vae_checkpoint(original, dict(vae.config))
    assert {k: list(v.shape) for k, v in back.items()} == {
        k: list(v.shape) for k, v in state.items()
    }


def test_tiny_checkpoint_is_detected(tiny_file):
    from latentgraph.nodes.model_presets import checkpoint_shapes

    assert detect_preset(checkpoint_shapes(str(tiny_file))) == "tiny-sd"


UNET = "model.diffusion_model."


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"conditioner.embedders.0.transformer.x": [1], UNET + "input_blocks.0.0.weight":
          [640, 4, 3, 3]}, "unknown SDXL base architecture"),
        ({"conditioner.embedders.0.transformer.x": [1], UNET + "input_blocks.0.0.weight":
          [320, 9, 3, 3]}, "SDXL inpainting checkpoint has no shipped config"),
        ({UNET + "input_blocks.0.0.weight": [320, 7, 3, 3]}, "7 input channels; supported: 4"),
        ({"first_stage_model.encoder.conv_in.weight": [128, 3, 3, 3]}, "no UNet weights"),
        ({UNET + "input_blocks.0.0.weight": [64, 4, 3, 3],
          UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [64, 512]},
         r"unknown architecture \(UNet width 64, cross-attention context \[512\]"),
    ],
)  # fmt: skip
def test_detection_refuses_what_it_does_not_know(shapes, message):
    with pytest.raises(ValueError, match=message):
        detect_preset(shapes)
