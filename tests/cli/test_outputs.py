"""Output files: a path reported as saved exists, and files get the user's permissions.

An unchanged workflow re-run with another --output-dir, or after its image was deleted, writes
the image again from the cached pixels (the node that made them does not run again)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from .conftest import write

SAVE = """version: 1
params: {shade: 40}
nodes:
  pic: {type: CliImage, shade: $shade}
  save: {type: SaveImage, images: pic, filename_prefix: toy}
"""


def finished(out: str) -> dict:
    return [json.loads(line) for line in out.splitlines() if line.strip()][-1]


def saved(out: str) -> list[dict]:
    return [r for line in out.splitlines() if line.strip()
            for r in (json.loads(line).get("ui") or {}).get("images", [])]  # fmt: skip


def test_deleted_image_is_written_again_from_the_cache(cli, tmp_path):
    path = write(tmp_path, "save.yaml", SAVE)
    assert cli("run", str(path), "--json")[0] == 0
    image = tmp_path / "output" / "toy_00001_.png"
    image.unlink()
    code, out, err = cli("run", str(path), "--json")
    assert code == 0, err
    assert finished(out)["executed"] == ["save"] and finished(out)["cached"] == ["pic"]
    assert [r["filename"] for r in saved(out)] == ["toy_00001_.png"] and image.is_file()
    # with the file in place, nothing runs and nothing new is written
    code, out, _ = cli("run", str(path), "--json")
    assert finished(out)["executed"] == [] and finished(out)["cached"] == ["save"]
    assert sorted(p.name for p in image.parent.iterdir()) == ["toy_00001_.png"]


BATCH = """version: 1
nodes:
  a: {type: EmptyImage, width: 8, height: 8, color: 1}
  b: {type: EmptyImage, width: 8, height: 8, color: 2}
  c: {type: EmptyImage, width: 8, height: 8, color: 3}
  ab: {type: ImageBatch, image1: a, image2: b}
  abc: {type: ImageBatch, image1: ab, image2: c}
  save: {type: SaveImage, images: abc, filename_prefix: seeds/image}
"""


def test_one_deleted_image_of_a_batch_is_written_back_under_its_name_the_rest_kept(cli, tmp_path):
    """The tester's case: deleting image_00002 of a batch saved the whole batch again as
    image_00004..6, two of them byte-identical duplicates of files still there."""
    path = write(tmp_path, "batch.yaml", BATCH)
    assert cli("run", str(path))[0] == 0
    folder = tmp_path / "output" / "seeds"
    names = [f"image_0000{i}_.png" for i in (1, 2, 3)]
    first = {name: (folder / name).read_bytes() for name in names}
    (folder / names[1]).unlink()
    code, out, err = cli("run", str(path))
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith(("kept", "saved"))] == [
        f"kept {Path('output/seeds') / names[0]}",
        f"saved {Path('output/seeds') / names[1]}",
        f"kept {Path('output/seeds') / names[2]}",
    ]
    assert sorted(p.name for p in folder.iterdir()) == names  # no duplicates
    assert {name: (folder / name).read_bytes() for name in names} == first
    code, out, _ = cli("run", str(path), "--json")  # the ui cached holds all three again
    assert finished(out)["cached"] == ["save"]
    assert [r["filename"] for r in saved(out)] == names


def test_another_output_dir_gets_its_own_files(cli, tmp_path):
    path = write(tmp_path, "save.yaml", SAVE)
    assert cli("run", str(path), "--json")[0] == 0
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "toy_00001_.png").write_bytes(b"another workflow's image")  # same name, not ours
    code, out, err = cli("run", str(path), "--json", "--output-dir", str(other))
    assert code == 0, err
    assert finished(out)["executed"] == ["save"] and finished(out)["cached"] == ["pic"]
    [record] = saved(out)
    assert record["filename"] == "toy_00002_.png" and (other / record["filename"]).is_file()
    assert (other / "toy_00001_.png").read_bytes() == b"another workflow's image"
    code, out, err = cli("run", str(path))  # the first run's file, still there: reused
    assert code == 0 and "kept output/toy_00001_.png" in err


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_the_users_umask(cli, tmp_path, umask_022):
    path = write(tmp_path, "save.yaml", SAVE)
    assert cli("run", str(path))[0] == 0
    assert stat.S_IMODE((tmp_path / "output" / "toy_00001_.png").stat().st_mode) == 0o644
    assert cli("convert", str(path), str(tmp_path / "api.json"))[0] == 0
    assert stat.S_IMODE((tmp_path / "api.json").stat().st_mode) == 0o644


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_checkpoints_and_addons_get_the_mode_of_a_saved_png(cli, tmp_path):
    """safetensors writes its own 0600 temp file and renames it over the one it is given; the
    merged checkpoint and the add-on files still get what a plain open() gives, like PNGs."""
    old = os.umask(0o027)  # not the usual 022: the mode follows the umask, it is not fixed
    try:
        merge = Path(__file__).resolve().parents[2] / "workflows" / "merge.yaml"
        small = ["--set", "width=32", "--set", "height=32", "--set", "steps=2"]
        code, _, err = cli("run", str(merge), *small)
        assert code == 0, err
        code, _, err = cli("tiny-model", "--addons", str(tmp_path / "models"))
        assert code == 0, err
    finally:
        os.umask(old)
    png = tmp_path / "output" / "merge_00001_.png"
    assert mode(png) == 0o640
    assert mode(tmp_path / "output" / "checkpoints" / "merged_00001_.safetensors") == mode(png)
    addons = sorted((tmp_path / "models").rglob("*.safetensors"))
    assert len(addons) >= 6 and {p.name: mode(p) for p in addons} == {p.name: 0o640 for p in addons}


COMMENTED = """# a toy picture, saved
version: 1
params:
  shade: 40   # 0..255
  prefix: |
    toy
nodes:
  pic: {type: CliImage, shade: $shade}
  save: {type: SaveImage, images: pic, filename_prefix: $prefix}
"""


def test_png_of_our_workflow_gives_back_the_yaml_with_its_params(cli, tmp_path):
    from PIL import Image

    path = write(tmp_path, "save.yaml", COMMENTED)
    code, _, err = cli("run", str(path), "--set", "shade=90", "--set", "prefix=fox")
    assert code == 0, err
    png = tmp_path / "output" / "fox_00001_.png"
    expected = COMMENTED.replace("shade: 40", "shade: 90").replace("|\n    toy\n", '"fox"\n')
    with Image.open(png) as img:
        assert img.text["latentgraph"] == expected  # comments kept, the run's params in place
        assert json.loads(img.text["prompt"])["pic"]["inputs"]["shade"] == 90  # ComfyUI's too
    assert cli("convert", str(png), str(tmp_path / "back.yaml"))[0] == 0
    assert (tmp_path / "back.yaml").read_text() == expected
    code, out, err = cli("run", str(png), "--json")  # the same params: all from the cache
    assert code == 0, err
    assert finished(out)["cached"] == ["save"]


def _png_text(png: Path) -> dict:
    from PIL import Image

    with Image.open(png) as img:
        return dict(img.text)


def test_a_changed_comment_saves_a_png_carrying_the_new_document(cli, tmp_path):
    """SaveImage served from the cache kept the first document's PNG chunks: the same YAML
    with a comment changed reported the old file, which carried the old text. The documents a
    PNG carries are part of SaveImage's cache key: the pixels come from the cache, the save
    runs again and its PNG carries this run's document."""
    path = write(tmp_path, "save.yaml", "# first\n" + SAVE)
    assert cli("run", str(path))[0] == 0
    write(tmp_path, "save.yaml", "# second\n" + SAVE)
    code, out, err = cli("run", str(path), "--json")
    assert code == 0, err
    assert finished(out)["executed"] == ["save"] and finished(out)["cached"] == ["pic"]
    [record] = saved(out)
    assert record["filename"] == "toy_00002_.png"
    assert _png_text(tmp_path / "output" / "toy_00002_.png")["latentgraph"] == "# second\n" + SAVE
    assert _png_text(tmp_path / "output" / "toy_00001_.png")["latentgraph"] == "# first\n" + SAVE
    code, out, _ = cli("run", str(path), "--json")  # the same document again: nothing runs
    assert finished(out)["executed"] == [] and finished(out)["cached"] == ["save"]


def _editor(x: float) -> str:
    nodes = [{"id": 1, "type": "EmptyImage", "pos": [x, 0], "size": [300, 100], "mode": 0,
              "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}],
              "widgets_values": [8, 8, 1, 0]},
             {"id": 2, "type": "SaveImage", "pos": [400, 0], "size": [300, 100], "mode": 0,
              "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [],
              "widgets_values": ["moved"]}]  # fmt: skip
    return json.dumps({"last_node_id": 2, "last_link_id": 1, "nodes": nodes,
                       "links": [[1, 1, 0, 2, 0, "IMAGE"]], "version": 0.4})  # fmt: skip


def test_a_moved_node_in_an_editor_file_saves_a_png_carrying_the_new_workflow(cli, tmp_path):
    """An editor file where only a node's position changed: the prompt is the same, the
    workflow chunk is not; the PNG saved carries this run's workflow (its node at x=250)."""
    path = write(tmp_path, "flow.json", _editor(0))
    assert cli("run", str(path), plugin=False)[0] == 0
    write(tmp_path, "flow.json", _editor(250))
    code, out, err = cli("run", str(path), "--json", plugin=False)
    assert code == 0, err
    [record] = saved(out)
    assert record["filename"] == "moved_00002_.png"
    chunks = _png_text(tmp_path / "output" / "moved_00002_.png")
    assert json.loads(chunks["workflow"])["nodes"][0]["pos"] == [250, 0]
    assert json.loads(chunks["prompt"]) == json.loads(
        _png_text(tmp_path / "output" / "moved_00001_.png")["prompt"]
    )


def test_removed_partial_files_are_the_clis_own_warning_line(cli, tmp_path):
    """The line a save logs (`latentgraph.files`) when it removes a killed save's partial file
    is printed as the CLI's other warnings are: `latentgraph: warning: ...`, not bare."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    partial = out_dir / ".saving-0123456789abcdef.png"
    partial.write_bytes(b"half a png")
    two_hours_ago = partial.stat().st_mtime - 7200
    os.utime(partial, (two_hours_ago, two_hours_ago))
    code, _, err = cli("run", str(write(tmp_path, "save.yaml", SAVE)), "--output-dir", str(out_dir))
    assert code == 0, err
    assert not partial.exists()
    assert (f"latentgraph: warning: removed 1 partial file(s) a killed save or upload left in "
            f"{out_dir}: .saving-0123456789abcdef.png\n") in err  # fmt: skip
