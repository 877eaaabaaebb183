"""Custom sampling on the tiny SDXL model: the Turbo example's graph (an SDXL checkpoint, as
ComfyUI's SDXL Turbo example has) runs unchanged, and SamplerCustom equals KSampler on SDXL
(pooled embeddings and size numbers reach the UNet through the same prediction)."""

from __future__ import annotations

import json
from pathlib import Path

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler

COMFY_DATA = Path(__file__).resolve().parents[1] / "comfy" / "data"


def run(prompt: dict, settings: Settings):
    graph = graph_from_prompt(prompt, default_registry)
    result = Scheduler(default_registry, settings=settings).run(graph, targets=["13"])
    assert result.ok, result.failures
    return result.output("13").samples


def test_sdxl_turbo_graph_and_sampler_custom_equals_ksampler_on_sdxl(sdxl, tmp_path):
    import torch

    import latentgraph.nodes  # noqa: F401 - registers the nodes

    settings = Settings(output_dir=tmp_path, input_dir=tmp_path, temp_dir=tmp_path)
    prompt = json.loads((COMFY_DATA / "sdturbo_api.json").read_text())
    prompt["20"]["inputs"]["ckpt_name"] = "builtin:tiny-sdxl"
    turbo = run(prompt, settings)
    assert turbo.shape == (1, 4, 8, 8) and bool(torch.isfinite(turbo).all())
    prompt["22"] = {"class_type": "BasicScheduler",
                    "inputs": {"model": ["20", 0], "scheduler": "normal", "steps": 4,
                               "denoise": 1.0}}  # fmt: skip
    prompt["13"]["inputs"]["cfg"] = 5.0
    prompt["14"]["inputs"]["sampler_name"] = "euler"
    classic = {k: v for k, v in prompt.items() if k not in ("13", "14", "22")}
    classic["13"] = {"class_type": "KSampler",
                     "inputs": {"seed": 1234, "steps": 4, "cfg": 5.0, "sampler_name": "euler",
                                "scheduler": "normal", "denoise": 1.0, "model": ["20", 0],
                                "positive": ["6", 0], "negative": ["7", 0],
                                "latent_image": ["5", 0]}}  # fmt: skip
    assert torch.equal(run(prompt, settings), run(classic, settings))
