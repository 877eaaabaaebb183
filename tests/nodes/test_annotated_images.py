"""LoadImage and LoadImageMask take the values ComfyUI's editor writes with their folder
named ('mask.png [input]', 'ComfyUI_00001_.png [output]', 'x.png [temp]'): validated as files
of that folder, read from it, and never leaving it."""

from __future__ import annotations

import os

import pytest

from latentgraph.graph import Graph, Node, Settings
from latentgraph.graph.declare import default_registry
from latentgraph.graph.model import Link
from latentgraph.graph.validate import validate
from latentgraph.nodes import images, input_files, masks  # noqa: F401 - registers the nodes
from latentgraph.nodes.values import NodeInputError

COLOURS = {"input": (200, 0, 0), "output": (0, 200, 0), "temp": (0, 0, 200)}


@pytest.fixture
def settings(tmp_path) -> Settings:
    """input/, output/ and temp/ each holding pic.png in a colour of its own (and sub/ in
    input), and a secret.png beside them."""
    from PIL import Image

    for kind, colour in COLOURS.items():
        (tmp_path / kind / "sub").mkdir(parents=True)
        Image.new("RGB", (8, 8), colour).save(tmp_path / kind / "pic.png")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "input" / "sub" / "deep.png")
    Image.new("RGB", (8, 8), (1, 1, 1)).save(tmp_path / "secret.png")
    return Settings(input_dir=tmp_path / "input", output_dir=tmp_path / "output",
                    temp_dir=tmp_path / "temp")  # fmt: skip


def problems(value: str, settings: Settings, node_type: str = "LoadImage") -> list[str]:
    """The loader's problems, in a graph previewing what it loads."""
    g = Graph()
    g.add(Node("load", node_type, {"image": value}))
    g.add(Node("show", "PreviewImage", {"images": Link("load", 0)}))
    return [p.code for p in validate(g, default_registry, settings) if p.node_id == "load"]


@pytest.mark.parametrize("value", ["pic.png [input]", "pic.png [output]", "pic.png [temp]",
                                   "sub/deep.png [input]", "pic.png"])  # fmt: skip
def test_values_naming_their_folder_are_valid(settings, value):
    assert problems(value, settings) == []


@pytest.mark.parametrize("value", ["nope.png [output]", "../secret.png [output]",
                                   "pic.png [models]", "pic.png[output]", "sub [input]"])  # fmt: skip
def test_values_naming_no_image_of_their_folder_are_refused(settings, value):
    assert problems(value, settings) == ["value_not_in_list"]


@pytest.mark.parametrize("kind", list(COLOURS))
def test_load_image_reads_the_folder_the_value_names(make_ctx, settings, kind):
    ctx = make_ctx("LoadImage", input_dir=settings.input_dir, output_dir=settings.output_dir,
                   temp_dir=settings.temp_dir)  # fmt: skip
    pixels, _ = images.load_image(ctx, f"pic.png [{kind}]")
    assert tuple(round(float(c) * 255) for c in pixels[0, 0, 0]) == COLOURS[kind]


def test_an_annotated_name_leaving_its_folder_is_refused_at_run_time(make_ctx, settings):
    ctx = make_ctx("LoadImage", input_dir=settings.input_dir, output_dir=settings.output_dir)
    with pytest.raises(NodeInputError, match="outside its folder"):
        images.load_image(ctx, "../secret.png [output]")


def test_the_cache_identity_follows_the_annotated_file(settings):
    from PIL import Image

    before = input_files.identity({"image": "pic.png [output]"}, settings)
    Image.new("RGB", (16, 16), (5, 5, 5)).save(settings.output_dir / "pic.png")
    assert input_files.identity({"image": "pic.png [output]"}, settings) != before


def test_load_image_mask_takes_annotated_values_too(settings):
    assert problems("pic.png [temp]", settings, "LoadImageMask") == []


def test_a_path_into_the_output_folder_loads_that_file(make_ctx, settings, tmp_path,
                                                        monkeypatch):  # fmt: skip
    """`--set image=output/txt2img_00003_.png` (a shell completes the path of a file you made)
    was refused as "not one of: 'example.png'"; a path to a file inside the input, output or
    temp folder reads that file, as 'name [output]' does, absolute or relative alike."""
    monkeypatch.chdir(tmp_path)
    ctx = make_ctx("LoadImage", input_dir=settings.input_dir, output_dir=settings.output_dir,
                   temp_dir=settings.temp_dir)  # fmt: skip
    for value, kind in [("output/pic.png", "output"), (str(tmp_path / "temp/pic.png"), "temp"),
                        ("./output/sub/../pic.png", "output"), ("input/pic.png", "input")]:  # fmt: skip
        assert problems(value, settings) == [], value
        pixels, _ = images.load_image(ctx, value)
        assert tuple(round(float(c) * 255) for c in pixels[0, 0, 0]) == COLOURS[kind], value
    assert input_files.identity({"image": "output/pic.png"}, settings) == \
        input_files.identity({"image": "pic.png [output]"}, settings)  # fmt: skip


def test_a_path_outside_the_folders_is_refused_naming_the_output_form(settings, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    """A path to a file in no folder (secret.png beside them), through a symlink in the output
    folder leading out, or to no file: refused, the message saying how to name a saved image."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "output" / "link.png").symlink_to(tmp_path / "secret.png")
    for value in ["secret.png", str(tmp_path / "secret.png"), "output/link.png",
                  "output/nope.png", "output/../secret.png"]:  # fmt: skip
        g = Graph()
        g.add(Node("load", "LoadImage", {"image": value}))
        g.add(Node("show", "PreviewImage", {"images": Link("load", 0)}))
        [problem] = [p for p in validate(g, default_registry, settings) if p.node_id == "load"]
        assert problem.code == "value_not_in_list", value
        assert "or a saved image as '" in problem.message
        assert f"the output folder ({tmp_path / 'output'}) or the temp folder" in problem.message


@pytest.mark.parametrize("node_type", ["LoadImage", "LoadImageMask"])
def test_the_refusal_names_the_real_output_folder_and_a_path_that_works(
    settings, tmp_path, monkeypatch, node_type
):
    """With the output folder elsewhere (`run --output-dir /tmp/v/output` from another folder),
    'output/pic.png' is refused: the hint said "or its path in the output folder:
    output/name", the very form refused; it now shows the folder and the path that works."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    g = Graph()
    g.add(Node("load", node_type, {"image": "output/pic.png"}))
    g.add(Node("show", "PreviewAny", {"source": Link("load", 0)}))
    [problem] = [p for p in validate(g, default_registry, settings) if p.node_id == "load"]
    assert problem.message.endswith(
        "; --input-dir names another), or a saved image as 'pic.png [output]' (or [temp]), or the "
        "path of an image in the "
        f"output folder ({tmp_path / 'output'}) or the temp folder, from the working folder or "
        f"absolute: {os.path.join('..', 'output', 'pic.png')})"
    )
    for works in ["pic.png [output]", os.path.join("..", "output", "pic.png")]:
        assert problems(works, settings, node_type) == [], works
    description = default_registry.get(node_type).input("image").description
    assert (
        "or the path (from the working folder, or absolute) of a file in one of them" in description
    )


def test_load_image_mask_declares_load_images_image_input():
    """One declaration (`input_files.image_choice`): a hook or word added to one reaches both,
    so the two nodes reading one file list, key and describe it alike."""
    declared = default_registry["LoadImageMask"].input("image")
    assert declared == default_registry["LoadImage"].input("image")
    assert "example.png is built in" in declared.description
