"""Images saved through the Python API carry the documents `latentgraph run` embeds, so
`latentgraph.load(png)` reads back what ran, with the params given from Python."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from PIL import Image

import latentgraph
from latentgraph.graph.cache import Cache
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.convert import convert
from latentgraph.graph.formats import webp_text

WORKFLOW = """\
version: 1
params:
  width: 4
  color: 255
nodes:
  blank: {type: EmptyImage, width: $width, height: 3, color: $color}
  save: {type: SaveImage, images: blank, filename_prefix: blank}
"""

PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 6, "height": 3, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "p"}},
}


def _saved(result: latentgraph.RunResult, folder) -> str:
    assert result.status == "success", result.failures
    [record] = result.ui["save" if "save" in result.ui else "2"]["images"]
    path = str(folder / record["subfolder"] / record["filename"])
    assert record["path"] == path  # the full path, the caller's to rebuild no more
    return path


@pytest.fixture
def settings(tmp_path):
    return latentgraph.Settings(output_dir=tmp_path / "out", input_dir=tmp_path)


def test_a_file_run_from_python_saves_what_reloads_with_its_params(tmp_path, settings):
    path = tmp_path / "blank.yaml"
    path.write_text(WORKFLOW)
    png = _saved(latentgraph.run(path, width=5, settings=settings, cache=Cache()),
                 settings.output_dir)  # fmt: skip
    assert set(Image.open(png).text) == {"prompt", "latentgraph"}  # as `latentgraph run` saves
    again = latentgraph.load(png)
    assert again.format == "yaml" and again.params == {"width": 5, "color": 255}
    assert again.graph.nodes["blank"].inputs["width"] == 5


def test_a_loaded_workflow_swept_from_python_saves_each_value(tmp_path, settings):
    path = tmp_path / "blank.yaml"
    path.write_text(WORKFLOW)
    results = latentgraph.sweep(latentgraph.load(path), "color", [1, 2], settings=settings,
                                cache=Cache())  # fmt: skip
    pngs = [_saved(r, settings.output_dir) for r in results]
    assert [latentgraph.load(p).params["color"] for p in pngs] == [1, 2]


def test_a_dict_or_a_graph_run_from_python_saves_its_prompt(settings):
    for workflow in (PROMPT, graph_from_prompt(PROMPT)):
        png = _saved(latentgraph.run(workflow, settings=settings, cache=Cache()),
                     settings.output_dir)  # fmt: skip
        assert "prompt" in Image.open(png).text
        again = latentgraph.load(png)
        assert again.format == "api" and again.graph.nodes["1"].inputs["width"] == 6


def test_changing_a_results_ui_leaves_what_later_runs_report_and_save(tmp_path, settings):
    """`result.ui` was the cache's own dict: clearing its image records made the next run
    report success with no images, a key added showed in later runs, and a record's filename
    changed made the next run save the image again as a new file."""
    path = tmp_path / "blank.yaml"
    path.write_text(WORKFLOW)
    cache = Cache()
    first = latentgraph.run(path, settings=settings, cache=cache)
    png = _saved(first, settings.output_dir)
    first.ui["save"]["images"][0]["filename"] = "elsewhere.png"
    first.ui["save"]["mine"] = True
    again = latentgraph.run(path, settings=settings, cache=cache)
    assert again.cached == ["save"] and _saved(again, settings.output_dir) == png
    assert "mine" not in again.ui["save"]
    again.ui["save"]["images"].clear()
    third = latentgraph.run(path, settings=settings, cache=cache)
    assert third.cached == ["save"] and _saved(third, settings.output_dir) == png
    assert sorted(p.name for p in settings.output_dir.rglob("*.png")) == [Path(png).name]


CLIP = """\
version: 1
# frames of one colour
params:
  color: 255
  name: clip
nodes:
  frames: {type: EmptyImage, width: 4, height: 3, batch_size: 2, color: $color}
  save: {type: SaveAnimatedWEBP, images: frames, filename_prefix: $name, fps: 2.0}
"""


@pytest.mark.parametrize("name", ["clip", "café ☕"])
def test_an_animated_webp_carries_the_document_and_params_and_runs_again(tmp_path, settings,
                                                                          name):  # fmt: skip
    """Its EXIF held the ComfyUI prompt alone: `latentgraph run clip.webp --set color=6` was
    refused (a ComfyUI workflow has no params), as a frame PNG's is not. Our document goes in
    as written, comments kept, whatever its characters."""
    path = tmp_path / "clip.yaml"
    path.write_text(CLIP, encoding="utf-8")
    webp = _saved(latentgraph.run(path, color=5, name=name, settings=settings, cache=Cache()),
                  settings.output_dir)  # fmt: skip
    entries = [v for v in Image.open(webp).getexif().values() if v.startswith("latentgraph:")]
    assert len(entries) == 1
    assert "# frames of one colour" in webp_text(Path(webp))["latentgraph"]
    again = latentgraph.load(webp, color=6)
    assert again.format == "yaml" and again.params == {"color": 6, "name": name}
    rerun = _saved(latentgraph.run(again, settings=settings, cache=Cache()), settings.output_dir)
    assert latentgraph.load(rerun).params == {"color": 6, "name": name}
    with Image.open(rerun) as img:
        assert img.convert("RGB").getpixel((0, 0)) == (0, 0, 6)


CAFE = """\
version: 1
# a café ☕ clip:   saved as frames and as one animation
params:
  name: "café ☕"
nodes:
  frames: {type: EmptyImage, width: 4, height: 3, batch_size: 2, color: 9}
  still: {type: SaveImage, images: frames, filename_prefix: still}
  save:  {type: SaveAnimatedWEBP, images: frames, filename_prefix: $name}
"""


def test_a_webp_gives_back_the_document_as_written_as_its_frame_png_does(tmp_path, settings):
    """A document with other characters than ASCII went into the EXIF re-dumped escaped:
    `latentgraph convert clip.webp out.yaml` gave `name: "caf\\xE9 \\u2615"`, block style, no
    comment, where the frame PNG of the same run gave the file back as written."""
    path = tmp_path / "clip.yaml"
    path.write_text(CAFE, encoding="utf-8")
    result = latentgraph.run(path, settings=settings, cache=Cache())
    webp = _saved(result, settings.output_dir)
    png = result.ui["still"]["images"][0]["path"]
    for image, out in ((png, tmp_path / "from_png.yaml"), (webp, tmp_path / "from_webp.yaml")):
        convert(image, out)
        assert out.read_bytes() == CAFE.encode("utf-8"), image


def test_a_webp_saved_with_the_document_escaped_still_runs(tmp_path):
    """A WEBP saved before the document went in as UTF-8 holds it re-dumped, escaped (`café`
    as `caf\\xE9`) so as to be ASCII: it reads back the same document."""
    escaped = yaml.safe_dump(yaml.safe_load(CAFE), allow_unicode=False, sort_keys=False)
    assert escaped.isascii() and "\\xE9" in escaped
    exif = Image.Exif()
    exif[0x010F] = "latentgraph:" + escaped
    webp = tmp_path / "old.webp"
    Image.new("RGB", (4, 3)).save(webp, format="WEBP", exif=exif)
    again = latentgraph.load(webp)
    assert again.format == "yaml" and again.params == {"name": "café ☕"}
    assert again.graph.nodes["save"].inputs["filename_prefix"] == "café ☕"
