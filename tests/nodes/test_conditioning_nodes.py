"""The conditioning nodes (nodes/conditioning.py) and ComfyUI's names for them
(nodes/comfy_conditioning.py): entries joined, embeddings mixed, areas, masks, ranges."""

from __future__ import annotations

import pytest

from latentgraph.graph import default_registry
from latentgraph.nodes import comfy_conditioning as cc
from latentgraph.nodes import conditioning as cn
from latentgraph.nodes.values import Area, Conditioning


def cond(tokens: int = 77, batch: int = 1, seed: int = 0, pooled: bool = False) -> Conditioning:
    import torch

    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(batch, tokens, 8, generator=g)
    return Conditioning.of(embeds, [f"p{seed}"] * batch,
                           torch.randn(batch, 4, generator=g) if pooled else None)  # fmt: skip


def test_combine_keeps_every_entry_in_order(make_ctx):
    a, b = cond(seed=1), cn.combine(cond(seed=2), cond(seed=3, tokens=154))
    out = cn.combine_conditioning(make_ctx(), a, b)
    assert [e.prompts for e in out.entries] == [("p1",), ("p2",), ("p3",)]
    assert [tuple(e.embeds.shape) for e in out.entries] == [(1, 77, 8), (1, 77, 8), (1, 154, 8)]
    assert cc.conditioning_combine(make_ctx(), a, b) == out


def test_concat_appends_the_first_entry_of_the_other_to_each_entry(make_ctx):
    import torch

    to = cn.combine(cn.with_area(cond(seed=1), Area(8, 8), 2.0), cond(seed=2, batch=2))
    other = cn.combine(cond(seed=3), cond(seed=4))
    ctx = make_ctx()
    out = cn.concat_conditioning(ctx, to, other)
    assert [tuple(e.embeds.shape) for e in out.entries] == [(1, 154, 8), (2, 154, 8)]
    first = out.entries[0]
    assert torch.equal(first.embeds, torch.cat([to.entries[0].embeds, other.entries[0].embeds], 1))
    assert torch.equal(out.entries[1].embeds[1, 77:], other.entries[0].embeds[0])  # repeated
    assert first.area == Area(8, 8) and first.strength == 2.0  # the rest of `to` kept
    assert any("only the first" in w for w in ctx.rec.warnings)
    combined = cn.combine_conditioning(make_ctx(), cond(seed=1), cond(seed=3))
    assert len(combined.entries) == 2 and len(out.entries) == 2  # Concat: no new entries


def test_average_weighs_embeddings_and_pooled(make_ctx):
    import torch

    to, other = cond(seed=1, pooled=True), cond(seed=2, tokens=40, pooled=True)
    out = cc.conditioning_average(make_ctx(), to, other, 0.25).single
    theirs = torch.cat([other.single.embeds, torch.zeros(1, 37, 8)], dim=1)  # padded to 77 tokens
    assert torch.allclose(out.embeds, to.single.embeds * 0.25 + theirs * 0.75)
    assert torch.allclose(out.pooled, to.single.pooled * 0.25 + other.single.pooled * 0.75)
    longer = cn.average_conditioning(make_ctx(), cond(seed=1, tokens=40), cond(seed=2), 0.5)
    assert torch.allclose(longer.single.embeds, (cond(seed=1, tokens=40).single.embeds
                                          + cond(seed=2).single.embeds[:, :40]) / 2)  # fmt: skip
    assert torch.equal(
        cn.average_conditioning(make_ctx(), to, other, 1.0).single.embeds, to.single.embeds
    )
    borrowed = cn.average_conditioning(make_ctx(), cond(seed=1), other, 0.5)
    assert torch.equal(
        borrowed.single.pooled, other.single.pooled
    )  # no pooled of its own: the other's


def test_zero_out_zeros_embeddings_and_pooled_and_keeps_the_rest(make_ctx):
    import torch

    src = cn.with_time_range(make_ctx(), cond(seed=1, batch=2, pooled=True), 0.1, 0.9)
    out = cc.conditioning_zero_out(make_ctx(), src).single
    assert out.embeds.shape == (2, 77, 8) and not out.embeds.any()
    assert out.pooled.shape == (2, 4) and not out.pooled.any()
    assert (out.start_percent, out.end_percent) == (0.1, 0.9)
    assert torch.count_nonzero(src.single.embeds) > 0  # the input value is not changed
    assert cn.zero_conditioning(make_ctx(), cond()).single.pooled is None


def test_areas_in_pixels_become_latent_cells(make_ctx, tiny):
    vae = tiny[2]
    assert vae.scale_factor == 8
    native = cn.conditioning_area(make_ctx(), cond(), width=100, height=64, x=20, y=200,
                                  strength=1.5, vae=vae).single  # fmt: skip
    assert native.area == Area(8, 12, 25, 2) and native.strength == 1.5
    comfy = cc.conditioning_set_area(make_ctx(), cond(), 100, 64, 20, 200, 1.5).single
    assert comfy.area == native.area  # ComfyUI's unit of 8 pixels
    assert cn.pixel_area(make_ctx(), 64, 32, 16, 8, scale=2) == Area(
        16, 32, 4, 8
    )  # a VAE scaling by 2
    fraction = cc.conditioning_set_area_percentage(make_ctx(), cond(), 0.5, 0.25, 0.1, 0.2, 1.0)
    assert fraction.single.area == Area(0.25, 0.5, 0.2, 0.1, fractions=True)
    with pytest.raises(ValueError, match="'width'.*one latent cell"):
        cn.conditioning_area(make_ctx(), cond(), width=4, height=64)


def test_strength_mask_and_range_are_set_on_every_entry(make_ctx):
    import torch

    two = cn.combine(cond(seed=1), cond(seed=2))
    assert [
        e.strength for e in cc.conditioning_set_area_strength(make_ctx(), two, 3.0).entries
    ] == [3.0, 3.0]
    mask = torch.rand(24, 32)  # [H, W]: taken as one mask
    masked = cc.conditioning_set_mask(make_ctx(), two, mask, 0.7, "mask bounds")
    for e in masked.entries:
        assert e.mask.shape == (1, 24, 32) and torch.equal(e.mask[0], mask)
        assert e.mask_strength == 0.7 and e.mask_bounds and e.strength == 1.0
    assert not cn.conditioning_mask(make_ctx(), two, mask).entries[0].mask_bounds
    ranged = cc.conditioning_set_timestep_range(make_ctx(), two, 0.2, 0.6)
    assert [(e.start_percent, e.end_percent) for e in ranged.entries] == [(0.2, 0.6)] * 2
    ctx = make_ctx()
    cn.conditioning_time_range(ctx, two, 0.8, 0.2)
    assert any("never act" in w for w in ctx.rec.warnings)


COMFY_INPUTS = {
    "ConditioningCombine": ["conditioning_1", "conditioning_2"],
    "ConditioningConcat": ["conditioning_to", "conditioning_from"],
    "ConditioningAverage": ["conditioning_to", "conditioning_from", "conditioning_to_strength"],
    "ConditioningZeroOut": ["conditioning"],
    "ConditioningSetArea": ["conditioning", "width", "height", "x", "y", "strength"],
    "ConditioningSetAreaPercentage": ["conditioning", "width", "height", "x", "y", "strength"],
    "ConditioningSetAreaStrength": ["conditioning", "strength"],
    "ConditioningSetMask": ["conditioning", "mask", "strength", "set_cond_area"],
    "ConditioningSetTimestepRange": ["conditioning", "start", "end"],
}


@pytest.mark.parametrize("name", sorted(COMFY_INPUTS))
def test_comfy_names_keep_comfyuis_inputs_and_output(name):
    import latentgraph.nodes  # noqa: F401 - installs the ComfyUI nodes

    node_type = default_registry[name]
    assert [i.name for i in node_type.inputs] == COMFY_INPUTS[name]
    assert [(o.name, o.type) for o in node_type.outputs] == [("CONDITIONING", "CONDITIONING")]
    area = default_registry["ConditioningSetArea"]
    assert (area.input("width").default, area.input("width").min, area.input("x").step) == (
        64,
        64,
        8,
    )
    assert default_registry["ConditioningSetMask"].input("set_cond_area").choice_list() == [
        "default", "mask bounds"]  # fmt: skip


def test_the_engine_can_describe_a_conditioning_of_several_entries():
    from latentgraph.graph.scheduler import describe_value

    assert describe_value(cn.combine(cond(seed=1), cond(seed=2))) == "Conditioning"
