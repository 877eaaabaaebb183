"""A cached save node (SaveImage, SaveCheckpoint, ...) is reused only while the files it
reports still hold what it saved, in this run's output folder.

Output names are numbered per folder, so after the output folder is emptied another run can
save a different image under the name a cached run reports; that run's cache hit must not
claim the other image as its own."""

from __future__ import annotations

import pytest

import latentgraph.nodes  # noqa: F401 - registers SaveImage and EmptyImage
from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler


def prompt(color: int) -> dict:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
    }  # fmt: skip


def test_a_name_holding_another_runs_image_is_saved_again(tmp_path):
    import shutil

    out = tmp_path / "out"
    settings = Settings(output_dir=out, input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(default_registry, settings=settings)

    def run(color: int):
        result = sched.run(graph_from_prompt(prompt(color), default_registry))
        assert result.ok, result.failures
        [record] = result.ui["2"]["images"]
        return result, out / record["filename"]

    _, first = run(1)
    seed_1 = first.read_bytes()
    shutil.rmtree(out)
    _, second = run(2)
    assert second == first and second.read_bytes() != seed_1  # seed 2's image, same name
    again, path = run(1)
    assert again.executed == ["2"] and again.cached == ["1"]  # saved again from cached pixels
    assert path.name == "t_00002_.png" and path.read_bytes() == seed_1
    assert first.read_bytes() != seed_1  # seed 2's file is left as it was
    third, path = run(1)  # now its file holds what it saved: a plain cache hit
    assert third.cached == ["2"] and path.name == "t_00002_.png"


def test_records_carry_the_files_size_and_sha256(tmp_path):
    import hashlib

    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    result = Scheduler(default_registry, settings=settings).run(
        graph_from_prompt(prompt(9), default_registry))  # fmt: skip
    [record] = result.ui["2"]["images"]
    data = (tmp_path / "out" / record["filename"]).read_bytes()
    assert record == {"filename": "t_00001_.png", "subfolder": "", "type": "output",
                      "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "filename_prefix": "t"}  # fmt: skip


def test_same_size_other_contents_is_saved_again(tmp_path):
    out = tmp_path / "out"
    settings = Settings(output_dir=out, input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(default_registry, settings=settings)
    sched.run(graph_from_prompt(prompt(5), default_registry))
    path = out / "t_00001_.png"
    data = path.read_bytes()
    path.write_bytes(bytes(len(data)))  # same size, other bytes
    again = sched.run(graph_from_prompt(prompt(5), default_registry))
    assert again.executed == ["2"] and (out / "t_00002_.png").read_bytes() == data


def checkpoint_prompt(save: str) -> dict:
    unet = "unet" if save == "SaveCheckpoint" else "model"
    return {
        "1": {"class_type": "LoadModel", "inputs": {"source": "builtin:tiny-sd"}},
        "2": {"class_type": save, "inputs": {unet: ["1", 0], "clip": ["1", 1], "vae": ["1", 2],
                                             "filename_prefix": "checkpoints/merged"}},
    }  # fmt: skip


@pytest.mark.parametrize("save", ["SaveCheckpoint", "CheckpointSave"])
def test_a_cached_checkpoint_save_saves_again_into_another_folder_or_for_a_deleted_file(
        tmp_path, save):  # fmt: skip
    """The tester's case: a second run into o2 reported the checkpoint cached and o2 had no
    checkpoints/; deleting o1's file and running again left it gone ('0 ran, 2 cached')."""
    from latentgraph.graph.cache import Cache

    cache = Cache()  # one cache for both folders, as --cache-dir shares one

    def run(out):
        settings = Settings(output_dir=out, input_dir=tmp_path, temp_dir=tmp_path / "tmp")
        result = Scheduler(default_registry, cache=cache, settings=settings).run(
            graph_from_prompt(checkpoint_prompt(save), default_registry))  # fmt: skip
        assert result.ok, result.failures
        [record] = result.ui["2"]["checkpoints"]
        return result, out / record["subfolder"] / record["filename"]

    o1, o2 = tmp_path / "o1", tmp_path / "o2"
    first, path = run(o1)
    assert first.executed == ["1", "2"] and path == o1 / "checkpoints/merged_00001_.safetensors"
    data = path.read_bytes()
    other, path = run(o2)
    assert "2" in other.executed and path == o2 / "checkpoints/merged_00001_.safetensors"
    assert path.read_bytes() == data
    cached, path = run(o1)  # its file still holds what it saved: a plain cache hit
    assert cached.cached == ["2"] and path.read_bytes() == data
    path.unlink()
    again, path = run(o1)
    assert again.executed == ["2"] and path == o1 / "checkpoints/merged_00001_.safetensors"
    assert path.read_bytes() == data


def batch_prompt(prefix: str = "t") -> dict:
    """Three 8x8 images of colours 1, 2 and 3, in one batch, saved under `prefix`."""
    empty = {"width": 8, "height": 8, "batch_size": 1}
    return {
        "1": {"class_type": "EmptyImage", "inputs": {**empty, "color": 1}},
        "2": {"class_type": "EmptyImage", "inputs": {**empty, "color": 2}},
        "3": {"class_type": "EmptyImage", "inputs": {**empty, "color": 3}},
        "4": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "5": {"class_type": "ImageBatch", "inputs": {"image1": ["4", 0], "image2": ["3", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": prefix}},
    }  # fmt: skip


def batch_run(sched: Scheduler, prefix: str = "t", linked: bool = False):
    prompt = batch_prompt(prefix)
    if linked:
        prompt["7"] = {"class_type": "PrimitiveString", "inputs": {"value": prefix}}
        prompt["6"]["inputs"]["filename_prefix"] = ["7", 0]
    result = sched.run(graph_from_prompt(prompt, default_registry))
    assert result.ok, result.failures
    return result, result.ui["6"]["images"]


def test_only_the_missing_file_of_a_batch_is_written_and_under_its_own_name(tmp_path):
    out = tmp_path / "out"
    sched = Scheduler(default_registry, settings=Settings(output_dir=out, input_dir=tmp_path,
                                                          temp_dir=tmp_path))  # fmt: skip
    _, records = batch_run(sched)
    data = [(out / r["filename"]).read_bytes() for r in records]
    (out / "t_00002_.png").unlink()
    again, restored = batch_run(sched)
    assert again.executed == ["6"]
    kept = [(r["filename"], r.get("kept")) for r in restored]
    assert kept == [("t_00001_.png", True), ("t_00002_.png", None), ("t_00003_.png", True)]
    assert restored[1] == records[1]  # the same bytes under the same name
    assert sorted(p.name for p in out.iterdir()) == ["t_00001_.png", "t_00002_.png", "t_00003_.png"]
    assert [(out / r["filename"]).read_bytes() for r in restored] == data
    assert batch_run(sched)[0].cached == ["6"]


def test_a_missing_files_name_now_holding_another_file_gets_a_new_number(tmp_path):
    out = tmp_path / "out"
    sched = Scheduler(default_registry, settings=Settings(output_dir=out, input_dir=tmp_path,
                                                          temp_dir=tmp_path))  # fmt: skip
    _, records = batch_run(sched)
    second = (out / "t_00002_.png").read_bytes()
    (out / "t_00002_.png").write_bytes(b"another run's image")
    again, restored = batch_run(sched)
    kept = [(r["filename"], r.get("kept")) for r in restored]
    assert kept == [("t_00001_.png", True), ("t_00004_.png", None), ("t_00003_.png", True)]
    assert (out / "t_00004_.png").read_bytes() == second
    assert (out / "t_00002_.png").read_bytes() == b"another run's image"  # left as it was


@pytest.mark.parametrize("linked", [False, True], ids=["literal", "linked"])
def test_a_cached_save_whose_prefix_expands_otherwise_now_saves_anew(tmp_path, monkeypatch,
                                                                      linked):  # fmt: skip
    """The tester's case: a re-run the next day said `kept output/d/<yesterday>/...` and saved
    nothing in today's folder. The expanded name is part of what "unchanged" means, for a
    prefix a link brings (a PrimitiveString) as for one written in: the check reads the prefix
    the node received, which its records keep, not the literals (a linked one was skipped)."""
    import time

    from latentgraph.nodes import images

    now = [time.struct_time((2026, 3, 7, 23, 59, 58, 5, 66, 0))]
    monkeypatch.setattr(images.time, "localtime", lambda: now[0])
    out = tmp_path / "out"
    sched = Scheduler(default_registry, settings=Settings(output_dir=out, input_dir=tmp_path,
                                                          temp_dir=tmp_path))  # fmt: skip
    prefix = "d/%date:yyyy-MM-dd%/%width%x%height%_%second%"
    _, first = batch_run(sched, prefix, linked)
    assert {r["subfolder"] for r in first} == {"d/2026-03-07"}
    assert first[0]["filename"] == "8x8_58_00001_.png"
    assert batch_run(sched, prefix, linked)[0].cached == ["6"]  # the same second: unchanged
    now[0] = time.struct_time((2026, 3, 8, 9, 0, 58, 6, 67, 0))  # the next day
    again, today = batch_run(sched, prefix, linked)
    assert again.executed == ["6"] and not any(r.get("kept") for r in today)
    assert {r["subfolder"] for r in today} == {"d/2026-03-08"}
    assert [r["filename"] for r in today] == [f"8x8_58_0000{i}_.png" for i in (1, 2, 3)]
    assert len(list((out / "d/2026-03-07").iterdir())) == 3  # yesterday's left as they were
    assert batch_run(sched, prefix, linked)[0].cached == ["6"]
    now[0] = time.struct_time((2026, 3, 8, 9, 0, 59, 6, 67, 0))  # %second% expands otherwise
    assert batch_run(sched, prefix, linked)[0].executed == ["6"]


def test_every_built_in_node_saving_files_declares_the_save_rule():
    """A node with a `filename_prefix` writes files into the output folder: it declares
    images.SAVES whole (a saver without `reuse` or `identity` is served stale: files reported
    as saved that are gone, or in another output folder), and its prefix input is the shared
    one."""
    from latentgraph.nodes import images

    savers = [t for t in default_registry if t.builtin and t.input("filename_prefix")]
    assert {"SaveImage", "SaveAnimatedWEBP", "SaveCheckpoint", "CheckpointSave"} <= {
        t.name for t in savers
    }
    rule = {"output_node": True, "check": images.check_prefix,
            "identity": images.output_folder, "reuse": images.files_unchanged}  # fmt: skip
    assert images.SAVES == rule
    for t in savers:
        declared = {"output_node": t.output_node, "check": t.check, "identity": t.identity,
                    "reuse": t.reuse}  # fmt: skip
        assert declared == rule, t.name
        prefix = t.input("filename_prefix")
        assert prefix == images.filename_prefix_input(prefix.default), t.name
