"""Image i of a batch is the image alone at seed + i, stochastic samplers too (KSampler and
the custom sampler; the tiny model, 64x64, 2 steps)."""

from __future__ import annotations

import pytest

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler

SAMPLER = "5"
STOCHASTIC = ["euler_ancestral", "dpm_2_ancestral", "ddpm", "lcm", "dpmpp_sde", "dpmpp_2m_sde"]


@pytest.fixture
def settings(tmp_path, one_thread):
    import latentgraph.nodes  # noqa: F401 - registers the nodes

    return Settings(output_dir=tmp_path / "out", input_dir=tmp_path / "in",
                    temp_dir=tmp_path / "tmp", device="cpu")  # fmt: skip


def _prompt(sampler: dict, batch: int = 1, positive: str = "a castle") -> dict:
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


def _ksampler(seed: int, sampler_name: str = "euler", cfg: float = 7.0, steps: int = 2,
              denoise: float = 1.0) -> dict:  # fmt: skip
    return {"class_type": "KSampler",
            "inputs": {"seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler_name,
                       "scheduler": "normal", "denoise": denoise}}  # fmt: skip


def _sampler_custom(seed: int, sampler_name: str = "euler_ancestral", cfg: float = 7.0) -> dict:
    return {"class_type": "SamplerCustom",
            "inputs": {"add_noise": True, "noise_seed": seed, "cfg": cfg,
                       "sampler": ["20", 0], "sigmas": ["21", 0]}}  # fmt: skip


def _with_custom_parts(prompt: dict, sampler_name: str = "euler_ancestral") -> dict:
    prompt["20"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler_name}}
    prompt["21"] = {"class_type": "BasicScheduler",
                    "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": 2,
                               "denoise": 1.0}}  # fmt: skip
    return prompt


def _run(prompt: dict, settings: Settings, events: list | None = None):
    graph = graph_from_prompt(prompt, default_registry)
    return Scheduler(default_registry, settings=settings).run(
        graph, targets=[SAMPLER], on_event=events.append if events is not None else None
    )


def _latent(prompt: dict, settings: Settings):
    result = _run(prompt, settings)
    assert result.ok, result.failures
    return result.output(SAMPLER).samples


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("sampler_name", STOCHASTIC)
def test_image_i_of_a_batch_is_the_image_alone_at_seed_plus_i(settings, sampler_name):
    """The per-step noise of image i is drawn from its own generator (Brownian tree for
    dpmpp_sde) seeded seed + i, as the starting noise is: batch 3 at seed 10 equals batch 1
    at seeds 10, 11, 12, within float tolerance (the UNet runs batched)."""
    import torch

    batch = _latent(_prompt(_ksampler(10, sampler_name), batch=3), settings)
    for i in range(3):
        alone = _latent(_prompt(_ksampler(10 + i, sampler_name)), settings)
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=0, atol=2e-3)


def test_image_i_of_a_custom_sampler_batch_is_the_image_alone_too(settings):
    import torch

    batch = _latent(_with_custom_parts(_prompt(_sampler_custom(10), batch=3)), settings)
    for i in range(3):
        alone = _latent(_with_custom_parts(_prompt(_sampler_custom(10 + i))), settings)
        torch.testing.assert_close(batch[i : i + 1], alone, rtol=0, atol=2e-3)
