"""Mask nodes: ComfyUI's MASK meaning (float [B, H, W] in 0..1, 1 = change), values checked."""

from __future__ import annotations

import pytest
import torch

from latentgraph.graph import MASK, default_registry
from latentgraph.nodes import images, masks
from latentgraph.nodes.values import NodeInputError


def _rgba_file(folder, name="hole.png"):
    """A 6x4 RGBA picture: alpha 0 in the 2x2 top-left corner, red rising along x."""
    import numpy as np
    from PIL import Image

    pixels = np.zeros((4, 6, 4), dtype=np.uint8)
    pixels[..., 0] = np.arange(6, dtype=np.uint8)[None, :] * 50
    pixels[..., 3] = 255
    pixels[:2, :2, 3] = 0
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGBA").save(folder / name)
    return name


def test_mask_is_a_socket_type_declared_by_the_engine():
    load = default_registry["LoadImage"]
    assert [o.type for o in load.outputs] == ["IMAGE", MASK]
    assert default_registry["InvertMask"].inputs[0].type == MASK


def test_load_image_mask_is_one_minus_alpha(make_ctx, tmp_path):
    ctx = make_ctx("LoadImage", input_dir=tmp_path / "input")
    name = _rgba_file(tmp_path / "input")
    picture, mask = images.load_image(ctx, name)
    assert picture.shape == (1, 4, 6, 3) and mask.shape == (1, 4, 6)
    assert mask[0, :2, :2].eq(1).all() and mask.sum() == 4


def test_load_image_mask_node_reads_any_channel(make_ctx, tmp_path):
    ctx = make_ctx("LoadImageMask", input_dir=tmp_path / "input")
    name = _rgba_file(tmp_path / "input")
    alpha = masks.load_image_mask(ctx, name, "alpha")
    red = masks.load_image_mask(ctx, name, "red")
    green = masks.load_image_mask(ctx, name, "green")
    assert alpha.shape == red.shape == (1, 4, 6)
    assert alpha[0, 0, 0] == 1 and alpha[0, 3, 5] == 0
    assert torch.allclose(red[0, 2], torch.arange(6) * 50 / 255)
    assert green.eq(0).all()


def test_load_image_mask_of_an_opaque_picture_is_empty(make_ctx, tmp_path):
    ctx = make_ctx("LoadImageMask", input_dir=tmp_path / "input")
    assert masks.load_image_mask(ctx, "example.png", "alpha").eq(0).all()


def test_load_image_mask_outside_the_input_folder_is_refused(make_ctx, tmp_path):
    ctx = make_ctx("LoadImageMask", input_dir=tmp_path / "input")
    with pytest.raises(NodeInputError, match="input 'image'.*outside its folder"):
        masks.load_image_mask(ctx, "../secret.png", "red")


def test_invert_and_solid(make_ctx):
    solid = masks.solid_mask(make_ctx("SolidMask"), 0.25, 5, 3)
    assert solid.shape == (1, 3, 5) and solid.eq(0.25).all()
    assert masks.invert_mask(make_ctx(), solid).eq(0.75).all()
    assert masks.invert_mask(make_ctx(), torch.zeros(3, 5)).shape == (1, 3, 5)


def test_solid_mask_over_the_pixel_limit_is_refused(make_ctx):
    with pytest.raises(NodeInputError, match="input 'width'.*limit"):
        masks.solid_mask(make_ctx("SolidMask", max_image_pixels=100), 1.0, 20, 20)


def _dot(size=9):
    m = torch.zeros(1, size, size)
    m[0, size // 2, size // 2] = 1
    return m


def test_grow_mask_tapered_grows_a_diamond_square_grows_a_square(make_ctx):
    diamond = masks.grow_mask(make_ctx(), _dot(), 2, True)[0]
    square = masks.grow_mask(make_ctx(), _dot(), 2, False)[0]
    assert square.sum() == 25 and square[2:7, 2:7].eq(1).all()
    assert diamond.sum() == 13  # |dx| + |dy| <= 2
    assert diamond[2, 2] == 0 and diamond[2, 4] == 1


def test_grow_mask_negative_shrinks(make_ctx):
    block = torch.zeros(1, 9, 9)
    block[0, 2:7, 2:7] = 1
    shrunk = masks.grow_mask(make_ctx(), block, -1, False)
    assert shrunk.sum() == 9 and shrunk[0, 3:6, 3:6].eq(1).all()
    assert masks.grow_mask(make_ctx(), block, 0, True).equal(block)


def test_image_to_mask_and_back():
    image = torch.rand(2, 4, 5, 3)
    green = masks.image_to_mask(None, image, "green")
    assert green.shape == (2, 4, 5) and green.equal(image[..., 1])
    assert masks.image_to_mask(None, image, "alpha").eq(1).all()  # RGB: opaque
    grey = masks.mask_to_image(None, green)
    assert grey.shape == (2, 4, 5, 3) and all(grey[..., c].equal(green) for c in range(3))


@pytest.mark.parametrize(
    "operation, expected",
    [("multiply", 0.3 * 0.6), ("add", 0.9), ("subtract", 0.0), ("and", 0.0), ("or", 1.0),
     ("xor", 1.0)],
)  # fmt: skip
def test_mask_composite_operations_only_inside_the_source(make_ctx, operation, expected):
    dest = torch.full((1, 6, 6), 0.3)
    src = torch.full((1, 2, 3), 0.6)
    out = masks.mask_composite(make_ctx(), dest, src, 2, 1, operation)
    assert out.shape == (1, 6, 6)
    assert torch.allclose(out[0, 1:3, 2:5], torch.tensor(expected)), operation
    outside = torch.ones(6, 6, dtype=torch.bool)
    outside[1:3, 2:5] = False
    assert out[0][outside].eq(0.3).all()


def test_mask_composite_clips_a_source_past_the_edge(make_ctx):
    out = masks.mask_composite(make_ctx(), torch.zeros(1, 4, 4), torch.ones(1, 3, 3), 2, 2, "add")
    assert out.sum() == 4 and out[0, 2:, 2:].eq(1).all()


def test_join_image_with_alpha_makes_the_mask_transparent():
    image = torch.rand(1, 4, 4, 3)
    hole = torch.zeros(1, 2, 2)
    hole[0, 0, 0] = 1  # resized bilinear to 4x4: the top-left quarter is fully covered
    rgba = masks.join_image_with_alpha(None, image, hole)
    assert rgba.shape == (1, 4, 4, 4)
    assert rgba[..., :3].equal(image)
    assert rgba[0, 0, 0, 3] == 0 and rgba[0, 3, 3, 3] == 1


def test_join_image_with_alpha_is_saved_as_an_rgba_png(tmp_path):
    """SaveImage and PreviewImage write a 4-channel image as RGBA (ComfyUI's do): its alpha,
    1 - mask, is what JoinImageWithAlpha makes the file for; it was dropped (an opaque RGB
    PNG). LoadImage's mask joined back gives the picture's own alpha."""
    import numpy as np
    from PIL import Image

    from latentgraph.graph import Settings
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.scheduler import Scheduler

    name = _rgba_file(tmp_path / "input")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["1", 1]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "cut"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }  # fmt: skip
    settings = Settings(output_dir=tmp_path / "output", input_dir=tmp_path / "input",
                        temp_dir=tmp_path / "temp")  # fmt: skip
    result = Scheduler(default_registry, settings=settings).run(
        graph_from_prompt(prompt, default_registry))  # fmt: skip
    assert result.ok, result.failures
    with Image.open(tmp_path / "input" / name) as img:
        original = np.asarray(img)
    preview = next((tmp_path / "temp").rglob("*.png"))
    for path in (tmp_path / "output" / "cut_00001_.png", preview):
        with Image.open(path) as img:
            assert img.mode == "RGBA", path
            assert np.array_equal(np.asarray(img), original)
