"""Inpainting nodes: the grown mask, greyed-out pixels, the noise mask on latents, and the
sampler-side rules (the per-step blend, the 9-channel UNet input) on small tensors."""

from __future__ import annotations

import pytest
import torch

from latentgraph.nodes import inpaint, vae
from latentgraph.nodes.inpaint_sampling import (
    NoiseMask,
    concat_channels,
    from_latent,
    with_concat,
)
from latentgraph.nodes.values import InpaintImage, Latent


def dot(height=32, width=32, row=10, col=12):
    mask = torch.zeros(1, height, width)
    mask[0, row, col] = 1.0
    return mask


@pytest.mark.parametrize("by", [2, 5, 6, 9])
def test_grow_mask_by_makes_each_masked_pixel_a_square_that_wide(by):
    grown = inpaint.grow(dot(), by)
    rows, cols = grown[0].nonzero(as_tuple=True)
    before = (by - 1) // 2  # ComfyUI's window: floor((by - 1) / 2) up and left, the rest after
    assert grown.sum() == by * by
    assert rows.min() == 10 - before and rows.max() == 10 - before + by - 1
    assert cols.min() == 12 - before and cols.max() == 12 - before + by - 1


def test_grow_mask_by_zero_only_rounds():
    soft = torch.tensor([[[0.2, 0.6], [0.5, 0.49]]])
    assert inpaint.grow(soft, 0).tolist() == [[[0.0, 1.0], [0.0, 0.0]]]  # round half to even


def test_grey_out_sets_the_masked_pixels_to_mid_grey():
    pixels = torch.rand(1, 8, 8, 3)
    mask = torch.zeros(1, 8, 8)
    mask[0, 2:5, 3:6] = 0.7  # rounds to 1
    out = inpaint.grey_out(pixels, mask)
    assert out[0, 2:5, 3:6].eq(0.5).all()
    keep = torch.ones(8, 8, dtype=torch.bool)
    keep[2:5, 3:6] = False
    assert torch.allclose(out[0][keep], pixels[0][keep], atol=1e-7)


def picture(size=64, seed=0):
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))


def block_mask(size=64, top=16, left=24, height=24, width=16):
    mask = torch.zeros(1, size, size)
    mask[0, top : top + height, left : left + width] = 1.0
    return mask


def test_inpaint_encode_greys_the_masked_part_and_sets_the_grown_noise_mask(make_ctx, tiny):
    pixels, mask = picture(), block_mask()
    out = inpaint.inpaint_encode(make_ctx("InpaintEncode"), pixels, tiny[2], mask, 6)
    greyed = pixels.clone()
    greyed[0, 16:40, 24:40] = 0.5
    expected = vae.vae_encode(make_ctx("VAEEncode"), greyed, tiny[2])
    assert torch.equal(out.samples, expected.samples)
    assert out.noise_mask.shape == (1, 64, 64)
    assert torch.equal(out.noise_mask, inpaint.grow(mask, 6))
    assert out.noise_mask.sum() == (24 + 5) * (16 + 5)  # grown by 6 - 1 rows and columns
    # what was under the mask is gone: changing it changes nothing
    other = pixels.clone()
    other[0, 16:40, 24:40] = torch.rand(24, 16, 3)
    again = inpaint.inpaint_encode(make_ctx("InpaintEncode"), other, tiny[2], mask, 6)
    assert torch.equal(again.samples, out.samples)


def test_inpaint_encode_fits_the_mask_to_the_cropped_image(make_ctx, tiny):
    ctx = make_ctx("InpaintEncode")
    pixels = picture(size=70)[:, :, :68]  # 68 wide, 70 high: cropped to 64x64
    mask = torch.ones(1, 35, 34)  # half size: resized to the image first
    out = inpaint.inpaint_encode(ctx, pixels, tiny[2], mask, 0)
    assert out.samples.shape == (1, 4, 8, 8) and out.noise_mask.shape == (1, 64, 64)
    assert out.noise_mask.eq(1).all()
    assert any("cropped to 64x64" in w for w in ctx.rec.warnings)


def test_set_latent_noise_mask_keeps_the_samples_and_changes_no_input(make_ctx):
    latent = Latent(torch.randn(2, 4, 8, 8), [1, 2])
    mask = block_mask(size=64)
    out = inpaint.set_latent_noise_mask(make_ctx("SetLatentNoiseMask"), latent, mask[0])
    assert out.samples is latent.samples and out.seeds == [1, 2]
    assert out.noise_mask.shape == (1, 64, 64) and latent.noise_mask is None


def test_the_noise_mask_is_part_of_the_cached_value():
    from latentgraph.graph.cache import codec_for

    plain = Latent(torch.randn(1, 4, 8, 8))
    masked = Latent(plain.samples, noise_mask=block_mask(size=8, top=2, left=2, height=3, width=4))
    codec = codec_for(masked)
    back = codec.decode(codec.encode(masked))
    assert torch.equal(back.noise_mask, masked.noise_mask)
    assert codec.decode(codec.encode(plain)).noise_mask is None
    assert codec.digest(plain) != codec.digest(masked)


def test_the_blend_keeps_the_original_noised_to_the_next_step_outside_the_mask():
    from diffusers import DDIMScheduler

    from latentgraph.nodes.tiny_model import SCHEDULER_CONFIG

    sched = DDIMScheduler(**SCHEDULER_CONFIG)
    sched.set_timesteps(10)
    original, noise, latents = torch.randn(3, 1, 4, 8, 8)
    mask = block_mask(size=8, top=2, left=3, height=4, width=2)
    blend = NoiseMask.of(mask, original, noise)
    t = sched.timesteps[4]
    out = blend.after_step(sched, latents, t)
    inside = mask[0].bool()
    noised = sched.add_noise(original, noise, t.reshape(1))
    assert torch.equal(out[..., inside], latents[..., inside])
    assert torch.equal(out[..., ~inside], noised[..., ~inside])
    last = blend.after_step(sched, latents, None)
    assert torch.equal(last[..., ~inside], original[..., ~inside])
    assert torch.equal(blend.at_sigma(latents, 0.0)[..., ~inside], original[..., ~inside])
    assert NoiseMask.of(None, original, noise) is None


def test_nine_channel_input_is_latents_then_mask_then_masked_image_latents():
    mask = block_mask(size=64, top=16, left=24, height=24, width=16)  # latent rows 2..4, cols 3..4
    masked_latents = torch.randn(1, 4, 8, 8)
    extra = concat_channels((2, 4, 8, 8), InpaintImage(masked_latents, mask))
    model_input = torch.randn(2, 4, 8, 8)
    full = with_concat(model_input, extra)
    assert full.shape == (2, 9, 8, 8)
    assert torch.equal(full[:, :4], model_input)
    expected_mask = torch.zeros(8, 8)
    expected_mask[2:5, 3:5] = 1
    assert torch.equal(full[0, 4], expected_mask) and torch.equal(full[1, 4], expected_mask)
    assert torch.equal(full[1, 5:], masked_latents[0])  # the batch repeated
    assert with_concat(model_input, None) is model_input


def test_nine_channel_input_falls_back_to_the_noise_mask_then_to_the_whole_image():
    original = torch.randn(1, 4, 8, 8)
    noise_mask = block_mask(size=8, top=0, left=0, height=8, width=4)
    image = from_latent(Latent(original, noise_mask=noise_mask))
    extra = concat_channels((1, 4, 8, 8), image)
    assert extra[:, 0, :, :4].eq(1).all() and extra[:, 0, :, 4:].eq(0).all()
    assert torch.equal(extra[0, 1:], original[0])
    assert from_latent(Latent(original)) is None
    assert from_latent(Latent(original, is_noise=True, noise_mask=noise_mask)) is None
    blank = concat_channels((2, 4, 8, 8), None)
    assert blank[:, 0].eq(1).all() and blank[:, 1:].eq(0).all()


def test_masked_image_latents_of_another_size_are_refused():
    image = InpaintImage(torch.zeros(1, 4, 8, 8), torch.ones(1, 64, 64))
    with pytest.raises(ValueError, match="encode the image at the size being sampled"):
        concat_channels((1, 4, 16, 16), image)
