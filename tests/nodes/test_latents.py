"""LatentNoise (nodes/latents.py): the starting noise's shape, dtype, seeds and size rules."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from latentgraph.nodes.latents import latent_noise, make_noise
from latentgraph.nodes.values import NodeInputError, VAEModel


def reference(shape, seed):
    """Image noise as torch draws it from a CPU generator seeded `seed`, in float32."""
    import torch

    g = torch.Generator("cpu").manual_seed(seed)
    return torch.randn((1, *shape), generator=g, dtype=torch.float32)


def vae_of(blocks: int, channels: int) -> VAEModel:
    """A VAE as LatentNoise reads it: scale factor 2 ** (blocks - 1), its latent channels."""
    config = SimpleNamespace(block_out_channels=[32] * blocks, latent_channels=channels)
    return VAEModel(SimpleNamespace(config=config), "k", "cpu")


def test_make_noise_is_float32_and_seeded_per_image_whatever_the_default_dtype():
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e.g. set by another library in the process
    try:
        noise = make_noise((4, 3, 2), [7, 9])
    finally:
        torch.set_default_dtype(old)
    assert noise.dtype == torch.float32 and noise.shape == (2, 4, 3, 2)
    assert torch.equal(noise[0:1], reference((4, 3, 2), 7))
    assert torch.equal(noise[1:2], reference((4, 3, 2), 9))


def test_latent_noise_without_a_vae_is_sd_shaped_and_seeded_seed_plus_i(make_ctx):
    import torch

    out = latent_noise(make_ctx("LatentNoise"), 48, 32, batch_size=2, seed=11)
    assert out.samples.shape == (2, 4, 4, 6)  # 4 channels, 8 pixels a cell
    assert out.seeds == [11, 12] and out.is_noise
    assert torch.equal(out.samples[1:2], reference((4, 4, 6), 12))


def test_latent_noise_takes_the_scale_factor_and_channels_from_the_vae(make_ctx):
    out = latent_noise(make_ctx("LatentNoise"), 20, 12, 1, 0, vae=vae_of(3, 16))
    assert out.samples.shape == (1, 16, 3, 5)  # factor 4


def test_a_size_off_the_scale_factor_suggests_the_multiple_below_else_the_factor(make_ctx):
    ctx = make_ctx("LatentNoise", node_id="noise")
    with pytest.raises(NodeInputError, match=r"input 'width': 60 is not a multiple of the VAE's "
                       r"scale factor 8 \(try 56\)"):  # fmt: skip
        latent_noise(ctx, 60, 64)
    with pytest.raises(NodeInputError, match=r"input 'height': 8 is not .* factor 16 \(try 16\)"):
        latent_noise(ctx, 32, 8, vae=vae_of(5, 4))


def test_a_latent_is_shown_by_its_shapes_not_its_numbers():
    """`keep="denoise"` in a REPL printed the whole tensor, dozens of lines."""
    import torch

    from latentgraph.nodes.values import Latent

    latent = Latent(torch.zeros(2, 4, 64, 64), seeds=[7, 8], noise_mask=torch.ones(2, 512, 512),
                    batch_index=[2, 3])  # fmt: skip
    assert repr(latent) == ("Latent(samples=Tensor[2, 4, 64, 64] torch.float32, seeds=[7, 8], "
                            "is_noise=False, noise_mask=Tensor[2, 512, 512] torch.float32, "
                            "batch_index=[2, 3])")  # fmt: skip
    assert repr(Latent(torch.zeros(1, 4, 8, 8))).endswith(
        "seeds=None, is_noise=False, noise_mask=None, batch_index=None)"
    )
