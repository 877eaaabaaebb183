"""Latent tools: shapes, where values land, and what stays noise; pixel units are /8."""

from __future__ import annotations

import pytest
import torch

from latentgraph.nodes import comfy
from latentgraph.nodes import latent_tools as lt
from latentgraph.nodes.values import Latent, NodeInputError


def _latent(b=1, c=4, h=8, w=8, fill=None, seeds=None, noise=False):
    x = torch.full((b, c, h, w), float(fill)) if fill is not None else torch.randn(b, c, h, w)
    return Latent(x, seeds, is_noise=noise)


def _ramp(b=1, h=4, w=6):
    """Cell (y, x) of every channel holds 10 * y + x: positions can be read back."""
    grid = (torch.arange(h)[:, None] * 10 + torch.arange(w)[None, :]).float()
    return Latent(grid.expand(b, 4, h, w).clone(), list(range(b)), is_noise=True)


def test_upscale_by_sizes_and_methods(make_ctx):
    src = _latent(h=8, w=6, seeds=[3], noise=True)
    out = lt.latent_upscale_by(make_ctx(), src, "nearest-exact", 1.5)
    assert out.samples.shape == (1, 4, 12, 9)
    assert out.seeds == [3] and out.is_noise is False
    smooth = lt.latent_upscale_by(make_ctx(), src, "bilinear", 2.0)
    near = lt.latent_upscale_by(make_ctx(), src, "nearest-exact", 2.0)
    assert near.samples[..., ::2, ::2].equal(src.samples)
    assert not torch.allclose(smooth.samples, near.samples)


def test_upscale_over_the_pixel_limit_is_refused(make_ctx):
    with pytest.raises(NodeInputError, match="input 'scale_by'.*limit"):
        lt.latent_upscale_by(make_ctx(max_image_pixels=64 * 64), _latent(), "bilinear", 2.0)


def test_comfy_latent_upscale_uses_pixels_over_8(make_ctx):
    out = comfy.latent_upscale(make_ctx(), _latent(h=8, w=4), "bilinear", 64, 0, "disabled")
    assert out.samples.shape == (1, 4, 16, 8)  # height from the aspect ratio
    wide = _ramp(h=8, w=16)
    centre = comfy.latent_upscale(make_ctx(), wide, "nearest-exact", 64, 64, "center")
    assert centre.samples[0, 0, 0].tolist() == list(range(4, 12))  # the middle 8 columns


def test_comfy_latent_upscale_follows_the_ratio_in_pixels_then_floors_to_cells(make_ctx):
    # ComfyUI's LatentUpscale: 6x5 cells to height 104 px makes the width 5 * 104 / 6 = 87 px,
    # 10 cells (87 // 8). Following the ratio in cells (13 cells tall: 5 * 13 / 6) rounds to 11.
    out = comfy.latent_upscale(make_ctx(), _latent(h=6, w=5), "bilinear", 0, 104, "disabled")
    assert out.samples.shape == (1, 4, 13, 10)
    out = comfy.latent_upscale(make_ctx(), _latent(h=5, w=6), "bilinear", 104, 0, "disabled")
    assert out.samples.shape == (1, 4, 10, 13)


@pytest.mark.parametrize(("width", "height", "cells"), [
    (96, 0, (8, 12)),  # 96 px wide: 60 px tall by the ratio, raised to 64
    (0, 8, (8, 12)),  # 8 px tall, raised to 64, before the width follows it: 102 px
    (48, 48, (8, 8)),
    (8, 0, (8, 8)),  # was refused: "the result would be 8x0 pixels"
    (32, 200, (25, 8)),  # only the small side is raised
])  # fmt: skip
def test_comfy_latent_upscale_makes_each_side_at_least_64_pixels(make_ctx, width, height, cells):
    """ComfyUI's LatentUpscale raises each side to 64 pixels (8 cells) before it divides by 8,
    a given side and one following the ratio alike; ours kept 62 px as 7 cells, 8 px as 1 (a
    source of 512 x 320 pixels, 40 x 64 cells). Our own latent tools keep their rules."""
    out = comfy.latent_upscale(make_ctx(), _latent(h=40, w=64), "bilinear", width, height,
                               "disabled")  # fmt: skip
    assert tuple(out.samples.shape[-2:]) == cells


def test_composite_pastes_at_pixel_position_over_8(make_ctx):
    to, src = _latent(fill=0.0, seeds=[9]), _latent(h=2, w=3, fill=1.0)
    out = lt.latent_composite(make_ctx(), to, src, 16, 8, 0)
    assert out.samples.shape == (1, 4, 8, 8) and out.seeds == [9]
    assert out.samples[0, :, 1:3, 2:5].eq(1).all() and out.samples.sum() == 4 * 6


def test_composite_feather_fades_inner_edges_but_not_the_border(make_ctx):
    to, src = _latent(fill=0.0), _latent(h=4, w=4, fill=1.0)
    out = lt.latent_composite(make_ctx(), to, src, 32, 0, 16).samples[0, 0]
    # pasted at cells x 4..7, y 0..3: the top and right edges touch the border (no fade)
    assert out[0, 7] == 1.0
    assert out[0, 4] == pytest.approx(0.5) and out[0, 5] == 1.0  # feather 2 cells on the left
    assert out[3, 4] == pytest.approx(0.25)  # left and bottom fades multiply
    assert out[:, :4].eq(0).all() and out[4:].eq(0).all()


def test_composite_masked_only_where_the_mask_is(make_ctx):
    dest, src = _latent(fill=0.0), _latent(h=4, w=4, fill=2.0)
    mask = torch.zeros(1, 32, 32)  # pixel-sized: resized to the source's 4x4 cells
    mask[:, :16, :] = 1
    out = lt.latent_composite_masked(make_ctx(), dest, src, 8, 8, False, mask).samples[0, 0]
    assert out[1:3, 1:5].eq(2).all()
    assert out.sum() == 2 * 2 * 4
    full = lt.latent_composite_masked(make_ctx(), dest, src, 0, 0, True, None).samples
    assert full.eq(2).all()  # resized to the destination


def test_blend_weights_and_resizes(make_ctx):
    a, b = _latent(fill=1.0, seeds=[1]), _latent(h=4, w=4, fill=3.0)
    out = lt.latent_blend(make_ctx(), a, b, 0.25)
    assert out.samples.shape == a.samples.shape and out.seeds == [1]
    assert torch.allclose(out.samples, torch.tensor(0.25 * 1 + 0.75 * 3))


def test_batch_tools_keep_rows_and_seeds(make_ctx):
    src = _latent(b=2, seeds=[5, 6], noise=True)
    rep = lt.repeat_latent_batch(make_ctx(), src, 3)
    assert rep.samples.shape[0] == 6 and rep.seeds == [5, 6] * 3 and rep.is_noise
    assert rep.samples[4].equal(src.samples[0])
    one = lt.latent_from_batch(make_ctx(), rep, 3, 2)
    assert one.samples.equal(rep.samples[3:5]) and one.seeds == [6, 5]
    past = lt.latent_from_batch(make_ctx(), src, 40, 4)
    assert past.samples.equal(src.samples[1:]) and past.seeds == [6]
    joined = lt.latent_batch(make_ctx(), src, _latent(h=4, w=4, seeds=[8], noise=True))
    assert joined.samples.shape == (3, 4, 8, 8) and joined.seeds == [5, 6, 8]
    assert joined.is_noise is False  # the resized row is no longer unit noise
    assert joined.samples[:2].equal(src.samples)


def test_batch_tools_carry_comfyuis_batch_positions(make_ctx):
    """KSampler's noise rows follow `batch_index` (nodes/seeds.py): a pick keeps its rows'
    positions, a repeat shifts each copy by their span, a join keeps both sides'."""
    src = _latent(b=4)
    assert lt.repeat_latent_batch(make_ctx(), src, 2).batch_index is None  # rows 0..7
    pick = lt.latent_from_batch(make_ctx(), src, 2, 1)
    assert pick.batch_index == [2]
    assert lt.repeat_latent_batch(make_ctx(), pick, 3).batch_index == [2, 3, 4]
    pair = lt.latent_from_batch(make_ctx(), lt.latent_from_batch(make_ctx(), src, 1, 3), 1, 2)
    assert pair.batch_index == [2, 3]
    assert lt.repeat_latent_batch(make_ctx(), pair, 2).batch_index == [2, 3, 4, 5]
    assert lt.latent_from_batch(make_ctx(), src, 40, 4).batch_index == [3]
    assert lt.latent_batch(make_ctx(), pick, src).batch_index == [2, 0, 1, 2, 3]
    assert lt.latent_batch(make_ctx(), src, src).batch_index is None  # one batch, rows 0..7


def test_batch_noise_draws_rows_by_position():
    """ComfyUI's rule: one generator, one draw per position; position 0 is seed's lone row."""
    from latentgraph.nodes.latents import batch_noise, make_noise

    whole = batch_noise((4, 2, 2), 7, [0, 1, 2, 3])
    assert whole[:1].equal(make_noise((4, 2, 2), [7]))
    assert batch_noise((4, 2, 2), 7, [3, 1]).equal(whole[[3, 1]])
    later = batch_noise((4, 2, 2), 8, [0, 1, 2, 3])
    assert not any(whole[i].equal(later[j]) for i in range(4) for j in range(4))


def test_a_cached_latent_keeps_its_batch_positions():
    """The disk cache's codec keeps them: a cached pick is re-made as it was picked."""
    from latentgraph.graph.cache import codec_for

    value = Latent(torch.zeros(2, 4, 2, 2), None, batch_index=[2, 5])
    codec = codec_for(value)
    assert codec.decode(codec.encode(value)).batch_index == [2, 5]


def test_batch_limits_and_channel_mismatch(make_ctx):
    with pytest.raises(NodeInputError, match="input 'amount'.*limit of 4"):
        lt.repeat_latent_batch(make_ctx(max_batch=4), _latent(b=2), 3)
    with pytest.raises(NodeInputError, match="input 'samples2'.*channels"):
        lt.latent_batch(make_ctx(), _latent(), _latent(c=16))


def test_growing_a_batch_answers_to_the_batch_pixel_limit_in_pixels(make_ctx):
    """RepeatLatentBatch and LatentBatch make a batch of width x height x rows pixels (a
    latent cell is 8x8 pixels): bounded by max_batch_pixels, named as Python sets it, and
    by the CLI's flag when the CLI set the labels."""
    from latentgraph.graph.context import LIMIT_FLAGS

    limit = 64 * 64 * 4  # four 64x64 images: an 8x8 latent is 64x64 pixels
    lt.repeat_latent_batch(make_ctx(max_batch_pixels=limit), _latent(b=2), 2)
    message = r"input 'amount': the result would be 64x64x6, 24576 pixels, more than the limit "
    with pytest.raises(NodeInputError, match=message + r"of 16384 \(Settings.max_batch_pixels\)"):
        lt.repeat_latent_batch(make_ctx(max_batch_pixels=limit), _latent(b=2), 3)
    with pytest.raises(NodeInputError, match=r"input 'samples2'.*\(--max-batch-pixels\)"):
        ctx = make_ctx(max_batch_pixels=limit, limit_labels=LIMIT_FLAGS)
        lt.latent_batch(ctx, _latent(b=3), _latent(b=2))
    with pytest.raises(NodeInputError, match=r"limit of 4 \(Settings.max_batch\)"):
        lt.repeat_latent_batch(make_ctx(max_batch=4), _latent(b=2), 3)


def test_crop_in_pixels_over_8(make_ctx):
    src = _ramp(h=16, w=16)
    out = lt.latent_crop(make_ctx(), src, 64, 72, 16, 8)
    assert out.samples.shape == (1, 4, 9, 8)
    assert out.samples[0, 0, 0, 0] == 12 and out.is_noise
    late = lt.latent_crop(make_ctx(), src, 64, 64, 120, 0)  # moved back: 8 cells remain
    assert late.samples.shape[-1] == 8 and late.samples[0, 0, 0, 0] == 8


def test_flip_and_rotate_move_cells(make_ctx):
    src = _ramp(h=4, w=6)
    vertical = lt.latent_flip(make_ctx(), src, "x-axis: vertically").samples[0, 0]
    horizontal = lt.latent_flip(make_ctx(), src, "y-axis: horizontally").samples[0, 0]
    assert vertical[0, 0] == 30 and horizontal[0, 0] == 5
    cw = lt.latent_rotate(make_ctx(), src, "90 degrees").samples[0, 0]
    assert cw.shape == (6, 4)
    assert cw[0].tolist() == [30, 20, 10, 0]  # the left column, read bottom-up, is the top row
    half = lt.latent_rotate(make_ctx(), src, "180 degrees").samples[0, 0]
    assert half[0, 0] == 35
    ccw = lt.latent_rotate(make_ctx(), src, "270 degrees").samples[0, 0]
    assert ccw[0].tolist() == [5, 15, 25, 35]
    assert lt.latent_rotate(make_ctx(), src, "none").samples.equal(src.samples)
