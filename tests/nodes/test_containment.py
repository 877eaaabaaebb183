"""LoadImage and SaveImage with real symlinks: names that resolve outside their folder (a
sibling folder sharing the prefix, /etc) are refused; a link that stays inside is followed."""

from __future__ import annotations

import pytest

from latentgraph.nodes import images
from latentgraph.nodes.values import NodeInputError


@pytest.fixture
def folders(tmp_path):
    """input/ and output/ each with evil -> ../<kind>_evil, etc -> /etc, leak.png -> a file in
    the sibling, alias.png -> real.png inside."""
    from PIL import Image

    for kind in ("input", "output"):
        folder, evil = tmp_path / kind, tmp_path / f"{kind}_evil"
        folder.mkdir()
        evil.mkdir()
        Image.new("RGB", (8, 8), (200, 0, 0)).save(evil / "secret.png")
        Image.new("RGB", (8, 8), (0, 200, 0)).save(folder / "real.png")
        (folder / "evil").symlink_to(evil)
        (folder / "etc").symlink_to("/etc")
        (folder / "leak.png").symlink_to(evil / "secret.png")
        (folder / "alias.png").symlink_to(folder / "real.png")
    return tmp_path


@pytest.mark.parametrize("name", ["evil/secret.png", "leak.png", "etc/passwd", "etc/hostname"])
def test_load_image_refuses_links_out_of_the_input_folder(make_ctx, folders, name):
    ctx = make_ctx("LoadImage", input_dir=folders / "input")
    with pytest.raises(NodeInputError, match="outside its folder"):
        images.load_image(ctx, name)


def test_load_image_follows_a_link_inside(make_ctx, folders):
    ctx = make_ctx("LoadImage", input_dir=folders / "input")
    pixels, _ = images.load_image(ctx, "alias.png")
    assert pixels.shape == (1, 8, 8, 3) and float(pixels[0, 0, 0, 1]) == pytest.approx(200 / 255)


@pytest.mark.parametrize("prefix", ["evil/x", "etc/x", "evil/../../output_evil/x"])
def test_save_image_refuses_links_out_of_the_output_folder(make_ctx, folders, prefix):
    import torch

    ctx = make_ctx("SaveImage", output_dir=folders / "output")
    with pytest.raises(NodeInputError, match="outside the output"):
        images.save_image(ctx, torch.zeros(1, 8, 8, 3), prefix)
    assert sorted(p.name for p in (folders / "output_evil").iterdir()) == ["secret.png"]
