"""A KSampler (or SamplerCustom) prompt on the tiny model, 64x64, run in this process: the
helpers the sampler tests share (test_batch_seeds.py, test_ksampler_cfg_steps.py)."""

from __future__ import annotations

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler

SAMPLER = "5"


def prompt(sampler: dict, batch: int = 1, positive: str = "a castle") -> dict:
    sampler = {**sampler, "inputs": {**sampler["inputs"], "model": ["1", 0], "positive": ["2", 0],
                                     "negative": ["3", 0], "latent_image": ["4", 0]}}  # fmt: skip
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": positive, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": batch}},
        SAMPLER: sampler,
    }  # fmt: skip


def ksampler(seed: int, sampler_name: str = "euler", cfg: float = 7.0, steps: int = 2,
              denoise: float = 1.0) -> dict:  # fmt: skip
    return {"class_type": "KSampler",
            "inputs": {"seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler_name,
                       "scheduler": "normal", "denoise": denoise}}  # fmt: skip


def sampler_custom(seed: int, sampler_name: str = "euler_ancestral", cfg: float = 7.0) -> dict:
    return {"class_type": "SamplerCustom",
            "inputs": {"add_noise": True, "noise_seed": seed, "cfg": cfg,
                       "sampler": ["20", 0], "sigmas": ["21", 0]}}  # fmt: skip


def with_custom_parts(prompt: dict, sampler_name: str = "euler_ancestral") -> dict:
    prompt["20"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler_name}}
    prompt["21"] = {"class_type": "BasicScheduler",
                    "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": 2,
                               "denoise": 1.0}}  # fmt: skip
    return prompt


def run(prompt: dict, settings: Settings, events: list | None = None):
    graph = graph_from_prompt(prompt, default_registry)
    return Scheduler(default_registry, settings=settings).run(
        graph, targets=[SAMPLER], on_event=events.append if events is not None else None
    )


def latent(prompt: dict, settings: Settings):
    result = run(prompt, settings)
    assert result.ok, result.failures
    return result.output(SAMPLER).samples
