"""SaveAnimatedWEBP: frames, timing, workflow in EXIF, numbered atomic files in the output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from latentgraph.nodes import animation, images
from latentgraph.nodes.values import NodeInputError


def _frames(n=3, size=16):
    return torch.stack([torch.full((size, size, 3), i / (n - 1)) for i in range(n)])


def test_batch_becomes_one_animated_webp(make_ctx, tmp_path):
    ctx = make_ctx("SaveAnimatedWEBP")
    ctx.extra["prompt"] = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    frames = _frames()
    result = animation.save_animated_webp(ctx, frames, "clips/fade", 4.0, True, 80, "fastest")
    assert result.ui["animated"] == [True]
    (record,) = result.ui["images"]
    path = tmp_path / "output" / "clips" / "fade_00001_.webp"
    assert record == {"filename": "fade_00001_.webp", "subfolder": "clips", "type": "output",
                      "filename_prefix": "clips/fade", **images.file_contents(path)}  # fmt: skip
    with Image.open(path) as img:
        assert img.format == "WEBP" and img.n_frames == 3 and img.is_animated
        decoded = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(img)]
        assert img.info["duration"] == 250
        model = img.getexif()[animation.EXIF_MODEL]
    assert json.loads(model.removeprefix("prompt:")) == ctx.extra["prompt"]
    for i, frame in enumerate(decoded):  # lossless: the frames come back exactly
        assert frame.shape == (16, 16, 3) and (frame == round(255 * i / 2)).all()
    assert sorted(p.name for p in path.parent.iterdir()) == ["fade_00001_.webp"]


def test_an_rgba_batch_keeps_its_alpha_in_every_frame(make_ctx, tmp_path):
    """JoinImageWithAlpha's RGBA frames are saved with their alpha, as ComfyUI's node saves
    them; the fourth channel was dropped (opaque frames)."""
    ctx = make_ctx("SaveAnimatedWEBP")
    frames = torch.cat([_frames(2), torch.ones(2, 16, 16, 1)], dim=-1)
    frames[0, :8, ..., 3], frames[1, 8:, ..., 3] = 0.0, 0.5  # a clear top, a half-clear bottom
    animation.save_animated_webp(ctx, frames, "cut", 4.0, True, 80, "fastest")
    with Image.open(tmp_path / "output" / "cut_00001_.webp") as img:
        assert img.mode == "RGBA"
        alphas = [np.asarray(f.convert("RGBA"))[..., 3] for f in ImageSequence.Iterator(img)]
    assert len(alphas) == 2
    for alpha, expected in zip(alphas, images.to_uint8(frames[..., 3]), strict=True):
        assert np.array_equal(alpha, expected)


def test_a_second_save_is_numbered_after_the_first(make_ctx, tmp_path):
    ctx = make_ctx("SaveAnimatedWEBP")
    first = animation.save_animated_webp(ctx, _frames(2), "anim", 6.0, False, 50, "default")
    second = animation.save_animated_webp(ctx, _frames(2), "anim", 6.0, False, 50, "default")
    names = [r.ui["images"][0]["filename"] for r in (first, second)]
    assert names == ["anim_00001_.webp", "anim_00002_.webp"]


def test_prefix_outside_the_output_folder_is_refused(make_ctx, tmp_path):
    ctx = make_ctx("SaveAnimatedWEBP")
    with pytest.raises(NodeInputError, match="input 'filename_prefix'.*outside"):
        animation.save_animated_webp(ctx, _frames(2), "../escape", 6.0, True, 80, "default")
    assert not (tmp_path / "escape_00001_.webp").exists()
    node_type = animation.save_animated_webp.node_type
    assert node_type.check({"filename_prefix": "/abs/x"}, ctx.settings)


def test_a_cached_save_whose_file_is_gone_writes_it_again(tmp_path):
    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.graph import Settings, default_registry
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.scheduler import Scheduler

    prompt = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 255}},
        "2": {"class_type": "SaveAnimatedWEBP",
              "inputs": {"images": ["1", 0], "filename_prefix": "loop", "fps": 2.0,
                         "lossless": True, "quality": 80, "method": "default"}},
    }  # fmt: skip
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(default_registry, settings=settings)
    first = sched.run(graph_from_prompt(prompt, default_registry))
    assert first.ok, first.failures
    path = tmp_path / "out" / "loop_00001_.webp"
    assert path.is_file()
    again = sched.run(graph_from_prompt(prompt, default_registry))
    assert "2" in again.cached and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    path.unlink()
    third = sched.run(graph_from_prompt(prompt, default_registry))
    assert third.ok, third.failures
    assert "2" in third.executed and path.is_file()


def _exif_entries(path) -> dict[str, str]:
    """The WEBP's EXIF text entries by their `key:` prefix, as the editor reads them."""
    with Image.open(path) as img:
        return dict(v.split(":", 1) for v in img.getexif().values())


def test_every_extra_pnginfo_entry_is_an_exif_entry_of_the_saved_webp(make_ctx, tmp_path):
    """ComfyUI's SaveAnimatedWEBP writes each extra_pnginfo entry as `key:<json>` in Make and
    the tags below it, as SaveImage writes each as a PNG chunk; only `workflow` was written.
    Past the fifth tag it skips the ones Pillow writes as numbers (ComfyUI's save failed)."""
    ctx = make_ctx("SaveAnimatedWEBP")
    prompt, workflow = {"1": {"class_type": "EmptyImage", "inputs": {}}}, {"nodes": []}
    mine = {f"app {i}": {"job": i} for i in range(7)}
    ctx.extra.update(prompt=prompt, workflow=workflow,
                     pnginfo={**mine, "prompt": "not the prompt", "n": None, "x" * 80: 1})  # fmt: skip
    animation.save_animated_webp(ctx, _frames(2), "meta", 6.0, True, 80, "fastest")
    path = tmp_path / "output" / "meta_00001_.webp"
    entries = _exif_entries(path)
    assert json.loads(entries.pop("prompt")) == prompt  # the run's own: not replaced
    assert json.loads(entries.pop("workflow")) == workflow
    assert entries.pop("n") == "null"  # as ComfyUI writes it
    assert {k: json.loads(v) for k, v in entries.items()} == mine  # no 80-character key
    with Image.open(path) as img:
        exif = img.getexif()
    assert exif[animation.EXIF_MAKE].startswith("workflow:")
    assert exif[0x010E].startswith("app 0:") and exif[0x010B].startswith("app 3:")
    assert ctx.rec.warnings == []


def test_entries_past_the_webps_last_exif_tag_are_left_out_with_a_warning(make_ctx, tmp_path):
    ctx = make_ctx("SaveAnimatedWEBP")
    ctx.extra["pnginfo"] = {f"k{i}": i for i in range(300)}
    animation.save_animated_webp(ctx, _frames(2), "many", 6.0, True, 80, "fastest")
    entries = _exif_entries(tmp_path / "output" / "many_00001_.webp")
    assert entries == {f"k{i}": str(i) for i in range(260)}
    assert [str(w) for w in ctx.rec.warnings] == [
        "40 extra_pnginfo entries left out of the WEBP: its EXIF has room for 260"
    ]


def test_another_extra_pnginfo_entry_saves_a_webp_carrying_it(tmp_path):
    """The other entries are part of the cache key (`embeds`), as the prompt and workflow:
    a cached save reported the first run's file, which carried the first run's entries."""
    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.graph import Settings, default_registry
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.scheduler import Scheduler

    prompt = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 255}},
        "2": {"class_type": "SaveAnimatedWEBP",
              "inputs": {"images": ["1", 0], "filename_prefix": "job", "fps": 2.0,
                         "lossless": True, "quality": 80, "method": "default"}},
    }  # fmt: skip
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(default_registry, settings=settings)
    for job in (1, 2):
        result = sched.run(graph_from_prompt(prompt, default_registry),
                           extra={"pnginfo": {"job": job}})  # fmt: skip
        assert result.ok and "2" in result.executed, result.failures
        assert _exif_entries(tmp_path / "out" / f"job_0000{job}_.webp") == {"job": str(job)}
