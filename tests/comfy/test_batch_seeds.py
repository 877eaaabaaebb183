"""Image i of a batch is the image alone at seed + i, stochastic samplers too (KSampler and
the custom sampler; the tiny model, 64x64, 2 steps)."""

from __future__ import annotations

import pytest

from . import ksampler_prompts as ks

STOCHASTIC = ["euler_ancestral", "dpm_2_ancestral", "ddpm", "lcm", "dpmpp_sde", "dpmpp_2m_sde"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("sampler_name", STOCHASTIC)
def test_image_i_of_a_batch_is_the_image_alone_at_seed_plus_i(settings, sampler_name):
    """The per-step noise of image i is drawn from its own generator (Brownian tree for
    dpmpp_sde) seeded seed + i, as the starting noise is: batch 3 at seed 10 equals batch 1
    at seeds 10, 11, 12, within float tolerance (the UNet runs batched)."""
    import torch

    batch = ks.latent(ks.prompt(ks.ksampler(10, sampler_name), batch=3), settings)
    for i in range(3):
        alone = ks.latent(ks.prompt(ks.ksampler(10 + i, sampler_name)), settings)
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=0, atol=2e-3)


def test_image_i_of_a_custom_sampler_batch_is_the_image_alone_too(settings):
    import torch

    batch = ks.latent(ks.with_custom_parts(ks.prompt(ks.sampler_custom(10), batch=3)), settings)
    for i in range(3):
        alone = ks.latent(ks.with_custom_parts(ks.prompt(ks.sampler_custom(10 + i))), settings)
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=0, atol=2e-3)
