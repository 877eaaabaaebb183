"""ComfyUI's batch noise rule on KSampler and the custom sampler (nodes/seeds.py; the tiny
model, 64x64, 2 steps): one generator seeded `seed` draws the batch, row by batch position, so
consecutive seeds share no image and LatentFromBatch's pick re-makes its image. (The old rule,
image i from seed + i, repeated N - 1 images of a batch of N under the editor's `increment`.)"""

from __future__ import annotations

import pytest

from . import ksampler_prompts as ks

STOCHASTIC = ["euler_ancestral", "dpm_2_ancestral", "ddpm", "lcm", "dpmpp_sde", "dpmpp_2m_sde"]


def picked(prompt: dict, index: int, length: int = 1, amount: int = 1) -> dict:
    """`prompt` with LatentFromBatch(index, length) and RepeatLatentBatch(amount) between its
    EmptyLatentImage and its sampler."""
    prompt["6"] = {
        "class_type": "LatentFromBatch",
        "inputs": {"samples": ["4", 0], "batch_index": index, "length": length},
    }
    prompt["7"] = {"class_type": "RepeatLatentBatch",
                   "inputs": {"samples": ["6", 0], "amount": amount}}  # fmt: skip
    prompt[ks.SAMPLER]["inputs"]["latent_image"] = ["7", 0]
    return prompt


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("sampler_name", STOCHASTIC)
def test_a_picked_image_of_a_batch_is_re_made_with_its_batch_position(settings, sampler_name):
    """Row i of batch 3 at seed 10 equals LatentFromBatch(i) of that batch sampled alone, the
    per-step noise (Brownian tree for dpmpp_sde) by position too; row 0 is the batch of one
    at seed 10. Within float tolerance (the UNet runs batched)."""
    import torch

    batch = ks.latent(ks.prompt(ks.ksampler(10, sampler_name), batch=3), settings)
    alone = ks.latent(ks.prompt(ks.ksampler(10, sampler_name)), settings)
    torch.testing.assert_close(batch[:1], alone, rtol=0, atol=2e-3)
    for i in (1, 2):
        pick = ks.latent(picked(ks.prompt(ks.ksampler(10, sampler_name), batch=3), i), settings)
        torch.testing.assert_close(batch[i : i + 1], pick, rtol=0, atol=2e-3)


def test_consecutive_seeds_share_no_image_of_a_batch(settings):
    """Seeds 10 and 11 with batch 4 (the editor's `increment`): 8 different images."""
    batch = ks.latent(ks.prompt(ks.ksampler(10), batch=4), settings)
    after = ks.latent(ks.prompt(ks.ksampler(11), batch=4), settings)
    for i in range(4):
        for j in range(4):
            assert (batch[i] - after[j]).abs().max() > 0.1, (i, j)


def test_repeating_a_picked_image_continues_its_batch_positions(settings):
    """LatentFromBatch(2) repeated 3 times is positions 2, 3, 4: rows 2..4 of batch 5."""
    import torch

    whole = ks.latent(ks.prompt(ks.ksampler(10), batch=5), settings)
    repeated = ks.latent(picked(ks.prompt(ks.ksampler(10), batch=5), 2, amount=3), settings)
    torch.testing.assert_close(repeated, whole[2:5], rtol=0, atol=2e-3)


def test_a_picked_image_of_a_custom_sampler_batch_is_re_made_too(settings):
    import torch

    def custom(batch: int = 3) -> dict:
        return ks.with_custom_parts(ks.prompt(ks.sampler_custom(10), batch=batch))

    batch = ks.latent(custom(), settings)
    torch.testing.assert_close(batch[:1], ks.latent(custom(1), settings), rtol=0, atol=2e-3)
    pick = ks.latent(picked(custom(), 2), settings)
    torch.testing.assert_close(batch[2:3], pick, rtol=0, atol=2e-3)
    after = ks.latent(ks.with_custom_parts(ks.prompt(ks.sampler_custom(11), batch=3)), settings)
    assert all((batch[i] - after[j]).abs().max() > 0.1 for i in range(3) for j in range(3))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_ksampler_and_the_custom_sampler_give_one_batch_for_a_seed_picked_rows_too(settings):
    """KSampler and SamplerCustom (its RandomNoise) share ComfyUI's rule, starting and
    per-step noise (euler_ancestral): the same batch of 3 for a seed, and the same rows 1..2
    picked from it by LatentFromBatch."""
    import torch

    def both(pick: bool) -> tuple:
        classic = ks.prompt(ks.ksampler(10, "euler_ancestral"), batch=3)
        custom = ks.with_custom_parts(ks.prompt(ks.sampler_custom(10), batch=3))
        return tuple(ks.latent(picked(p, 1, length=2) if pick else p, settings)
                     for p in (classic, custom))  # fmt: skip

    classic, custom = both(pick=False)
    torch.testing.assert_close(custom, classic, rtol=0, atol=1e-5)
    classic_pick, custom_pick = both(pick=True)
    torch.testing.assert_close(custom_pick, classic_pick, rtol=0, atol=1e-5)
    torch.testing.assert_close(classic_pick, classic[1:3], rtol=0, atol=2e-3)


@pytest.mark.parametrize("sampler_name", ["ddim", "dpmpp_2m", "uni_pc"])
def test_an_empty_latent_starts_from_pure_noise_whatever_the_sampler(settings, sampler_name):
    """KSampler on EmptyLatentImage runs as on pure noise (LatentNoise, the same noise at
    batch 1): the pipeline's start, noise x init_noise_sigma, not the noise added to zeros at
    the first timestep, which is a smaller start for DDIM, DPM++ and UniPC."""
    import torch

    empty = ks.prompt(ks.ksampler(10, sampler_name))
    noise = ks.prompt(ks.ksampler(10, sampler_name))
    noise["4"] = {"class_type": "LatentNoise",
                  "inputs": {"width": 64, "height": 64, "batch_size": 1, "seed": 10}}  # fmt: skip
    assert torch.equal(ks.latent(empty, settings), ks.latent(noise, settings))
