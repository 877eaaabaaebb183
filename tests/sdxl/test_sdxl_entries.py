"""SDXL with several conditioning entries: each entry's own pooled embedding and size numbers
reach the UNet with its rows (nodes/guidance.py, nodes/sdxl.py `added_inputs`)."""

from __future__ import annotations

from latentgraph.nodes import conditioning as cn
from latentgraph.nodes import denoise, latents, text
from latentgraph.nodes.guidance import Guidance
from latentgraph.nodes.sdxl import size_conditioning
from latentgraph.nodes.values import Area


def one_step(make_ctx, model, pos, neg):
    unet, _, v, spec = model
    noise = latents.latent_noise(make_ctx("LatentNoise"), 128, 128, 1, 5, vae=v)
    return denoise.unet_denoise(make_ctx("UNetDenoise"), unet, spec, pos, neg, noise, 1, 5.0,
                                1.0, 5).samples  # fmt: skip


def test_an_sdxl_area_entry_changes_only_its_region(make_ctx, sdxl):
    import torch

    clip = sdxl[1]
    cat = text.text_encode(make_ctx("TextEncode"), clip, "a cat")
    neg = text.text_encode(make_ctx("TextEncode"), clip, "")
    dog = size_conditioning(text.text_encode(make_ctx("TextEncode"), clip, "a dog"),
                                 width=2048, height=2048)  # fmt: skip
    region = cn.with_area(dog, Area(8, 8, 8, 0), 1.0)  # the bottom-left quarter
    base = one_step(make_ctx, sdxl, cat, neg)
    both = one_step(make_ctx, sdxl, cn.combine(cat, region), neg)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[8:16, 0:8] = True
    assert torch.equal(base[..., ~inside], both[..., ~inside])
    assert not torch.equal(base[..., inside], both[..., inside])


def test_each_entry_brings_its_own_pooled_embedding_and_time_ids(make_ctx, sdxl):
    import torch

    unet, clip = sdxl[0].unet, sdxl[1]
    cat = text.text_encode(make_ctx("TextEncode"), clip, "a cat")
    dog = size_conditioning(text.text_encode(make_ctx("TextEncode"), clip, "a dog"),
                                 width=2048, height=1024)  # fmt: skip
    g = Guidance(make_ctx("UNetDenoise"), unet, torch.device("cpu"), cn.combine(cat, dog), cat,
                 5.0, (2, 4, 16, 16))  # fmt: skip
    positive = [t for t in g.terms if t.side == "positive"]
    assert torch.equal(positive[1].added["text_embeds"], dog.single.pooled.expand(2, -1))
    assert positive[0].added["time_ids"][0].tolist() == [128, 128, 0, 0, 128, 128]
    assert positive[1].added["time_ids"][1].tolist() == [1024, 2048, 0, 0, 1024, 2048]


def test_unguided_sdxl_runs_the_positive_rows_alone(make_ctx, sdxl):
    """CFG 1: one UNet call on the positive rows (a batch of one term, with its added inputs);
    the negative text then changes nothing."""
    import torch

    unet, clip, v, spec = sdxl
    cat = text.text_encode(make_ctx("TextEncode"), clip, "a cat")
    noise = latents.latent_noise(make_ctx("LatentNoise"), 64, 64, 1, 5, vae=v)

    def run(neg):
        return denoise.unet_denoise(make_ctx("UNetDenoise"), unet, spec, cat, neg, noise, 1, 1.0,
                                    1.0, 5).samples  # fmt: skip

    a = run(text.text_encode(make_ctx("TextEncode"), clip, ""))
    b = run(text.text_encode(make_ctx("TextEncode"), clip, "a dog"))
    assert a.shape == (1, 4, 8, 8) and torch.isfinite(a).all() and torch.equal(a, b)


def test_conditioning_without_a_pooled_embedding_is_refused_naming_its_input(make_ctx, sdxl):
    import pytest
    import torch

    from latentgraph.nodes.values import Conditioning, NodeInputError

    unet, clip = sdxl[0].unet, sdxl[1]
    cat = text.text_encode(make_ctx("TextEncode"), clip, "a cat")
    sd_like = Conditioning.of(torch.zeros(1, 77, cat.single.embeds.shape[-1]), [""])
    with pytest.raises(NodeInputError, match=r"node 'n1' \(UNetDenoise\) input 'negative': this "
                       "SDXL model needs conditioning from an SDXL text encoder"):  # fmt: skip
        Guidance(make_ctx("UNetDenoise"), unet, torch.device("cpu"), cat, sd_like, 5.0,
                 (1, 4, 16, 16))  # fmt: skip
