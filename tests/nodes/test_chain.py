"""The node chain against diffusers' own pipeline, schedulers, img2img, batches."""

from __future__ import annotations

import hashlib

import pytest

from latentgraph.nodes import denoise, latents, schedulers, text, vae
from latentgraph.nodes.images import to_uint8
from latentgraph.nodes.schedulers import SCHEDULERS
from latentgraph.nodes.values import Latent

PROMPT = "a photograph of an astronaut riding a horse"


def generate(make_ctx, tiny, name="dpm++2m", seed=42, steps=6, size=64, batch=1, guidance=7.5):
    unet, clip, v, spec = tiny
    pos = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    neg = text.text_encode(make_ctx("TextEncode"), clip, "")
    noise = latents.latent_noise(make_ctx("LatentNoise"), size, size, batch, seed, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name)
    out = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, pos, neg, noise, steps,
                               guidance, 1.0, seed)  # fmt: skip
    return to_uint8(vae.vae_decode(make_ctx("VAEDecode"), samples=out, vae=v)), sp


@pytest.mark.parametrize("name", ["dpm++2m", "ddim", "pndm", "tcd"])  # tcd: the eta it is given
def test_golden_matches_stable_diffusion_pipeline(make_ctx, tiny, tiny_folder, name):
    import torch
    from diffusers import StableDiffusionPipeline

    ours, spec = generate(make_ctx, tiny, name, seed=42, steps=8, size=64)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_folder, safety_checker=None,
                                                   requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = schedulers.build_scheduler(spec, 42)
    ref = pipe(PROMPT, height=64, width=64, num_inference_steps=8, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(42), output_type="np").images  # fmt: skip
    ref8 = (ref * 255).round().astype("uint8")
    assert ours.shape == ref8.shape == (1, 64, 64, 3)
    assert ours.tobytes() == ref8.tobytes()


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_runs_and_is_deterministic(make_ctx, tiny, name):
    a, _ = generate(make_ctx, tiny, name, steps=3, size=32)
    b, _ = generate(make_ctx, tiny, name, steps=3, size=32)
    assert a.shape == (1, 32, 32, 3)
    assert hashlib.sha256(a.tobytes()).digest() == hashlib.sha256(b.tobytes()).digest()


def test_seed_changes_the_image(make_ctx, tiny):
    a, _ = generate(make_ctx, tiny, "euler_a", seed=1, steps=3, size=32)
    b, _ = generate(make_ctx, tiny, "euler_a", seed=2, steps=3, size=32)
    assert a.tobytes() != b.tobytes()


def test_batch_image_i_equals_seed_plus_i_alone(make_ctx, tiny):
    batch, _ = generate(make_ctx, tiny, "ddim", seed=10, steps=3, size=32, batch=3)
    alone, _ = generate(make_ctx, tiny, "ddim", seed=12, steps=3, size=32, batch=1)
    assert batch.shape[0] == 3
    assert abs(batch[2].astype(int) - alone[0].astype(int)).max() <= 1


def test_img2img_denoise_zero_returns_input_latents(make_ctx, tiny):
    import torch

    unet, clip, v, spec = tiny
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    encoded = vae.vae_encode(make_ctx("VAEEncode"), pixels=image, vae=v)
    cond = text.text_encode(make_ctx("TextEncode"), clip, "x")
    for name in ("ddim", "dpm++2m", "euler"):
        sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name)
        out = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, cond, cond, encoded, 10,
                                   7.5, 0.0, 3)  # fmt: skip
        assert torch.equal(out.samples, encoded.samples)
    half = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, cond, cond, encoded, 10, 7.5,
                                0.5, 3)  # fmt: skip
    assert not torch.equal(half.samples, encoded.samples)


def test_progress_and_cancellation(make_ctx, tiny):
    from latentgraph.graph import Cancelled, CancelToken

    unet, clip, v, spec = tiny
    cond = text.text_encode(make_ctx("TextEncode"), clip, "x")
    noise = latents.latent_noise(make_ctx("LatentNoise"), 16, 16, 1, 0, vae=v)
    ctx = make_ctx("UNetDenoise")
    denoise.unet_denoise(ctx, unet, spec, cond, cond, noise, 4, 7.5, 1.0, 0)
    assert ctx.rec.progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        denoise.unet_denoise(make_ctx("UNetDenoise", cancel=token), unet, spec, cond, cond,
                             noise, 4, 7.5, 1.0, 0)  # fmt: skip


def test_long_prompt_is_truncated_with_a_warning(make_ctx, tiny):
    ctx = make_ctx("TextEncode")
    cond = text.text_encode(ctx, tiny[1], " ".join(["horse"] * 100))
    assert cond.embeds.shape[:2] == (1, 77)
    assert len(ctx.rec.warnings) == 1 and "truncated" in ctx.rec.warnings[0]


def test_prompt_list_gives_a_batch(make_ctx, tiny):
    cond = text.text_encode(make_ctx("TextEncode"), tiny[1], '["a cat", "a dog"]')
    assert cond.embeds.shape[0] == 2 and cond.prompts == ["a cat", "a dog"]


def test_latent_codec_round_trip(tiny):
    import torch

    from latentgraph.graph.cache import codec_for

    lat = Latent(torch.randn(2, 4, 8, 8), [5, 6], is_noise=True)
    codec = codec_for(lat)
    back = codec.decode(codec.encode(lat))
    assert torch.equal(back.samples, lat.samples) and back.seeds == [5, 6] and back.is_noise
