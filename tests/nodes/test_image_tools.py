"""Image tools: sizes, where pixels land, blend modes, padding masks for outpainting."""

from __future__ import annotations

import pytest
import torch

from latentgraph.nodes import image_tools as it
from latentgraph.nodes.values import NodeInputError


def _ramp(b=1, h=4, w=6):
    """Pixel (y, x) holds (10 * y + x) / 100 in every channel."""
    grid = (torch.arange(h)[:, None] * 10 + torch.arange(w)[None, :]).float() / 100
    return grid[None, :, :, None].expand(b, h, w, 3).clone()


@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"])
def test_scale_every_method_gives_the_size_and_stays_in_range(make_ctx, method):
    image = torch.rand(2, 8, 12, 3, generator=torch.Generator().manual_seed(0))
    out = it.image_scale(make_ctx(), image, method, 18, 10, "disabled")
    assert out.shape == (2, 10, 18, 3)
    assert 0 <= out.min() and out.max() <= 1
    assert abs(out.mean() - image.mean()) < 0.05


def test_lanczos_goes_through_pillow(make_ctx):
    import numpy as np
    from PIL import Image

    image = torch.rand(1, 8, 8, 1).expand(1, 8, 8, 3).contiguous()
    out = it.image_scale(make_ctx(), image, "lanczos", 16, 16, "disabled")
    ref = Image.fromarray(image[0, :, :, 0].numpy()).resize((16, 16), Image.Resampling.LANCZOS)
    assert np.allclose(out[0, :, :, 0].numpy(), np.clip(np.asarray(ref), 0, 1), atol=1e-6)


def test_scale_zero_side_keeps_aspect_and_center_crop_cuts(make_ctx):
    image = _ramp(h=4, w=8)
    assert it.image_scale(make_ctx(), image, "bilinear", 16, 0, "disabled").shape == (1, 8, 16, 3)
    cut = it.image_scale(make_ctx(), image, "nearest-exact", 4, 4, "center")
    assert cut[0, 0, :, 0].tolist() == pytest.approx([0.02, 0.03, 0.04, 0.05])


def test_scale_by_and_total_pixels(make_ctx):
    image = torch.rand(1, 10, 20, 3)
    assert it.image_scale_by(make_ctx(), image, "area", 0.5).shape == (1, 5, 10, 3)
    total = it.image_scale_to_total_pixels(make_ctx(), image, "bilinear", 0.0002)
    h, w = total.shape[1:3]
    assert w == 2 * h and abs(h * w - 0.0002 * 1024 * 1024) < 20
    stepped = it.image_scale_to_total_pixels(make_ctx(), image, "bilinear", 0.01, 8)
    assert stepped.shape[1] % 8 == 0 and stepped.shape[2] % 8 == 0


def test_scale_over_the_pixel_limit_is_refused(make_ctx):
    with pytest.raises(NodeInputError, match="input 'scale_by'.*limit"):
        it.image_scale_by(make_ctx(max_image_pixels=100), torch.rand(1, 8, 8, 3), "area", 2.0)


def test_invert_batch_empty(make_ctx):
    image = torch.rand(1, 4, 4, 3)
    assert torch.allclose(it.image_invert(None, image), 1 - image)
    other = torch.full((2, 8, 16, 3), 0.7)
    other[..., :4, :] = 0.1  # cut away by the centre crop to image1's square shape
    both = it.image_batch(make_ctx(), image, other)
    assert both.shape == (3, 4, 4, 3) and both[0].equal(image[0])
    assert torch.allclose(both[1:], torch.tensor(0.7))
    white = it.empty_image(make_ctx(), 5, 3, 2, 0xFF8000)
    assert white.shape == (2, 3, 5, 3)
    assert white[0, 0, 0].tolist() == pytest.approx([1.0, 128 / 255, 0.0])
    with pytest.raises(NodeInputError, match="input 'batch_size'.*limit of 4"):
        it.empty_image(make_ctx(max_batch=4), 5, 3, 5, 0)


def test_repeat_image_batch_repeats_the_whole_batch(make_ctx):
    """ComfyUI's RepeatImageBatch: images 0..n-1, then 0..n-1 again (not each image n times)."""
    image = torch.stack([torch.full((4, 6, 3), 0.1), torch.full((4, 6, 3), 0.9)])
    out = it.repeat_image_batch(make_ctx(), image, 3)
    assert out.shape == (6, 4, 6, 3)
    assert [round(v, 1) for v in out[:, 0, 0, 0].tolist()] == [0.1, 0.9] * 3
    assert it.repeat_image_batch(make_ctx(), image, 1).equal(image)


def test_repeat_image_batch_answers_to_the_batch_limits(make_ctx):
    """The batch made (input batch x amount) is bounded as ImageBatch's: max_batch, and
    max_batch_pixels counting width x height x images; an amount over max_batch alone is
    refused before any run (its declared limit)."""
    from latentgraph.graph import Settings

    two = torch.rand(2, 4, 6, 3)
    with pytest.raises(NodeInputError, match=r"input 'amount'.*batch of 6.*limit of 4"):
        it.repeat_image_batch(make_ctx(max_batch=4), two, 3)
    it.repeat_image_batch(make_ctx(max_batch_pixels=4 * 6 * 4), two, 2)
    with pytest.raises(NodeInputError, match=r"input 'amount'.*6x4x6, 144 pixels"):
        it.repeat_image_batch(make_ctx(max_batch_pixels=4 * 6 * 4), two, 3)
    node_type = it.repeat_image_batch.node_type
    assert node_type.limit_problems({"amount": 65}, Settings()) == [
        ("amount", "amount 65 is over the limit of 64 (Settings.max_batch)")]  # fmt: skip


def test_batch_nodes_have_comfyuis_inputs():
    """A ComfyUI workflow's widgets_values map onto these by ComfyUI's order and ranges
    (comfy_extras/nodes_images.py)."""

    def widgets(fn):
        return [(i.name, i.default, i.min, i.max) for i in fn.node_type.inputs[1:]]

    assert widgets(it.repeat_image_batch) == [("amount", 1, 1, 4096)]
    assert widgets(it.image_from_batch) == [("batch_index", 0, 0, 4095), ("length", 1, 1, 4096)]
    for fn in (it.repeat_image_batch, it.image_from_batch):
        assert fn.node_type.inputs[0].name == "image" and fn.node_type.category == "image/batch"


def test_image_from_batch_picks_images_as_latent_from_batch_picks_rows(make_ctx):
    image = torch.arange(5).float()[:, None, None, None].expand(5, 2, 2, 3) / 10
    picked = it.image_from_batch(make_ctx(), image, 1, 3)
    assert picked.equal(image[1:4]) and picked.data_ptr() != image.data_ptr()
    assert it.image_from_batch(make_ctx(), image, 40, 2).equal(image[4:])  # past the end
    assert it.image_from_batch(make_ctx(), image, 3, 9).equal(image[3:])


def test_composite_masked_lands_where_the_mask_says(make_ctx):
    dest, src = torch.zeros(1, 6, 6, 3), torch.ones(1, 2, 4, 3)
    out = it.image_composite_masked(make_ctx(), dest, src, 1, 2, False, None)
    assert out[0, 2:4, 1:5].eq(1).all() and out.sum() == 8 * 3
    mask = torch.tensor([[[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])
    masked = it.image_composite_masked(make_ctx(), dest, src, 0, 0, False, mask)
    assert masked[0, 0, 0, 0] == 1 and masked[0, 0, 3, 0] == 1 and masked.sum() == 2 * 3
    clipped = it.image_composite_masked(make_ctx(), dest, src, 4, 5, False, None)
    assert clipped.sum() == 2 * 3  # one row, two columns inside
    rgba = it.image_composite_masked(make_ctx(), dest, torch.ones(1, 2, 2, 4), 0, 0, True, None)
    assert rgba.shape == (1, 6, 6, 3) and rgba.eq(1).all()


def test_crop(make_ctx):
    out = it.image_crop(None, _ramp(h=6, w=8), 3, 2, 4, 1)
    assert out.shape == (1, 2, 3, 3) and out[0, 0, 0, 0] == pytest.approx(0.14)
    edge = it.image_crop(None, _ramp(h=6, w=8), 5, 5, 100, 100)
    assert edge.shape == (1, 1, 1, 3) and edge[0, 0, 0, 0] == pytest.approx(0.57)


@pytest.mark.parametrize(
    "mode, expected",
    [("normal", 0.8), ("multiply", 0.2 * 0.8), ("screen", 1 - 0.8 * 0.2),
     ("overlay", 2 * 0.2 * 0.8), ("difference", 0.2 - 0.8)],  # ComfyUI's: not absolute
)  # fmt: skip
def test_blend_modes(mode, expected):
    a, b = torch.full((1, 2, 2, 3), 0.2), torch.full((1, 2, 2, 3), 0.8)
    out = it.image_blend(None, a, b, 1.0, mode)
    assert torch.allclose(out, torch.tensor(expected).clamp(0, 1)), mode
    half = it.image_blend(None, a, b, 0.5, mode)
    assert torch.allclose(half, torch.tensor(0.1 + expected / 2).clamp(0, 1)), mode
    assert it.image_blend(None, a, b, 0.0, mode).equal(a)


def test_blend_soft_light_and_resize():
    a, b = torch.full((1, 2, 2, 3), 0.5), torch.full((1, 4, 4, 3), 0.25)
    out = it.image_blend(None, a, b, 1.0, "soft_light")
    assert out.shape == a.shape
    assert torch.allclose(out, torch.tensor(0.5 - 0.5 * 0.5 * 0.5))


def test_get_image_size():
    assert it.get_image_size(None, torch.zeros(3, 5, 7, 3)) == (7, 5, 3)


def test_pad_for_outpaint_canvas_and_mask(make_ctx):
    image = torch.rand(1, 32, 40, 3)
    canvas, mask = it.image_pad_for_outpaint(make_ctx(), image, 8, 0, 16, 0, 4)
    assert canvas.shape == (1, 32, 64, 3) and mask.shape == (1, 32, 64)
    assert canvas[:, :, 8:48].equal(image) and canvas[:, :, :8].eq(0.5).all()
    assert mask[0, :, :8].eq(1).all() and mask[0, :, 48:].eq(1).all()
    inner = mask[0, :, 8:48]
    assert inner[:, 4:-4].eq(0).all()  # beyond the feathering: the picture is kept
    assert inner[0, 0] == pytest.approx(1.0) and inner[10, 1] == pytest.approx(0.75**2)
    assert inner[10, -1] == pytest.approx(0.75**2)  # distance 1 from the right seam
    plain = it.image_pad_for_outpaint(make_ctx(), image, 8, 8, 8, 8, 0)[1]
    assert plain[0, 8:40, 8:48].eq(0).all() and plain.sum() == 56 * 48 - 32 * 40
