"""Every ComfyUI sampler gives finite latents (no NaN, no black image) on the tiny model."""

from __future__ import annotations

import pytest
import torch

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler
from latentgraph.nodes import comfy


@pytest.fixture
def settings(tmp_path, one_thread):
    import latentgraph.nodes  # noqa: F401 - registers the nodes

    return Settings(output_dir=tmp_path / "out", input_dir=tmp_path / "in",
                    temp_dir=tmp_path / "tmp", device="cpu")  # fmt: skip


def _prompt(samplers: dict[str, dict]) -> dict:
    """The tiny model, 64x64, and one sampler node per entry of `samplers` (id: node)."""
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    }  # fmt: skip
    for node_id, node in samplers.items():
        prompt[node_id] = {**node, "inputs": {**node["inputs"], "model": ["1", 0],
                           "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}}  # fmt: skip
    return prompt


def _run(prompt: dict, settings: Settings) -> tuple[dict, list[str]]:
    """Each sampler node's latents, and the run's warnings."""
    warnings: list[str] = []

    def on_event(event):
        if type(event).__name__ == "NodeWarning":
            warnings.append(f"{event.node_id}: {event.message}")

    graph = graph_from_prompt(prompt, default_registry)
    targets = [n for n in prompt if n not in "1234"]
    result = Scheduler(default_registry, settings=settings).run(graph, targets=targets,
                                                                 on_event=on_event)  # fmt: skip
    assert result.ok, result.failures
    return {n: result.output(n).samples for n in targets}, warnings


def _ksampler(sampler: str, scheduler: str = "normal", steps: int = 2) -> dict:
    return {"class_type": "KSampler",
            "inputs": {"seed": 42, "steps": steps, "cfg": 7.0, "sampler_name": sampler,
                       "scheduler": scheduler, "denoise": 1.0}}  # fmt: skip


def _assert_finite(latents: dict, warnings: list[str]) -> None:
    bad = [n for n, x in latents.items() if not bool(torch.isfinite(x).all())]
    assert bad == [] and warnings == [], (bad, warnings)


def test_every_ksampler_sampler_gives_finite_latents(settings):
    """uni_pc (UniPC bh1) stepped to noise level zero at its last step: NaN whatever the
    scheduler or step count, a black image every time."""
    nodes = {f"s_{name}": _ksampler(name) for name in comfy.SAMPLERS}
    nodes |= {f"u_{sched}_{steps}": _ksampler("uni_pc", sched, steps)
              for sched in ("normal", "karras", "simple") for steps in (1, 3)}  # fmt: skip
    latents, warnings = _run(_prompt(nodes), settings)
    _assert_finite(latents, warnings)
