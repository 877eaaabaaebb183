"""Run limits as people meet them: the batch's pixels (--max-batch-pixels), the step limit
said one way by /object_info and by the message, and each limit named as its setter knows it
(the flag from the CLI and the server, the Settings field from Python)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from latentgraph.graph import Settings
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.context import LIMIT_FLAGS, CancelToken, Context
from latentgraph.graph.object_info import object_info
from latentgraph.graph.validate import validate
from latentgraph.wiring import node_registry


@pytest.fixture(scope="module")
def registry():
    return node_registry()


def problems(registry, prompt: dict, settings: Settings) -> list[tuple[str, str, str]]:
    graph = graph_from_prompt(prompt, registry)
    return [(p.code, p.input_name, p.message) for p in validate(graph, registry, settings)
            if p.severity == "error"]  # fmt: skip


def latent(width: int, height: int, batch: int) -> dict:
    return {"4": {"class_type": "CheckpointLoaderSimple",
                  "inputs": {"ckpt_name": "builtin:tiny-sd"}},
            "1": {"class_type": "EmptyLatentImage",
                  "inputs": {"width": width, "height": height, "batch_size": batch}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["4", 2]}},
            "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}  # fmt: skip


@pytest.mark.parametrize("size", [(1024, 1024, 8), (1024, 1024, 16), (2048, 2048, 4),
                                  (4096, 4096, 1), (512, 512, 64)])  # fmt: skip
def test_normal_batches_pass_the_batch_pixel_limit(registry, size):
    assert problems(registry, latent(*size), Settings()) == []


def test_a_batch_of_ten_gigabytes_is_refused_at_validation(registry):
    """EmptyLatentImage 4096x4096 x 64 passed (each image within --max-pixels, the batch
    within --max-batch): its pixels in all are over --max-batch-pixels."""
    found = problems(registry, latent(4096, 4096, 64), Settings(limit_labels=LIMIT_FLAGS))
    assert found == [("limit_exceeded", "width", "4096x4096x64 is 1073741824 pixels, over the "
                      "limit of 16777216 (--max-batch-pixels)")]  # fmt: skip
    found = problems(registry, latent(1024, 1024, 17), Settings())
    assert found == [("limit_exceeded", "width", "1024x1024x17 is 17825792 pixels, over the "
                      "limit of 16777216 (Settings.max_batch_pixels)")]  # fmt: skip
    assert problems(registry, latent(1024, 1024, 17), Settings(max_batch_pixels=2**25)) == []
    info = object_info(registry, Settings(max_batch_pixels=1024 * 1024))["EmptyLatentImage"]
    assert info["input"]["required"]["batch_size"][1]["max"] == 64  # at 16x16: 4096, > 64
    info = object_info(registry, Settings(max_batch_pixels=16 * 16 * 10))["EmptyLatentImage"]
    assert info["input"]["required"]["batch_size"][1]["max"] == 10


def _gif(path: Path, frames: int, side: int) -> None:
    pictures = [Image.new("RGB", (side, side), (i * 10, 0, 0)) for i in range(frames)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=50)


def test_load_image_refuses_an_animation_over_the_batch_pixel_limit(tmp_path):
    """A 16-frame 4096x4096 GIF took 9.7 GB: frames x pixels are bounded by
    max_batch_pixels as it is read (here at a smaller scale)."""
    from latentgraph.nodes import images
    from latentgraph.nodes.values import NodeInputError

    _gif(tmp_path / "anim.gif", 16, 64)
    settings = Settings(input_dir=tmp_path, output_dir=tmp_path, max_batch_pixels=64 * 64 * 15)
    ctx = Context("7", "LoadImage", settings, CancelToken())
    with pytest.raises(NodeInputError) as info:
        images.load_image(ctx, "anim.gif")
    assert str(info.value).endswith("'anim.gif' has 16 frames of 64x64, over the limit of "
                                    "61,440 pixels in a batch (Settings.max_batch_pixels)")  # fmt: skip
    assert "input 'image'" in str(info.value)
    settings.max_batch_pixels = 64 * 64 * 16
    picture, _mask = images.load_image(ctx, "anim.gif")
    assert tuple(picture.shape) == (16, 64, 64, 3)


def ksampler(steps: int) -> dict:
    return {"4": {"class_type": "CheckpointLoaderSimple",
                  "inputs": {"ckpt_name": "builtin:tiny-sd"}},
            "5": {"class_type": "EmptyLatentImage",
                  "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["4", 1]}},
            "3": {"class_type": "KSampler",
                  "inputs": {"seed": 1, "steps": steps, "cfg": 7.0, "sampler_name": "euler",
                             "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                             "positive": ["6", 0], "negative": ["6", 0],
                             "latent_image": ["5", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}  # fmt: skip


@pytest.mark.parametrize("steps", [5000, 100000])
def test_steps_over_the_run_limit_are_said_as_object_info_says(registry, steps):
    """steps 100000 said "above the maximum 10000" while /object_info said max 1000 and steps
    5000 said "over the limit of 1000": both now say the limit /object_info shows."""
    settings = Settings(limit_labels=LIMIT_FLAGS)
    advertised = object_info(registry, settings)["KSampler"]["input"]["required"]["steps"][1]
    found = [f for f in problems(registry, ksampler(steps), settings) if f[1] == "steps"]
    assert advertised["max"] == 1000
    assert found == [("limit_exceeded", "steps",
                      f"steps {steps} is over the limit of 1000 (--max-steps)")]  # fmt: skip


def test_steps_over_the_declared_maximum_under_a_higher_limit_say_the_maximum(registry):
    settings = Settings(max_steps=50000, limit_labels=LIMIT_FLAGS)
    advertised = object_info(registry, settings)["KSampler"]["input"]["required"]["steps"][1]
    found = [f for f in problems(registry, ksampler(60000), settings) if f[1] == "steps"]
    assert advertised["max"] == 10000
    assert found == [("value_bigger_than_max", "steps", "60000 is above the maximum 10000")]


def test_limits_are_named_as_their_setter_knows_them(registry):
    """From Python a limit is a Settings field; the CLI and the server pass their flags."""
    prompt = ksampler(20)
    prompt["3"]["inputs"]["denoise"] = 0.01  # a 2000-step schedule
    said = {p[1]: p[2] for p in problems(registry, prompt, Settings(max_steps=10))}
    assert said["steps"] == "steps 20 is over the limit of 10 (Settings.max_steps)"
    said = {p[1]: p[2] for p in problems(registry, prompt, Settings(limit_labels=LIMIT_FLAGS))}
    assert said["denoise"].endswith("over the limit of 1000 (--max-steps); raise denoise or "
                                    "the limit")  # fmt: skip
    said = {p[1]: p[2] for p in problems(registry, prompt, Settings())}
    assert "(Settings.max_steps)" in said["denoise"]
    with pytest.raises(ValueError, match="settings.limit_labels: unknown limit 'max_stepz'"):
        Settings(limit_labels={"max_stepz": "--x"})


def test_an_input_over_two_limits_is_said_once_over_the_first(registry):
    """EmptyLatentImage 16384x16384 broke --max-pixels and --max-batch-pixels: width was said
    twice, once per limit, for one value."""
    found = problems(registry, latent(16384, 16384, 1), Settings(limit_labels=LIMIT_FLAGS))
    assert found == [("limit_exceeded", "width", "16384x16384 is 268435456 pixels, over the "
                      "limit of 16777216 (--max-pixels)")]  # fmt: skip
