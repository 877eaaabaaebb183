"""Sampling with a noise mask and with an inpainting (9-channel) UNet on the tiny models, and
golden tests against diffusers' StableDiffusionInpaintPipeline.

The golden tests use masks on whole 8x8 pixel blocks: there diffusers' mask rule (binarize,
then nearest-neighbour down to the latent) and ours (bilinear down to the latent: a blend for
the noise mask, rounded for the UNet's mask channel) give the same 0/1 cells, so the results
are compared byte for byte. diffusers encodes the masked image by sampling the VAE's
distribution; ours takes its mean (as VAEEncode does), so the masked image's latents are given
to the pipeline (`masked_image_latents`) rather than re-encoded there.
"""

from __future__ import annotations

import pytest
import torch

from latentgraph.nodes import denoise, inpaint, latents, schedulers, text, vae
from latentgraph.nodes.values import Latent

from .test_inpaint import block_mask, picture  # block_mask: whole 8x8 blocks

PROMPT = "a red sailboat on a calm sea"


OUTSIDE = torch.ones(8, 8, dtype=torch.bool)
OUTSIDE[2:5, 3:5] = False


def prompts(make_ctx, clip):
    pos = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    neg = text.text_encode(make_ctx("TextEncode"), clip, "")
    return pos, neg


def sample(make_ctx, model, pos, neg, latent, name="euler", steps=6, strength=1.0, seed=3):
    unet, _, _, spec = model
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name)
    out = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, pos, neg, latent, steps, 7.5,
                               strength, seed)  # fmt: skip
    return out, sp


def test_noise_mask_keeps_the_original_outside_and_changes_the_inside(make_ctx, tiny):
    original = vae.vae_encode(make_ctx("VAEEncode"), picture(), tiny[2])
    masked = inpaint.set_latent_noise_mask(make_ctx("SetLatentNoiseMask"), original, block_mask())
    pos, neg = prompts(make_ctx, tiny[1])
    for name in ("euler", "ddim"):
        out, _ = sample(make_ctx, tiny, pos, neg, masked, name)
        assert torch.equal(out.samples[..., OUTSIDE], original.samples[..., OUTSIDE]), name
        inside = (out.samples - original.samples)[..., ~OUTSIDE].abs().mean()
        assert inside > 0.1, name
    free, _ = sample(make_ctx, tiny, pos, neg, original)  # without the mask all of it changes
    assert (free.samples - original.samples)[..., OUTSIDE].abs().mean() > 0.1


def test_a_soft_noise_mask_blends_partly(make_ctx, tiny):
    original = vae.vae_encode(make_ctx("VAEEncode"), picture(), tiny[2])
    half = inpaint.set_latent_noise_mask(make_ctx(), original, torch.full((1, 64, 64), 0.5))
    full = inpaint.set_latent_noise_mask(make_ctx(), original, torch.ones(1, 64, 64))
    pos, neg = prompts(make_ctx, tiny[1])
    a = sample(make_ctx, tiny, pos, neg, half, "ddim")[0].samples
    b = sample(make_ctx, tiny, pos, neg, full, "ddim")[0].samples
    free = sample(make_ctx, tiny, pos, neg, original, "ddim")[0].samples
    assert torch.equal(b, free)  # a mask of ones changes nothing
    # blended back halfway after every step: changed, far less than with no mask
    assert (a - original.samples).abs().amin() > 0
    assert 0.01 < (a - original.samples).abs().mean() / (b - original.samples).abs().mean() < 0.5


@pytest.mark.parametrize("name", ["ddim", "euler"])
def test_noise_mask_on_a_4_channel_model_matches_the_inpaint_pipeline(make_ctx, tiny,
                                                                       tiny_folder, name):  # fmt: skip
    from diffusers import StableDiffusionInpaintPipeline

    original = vae.vae_encode(make_ctx("VAEEncode"), picture(), tiny[2])
    mask = block_mask()
    masked = inpaint.set_latent_noise_mask(make_ctx(), original, mask)
    pos, neg = prompts(make_ctx, tiny[1])
    ours, sp = sample(make_ctx, tiny, pos, neg, masked, name, steps=10, strength=0.6, seed=5)

    pipe = StableDiffusionInpaintPipeline.from_pretrained(tiny_folder, safety_checker=None,
                                                          requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = schedulers.build_scheduler(sp, 5)
    # 4-channel `image` is taken as latents; `masked_image_latents` is unused by a 4-channel
    # UNet but must be latents here.
    ref = pipe(prompt_embeds=pos.entries[0].embeds, negative_prompt_embeds=neg.entries[0].embeds,
               image=original.samples, mask_image=mask[None], masked_image_latents=original.samples,
               height=64, width=64, strength=0.6, num_inference_steps=10, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(5), output_type="latent").images  # fmt: skip
    assert ours.samples.shape == ref.shape
    assert torch.equal(ours.samples, ref)


@pytest.mark.parametrize(("name", "strength"), [("ddim", 1.0), ("euler", 1.0), ("ddim", 0.6)])
def test_inpainting_model_matches_the_inpaint_pipeline(make_ctx, tiny_inpaint,
                                                       tiny_inpaint_folder, name, strength):  # fmt: skip
    from diffusers import StableDiffusionInpaintPipeline

    unet, clip, v, _ = tiny_inpaint
    pixels, mask = picture(), block_mask()
    pos, neg = prompts(make_ctx, clip)
    ipos, ineg, encoded = inpaint.inpaint_conditioning(make_ctx("InpaintConditioning"), pos, neg,
                                                       v, pixels, mask, noise_mask=False)  # fmt: skip
    assert encoded.noise_mask is None
    if strength == 1.0:  # from noise, as the pipeline starts at full strength
        start = latents.latent_noise(make_ctx("LatentNoise"), 64, 64, 1, 5, vae=v)
    else:
        start = encoded
    ours, sp = sample(make_ctx, tiny_inpaint, ipos, ineg, start, name, 10, strength, seed=5)

    masked_latents = ipos.entries[0].inpaint.latents
    greyed = pixels.clone()
    greyed[0, 16:40, 24:40] = 0.5
    expected = vae.vae_encode(make_ctx("VAEEncode"), greyed, v).samples
    assert torch.equal(masked_latents, expected)  # the masked part greyed out, then encoded

    pipe = StableDiffusionInpaintPipeline.from_pretrained(tiny_inpaint_folder, safety_checker=None,
                                                          requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = schedulers.build_scheduler(sp, 5)
    kwargs = {"latents": start.samples} if strength == 1.0 else {}
    ref = pipe(prompt_embeds=pos.entries[0].embeds, negative_prompt_embeds=neg.entries[0].embeds,
               image=encoded.samples, mask_image=mask[None], masked_image_latents=masked_latents,
               height=64, width=64, strength=strength, num_inference_steps=10, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(5), output_type="latent", **kwargs).images  # fmt: skip
    assert torch.equal(ours.samples, ref)


def test_the_9_channel_unet_is_given_latents_mask_and_masked_image(make_ctx, tiny_inpaint,
                                                                    monkeypatch):  # fmt: skip
    unet, clip, v, _ = tiny_inpaint
    pos, neg = prompts(make_ctx, clip)
    ipos, ineg, encoded = inpaint.inpaint_conditioning(make_ctx(), pos, neg, v, picture(),
                                                       block_mask(), noise_mask=True)  # fmt: skip
    seen = []
    forward = type(unet.unet).forward

    def spy(self, sample, *args, **kwargs):
        seen.append(sample.detach().clone())
        return forward(self, sample, *args, **kwargs)

    monkeypatch.setattr(type(unet.unet), "forward", spy)
    out, _ = sample(make_ctx, tiny_inpaint, ipos, ineg, encoded, "euler", steps=2)
    assert len(seen) == 2 and seen[0].shape == (2, 9, 8, 8)  # [negative, positive] rows
    mask_channel = torch.zeros(8, 8)
    mask_channel[2:5, 3:5] = 1
    masked_latents = ipos.entries[0].inpaint.latents[0]
    for x in seen:
        assert torch.equal(x[0, 4], mask_channel) and torch.equal(x[1, 4], mask_channel)
        assert torch.equal(x[0, 5:], masked_latents) and torch.equal(x[1, 5:], masked_latents)
    # with noise_mask on, the latent keeps the whole image's latents outside the mask
    assert torch.equal(out.samples[..., OUTSIDE], encoded.samples[..., OUTSIDE])


def test_vae_encode_for_inpaint_route_on_the_9_channel_model(make_ctx, tiny_inpaint):
    """The classic route (VAEEncodeForInpaint, no InpaintModelConditioning): the UNet's mask
    and masked image come from the latent's noise mask and the latent itself."""
    unet, clip, v, _ = tiny_inpaint
    pos, neg = prompts(make_ctx, clip)
    encoded = inpaint.inpaint_encode(make_ctx(), picture(), v, block_mask(), 0)
    out, _ = sample(make_ctx, tiny_inpaint, pos, neg, encoded, "euler", steps=3)
    assert torch.equal(out.samples[..., OUTSIDE], encoded.samples[..., OUTSIDE])
    assert (out.samples - encoded.samples)[..., ~OUTSIDE].abs().mean() > 0.1
    unmasked = Latent(encoded.samples)
    other, _ = sample(make_ctx, tiny_inpaint, pos, neg, unmasked, "euler", steps=3)
    # without the noise mask, the UNet sees "paint everything" and a blank masked image
    assert not torch.equal(other.samples[..., ~OUTSIDE], out.samples[..., ~OUTSIDE])


def test_the_9_channel_unet_is_given_the_latent_and_its_noise_mask_when_no_entry_says(
    make_ctx, tiny_inpaint
):
    """VAEEncodeForInpaint's route is the run where every entry gives that latent and its
    mask as the inpainting image (InpaintModelConditioning's field), not a blank one."""
    from dataclasses import replace

    from latentgraph.nodes.values import InpaintImage

    pos, neg = prompts(make_ctx, tiny_inpaint[1])
    encoded = inpaint.inpaint_encode(make_ctx(), picture(), tiny_inpaint[2], block_mask(), 0)
    image = InpaintImage(encoded.samples, encoded.noise_mask)
    with_image = [cond.map(lambda e: replace(e, inpaint=image)) for cond in (pos, neg)]
    out, _ = sample(make_ctx, tiny_inpaint, pos, neg, encoded, "euler", steps=3)
    given, _ = sample(make_ctx, tiny_inpaint, *with_image, encoded, "euler", steps=3)
    assert torch.equal(out.samples, given.samples)
    blank = InpaintImage(torch.zeros_like(encoded.samples), torch.ones_like(encoded.noise_mask))
    with_blank = [cond.map(lambda e: replace(e, inpaint=blank)) for cond in (pos, neg)]
    other, _ = sample(make_ctx, tiny_inpaint, *with_blank, encoded, "euler", steps=3)
    assert not torch.equal(out.samples, other.samples)  # what the UNet is given matters


def test_leftover_noise_on_a_window_that_runs_to_the_end_changes_nothing(make_ctx, tiny):
    """return_with_leftover_noise matters only when the window stops early: run to the end,
    a masked latent finishes clean, the original kept exactly outside the mask."""
    original = vae.vae_encode(make_ctx("VAEEncode"), picture(), tiny[2])
    masked = inpaint.set_latent_noise_mask(make_ctx(), original, block_mask())
    pos, neg = prompts(make_ctx, tiny[1])
    unet, _, _, spec = tiny
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "euler")

    def run(leftover):
        return denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, pos, neg, masked, 4, 7.5,
                                    1.0, 9, return_with_leftover_noise=leftover).samples  # fmt: skip

    out = run(True)
    assert torch.equal(out, run(False))
    assert torch.equal(out[..., OUTSIDE], original.samples[..., OUTSIDE])


def masked_window(make_ctx, tiny, **window):
    """(original, result, scheduler spec) of steps 0..4 of 8 (euler) on a masked latent."""
    original = vae.vae_encode(make_ctx("VAEEncode"), picture(), tiny[2])
    masked = inpaint.set_latent_noise_mask(make_ctx(), original, block_mask())
    pos, neg = prompts(make_ctx, tiny[1])
    unet, _, _, spec = tiny
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "euler")
    out = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, pos, neg, masked, 8, 7.5, 1.0,
                               9, end_step=4, **window)  # fmt: skip
    return original, out, sp


def test_a_window_returning_leftover_noise_keeps_the_original_at_that_noise_level(make_ctx, tiny):
    """Base + refiner with a mask: the base stops at step 4 of 8 with its leftover noise, so
    outside the mask it returns the original noised to step 4's level, not the clean one."""
    original, out, sp = masked_window(make_ctx, tiny, return_with_leftover_noise=True)
    sched = schedulers.build_scheduler(sp, 9)
    sched.set_timesteps(8)
    sched.set_begin_index(4)  # add_noise at that step's level
    noise = latents.make_noise((4, 8, 8), [9])
    expected = sched.add_noise(original.samples, noise, sched.timesteps[4:5])
    assert torch.allclose(out.samples[..., OUTSIDE], expected[..., OUTSIDE], atol=1e-6)
    assert not torch.allclose(out.samples[..., OUTSIDE], original.samples[..., OUTSIDE])
    assert out.noise_mask is not None  # the mask stays on the latent for the refiner


def test_a_masked_image_of_another_size_is_refused_naming_the_input(make_ctx, tiny_inpaint):
    from latentgraph.nodes.values import NodeInputError

    unet, clip, v, _ = tiny_inpaint
    pos, neg = prompts(make_ctx, clip)
    ipos, ineg, _ = inpaint.inpaint_conditioning(make_ctx(), pos, neg, v, picture(), block_mask())
    bigger = latents.latent_noise(make_ctx("LatentNoise"), 128, 128, 1, 5, vae=v)
    with pytest.raises(NodeInputError, match=r"input '(negative|positive)'.*8x8 cells.*16x16"):
        sample(make_ctx, tiny_inpaint, ipos, ineg, bigger, "euler", steps=2)


def test_a_window_ending_early_at_zero_noise_keeps_the_original_exactly(make_ctx, tiny):
    """Stopping at step 4 of 8 without leftover noise finishes clean: outside the mask the
    latent is the original itself, not the original noised to step 4's level."""
    original, out, _ = masked_window(make_ctx, tiny)
    assert torch.equal(out.samples[..., OUTSIDE], original.samples[..., OUTSIDE])
    assert not torch.equal(out.samples[..., ~OUTSIDE], original.samples[..., ~OUTSIDE])
