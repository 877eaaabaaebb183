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
