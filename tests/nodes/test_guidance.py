"""Conditioning entries combined per step (nodes/guidance.py): areas, masks, strength,
timestep ranges, pairing, and the plain case staying diffusers' pipeline."""

from __future__ import annotations

from dataclasses import replace

import pytest

from latentgraph.nodes import conditioning as cn
from latentgraph.nodes import denoise, latents, schedulers, text
from latentgraph.nodes.guidance import (
    FADE_CELLS,
    Guidance,
    Region,
    area_region,
    edge_fade,
    mask_bounds,
)
from latentgraph.nodes.values import Area, Conditioning, NodeInputError


class ConstantUNet:
    """A stand-in UNet whose prediction for each row is the mean of that row's embeddings,
    on every cell: an entry made of the value c predicts c, so combinations can be computed."""

    dtype = None
    config: dict = {"in_channels": 4}  # a text-to-image UNet

    def __init__(self) -> None:
        import torch

        self.dtype = torch.float32
        self.calls: list[tuple] = []

    def __call__(self, x, t, encoder_hidden_states, added_cond_kwargs, return_dict):
        self.calls.append((tuple(x.shape), tuple(encoder_hidden_states.shape)))
        rows = encoder_hidden_states.mean(dim=(1, 2))[:, None, None, None]
        return (rows.expand_as(x).clone(),)


def const(value: float, batch: int = 1) -> Conditioning:
    import torch

    return Conditioning.of(torch.full((batch, 4, 8), float(value)), [str(value)])


def predict(pos, neg, scale=1.0, shape=(1, 4, 32, 32), t=999, model=None):
    import torch

    model = model or ConstantUNet()
    g = Guidance(None, model, torch.device("cpu"), pos, neg, scale, shape)
    return g.predict(torch.zeros(shape), torch.tensor(t)), g


def test_strength_and_mask_weigh_each_cell(make_ctx):
    import torch

    mask = torch.zeros(1, 64, 64)
    mask[:, :, :32] = 1.0  # the left half (resized to the 32x32 latent)
    masked = cn.with_mask(mask, cn.conditioning_strength(make_ctx(), const(3), 2.0), 0.5, False)
    pos = cn.combine(const(1), masked)
    out, _ = predict(pos, const(0))
    # left: (1·1 + 3·(1·0.5·2)) / (1 + 1) = 2; right: the mask is 0 there, so 1
    assert torch.allclose(out[..., :, :16], torch.full((1, 4, 32, 16), 2.0))
    assert torch.allclose(out[..., :, 16:], torch.ones(1, 4, 32, 16))


def test_a_plugins_mask_with_a_channel_axis_weighs_as_the_same_mask_without():
    import torch

    mask = torch.zeros(1, 64, 64)
    mask[:, :, :32] = 1.0
    plain = cn.combine(const(1), cn.with_mask(mask, const(3), 1.0, False))
    # a plugin's node building the entry itself, its MASK [B, 1, H, W] as some ComfyUI packs
    channel = plain.map(lambda e: e if e.mask is None else replace(e, mask=mask[:, None]))
    expected, _ = predict(plain, const(0))
    out, _ = predict(channel, const(0))
    assert torch.equal(out, expected)


def test_area_weights_fade_at_inner_edges_and_cover_only_their_cells():
    import torch

    area = cn.with_area(const(5), Area(16, 32, 0, 0), 3.0)  # top half, full width
    out, _ = predict(cn.combine(const(1), area), const(0))
    assert torch.allclose(out[0, 0, 0], torch.full((32,), 4.0))  # (1 + 5·3) / (1 + 3)
    last = 3.0 / FADE_CELLS  # the last row inside fades to 1/8 (its bottom edge is inside)
    assert torch.allclose(out[0, 0, 15], torch.full((32,), (1 + 5 * last) / (1 + last)))
    assert torch.equal(out[..., 16:, :], torch.ones(1, 4, 16, 32))  # outside: only the first
    alone, _ = predict(area, const(0))
    assert torch.equal(alone[..., 16:, :], torch.zeros(1, 4, 16, 32))  # no entry: zero


def test_guidance_pairs_an_area_with_the_negative_text_over_the_same_cells():
    import torch

    area = cn.with_area(const(5), Area(24, 24, 4, 4), 1.0)
    out, g = predict(cn.combine(const(1), area), const(0.5), scale=2.0)
    negatives = [t for t in g.terms if t.side == "negative"]
    assert [t.region for t in negatives] == [None, Region(4, 4, 24, 24)]
    assert float(negatives[1].entry.embeds.mean()) == 0.5  # the negative's text
    assert negatives[1].entry.strength == area.single.strength
    # the negative is 0.5 everywhere, so CFG gives 0.5 + 2 (positive - 0.5)
    assert torch.allclose(out[0, 0, 0, 0], torch.tensor(0.5 + 2 * 0.5))
    assert torch.allclose(out[0, 0, 16, 16], torch.tensor(0.5 + 2 * 2.5))  # (1 + 5) / 2


def test_plain_case_is_one_batched_call_negative_first():
    model = ConstantUNet()
    predict(const(1), const(0), scale=7.5, model=model)
    assert model.calls == [((2, 4, 32, 32), (2, 4, 8))]
    model = ConstantUNet()
    predict(cn.combine(const(1), cn.with_area(const(2), Area(8, 8), 1.0)), const(0), 7.5,
            model=model)  # fmt: skip
    assert model.calls == [((2, 4, 32, 32), (2, 4, 8)), ((2, 4, 8, 8), (2, 4, 8))]


def test_an_entry_acts_only_inside_its_timestep_range(make_ctx):
    import torch

    late = cn.with_time_range(make_ctx(), const(9), 0.5, 1.0)  # the second half of the noise
    early, _ = predict(cn.combine(const(1), late), const(0), t=999)
    assert torch.equal(early, torch.ones(1, 4, 32, 32))
    later, _ = predict(cn.combine(const(1), late), const(0), t=400)
    assert torch.equal(later, torch.full((1, 4, 32, 32), 5.0))
    edge, _ = predict(cn.combine(const(1), late), const(0), t=499)  # 0.5 of 999 is 499.5
    assert torch.equal(edge, torch.full((1, 4, 32, 32), 5.0))


def test_areas_and_mask_bounds_resolve_to_latent_cells():
    import torch

    assert area_region(Area(0.5, 0.25, 0.25, 0.5, fractions=True), (16, 32)) == Region(4, 16, 8, 8)
    assert area_region(Area(0.0, 0.0, 0, 0, fractions=True), (16, 32)) == Region(0, 0, 1, 1)
    assert area_region(Area(16, 16, 8, 24), (16, 32)) == Region(8, 24, 8, 8)  # cut to the latent
    mask = torch.zeros(2, 16, 32)
    mask[0, 2, 3] = 1.0
    mask[1, 12, 20] = 0.5
    assert mask_bounds(mask, (16, 32)) == Region(2, 3, 11, 18)
    assert mask_bounds(torch.zeros(1, 16, 32), (16, 32)) == Region(0, 0, 8, 8)


def test_an_area_outside_the_latent_is_a_clear_error(make_ctx):
    import torch

    from latentgraph.nodes.values import NodeInputError

    outside = cn.with_area(const(1), Area(8, 8, 40, 0), 1.0)
    with pytest.raises(NodeInputError, match="'positive'.*outside the latent"):
        Guidance(make_ctx("UNetDenoise"), ConstantUNet(), torch.device("cpu"), outside,
                 const(0), 7.5, (1, 4, 32, 32))  # fmt: skip


def test_an_area_outside_the_image_is_named_as_set_with_its_node_and_what_to_do(make_ctx):
    """It said "an area (Area(height=8, width=4, y=0, x=8, fractions=False)) outside the
    latent (8x8 cells)": an internal object, in cells, naming only the sampler's input."""
    import torch

    from latentgraph.nodes import comfy_conditioning as cc

    def refusal(conditioning, prompt=None) -> str:
        ctx = make_ctx("UNetDenoise", node_id="den")
        if prompt is not None:
            ctx.extra["prompt"] = prompt  # the run's, as the CLI and the server give it
        with pytest.raises(NodeInputError) as err:
            Guidance(ctx, ConstantUNet(), torch.device("cpu"), conditioning, const(0), 7.5,
                     (1, 4, 8, 8))  # a 64x64 image  # fmt: skip
        return str(err.value)

    ours = cn.conditioning_area(make_ctx("ConditioningArea", node_id="area"), const(1),
                                width=32, height=64, x=64, y=0)  # fmt: skip
    assert refusal(ours) == (
        "node 'den' (UNetDenoise) input 'positive': the area x=64, y=0, width=32, height=64 of "
        "node 'area' (ConditioningArea) starts outside the 64x64 image: give it x below 64 and "
        "y below 64, or sample a larger image"
    )
    said = "the area x=64, y=0, width=32, height=64 of node 'area' (ConditioningArea) starts"
    assert said in refusal(ours, {"area": {"class_type": "ConditioningArea", "inputs": {}}})
    # an area from the cache, set by another workflow's node: named by its type alone
    assert "the area x=64, y=0, width=32, height=64 of a ConditioningArea node starts" in (
        refusal(ours, {"zone": {"class_type": "ConditioningArea", "inputs": {}}})
    )
    comfy = cc.conditioning_set_area(make_ctx("ConditioningSetArea", node_id="7"), const(1),
                                     64, 64, 0, 72, 1.0)  # fmt: skip
    assert "the area x=0, y=72, width=64, height=64 of node '7' (ConditioningSetArea) starts " \
        "outside the 64x64 image" in refusal(comfy)  # fmt: skip
    fraction = cc.conditioning_set_area_percentage(
        make_ctx("ConditioningSetAreaPercentage", node_id="8"), const(1), 0.5, 0.5, 1.0, 0.0, 1.0
    )
    assert refusal(fraction).endswith(
        "the area x=1, y=0, width=0.5, height=0.5 (fractions) of node '8' "
        "(ConditioningSetAreaPercentage) starts outside the image: give it x and y below 1"
    )


# --- on the tiny model -----------------------------------------------------------------------


def one_step(make_ctx, tiny, pos, neg, size=128, steps=1, name="euler"):
    unet, clip, v, spec = tiny
    noise = latents.latent_noise(make_ctx("LatentNoise"), size, size, 1, 3, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name)
    out = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, pos, neg, noise, steps, 7.5,
                               1.0, 3)  # fmt: skip
    return out.samples


def encode(make_ctx, tiny, prompt):
    return text.text_encode(make_ctx("TextEncode"), tiny[1], prompt)


def test_an_area_changes_only_its_region_after_one_step(make_ctx, tiny):
    import torch

    cat, neg = encode(make_ctx, tiny, "a cat"), encode(make_ctx, tiny, "")
    dog = cn.conditioning_area(make_ctx(), encode(make_ctx, tiny, "a dog"), width=64, height=64,
                               x=64, y=0, vae=tiny[2])  # fmt: skip
    base = one_step(make_ctx, tiny, cat, neg)
    both = one_step(make_ctx, tiny, cn.combine(cat, dog), neg)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[0:8, 8:16] = True  # 64 pixels at 8 pixels per cell
    assert torch.equal(base[..., ~inside], both[..., ~inside])
    assert not torch.equal(base[..., inside], both[..., inside])


def test_an_entry_outside_its_range_changes_nothing(make_ctx, tiny):
    import torch

    sched = schedulers.build_scheduler(schedulers.scheduler_select(make_ctx(), tiny[3], "euler"), 3)
    sched.set_timesteps(2)
    percents = [1 - float(t) / 999 for t in sched.timesteps]  # where the two steps are
    assert not any(0.3 <= p <= 0.45 for p in percents) and any(0.4 <= p <= 0.6 for p in percents)
    cat, neg = encode(make_ctx, tiny, "a cat"), encode(make_ctx, tiny, "")
    dog = encode(make_ctx, tiny, "a dog")
    base = one_step(make_ctx, tiny, cat, neg, size=64, steps=2)
    outside = cn.combine(cat, cn.with_time_range(make_ctx(), dog, 0.3, 0.45))
    assert torch.equal(one_step(make_ctx, tiny, outside, neg, size=64, steps=2), base)
    inside = cn.combine(cat, cn.with_time_range(make_ctx(), dog, 0.4, 0.6))
    assert not torch.equal(one_step(make_ctx, tiny, inside, neg, size=64, steps=2), base)


def test_plain_latents_equal_the_pipelines_exactly(make_ctx, tiny, tiny_folder):
    import torch
    from diffusers import StableDiffusionPipeline

    pos, neg = encode(make_ctx, tiny, "a cat"), encode(make_ctx, tiny, "")
    ours = one_step(make_ctx, tiny, pos, neg, size=64, steps=4, name="ddim")
    pipe = StableDiffusionPipeline.from_pretrained(tiny_folder, safety_checker=None,
                                                   requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = schedulers.build_scheduler(
        schedulers.scheduler_select(make_ctx(), tiny[3], "ddim"), 3
    )
    ref = pipe(prompt_embeds=pos.single.embeds, negative_prompt_embeds=neg.single.embeds, height=64, width=64,
               num_inference_steps=4, guidance_scale=7.5, output_type="latent",
               generator=torch.Generator().manual_seed(3)).images  # fmt: skip
    assert torch.equal(ours, ref)


def test_conditioning_codec_keeps_every_entry(make_ctx):
    import torch

    from latentgraph.graph.cache import codec_for

    mask = torch.rand(1, 16, 16)
    cond = cn.combine(
        cn.with_time_range(make_ctx(), cn.with_area(const(1), Area(0.5, 0.25, 0, 0.5, True), 2.0),
                           0.2, 0.7),
        cn.with_mask(mask, const(2, batch=2), 0.5, True),
    )  # fmt: skip
    codec = codec_for(cond)
    back = codec.decode(codec.encode(cond))
    assert len(back.entries) == 2
    for a, b in zip(cond.entries, back.entries, strict=True):
        assert torch.equal(a.embeds, b.embeds)
        assert (a.mask is None) == (b.mask is None)
        assert a.mask is None or torch.equal(a.mask, b.mask)
        assert (a.area, a.strength, a.mask_strength, a.mask_bounds, a.start_percent,
                a.end_percent, a.prompts, a.size) == (b.area, b.strength, b.mask_strength,
                b.mask_bounds, b.start_percent, b.end_percent, b.prompts, b.size)  # fmt: skip
    assert codec.size(cond) == 4 * (4 * 8 + 2 * 4 * 8 + 16 * 16)


def test_a_masked_entry_changes_only_where_its_mask_is_after_one_step(make_ctx, tiny):
    import torch

    cat, neg = encode(make_ctx, tiny, "a cat"), encode(make_ctx, tiny, "")
    mask = torch.zeros(1, 128, 128)
    mask[:, 64:, :64] = 1.0  # the bottom-left quarter, in pixels: cells [8:16, 0:8]
    dog = cn.conditioning_mask(make_ctx(), encode(make_ctx, tiny, "a dog"), mask, 2.0)
    base = one_step(make_ctx, tiny, cat, neg)
    both = one_step(make_ctx, tiny, cn.combine(cat, dog), neg)
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[8:16, 0:8] = True
    assert torch.equal(base[..., ~inside], both[..., ~inside])
    assert not torch.equal(base[..., inside], both[..., inside])
    weaker = one_step(make_ctx, tiny, cn.combine(cat, cn.with_mask(mask, dog, 0.5, False)), neg)
    assert not torch.equal(weaker[..., inside], both[..., inside])  # the mask's strength counts


# --- the rules of guidance.py, on the stand-in UNet ------------------------------------------


def test_edge_fade_ramps_only_from_the_edges_inside_the_latent():
    import torch

    ramp = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1]) / FADE_CELLS
    inner = edge_fade(Region(4, 4, 16, 16), (32, 32))
    assert inner.shape == (1, 1, 16, 16)
    assert torch.allclose(inner[0, 0], ramp[:, None] * ramp[None, :])
    falling = torch.tensor([8] * 9 + [7, 6, 5, 4, 3, 2, 1]) / FADE_CELLS
    top = edge_fade(Region(0, 0, 16, 32), (32, 32))[0, 0]  # only its bottom edge is inside
    assert torch.allclose(top, falling[:, None].expand(16, 32))
    bottom = edge_fade(Region(16, 0, 16, 32), (32, 32))[0, 0]  # only its top edge is inside
    assert torch.allclose(bottom, falling.flip(0)[:, None].expand(16, 32))
    left = edge_fade(Region(0, 0, 32, 16), (32, 32))[0, 0]  # only its right edge is inside
    assert torch.allclose(left, falling[None, :].expand(32, 16))


def test_unguided_runs_the_positive_rows_only():
    import torch

    model = ConstantUNet()
    out, g = predict(const(2), const(0), scale=1.0, model=model)  # CFG 1: no negative call
    assert model.calls == [((1, 4, 32, 32), (1, 4, 8))]
    assert [t.side for t in g.terms] == ["positive"]
    assert torch.equal(out, torch.full((1, 4, 32, 32), 2.0))


def test_one_prompt_serves_every_image_and_one_per_image_is_kept_in_order(make_ctx):
    import torch

    rows = torch.tensor([1.0, 2.0, 3.0])[:, None, None].expand(3, 4, 8).clone()
    out, _ = predict(Conditioning.of(rows, ["a", "b", "c"]), const(0.5), scale=2.0,
                     shape=(3, 4, 8, 8))  # fmt: skip
    for i in range(3):  # 0.5 + 2 (row_i - 0.5)
        assert torch.equal(out[i], torch.full((4, 8, 8), 0.5 + 2 * (i + 1 - 0.5)))
    with pytest.raises(NodeInputError, match="input 'negative': 2 prompts for a batch of 3 "
                       "latents; give one prompt or one per image"):  # fmt: skip
        Guidance(make_ctx("UNetDenoise"), ConstantUNet(), torch.device("cpu"), const(1),
                 const(0, batch=2), 7.5, (3, 4, 8, 8))  # fmt: skip


def test_a_mask_for_another_number_of_images_is_refused(make_ctx):
    import torch

    masked = cn.with_mask(torch.ones(2, 8, 8), const(1), 1.0, False)
    with pytest.raises(NodeInputError, match="input 'negative': a mask of 2 images for a batch "
                       "of 3 latents"):  # fmt: skip
        Guidance(make_ctx("UNetDenoise"), ConstantUNet(), torch.device("cpu"), const(1), masked,
                 7.5, (3, 4, 8, 8))  # fmt: skip


def test_mask_bounds_crop_the_call_to_the_masks_box_weighted_by_the_mask():
    import torch

    mask = torch.zeros(1, 32, 32)
    mask[:, 10:14, 12:14] = 1.0  # a 4x2 box: the call runs on at least 8x8 cells from its corner
    model = ConstantUNet()
    pos = cn.combine(const(1), cn.with_mask(mask, const(5), 1.0, True))
    out, g = predict(pos, const(0), model=model)
    assert g.terms[1].region == Region(10, 12, 8, 8)
    assert model.calls == [((1, 4, 32, 32), (1, 4, 8)), ((1, 4, 8, 8), (1, 4, 8))]
    expected = torch.ones(1, 4, 32, 32)
    expected[..., 10:14, 12:14] = 3.0  # (1 + 5) / 2 where the mask is; 1 elsewhere in the box
    assert torch.equal(out, expected)


def test_an_area_borrows_the_text_of_the_smallest_entry_covering_it():
    small = cn.with_area(const(0.75), Area(12, 12, 0, 0), 1.0)
    big = cn.with_area(const(0.25), Area(24, 24, 0, 0), 1.0)
    neg = cn.combine(cn.combine(small, const(0.5)), big)  # the smaller first, the whole between
    pos = cn.combine(const(1), cn.with_area(const(5), Area(8, 8, 2, 2), 1.0))
    _, g = predict(pos, neg, scale=2.0)

    def described(side):
        return [(t.region, float(t.entry.embeds.mean())) for t in g.terms if t.side == side]

    assert described("negative") == [
        (Region(0, 0, 12, 12), 0.75),
        (None, 0.5),
        (Region(0, 0, 24, 24), 0.25),
        (Region(2, 2, 8, 8), 0.75),
    ]
    # the negative areas get the whole positive's text; the negative copy of the positive's
    # area has exactly its region, so it gets no partner back
    assert described("positive") == [
        (None, 1.0),
        (Region(2, 2, 8, 8), 5.0),
        (Region(0, 0, 12, 12), 1.0),
        (Region(0, 0, 24, 24), 1.0),
    ]


def test_timestep_ranges_follow_the_models_number_of_noise_levels(make_ctx):
    import torch

    late = cn.combine(const(1), cn.with_time_range(make_ctx(), const(9), 0.5, 1.0))
    g = Guidance(None, ConstantUNet(), torch.device("cpu"), late, const(0), 1.0, (1, 4, 8, 8),
                 train_steps=100)  # fmt: skip
    x = torch.zeros(1, 4, 8, 8)
    assert torch.equal(g.predict(x, torch.tensor(50)), torch.ones(1, 4, 8, 8))  # 50 > 49.5
    assert torch.equal(g.predict(x, torch.tensor(49)), torch.full((1, 4, 8, 8), 5.0))


def test_a_region_contains_another_only_when_every_edge_is_inside():
    box = Region(4, 4, 8, 8)
    assert box.contains(Region(4, 4, 8, 8)) and box.contains(Region(6, 5, 2, 3))
    for other in (Region(3, 4, 2, 2), Region(4, 3, 2, 2),  # above, left of it
                  Region(10, 4, 3, 2), Region(4, 10, 2, 3),  # past its bottom, its right
                  Region(0, 0, 16, 16)):  # fmt: skip
        assert not box.contains(other), other


def test_mask_bounds_near_the_far_corner_are_cut_to_the_latent():
    import torch

    mask = torch.zeros(1, 32, 32)
    mask[0, 30, 29] = 1.0
    assert mask_bounds(mask, (32, 32)) == Region(30, 29, 2, 3)


def test_an_area_one_cell_from_the_border_fades_at_that_edge():
    import torch

    fade = edge_fade(Region(1, 1, 8, 8), (32, 32))[0, 0]
    first = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8]) / FADE_CELLS
    ramp = first * first.flip(0)
    assert torch.allclose(fade, ramp[:, None] * ramp[None, :])


def test_a_whole_range_entry_acts_at_the_last_noise_level():
    import torch

    out, _ = predict(const(3), const(0), t=0)  # 0..1 includes timestep 0 (the cleanest)
    assert torch.equal(out, torch.full((1, 4, 32, 32), 3.0))
    out, _ = predict(const(3), const(0), t=999)
    assert torch.equal(out, torch.full((1, 4, 32, 32), 3.0))


class InpaintingUNet(ConstantUNet):
    """The stand-in with an inpainting UNet's 9 input channels: it records the 5 extra ones."""

    config: dict = {"in_channels": 9}

    def __init__(self) -> None:
        super().__init__()
        self.extra: list = []

    def __call__(self, x, t, encoder_hidden_states, added_cond_kwargs, return_dict):
        self.extra.append(x[:, 4:].clone())
        return super().__call__(x[:, :4], t, encoder_hidden_states, added_cond_kwargs,
                                return_dict)  # fmt: skip


@pytest.mark.parametrize("scale", [1.0, 7.5])
def test_an_inpainting_unet_gets_its_channels_cut_to_each_area(scale):
    import torch

    from latentgraph.nodes.values import InpaintImage

    masked = torch.arange(4 * 32 * 32, dtype=torch.float32).reshape(1, 4, 32, 32)
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:, 4:20] = 1.0
    model = InpaintingUNet()
    pos = cn.combine(const(1), cn.with_area(const(5), Area(8, 16, 4, 12), 1.0))
    g = Guidance(None, model, torch.device("cpu"), pos, const(0), scale, (1, 4, 32, 32),
                 inpaint=InpaintImage(masked, mask))  # fmt: skip
    g.predict(torch.zeros(1, 4, 32, 32), torch.tensor(999))
    rows = 2 if scale > 1 else 1  # the negative's rows too when guided
    whole = torch.cat([mask[:, None], masked], dim=1)
    assert [tuple(e.shape) for e in model.extra] == [(rows, 5, 32, 32), (rows, 5, 8, 16)]
    assert torch.equal(model.extra[0], whole.expand(rows, -1, -1, -1))
    assert torch.equal(model.extra[1], whole[..., 4:12, 12:28].expand(rows, -1, -1, -1))


def test_a_partner_takes_all_of_its_lenders_text_and_keeps_the_areas_mask():
    import torch

    from latentgraph.nodes.values import SizeConditioning

    def sdxl_like(value, pooled, width):
        return const(value).map(lambda e: replace(e, pooled=torch.full((1, 8), pooled),
                                                  size=SizeConditioning(width=width)))  # fmt: skip

    mask = torch.zeros(1, 32, 32)
    mask[:, 4:10, 4:10] = 0.5
    masked = cn.with_mask(mask, sdxl_like(5, 50.0, 500), 1.0, True)  # region: the mask's bounds
    lender = sdxl_like(0.5, 5.0, 64)
    _, g = predict(cn.combine(sdxl_like(1, 10.0, 100), masked), lender, scale=2.0)
    partner = [t for t in g.terms if t.side == "negative"][1]
    source = [t for t in g.terms if t.side == "positive"][1]
    assert partner.region == source.region == Region(4, 4, 8, 8)
    assert torch.equal(partner.entry.embeds, lender.single.embeds)
    assert torch.equal(partner.entry.pooled, lender.single.pooled)
    assert partner.entry.prompts == lender.single.prompts
    assert partner.entry.size == SizeConditioning(width=64)
    assert torch.equal(partner.mask, source.mask) and torch.equal(partner.weight, source.weight)


def test_an_area_already_matched_on_the_other_side_does_not_stop_the_pairing():
    pos = cn.combine(cn.combine(const(1), cn.with_area(const(5), Area(8, 8, 0, 0), 1.0)),
                     cn.with_area(const(7), Area(8, 8, 16, 16), 1.0))  # fmt: skip
    neg = cn.combine(const(0.5), cn.with_area(const(0.25), Area(8, 8, 0, 0), 1.0))
    _, g = predict(pos, neg, scale=2.0)
    negatives = [(t.region, float(t.entry.embeds.mean())) for t in g.terms if t.side == "negative"]
    assert negatives == [(None, 0.5), (Region(0, 0, 8, 8), 0.25), (Region(16, 16, 8, 8), 0.5)]


def test_of_equally_small_covering_entries_the_first_lends_its_text():
    tall = cn.with_area(const(0.25), Area(16, 8, 0, 0), 1.0)
    wide = cn.with_area(const(0.75), Area(8, 16, 0, 0), 1.0)
    pos = cn.combine(const(1), cn.with_area(const(5), Area(4, 4, 2, 2), 1.0))
    _, g = predict(pos, cn.combine(cn.combine(const(0.5), tall), wide), scale=2.0)
    partner = [t for t in g.terms if t.side == "negative"][-1]
    assert partner.region == Region(2, 2, 4, 4) and float(partner.entry.embeds.mean()) == 0.25


def test_a_weak_entry_alone_on_its_cells_predicts_its_own_value():
    import torch

    weak = cn.with_area(const(5), Area(32, 16, 0, 0), 0.5)  # the left half, strength 0.5
    out, _ = predict(weak, const(0))
    assert torch.allclose(out[..., :16], torch.full((1, 4, 32, 16), 5.0))  # 5·w / w
    assert torch.equal(out[..., 16:], torch.zeros(1, 4, 32, 16))


def test_a_mask_is_resized_to_the_latent_bilinearly_without_aligned_corners():
    import torch

    gradient = (torch.arange(16, dtype=torch.float32) / 15).reshape(1, 4, 4)
    _, g = predict(cn.with_mask(gradient, const(1), 1.0, False), const(0), shape=(1, 4, 2, 2))
    expected = torch.tensor([[[2.5, 4.5], [10.5, 12.5]]]) / 15  # each 2x2 block's mean
    assert torch.allclose(g.terms[0].mask, expected)


def test_one_mask_per_image_is_accepted():
    import torch

    masks = torch.zeros(2, 8, 8)
    masks[0, :, :4] = 1.0  # image 0: the left half; image 1: the right half
    masks[1, :, 4:] = 1.0
    out, _ = predict(cn.combine(const(1), cn.with_mask(masks, const(5), 1.0, False)), const(0),
                     shape=(2, 4, 8, 8))  # fmt: skip
    assert torch.equal(out[0, :, :, :4], torch.full((4, 8, 4), 3.0))
    assert torch.equal(out[1, :, :, :4], torch.ones(4, 8, 4))
    assert torch.equal(out[1, :, :, 4:], torch.full((4, 8, 4), 3.0))


def test_an_area_of_one_cell_acts_and_one_cut_to_zero_width_is_refused(make_ctx):
    import torch

    out, _ = predict(cn.combine(const(1), cn.with_area(const(5), Area(1, 1, 0, 0), 1.0)),
                     const(0), shape=(1, 4, 8, 8))  # fmt: skip
    w = 1 / FADE_CELLS**2  # its bottom and right edges are inside: both fade
    assert torch.allclose(out[0, 0, 0, 0], torch.tensor((1 + 5 * w) / (1 + w)))
    assert torch.equal(out[0, 0, 1:, 1:], torch.ones(7, 7))
    past_right = cn.with_area(const(1), Area(4, 4, 0, 16), 1.0)
    with pytest.raises(NodeInputError, match="'positive'.*outside the latent \\(16x8 cells\\)"):
        Guidance(make_ctx("UNetDenoise"), ConstantUNet(), torch.device("cpu"), past_right,
                 const(0), 7.5, (1, 4, 8, 16))  # fmt: skip
