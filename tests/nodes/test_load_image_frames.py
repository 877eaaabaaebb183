"""LoadImage reads every frame of an animation as a batch, as ComfyUI's LoadImage does (frames
of another size than the first skipped, a mask per frame), at most --max-batch of them; and a
16-bit grayscale picture keeps its values (it loaded almost white)."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentgraph.nodes import images
from latentgraph.nodes.values import NodeInputError

GREYS = (0, 120, 250)


def gif(path: Path, frames: int, size: tuple[int, int] = (128, 128)) -> None:
    from PIL import Image

    pictures = [Image.new("L", size, GREYS[i % 3]) for i in range(frames)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=100)


def test_an_animated_gif_runs_through_load_and_save_as_one_image_per_frame(tmp_path,
                                                                            monkeypatch, capsys):  # fmt: skip
    from PIL import Image

    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "input").mkdir()
    gif(tmp_path / "input" / "anim.gif", 3)
    (tmp_path / "flow.yaml").write_text("version: 1\nnodes:\n"
                                        "  load: {type: LoadImage, image: anim.gif}\n"
                                        "  save: {type: SaveImage, images: load.IMAGE, "
                                        "filename_prefix: frames}\n")  # fmt: skip
    code = main(["run", "flow.yaml", "--cache-dir", str(tmp_path / "cache")])
    assert code == 0, capsys.readouterr().err
    saved = sorted((tmp_path / "output").glob("frames_*.png"))
    assert [Image.open(p).convert("L").getpixel((5, 5)) for p in saved] == list(GREYS)


def test_frames_of_another_size_are_skipped_and_each_frame_has_its_mask(make_ctx):
    from PIL import Image

    ctx = make_ctx("LoadImage")
    folder = Path(ctx.settings.input_dir)
    folder.mkdir(parents=True)
    pages = [Image.new("RGBA", (16, 8), (255, 0, 0, 0)), Image.new("RGBA", (8, 8), "blue"),
             Image.new("RGBA", (16, 8), (0, 255, 0, 255))]  # fmt: skip
    pages[0].save(folder / "pages.tif", save_all=True, append_images=pages[1:])
    pixels, mask = images.load_image(ctx, "pages.tif")
    assert pixels.shape == (2, 8, 16, 3) and mask.shape == (2, 8, 16)
    assert pixels[1, 0, 0].tolist() == [0.0, 1.0, 0.0]
    assert mask[0].min() == 1.0 and mask[1].max() == 0.0  # alpha 0 → 1


def test_a_gif_with_a_transparent_colour_masks_it(make_ctx):
    from PIL import Image

    ctx = make_ctx("LoadImage")
    folder = Path(ctx.settings.input_dir)
    folder.mkdir(parents=True)
    first = Image.new("P", (8, 8), 1)
    first.putpalette([0, 0, 0, 255, 255, 255])
    first.paste(0, (0, 0, 4, 8))  # the left half in colour 0, the transparent one
    first.save(folder / "t.gif", transparency=0)
    _, mask = images.load_image(ctx, "t.gif")
    assert mask.shape == (1, 8, 8) and mask[0, 0].tolist() == [1.0] * 4 + [0.0] * 4


def test_an_animation_longer_than_max_batch_is_refused_naming_the_limit(make_ctx):
    ctx = make_ctx("LoadImage", node_id="pic")
    Path(ctx.settings.input_dir).mkdir(parents=True)
    gif(Path(ctx.settings.input_dir) / "long.gif", 500, (16, 16))
    with pytest.raises(NodeInputError, match=r"node 'pic' \(LoadImage\) input 'image': 'long.gif' "
                       r"has 500 frames, over the limit of 64 images in a batch \(Settings\.max_batch\)"):  # fmt: skip
        images.load_image(ctx, "long.gif")
    small = make_ctx("LoadImage", max_batch=500, input_dir=ctx.settings.input_dir)
    assert images.load_image(small, "long.gif")[0].shape == (500, 16, 16, 3)


def test_a_16_bit_grayscale_png_keeps_its_values(make_ctx):
    import numpy as np
    from PIL import Image

    ctx = make_ctx("LoadImage")
    Path(ctx.settings.input_dir).mkdir(parents=True)
    values = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(Path(ctx.settings.input_dir) / "deep.png")
    assert Image.open(Path(ctx.settings.input_dir) / "deep.png").mode == "I;16"
    pixels, _ = images.load_image(ctx, "deep.png")
    assert pixels.shape == (1, 1, 4, 3)
    assert np.allclose(pixels[0, 0, :, 0].numpy(), values[0] / 65535, atol=1e-6)
    assert bool((pixels[..., 0] == pixels[..., 2]).all())


def test_a_refusal_shows_a_windows_style_name_with_one_backslash(make_ctx):
    """LoadImage's refusals quote the value as it was written (`graph.problems.quoted`): repr
    showed `sub\\x.png` as 'sub\\\\x.png', a name nobody sent."""
    ctx = make_ctx("LoadImage", node_id="pic")
    Path(ctx.settings.input_dir).mkdir(parents=True)
    with pytest.raises(NodeInputError) as caught:
        images.load_image(ctx, "sub\\x.png")
    assert str(caught.value).endswith("): 'sub\\x.png'")
    (Path(ctx.settings.input_dir) / "a\\b.png").write_text("no picture")  # a file name on Linux
    with pytest.raises(NodeInputError) as caught:
        images.load_image(ctx, "a\\b.png")
    assert "cannot read 'a\\b.png' as an image" in str(caught.value)
