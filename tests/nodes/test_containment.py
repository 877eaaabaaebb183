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


def _validation_errors(folders, prompt: dict) -> list[tuple[str | None, str | None, str]]:
    import latentgraph.nodes  # noqa: F401 - registers the node types the prompt uses
    from latentgraph.graph import Settings
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.validate import validate

    settings = Settings(output_dir=folders / "output", input_dir=folders / "input",
                        temp_dir=folders / "temp")  # fmt: skip
    found = validate(graph_from_prompt(prompt), settings=settings)
    return [(p.node_id, p.input_name, p.message) for p in found if p.severity == "error"]


@pytest.mark.parametrize("prefix", ["evil/x", "etc/x", "evil/../../output_evil/x"])
def test_validation_refuses_a_prefix_through_a_link_out_of_the_output_folder(folders, prefix):
    """Validation resolves the prefix's folder as the run does (`images.prefix_place`): it said
    ok to `evil/x` and only the run refused it."""
    [(node_id, input_name, message)] = _validation_errors(folders, {
        "1": {"class_type": "LoadImage", "inputs": {"image": "real.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    })  # fmt: skip
    assert (node_id, input_name) == ("2", "filename_prefix")
    assert "would write outside the output directory" in message


def test_validation_takes_a_prefix_through_a_link_inside(folders):
    (folders / "output" / "inner").symlink_to(folders / "output" / "sub", target_is_directory=True)
    assert _validation_errors(folders, {
        "1": {"class_type": "LoadImage", "inputs": {"image": "alias.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": "inner/x"}},
    }) == []  # fmt: skip


def test_load_images_list_and_validation_leave_out_links_out_of_the_input_folder(folders):
    """The dropdown (/object_info) listed leak.png, a link out of the input folder, and
    validation took it; the run refused it ("outside its folder"), and /internal/files/input
    leaves it out."""
    from latentgraph.graph import Settings
    from latentgraph.nodes import input_files

    (folders / "input" / "gone.png").symlink_to(folders / "nowhere.png")  # a broken link
    names = input_files.image_names(Settings(input_dir=folders / "input"))
    assert names == ["alias.png", "example.png", "real.png"]
    [(node_id, input_name, message)] = _validation_errors(folders, {
        "1": {"class_type": "LoadImage", "inputs": {"image": "leak.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
    })  # fmt: skip
    assert (node_id, input_name) == ("1", "image")
    assert message.startswith("'leak.png' is not one of: 'alias.png', 'example.png', 'real.png'")


def test_validation_refuses_a_prefix_through_a_link_to_a_hidden_folder(folders):
    """The files are recorded (and /view asked for them) under the folder the link leads to:
    `.drafts`, which /view does not serve."""
    (folders / "output" / "drafts").symlink_to(folders / "output" / ".drafts",
                                               target_is_directory=True)  # fmt: skip
    [(node_id, input_name, message)] = _validation_errors(folders, {
        "1": {"class_type": "LoadImage", "inputs": {"image": "real.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                    "filename_prefix": "drafts/x"}},
    })  # fmt: skip
    assert (node_id, input_name) == ("2", "filename_prefix")
    assert message.startswith("'drafts/x': the folder '.drafts' starts with '.'")
