"""Workflows in images: WEBP EXIF read as ComfyUI and SaveAnimatedWEBP write it, a PNG cut
short after its text chunks, a broken 'prompt' chunk beside a good 'workflow'."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from PIL import Image

from latentgraph.graph import WorkflowError
from latentgraph.graph.formats import WorkflowWarning, load_file

from .conftest import png, run_cli
from .toy_nodes import registry


def comfy_webp(path: Path, prompt=None, workflow=None, fmt: str = "WEBP") -> Path:
    """An image written as ComfyUI's SaveAnimatedWEBP writes it: "prompt:" in 0x0110, the
    extra_pnginfo entries from 0x010F down ("workflow:" first)."""
    exif = Image.Exif()
    if prompt is not None:
        exif[0x0110] = "prompt:" + json.dumps(prompt)
    if workflow is not None:
        exif[0x010F] = "workflow:" + json.dumps(workflow)
    frame = Image.new("RGB", (8, 8), "red")
    frame.save(path, format=fmt, save_all=True, append_images=[frame], exif=exif)
    return path


# --- 7. WEBP -----------------------------------------------------------------------------------


def test_a_webp_as_comfyui_writes_it_runs_validates_and_converts(tmp_path, capsys, classic_api,
                                                                  classic_editor):  # fmt: skip
    path = comfy_webp(tmp_path / "anim.webp", classic_api, classic_editor)
    loaded = load_file(path, registry=registry)
    assert loaded.format == "api" and loaded.graph["3"].inputs["seed"] == 1234
    assert loaded.extra == {"prompt": classic_api, "workflow": classic_editor}
    renamed = comfy_webp(tmp_path / "renamed.png", workflow=classic_editor)  # the editor's
    loaded = load_file(renamed, registry=registry)
    assert loaded.format == "editor" and loaded.extra["workflow"] == classic_editor
    code, out, err = run_cli(capsys, "validate", path)
    assert code == 0 and "ok (7 nodes)" in out, err
    code, _, err = run_cli(capsys, "convert", path, tmp_path / "back.json", "--to", "editor")
    assert code == 0, err
    assert json.loads((tmp_path / "back.json").read_text()) == classic_editor


def test_the_webp_our_save_animated_webp_writes_runs_again(tmp_path, capsys):
    prompt = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 255}},
        "2": {"class_type": "SaveAnimatedWEBP",
              "inputs": {"images": ["1", 0], "filename_prefix": "loop", "fps": 2.0,
                         "lossless": True, "quality": 80, "method": "default"}},
    }  # fmt: skip
    (tmp_path / "loop.json").write_text(json.dumps(prompt))
    args = ["--output-dir", tmp_path / "out", "--no-cache", "-q"]
    code, _, err = run_cli(capsys, "run", tmp_path / "loop.json", *args)
    assert code == 0, err
    first = tmp_path / "out" / "loop_00001_.webp"
    code, _, err = run_cli(capsys, "run", first, "--set", "1.color=0", *args)
    assert code == 0, err
    from latentgraph.api import load

    again = load(tmp_path / "out" / "loop_00002_.webp")
    assert again.format == "api" and again.graph["1"].inputs["color"] == 0


def test_a_webp_without_a_workflow_or_too_large_is_refused_before_a_frame_is_decoded(
        tmp_path, monkeypatch):  # fmt: skip
    from latentgraph.graph import formats

    plain = tmp_path / "plain.webp"
    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(WorkflowError) as err:
        load_file(plain, registry=registry)
    assert str(err.value.problems[0]) == (
        f"{plain}: a WEBP image with no workflow in it (no 'prompt', 'workflow' or 'latentgraph' "
        "EXIF entry; latentgraph and ComfyUI save theirs in PNG text chunks and WEBP EXIF)"
    )
    broken = tmp_path / "broken.png"  # a WEBP by its signature, named .png
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8X" + bytes(20))
    with pytest.raises(WorkflowError) as err:
        load_file(broken, registry=registry)
    assert err.value.problems[0].message.startswith("cannot read the WEBP: ")
    monkeypatch.setattr(formats, "MAX_PNG_PIXELS", 63)
    with pytest.raises(WorkflowError) as err:
        load_file(comfy_webp(tmp_path / "big.webp", {"1": {}}), registry=registry)
    assert err.value.problems[0].message == (
        "cannot read the WEBP's EXIF: the image is 8x8 = 64 pixels, over the limit of 63"
    )


def test_an_image_claiming_past_pillows_own_bound_is_named_not_a_crash(tmp_path):
    """Pillow's DecompressionBombError (a JPEG header claiming 20000 x 20000) was an internal
    error before the image was named as one with no workflow."""
    jpeg = tmp_path / "huge.jpg"
    Image.new("L", (8, 8)).save(jpeg)
    data = bytearray(jpeg.read_bytes())
    at = data.index(b"\xff\xc0") + 5  # SOF0: height, width
    data[at : at + 4] = (20000).to_bytes(2, "big") * 2
    jpeg.write_bytes(bytes(data))
    with pytest.raises(WorkflowError) as err:
        load_file(jpeg, registry=registry)
    assert "a JPEG image with no workflow in it" in err.value.problems[0].message


# --- 11. a truncated PNG, a broken 'prompt' chunk -------------------------------------------------


def test_a_png_cut_short_in_its_pixels_loads_the_workflow_before_them(tmp_path, classic_api):
    whole = png(tmp_path / "whole.png", prompt=json.dumps(classic_api)).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[: len(whole) - 200])
    assert load_file(cut, registry=registry).extra["prompt"] == classic_api
    plain = tmp_path / "plain.png"
    plain.write_bytes(png(tmp_path / "p.png").read_bytes()[:-200])
    with pytest.raises(WorkflowError) as err:  # nothing before the pixels: still refused
        load_file(plain, registry=registry)
    assert err.value.problems[0].message.startswith("cannot read the PNG: image file is truncated")


def test_a_prompt_chunk_that_is_not_json_gives_way_to_the_workflow_with_a_warning(
        tmp_path, classic_editor):  # fmt: skip
    path = png(tmp_path / "a.png", prompt="{broken", workflow=json.dumps(classic_editor))
    with pytest.warns(WorkflowWarning) as caught:
        loaded = load_file(path, registry=registry)
    assert loaded.format == "editor" and loaded.extra["workflow"] == classic_editor
    assert [str(w.message) for w in caught] == [
        f"{path}: the PNG's 'prompt' text is not valid JSON: running its 'workflow' text"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        broken = png(tmp_path / "b.png", prompt="{broken", workflow="{broken too")
        with pytest.raises(WorkflowError) as err:
            load_file(broken, registry=registry)
    assert err.value.problems[0].message == "the PNG's 'prompt' text is not valid JSON"


def test_the_cli_prints_a_passed_over_chunk_as_its_own_warning(tmp_path, capsys,
                                                                 classic_editor):  # fmt: skip
    """Not Python's `.../formats.py:NNN: WorkflowWarning: ...` with the source line under it."""
    path = png(tmp_path / "a.png", prompt="{broken", workflow=json.dumps(classic_editor))
    code, _, err = run_cli(capsys, "validate", path)
    assert f"latentgraph: warning: {path}: the PNG's 'prompt' text is not valid JSON: running " \
           "its 'workflow' text\n" in err  # fmt: skip
    assert "WorkflowWarning" not in err and "formats.py" not in err
    assert code == 0


def _webp_editor(x: float) -> dict:
    """An editor file: EmptyImage (a batch of 2) -> SaveAnimatedWEBP, EmptyImage at x."""
    nodes = [{"id": 1, "type": "EmptyImage", "pos": [x, 0], "size": [300, 100], "mode": 0,
              "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
              "widgets_values": [8, 8, 2, 255]},
             {"id": 2, "type": "SaveAnimatedWEBP", "pos": [400, 0], "size": [300, 100],
              "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
              "outputs": [], "widgets_values": ["clip", 2.0, True, 80, "default"]}]  # fmt: skip
    return {"last_node_id": 2, "last_link_id": 1, "nodes": nodes,
            "links": [[1, 1, 0, 2, 0, "IMAGE"]], "version": 0.4}  # fmt: skip


def test_a_moved_node_saves_a_webp_carrying_the_new_workflow(tmp_path, capsys):
    """SaveAnimatedWEBP served from the cache reported the first run's file, whose EXIF held
    the first workflow; the documents it embeds are part of its cache key, as SaveImage's."""
    flow = tmp_path / "flow.json"
    args = ["--output-dir", tmp_path / "out", "--cache-dir", tmp_path / "cache", "-q"]
    flow.write_text(json.dumps(_webp_editor(0)))
    assert run_cli(capsys, "run", flow, *args)[0] == 0
    flow.write_text(json.dumps(_webp_editor(250)))
    code, _, err = run_cli(capsys, "run", flow, *args)
    assert code == 0, err
    first, second = (load_file(tmp_path / "out" / f"clip_0000{i}_.webp", registry=registry)
                     for i in (1, 2))  # fmt: skip
    assert second.extra["workflow"]["nodes"][0]["pos"] == [250, 0]
    assert first.extra["workflow"]["nodes"][0]["pos"] == [0, 0]
    assert second.extra["prompt"] == first.extra["prompt"]
    assert run_cli(capsys, "run", flow, *args)[0] == 0  # the same file again: nothing new saved
    assert not (tmp_path / "out" / "clip_00003_.webp").exists()


def test_a_place_in_an_images_workflow_says_the_lines_are_the_embedded_texts(tmp_path, capsys):
    """`seed43.png:8:3` named a line and column of a PNG; they are its embedded document's."""
    text = (Path(__file__).parents[2] / "workflows" / "txt2img.yaml").read_text()
    path = png(tmp_path / "seed43.png", latentgraph=text)
    code, _, err = run_cli(capsys, "validate", path, "--set", "noise.seed=1")
    assert code == 2
    line = 2 + text[: text.index("params:")].count("\n")  # the first param: --set's names
    assert f"error: {path} (embedded workflow):{line}:3: --set noise.seed: the workflow has " in err
    code, out, err = run_cli(capsys, "validate", path, "--set", "seed=7")  # and it still runs
    assert code == 0 and "ok (8 nodes)" in out, err


@pytest.mark.parametrize(
    ("key", "allowed"),
    [("workflow", True), ("my app", True), ("é" * 79, True), ("x" * 80, False), ("", False),
     ("日本", False), ("a\x00b", False), (" a", False), ("a  b", False), ("\x7f", False)],
)  # fmt: skip
def test_a_png_text_chunk_name_is_one_a_png_reader_gives_back(tmp_path, key, allowed):
    """The one rule for an extra_pnginfo key SaveImage writes (POST /prompt refuses the
    others): a key it allows comes back from the PNG as it was; Pillow raised for `日本`,
    wrote the others it refuses, cut at NUL or past the 79 the PNG specification allows."""
    from PIL.PngImagePlugin import PngInfo

    from latentgraph.graph.pictures import text_key_problem

    assert (text_key_problem(key) is None) == allowed
    if allowed:
        info = PngInfo()
        info.add_text(key, "1")
        Image.new("RGB", (2, 2)).save(tmp_path / "a.png", pnginfo=info)
        assert Image.open(tmp_path / "a.png").text == {key: "1"}
