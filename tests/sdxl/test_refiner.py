"""Base + refiner: part of a schedule per UNetDenoise, against diffusers' two-pipeline recipe."""

from __future__ import annotations

import pytest

from latentgraph.nodes import comfy, denoise, latents, schedulers, text, vae
from latentgraph.nodes.images import to_uint8

PROMPT = "a photograph of an astronaut riding a horse"


def _conds(make_ctx, clip):
    return (text.text_encode(make_ctx("TextEncode"), clip, PROMPT),
            text.text_encode(make_ctx("TextEncode"), clip, ""))  # fmt: skip


def _run(make_ctx, model, latent, steps, **window):
    unet, clip, _, spec = model
    pos, neg = _conds(make_ctx, clip)
    return denoise.unet_denoise(make_ctx("UNetDenoise"), unet, spec, pos, neg, latent, steps,
                                5.0, 1.0, 42, **window)  # fmt: skip


def _noise(make_ctx, model, size=64):
    return latents.latent_noise(make_ctx("LatentNoise"), size, size, 1, 42, vae=model[2])


def test_base_then_refiner_matches_diffusers_denoising_end_and_start(make_ctx, sdxl, refiner,
                                                                     sdxl_folder, refiner_folder):  # fmt: skip
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    steps, split = 8, 6  # denoising_end 0.75 of 8 Euler steps: the base runs 6
    base_out = _run(make_ctx, sdxl, _noise(make_ctx, sdxl), steps, end_step=split,
                    return_with_leftover_noise=True)  # fmt: skip
    refined = _run(make_ctx, refiner, base_out, steps, start_step=split, add_noise=False)
    ours = to_uint8(vae.vae_decode(make_ctx("VAEDecode"), samples=refined, vae=refiner[2]))

    base = StableDiffusionXLPipeline.from_pretrained(sdxl_folder, add_watermarker=False)
    ref = StableDiffusionXLImg2ImgPipeline.from_pretrained(refiner_folder, add_watermarker=False)
    for pipe in (base, ref):
        pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(42)
    mid = base(PROMPT, negative_prompt="", height=64, width=64, num_inference_steps=steps,
               guidance_scale=5.0, denoising_end=0.75, generator=generator,
               output_type="latent").images  # fmt: skip
    assert torch.equal(mid, base_out.samples)  # the leftover-noise latent, exactly
    image = ref(PROMPT, negative_prompt="", image=mid, num_inference_steps=steps,
                guidance_scale=5.0, denoising_start=0.75, generator=generator,
                output_type="np").images  # fmt: skip
    ref8 = (image * 255).round().astype("uint8")
    assert ours.shape == ref8.shape == (1, 64, 64, 3)
    assert ours.tobytes() == ref8.tobytes()


def test_split_schedule_equals_the_whole_run_for_euler(make_ctx, sdxl):
    import torch

    noise = _noise(make_ctx, sdxl, 32)
    whole = _run(make_ctx, sdxl, noise, 6)
    first = _run(make_ctx, sdxl, noise, 6, end_step=4, return_with_leftover_noise=True)
    second = _run(make_ctx, sdxl, first, 6, start_step=4, add_noise=False)
    assert torch.equal(second.samples, whole.samples)
    assert not torch.equal(first.samples, whole.samples)


def test_early_end_finishes_at_zero_noise_unless_leftover_is_asked(make_ctx, sdxl):
    import torch

    noise = _noise(make_ctx, sdxl, 32)
    two = _run(make_ctx, sdxl, noise, 6, end_step=2, return_with_leftover_noise=True).samples
    leftover = _run(make_ctx, sdxl, noise, 6, end_step=3, return_with_leftover_noise=True).samples
    clean = _run(make_ctx, sdxl, noise, 6, end_step=3).samples
    # Euler's third step moves along the same direction d from the latent after two steps:
    # to noise level sigma_3 (leftover) or to 0 (clean).
    sched = schedulers.build_scheduler(sdxl[3])
    sched.set_timesteps(6)
    s2, s3 = float(sched.sigmas[2]), float(sched.sigmas[3])
    d = (clean - two) / -s2
    assert s3 > 0 and not torch.equal(leftover, clean)
    assert torch.allclose(leftover, two + (s3 - s2) * d, atol=1e-4)


def test_early_clean_end_without_sigmas_is_a_clear_error(make_ctx, sdxl):
    unet, clip, _, spec = sdxl
    ddim = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "ddim")
    pos, neg = _conds(make_ctx, clip)
    with pytest.raises(ValueError, match="return_with_leftover_noise.*sigma-based"):
        denoise.unet_denoise(make_ctx("UNetDenoise"), unet, ddim, pos, neg,
                             _noise(make_ctx, sdxl, 32), 6, 5.0, 1.0, 0, end_step=3)  # fmt: skip


def test_ksampler_advanced_base_and_refiner_chain(make_ctx, sdxl, refiner):
    import torch

    empty = comfy.empty_latent_image(make_ctx("EmptyLatentImage"), 64, 64, 1)
    pos, neg = _conds(make_ctx, sdxl[1])
    rpos, rneg = _conds(make_ctx, refiner[1])
    base = comfy.ksampler_advanced(make_ctx("KSamplerAdvanced"), sdxl[0], "enable", 42, 8, 5.0,
                                   "euler", "normal", pos, neg, empty, 0, 6, "enable")  # fmt: skip
    out = comfy.ksampler_advanced(make_ctx("KSamplerAdvanced"), refiner[0], "disable", 0, 8, 5.0,
                                  "euler", "normal", rpos, rneg, base, 6, 10000, "disable")  # fmt: skip
    assert torch.isfinite(out.samples).all() and not torch.equal(out.samples, base.samples)
    # the adapter is UNetDenoise with the window: the same latents as the native node
    spec = comfy.sampler_spec(sdxl[0], "euler", "normal")
    native = denoise.unet_denoise(make_ctx("UNetDenoise"), sdxl[0], spec, pos, neg,
                                  _noise(make_ctx, sdxl), 8, 5.0, 1.0, 42, end_step=6,
                                  return_with_leftover_noise=True)  # fmt: skip
    assert torch.equal(native.samples, base.samples)
