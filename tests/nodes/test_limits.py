"""Run limits at their boundaries, through validation of real prompts (no model work): a
value equal to the limit is accepted, one over it is refused, naming the node and input."""

from __future__ import annotations

import pytest

import latentgraph.nodes  # noqa: F401 - registers the node types these prompts use
from latentgraph.graph import Settings
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.validate import validate


def ours(steps=20, width=64, height=64, batch=1) -> dict:
    return {
        "m": {"class_type": "LoadModel", "inputs": {"source": "builtin:tiny-sd"}},
        "t": {"class_type": "TextEncode", "inputs": {"clip": ["m", 1], "text": "x"}},
        "n": {"class_type": "LatentNoise", "inputs": {"vae": ["m", 2], "width": width,
                                                      "height": height, "batch_size": batch}},
        "s": {"class_type": "SchedulerSelect", "inputs": {"scheduler": ["m", 3], "name": "ddim"}},
        "d": {"class_type": "UNetDenoise", "inputs": {"unet": ["m", 0], "scheduler": ["s", 0],
              "positive": ["t", 0], "negative": ["t", 0], "latent": ["n", 0], "steps": steps}},
        "v": {"class_type": "VAEDecode", "inputs": {"samples": ["d", 0], "vae": ["m", 2]}},
        "o": {"class_type": "SaveImage", "inputs": {"images": ["v", 0], "filename_prefix": "x"}},
    }  # fmt: skip


def classic(steps=20, width=64, height=64, batch=1) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": "x"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height,
                                                           "batch_size": batch}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["6", 0],
              "negative": ["6", 0], "latent_image": ["5", 0], "seed": 1, "steps": steps,
              "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
    }  # fmt: skip


def refused(prompt: dict, **limits) -> list[tuple[str, str]]:
    problems = validate(graph_from_prompt(prompt), settings=Settings(**limits))
    return [(p.node_id, p.input_name) for p in problems if p.severity == "error"]


# (prompt builder, its keyword, the limit, the value at the limit, where a refusal points)
CASES = [
    (ours, "steps", "max_steps", 50, ("d", "steps")),
    (classic, "steps", "max_steps", 50, ("3", "steps")),
    (ours, "batch", "max_batch", 4, ("n", "batch_size")),
    (classic, "batch", "max_batch", 4, ("5", "batch_size")),
]


@pytest.mark.parametrize("build, keyword, limit, value, where", CASES)
def test_value_at_the_limit_is_accepted_and_one_more_refused(build, keyword, limit, value, where):
    assert refused(build(**{keyword: value}), **{limit: value}) == []
    assert refused(build(**{keyword: value + 1}), **{limit: value}) == [where]


@pytest.mark.parametrize("build, node", [(ours, "n"), (classic, "5")])
def test_pixels_at_the_limit_are_accepted_and_one_more_refused(build, node):
    prompt = build(width=64, height=128)
    assert refused(prompt, max_image_pixels=64 * 128) == []
    [(node_id, _)] = refused(prompt, max_image_pixels=64 * 128 - 1)
    assert node_id == node
