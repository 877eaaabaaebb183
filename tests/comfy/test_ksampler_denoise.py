"""KSampler's `denoise` is ComfyUI's: `steps` steps, the last ones of a schedule of
int(steps / denoise) steps (the tiny model, a 64x64 encoded image, 1-4 steps run)."""

from __future__ import annotations

import pytest

from latentgraph.graph import CancelToken, Context, Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.events import NodeProgress
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.validate import validate

SAMPLER = "5"
ENCODED = "12"


def _prompt(sampler: dict, latent: str = ENCODED) -> dict:
    """LoadImage example.png -> 64x64 -> VAEEncode -> `sampler` (node 5, on `latent`)."""
    sampler = {**sampler, "inputs": {**sampler["inputs"], "model": ["1", 0], "positive": ["2", 0],
                                     "negative": ["3", 0], "latent_image": [latent, 0]}}  # fmt: skip
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "10": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "11": {"class_type": "ImageScale",
               "inputs": {"image": ["10", 0], "upscale_method": "bilinear", "width": 64,
                          "height": 64, "crop": "disabled"}},
        ENCODED: {"class_type": "VAEEncode", "inputs": {"pixels": ["11", 0], "vae": ["1", 2]}},
        SAMPLER: sampler,
        "8": {"class_type": "VAEDecode", "inputs": {"samples": [SAMPLER, 0], "vae": ["1", 2]}},
    }  # fmt: skip


def _ksampler(steps: int, denoise: float, seed: int = 7, cfg: float = 7.0) -> dict:
    return {"class_type": "KSampler",
            "inputs": {"seed": seed, "steps": steps, "cfg": cfg, "sampler_name": "euler",
                       "scheduler": "normal", "denoise": denoise}}  # fmt: skip


def _run(prompt: dict, settings: Settings, targets: list[str], events: list | None = None):
    graph = graph_from_prompt(prompt, default_registry)
    result = Scheduler(default_registry, settings=settings).run(
        graph, targets=targets, on_event=events.append if events is not None else None
    )
    assert result.ok, result.failures
    return result


def _latent(prompt: dict, settings: Settings, node: str = SAMPLER):
    return _run(prompt, settings, [node]).output(node).samples


@pytest.mark.parametrize(("steps", "denoise"), [(2, 0.3), (1, 0.6), (4, 0.2)])
def test_small_steps_times_denoise_runs_steps_steps_and_changes_the_image(settings, steps,
                                                                          denoise):  # fmt: skip
    """int(steps * denoise) is 0 here: diffusers' img2img rule ran nothing, and the image only
    went through the VAE, whatever the seed, prompt or cfg."""
    import torch

    events: list = []
    prompt = _prompt(_ksampler(steps, denoise))
    result = _run(prompt, settings, [SAMPLER, ENCODED, "8"], events)
    progress = [(e.value, e.max) for e in events
                if isinstance(e, NodeProgress) and e.node_id == SAMPLER]  # fmt: skip
    assert progress[-1] == (steps, steps)  # reports are coalesced: the last one always comes
    assert {total for _, total in progress} == {steps}
    assert not torch.allclose(result.output(SAMPLER).samples, result.output(ENCODED).samples)
    reseeded = _run(_prompt(_ksampler(steps, denoise, seed=8, cfg=30.0)), settings, ["8"])
    assert not torch.equal(reseeded.output("8"), result.output("8"))


def _sampler_custom(steps: int, denoise: float, seed: int = 7) -> dict:
    prompt = _prompt({"class_type": "SamplerCustom",
                      "inputs": {"add_noise": True, "noise_seed": seed, "cfg": 7.0,
                                 "sampler": ["20", 0], "sigmas": ["21", 0]}})  # fmt: skip
    prompt["20"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    prompt["21"] = {"class_type": "BasicScheduler",
                    "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": steps,
                               "denoise": denoise}}  # fmt: skip
    return prompt


def test_ksampler_denoise_is_the_window_ksampler_advanced_and_basic_scheduler_run(settings):
    """KSampler steps 2, denoise 0.3: steps 4 and 5 of a 6-step schedule, the same code path as
    KSamplerAdvanced's window (bit for bit). SamplerCustom with BasicScheduler(2, 0.3) runs the
    same noise levels through the custom sampler: bit for bit where the schedule's linspace
    timesteps are whole (denoise 0.5: a 4-step schedule, 0/333/666/999), else to about 1e-5
    (docs/comfy-compat.md, Custom sampling: a fractional timestep's level is interpolated
    linearly by KSampler's scheduler, in log sigma by the custom sampler)."""
    import torch

    ours = _latent(_prompt(_ksampler(2, 0.3)), settings)
    advanced = _prompt({"class_type": "KSamplerAdvanced",
                        "inputs": {"add_noise": "enable", "noise_seed": 7, "steps": 6, "cfg": 7.0,
                                   "sampler_name": "euler", "scheduler": "normal",
                                   "start_at_step": 4, "end_at_step": 10000,
                                   "return_with_leftover_noise": "disable"}})  # fmt: skip
    assert torch.equal(_latent(advanced, settings), ours)
    custom = _latent(_sampler_custom(2, 0.3), settings)
    scale = ours.abs().max()
    torch.testing.assert_close(custom / scale, ours / scale, rtol=0, atol=1e-5)
    assert torch.equal(_latent(_sampler_custom(2, 0.5), settings),
                       _latent(_prompt(_ksampler(2, 0.5)), settings))  # fmt: skip


def test_denoise_one_is_what_it_was_unetdenoise_over_the_whole_schedule(settings):
    """denoise 1 runs what KSampler ran before ComfyUI's rule: UNetDenoise over a `steps`
    schedule of the sampler's spec, from the image, and from seeded noise for an empty latent."""
    import torch

    from latentgraph.nodes.comfy import sampler_spec
    from latentgraph.nodes.denoise import unet_denoise
    from latentgraph.nodes.latents import make_noise
    from latentgraph.nodes.seeds import image_seeds
    from latentgraph.nodes.values import Latent

    prompt = _prompt(_ksampler(3, 1.0))
    parts = _run(prompt, settings, ["1", "2", "3", ENCODED])
    model, positive, negative = parts.output("1"), parts.output("2"), parts.output("3")
    ctx = Context(SAMPLER, "KSampler", settings, CancelToken())
    spec = sampler_spec(model, "euler", "normal")
    seeds = image_seeds(7, 1)
    noise = Latent(make_noise((4, 8, 8), seeds), seeds, is_noise=True)
    for latent_node, latent in ((ENCODED, parts.output(ENCODED)), ("4", noise)):
        before = unet_denoise(ctx, model, spec, positive, negative, latent, steps=3,
                              guidance=7.0, denoise=1.0, seed=7)  # fmt: skip
        now = _latent(_prompt(_ksampler(3, 1.0), latent=latent_node), settings)
        assert torch.equal(now, before.samples)


def test_denoise_zero_samples_nothing_and_returns_the_latent(settings):
    import torch

    events: list = []
    result = _run(_prompt(_ksampler(2, 0.0)), settings, [SAMPLER, ENCODED], events)
    assert torch.equal(result.output(SAMPLER).samples, result.output(ENCODED).samples)
    assert not [e for e in events if isinstance(e, NodeProgress)]
    empty = _latent(_prompt(_ksampler(2, 0.0), latent="4"), settings)
    assert not empty.any()  # an empty latent stays empty: no noise is added


def test_a_schedule_over_the_step_limit_is_refused_naming_denoise(settings):
    """steps 20 at denoise 0.01 runs 20 steps of a 2000-step schedule: over --max-steps 1000."""
    graph = graph_from_prompt(_prompt(_ksampler(20, 0.01)), default_registry)
    problems = [p for p in validate(graph, default_registry, settings) if p.node_id == SAMPLER]
    assert [p.input_name for p in problems] == ["denoise"]
    assert "2000 steps" in problems[0].message and "(Settings.max_steps)" in problems[0].message
    graph = graph_from_prompt(_prompt(_ksampler(20, 0.02)), default_registry)
    assert not [p for p in validate(graph, default_registry, settings) if p.node_id == SAMPLER]
