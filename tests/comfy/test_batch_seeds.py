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
