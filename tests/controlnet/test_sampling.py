"""ControlNet and T2I-Adapter while sampling: bit for bit diffusers' pipelines on the tiny
model; strength 0 and a step range no step falls in change nothing; controls add up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentgraph.nodes import controlnet, denoise, latents, schedulers, text, vae
from latentgraph.nodes.images import to_uint8

PROMPT = "a lighthouse on a cliff"
NEGATIVE = "blurry"


def control_image(size: int = 64, seed: int = 0) -> torch.Tensor:
    """An edge-map-like picture: uint8 values (so diffusers' PIL path sees the same floats)."""
    g = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(1, size, size, 3, generator=g) > 0.8).to(torch.uint8) * 255
    return pixels.float() / 255


@pytest.fixture(scope="module")
def handles(make_ctx_module, control_root):
    ctx = make_ctx_module("LoadControlNet", models_dirs=[control_root])
    return {
        name: controlnet.load_control_net(ctx, name)
        for name in (
            "builtin:tiny-controlnet",
            "builtin:tiny-t2i-adapter",
            "tiny-controlnet-2.safetensors",
        )
    }


@pytest.fixture(scope="module")
def make_ctx_module(tmp_path_factory):
    from latentgraph.graph import CancelToken, Context, Settings

    tmp = tmp_path_factory.mktemp("ctx")

    def make(node_type: str = "Node", **settings_kw):
        settings_kw.setdefault("output_dir", tmp / "output")
        return Context("n1", node_type, Settings(**settings_kw), CancelToken())

    return make


def generate(make_ctx, tiny, controls=(), name="ddim", steps=6, size=64, seed=3):
    """Our chain; `controls` are (handle, image, strength, start, end) applied in order.
    Returns the decoded image (uint8) and the scheduler spec."""
    return _generate(make_ctx, tiny, controls, name, steps, size, seed)[::2]


def _generate(make_ctx, tiny, controls=(), name="ddim", steps=6, size=64, seed=3):
    """(image, denoised latents, scheduler spec)."""
    unet, clip, v, spec = tiny
    pos = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    neg = text.text_encode(make_ctx("TextEncode"), clip, NEGATIVE)
    for handle, image, strength, start, end in controls:
        pos, neg = controlnet.apply_control_net(make_ctx("ApplyControlNet"), pos, neg, handle,
                                                image, strength, start, end)  # fmt: skip
    noise = latents.latent_noise(make_ctx("LatentNoise"), size, size, 1, seed, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name)
    out = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, pos, neg, noise, steps, 7.5,
                               1.0, seed)  # fmt: skip
    return to_uint8(vae.vae_decode(make_ctx("VAEDecode"), samples=out, vae=v)), out.samples, sp


def _pipeline_parts(tiny, spec, seed):
    unet, clip, v, _ = tiny
    return dict(vae=v.vae, text_encoder=clip.text_encoder, tokenizer=clip.tokenizer,
                unet=unet.unet, scheduler=schedulers.build_scheduler(spec, seed),
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)  # fmt: skip


def _pil(image: torch.Tensor):
    from PIL import Image

    return Image.fromarray((image[0] * 255).round().to(torch.uint8).numpy())


def _uint8(images: np.ndarray) -> np.ndarray:
    return (images * 255).round().astype("uint8")


@pytest.mark.parametrize("end", [1.0, 0.5])
def test_controlnet_matches_diffusers_controlnet_pipeline(make_ctx, tiny, handles, end):
    """DDIM, 10 steps: timesteps 901, 801, ..., 1. end 0.5 keeps the first five steps in both
    rules (diffusers: step i while (i + 1) / 10 <= 0.5; ours and ComfyUI's: timestep >= 499.5)."""
    from diffusers import StableDiffusionControlNetPipeline

    handle, image = handles["builtin:tiny-controlnet"], control_image()
    ours, spec = generate(make_ctx, tiny, [(handle, image, 0.8, 0.0, end)], steps=10, seed=3)
    pipe = StableDiffusionControlNetPipeline(controlnet=handle.model,
                                             **_pipeline_parts(tiny, spec, 3))  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, _pil(image), height=64, width=64, num_inference_steps=10,
               guidance_scale=7.5, negative_prompt=NEGATIVE, controlnet_conditioning_scale=0.8,
               control_guidance_end=end, generator=torch.Generator().manual_seed(3),
               output_type="np").images  # fmt: skip
    assert ours.tobytes() == _uint8(ref).tobytes()
    plain, _ = generate(make_ctx, tiny, steps=10, seed=3)
    assert ours.tobytes() != plain.tobytes()  # the control did something


def test_t2i_adapter_matches_diffusers_adapter_pipeline(make_ctx, tiny, handles):
    """Compared on the denoised latents: this pipeline still decodes with its deprecated
    `decode_latents` (clamp and cast in another order than VaeImageProcessor, which VAEDecode
    and the other pipelines use), so its pixels may differ by one level from any decode."""
    from diffusers import StableDiffusionAdapterPipeline

    handle, image = handles["builtin:tiny-t2i-adapter"], control_image(seed=1)
    _, ours, spec = _generate(make_ctx, tiny, [(handle, image, 0.7, 0.0, 1.0)], steps=6, seed=4)
    pipe = StableDiffusionAdapterPipeline(adapter=handle.model, **_pipeline_parts(tiny, spec, 4))
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(PROMPT, _pil(image), height=64, width=64, num_inference_steps=6,
               guidance_scale=7.5, negative_prompt=NEGATIVE, adapter_conditioning_scale=0.7,
               generator=torch.Generator().manual_seed(4), output_type="latent").images  # fmt: skip
    assert torch.equal(ours, ref)
    _, plain, _ = _generate(make_ctx, tiny, steps=6, seed=4)
    assert not torch.equal(ours, plain)


@pytest.mark.parametrize("name", ["builtin:tiny-controlnet", "builtin:tiny-t2i-adapter"])
def test_strength_zero_and_a_range_no_step_falls_in_change_nothing(make_ctx, tiny, handles, name):
    handle, image = handles[name], control_image()
    plain, _ = generate(make_ctx, tiny, steps=4)
    assert generate(make_ctx, tiny, [(handle, image, 1.0, 0.0, 1.0)], steps=4)[0].tobytes() \
        != plain.tobytes()  # fmt: skip
    assert generate(make_ctx, tiny, [(handle, image, 0.0, 0.0, 1.0)], steps=4)[0].tobytes() \
        == plain.tobytes()  # fmt: skip
    # DDIM's 4 steps are timesteps 751, 501, 251, 1: percent 0 (timestep 999) and percent 1
    # (timestep 0) are outside every step
    for start, end in ((0.0, 0.0), (1.0, 1.0), (0.0, 0.2)):
        out, _ = generate(make_ctx, tiny, [(handle, image, 1.0, start, end)], steps=4)
        assert out.tobytes() == plain.tobytes(), (start, end)
    part, _ = generate(make_ctx, tiny, [(handle, image, 1.0, 0.0, 0.5)], steps=4)
    whole, _ = generate(make_ctx, tiny, [(handle, image, 1.0, 0.0, 1.0)], steps=4)
    assert part.tobytes() not in (plain.tobytes(), whole.tobytes())


def _call(chunks, batch=1, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(chunks)
    return controlnet.UNetCall(torch.randn(n * batch, 4, size, size, generator=g),
                               torch.tensor(501), torch.randn(n * batch, 77, 32, generator=g),
                               None, chunks)  # fmt: skip


def test_two_controls_add_up_and_rows_without_one_get_zero(handles):
    first = controlnet.Control(handles["builtin:tiny-controlnet"], control_image(), 0.8)
    second = controlnet.Control(handles["tiny-controlnet-2.safetensors"], control_image(seed=2),
                                1.3)  # fmt: skip
    residuals = controlnet.ControlResiduals(1000)
    both = residuals.kwargs(_call([(first, second), (first, second)]))
    alone = [residuals.kwargs(_call([(c,), (c,)])) for c in (first, second)]
    for got, a, b in zip(both["down_block_additional_residuals"],
                         alone[0]["down_block_additional_residuals"],
                         alone[1]["down_block_additional_residuals"], strict=True):  # fmt: skip
        assert torch.equal(got, a + b)
    assert torch.equal(both["mid_block_additional_residual"],
                       alone[0]["mid_block_additional_residual"]
                       + alone[1]["mid_block_additional_residual"])  # fmt: skip
    # ControlNetApply's way: only the positive chunk has the control
    one_side = residuals.kwargs(_call([(), (first,)]))
    for got, full in zip(one_side["down_block_additional_residuals"],
                         alone[0]["down_block_additional_residuals"], strict=True):  # fmt: skip
        assert not got[0].any()
        assert torch.allclose(got[1], full[1], atol=1e-5)


def test_adapter_features_are_added_inside_the_down_blocks(handles):
    adapter = controlnet.Control(handles["builtin:tiny-t2i-adapter"], control_image(), 0.5)
    kwargs = controlnet.ControlResiduals(1000).kwargs(_call([(adapter,), (adapter,)], size=8))
    shapes = [tuple(f.shape) for f in kwargs["down_intrablock_additional_residuals"]]
    assert shapes == [(2, 32, 4, 4), (2, 64, 4, 4)]  # the tiny UNet's down block outputs
    assert "down_block_additional_residuals" not in kwargs


def test_an_adapter_steers_a_latent_of_any_size(make_ctx, tiny, handles):
    """72 pixels (9 latent cells) is no multiple of the tiny adapter's 16x pixel unshuffle: its
    image is scaled to 80 (as ComfyUI's), and its features have the UNet's sizes (halved
    rounding up, as the UNet's), a side of 17 cells or of 9 alike."""
    handle = handles["builtin:tiny-t2i-adapter"]
    out, _ = generate(make_ctx, tiny, [(handle, control_image(), 1.0, 0.0, 1.0)], steps=2,
                      size=72)  # fmt: skip
    assert out.shape == (1, 72, 72, 3)
    assert out.tobytes() != generate(make_ctx, tiny, steps=2, size=72)[0].tobytes()
    adapter = controlnet.Control(handle, control_image(), 0.5)
    call = _call([(adapter,), (adapter,)], size=17)
    call.sample = call.sample[..., :9]
    kwargs = controlnet.ControlResiduals(1000).kwargs(call)
    shapes = [tuple(f.shape) for f in kwargs["down_intrablock_additional_residuals"]]
    assert shapes == [(2, 32, 9, 5), (2, 64, 9, 5)]


def test_an_image_of_another_size_is_fitted_to_the_latent(make_ctx, tiny, handles):
    handle = handles["builtin:tiny-controlnet"]
    wide = torch.rand(1, 40, 96, 3, generator=torch.Generator().manual_seed(3))
    out, _ = generate(make_ctx, tiny, [(handle, wide, 1.0, 0.0, 1.0)], steps=2, size=32)
    assert out.shape == (1, 32, 32, 3)


def test_controlled_conditioning_stays_in_memory(make_ctx, tiny, handles):
    from latentgraph.graph.cache import codec_for

    clip = tiny[1]
    cond = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    pos, _ = controlnet.apply_control_net(make_ctx("ApplyControlNet"), cond, cond,
                                          handles["builtin:tiny-controlnet"], control_image())  # fmt: skip
    codec = codec_for(pos)
    assert codec.name == "lg.controlled-conditioning" and codec.encode is None
    assert codec_for(cond).encode is not None  # plain conditioning still goes to disk
    # unloading the control model drops cached conditioning holding it
    from latentgraph.nodes.values import holds_model

    key = handles["builtin:tiny-controlnet"].key
    assert holds_model(pos, {key}) and not holds_model(cond, {key})


def test_two_controlnets_mixed_differ_from_each_alone(make_ctx, tiny, handles):
    first = (handles["builtin:tiny-controlnet"], control_image(), 0.8, 0.0, 1.0)
    second = (handles["tiny-controlnet-2.safetensors"], control_image(seed=2), 0.8, 0.0, 1.0)
    both, _ = generate(make_ctx, tiny, [first, second], steps=3)
    assert both.tobytes() not in {generate(make_ctx, tiny, [c], steps=3)[0].tobytes()
                                  for c in (first, second)}  # fmt: skip


def test_controls_act_on_area_entries_too(make_ctx, tiny, handles):
    """An entry on part of the latent runs on its crop: the control image is fitted to it."""
    from latentgraph.nodes.conditioning import combine, with_area
    from latentgraph.nodes.values import Area

    unet, clip, v, spec = tiny
    pos = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    left = with_area(text.text_encode(make_ctx("TextEncode"), clip, "a red door"),
                     Area(1.0, 0.5, 0.0, 0.0, fractions=True), 1.0)  # fmt: skip
    neg = text.text_encode(make_ctx("TextEncode"), clip, NEGATIVE)
    noise = latents.latent_noise(make_ctx("LatentNoise"), 64, 64, 1, 5, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "euler")

    def run(strength):
        p, n = controlnet.apply_control_net(make_ctx("ApplyControlNet"), combine(pos, left), neg,
                                            handles["builtin:tiny-controlnet"], control_image(),
                                            strength)  # fmt: skip
        return denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, p, n, noise, 3, 7.5, 1.0,
                                    5).samples  # fmt: skip

    assert not torch.equal(run(1.0), run(0.0))
