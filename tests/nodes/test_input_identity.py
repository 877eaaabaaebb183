"""LoadImage's cache identity is the content of the file it reads (sha256, as ComfyUI's
IS_CHANGED): a touched picture, or the same bytes copied over it, is a cache hit (a touch re-ran
the whole pipeline and saved a duplicate); a changed picture re-runs."""

from __future__ import annotations

import os
import re
import shutil

from latentgraph.nodes import input_files

FLOW = """\
version: 1
nodes:
  load: {type: LoadImage, image: hires.png}
  save: {type: SaveImage, images: load.IMAGE, filename_prefix: out}
"""


def test_a_touched_or_copied_picture_is_a_cache_hit_and_a_changed_one_reruns(tmp_path,
                                                                              monkeypatch, capsys):  # fmt: skip
    from PIL import Image

    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "input").mkdir()
    picture = tmp_path / "input" / "hires.png"
    Image.new("RGB", (16, 16), (10, 20, 30)).save(picture)
    (tmp_path / "flow.yaml").write_text(FLOW)

    def run() -> tuple[int, int]:
        assert main(["run", "flow.yaml", "--cache-dir", str(tmp_path / "cache")]) == 0
        summary = re.search(r"(\d+) ran, (\d+) cached", capsys.readouterr().err)
        return int(summary.group(1)), int(summary.group(2))

    assert run() == (2, 0)
    later = picture.stat().st_mtime + 100
    os.utime(picture, (later, later))  # touch
    assert run() == (0, 1)  # the save, from the cache: nothing ran
    shutil.copy(picture, tmp_path / "copy.png")
    os.replace(tmp_path / "copy.png", picture)  # the same bytes, another inode and mtime
    assert run() == (0, 1)  # the save, from the cache: nothing ran
    assert len(list((tmp_path / "output").glob("out_*.png"))) == 1  # no duplicate output
    Image.new("RGB", (16, 16), (10, 20, 31)).save(picture)  # same size, other bytes
    assert run() == (2, 0)
    assert len(list((tmp_path / "output").glob("out_*.png"))) == 2


def test_an_unchanged_file_is_hashed_once(tmp_path, monkeypatch):
    picture = tmp_path / "a.png"
    picture.write_bytes(b"not really a picture")
    monkeypatch.setattr(input_files, "_SETTLED_NS", -(10**18))  # every file counts as settled
    first = input_files.content_sha256(picture)

    def no_reading(*args, **kwargs):
        raise AssertionError("read again")

    monkeypatch.setattr(input_files, "file_sha256", no_reading)
    assert input_files.content_sha256(picture) == first
    picture.write_bytes(b"something else")
    monkeypatch.undo()
    assert input_files.content_sha256(picture) != first


def saving(image: str) -> dict:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": image}},
            "2": {"class_type": "SaveImage",
                  "inputs": {"images": ["1", 0], "filename_prefix": "again"}}}  # fmt: skip


def test_every_spelling_of_a_saved_image_loads_it_once_and_saves_one_file(tmp_path, monkeypatch):
    """The user's case: output/x.png, ./output/x.png, its absolute path and 'x.png [output]'
    each ran LoadImage and saved another copy. Each run here has its own memory cache over
    one disk cache, so the key is one across processes too."""
    from PIL import Image

    from latentgraph.graph import Settings, default_registry
    from latentgraph.graph.cache import Cache
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.scheduler import Scheduler

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "output"
    out.mkdir()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(out / "x.png")
    settings = Settings(input_dir=tmp_path / "input", output_dir=out, temp_dir=tmp_path / "temp")
    spellings = ["output/x.png", "./output/x.png", str(out / "x.png"), "x.png [output]"]
    ran = []
    for image in spellings:
        sched = Scheduler(default_registry, Cache(disk_dir=tmp_path / "cache"), settings=settings)
        result = sched.run(graph_from_prompt(saving(image), default_registry))
        assert result.ok, result.failures
        ran.append(result.executed)
    assert ran == [["1", "2"], [], [], []]
    assert [p.name for p in out.glob("again_*.png")] == ["again_00001_.png"]


def test_a_file_of_the_same_name_in_another_folder_has_its_own_key(tmp_path, monkeypatch):
    """The same bytes under x.png in the input, output and temp folders: three files, three
    keys (their content, in `identity`, is one); the spellings of each, one key."""
    from latentgraph.graph import Settings, default_registry
    from latentgraph.graph.cache import node_key

    monkeypatch.chdir(tmp_path)
    for folder in ("input", "output", "temp", "input/sub"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.png").write_bytes(b"the same bytes")
    settings = Settings(input_dir=tmp_path / "input", output_dir=tmp_path / "output",
                        temp_dir=tmp_path / "temp")  # fmt: skip
    load = default_registry["LoadImage"]

    def key(image: str) -> str:
        return node_key(load, {"image": image}, {}, settings)

    keys = {
        "input": {key("x.png"), key("x.png [input]"), key("input/x.png"), key("sub/../x.png")},
        "sub": {key("sub/x.png"), key("./input/sub/x.png"), key("sub/x.png [input]")},
        "output": {key("output/x.png"), key("x.png [output]"), key(str(tmp_path / "output/x.png"))},
        "temp": {key("temp/x.png"), key("x.png [temp]"), key("./temp/./x.png")},
    }
    assert all(len(each) == 1 for each in keys.values()), keys
    assert len(set.union(*keys.values())) == 4
    assert input_files.canonical("x.png [output]", settings) == ["output", "x.png"]
    mask = default_registry["LoadImageMask"]  # LoadImageMask names its file the same way
    assert node_key(mask, {"image": "output/x.png", "channel": "red"}, {}, settings) == node_key(
        mask, {"image": "x.png [output]", "channel": "red"}, {}, settings)  # fmt: skip
    # a value naming no file keeps its spelling: a missing one, a name leaving its folder
    assert key("missing.png") != key("./missing.png")
    assert input_files.canonical("../output/x.png", settings) == "../output/x.png"


def test_an_image_name_typed_in_another_unicode_form_is_the_listed_file(tmp_path, make_ctx):
    """A picture copied from macOS is named decomposed (NFD) and typed composed (NFC):
    LoadImage said "'é.png' is not one of: 'example.png', 'é.png'". The name is accepted,
    read as the listed file, and keyed as its listed spelling."""
    import unicodedata

    from PIL import Image

    from latentgraph.graph import Settings, default_registry
    from latentgraph.graph.cache import node_key
    from latentgraph.graph.validate import validate
    from latentgraph.graph.workflow import load_workflow
    from latentgraph.nodes import images

    decomposed, typed = (unicodedata.normalize(form, "é.png") for form in ("NFD", "NFC"))
    (tmp_path / "input").mkdir()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(tmp_path / "input" / decomposed)
    settings = Settings(input_dir=tmp_path / "input", output_dir=tmp_path / "output")
    graph = load_workflow("flow.yaml", text=FLOW.replace("hires.png", typed)).graph
    assert [p.message for p in validate(graph, settings=settings)] == []
    load = default_registry["LoadImage"]
    assert node_key(load, {"image": typed}, {}, settings) == node_key(
        load, {"image": decomposed}, {}, settings)  # fmt: skip
    assert input_files.canonical(typed, settings) == ["input", decomposed]
    ctx = make_ctx("LoadImage", input_dir=tmp_path / "input")
    image = images.load_image(ctx, typed)[0]
    assert tuple(image.shape) == (1, 16, 16, 3)
