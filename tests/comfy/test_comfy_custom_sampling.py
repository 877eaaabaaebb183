"""ComfyUI API graphs with the custom-sampling nodes (written after what ComfyUI's published
SD/SDXL Turbo and SamplerCustomAdvanced examples show) run unchanged on the tiny model, and
SamplerCustom agrees with KSampler."""

from __future__ import annotations

import json

import pytest

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.object_info import object_info
from latentgraph.graph.scheduler import Scheduler

from .conftest import DATA


def api(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def run(prompt: dict, settings: Settings, targets: list[str] | None = None):
    graph = graph_from_prompt(prompt, default_registry)
    result = Scheduler(default_registry, settings=settings).run(graph, targets=targets)
    assert result.ok, result.failures
    return result


def saved(result, settings, node_id) -> list[bytes]:
    return [(settings.output_dir / r["subfolder"] / r["filename"]).read_bytes()
            for r in result.ui[node_id]["images"]]  # fmt: skip


def test_turbo_example_runs_unchanged_and_one_ancestral_step_to_zero_is_euler(settings):
    import torch

    prompt = api("sdturbo_api.json")
    result = run(prompt, settings)
    assert len(saved(result, settings, "27")) == 1
    ancestral = run(prompt, settings, targets=["13"]).output("13").samples
    prompt["14"]["inputs"]["sampler_name"] = "euler"  # no noise is added on the way to sigma 0
    assert torch.equal(run(prompt, settings, targets=["13"]).output("13").samples, ancestral)
    prompt["22"]["inputs"]["steps"] = 2  # two steps: the ancestral one adds noise at 899
    two_euler = run(prompt, settings, targets=["13"]).output("13").samples
    prompt["14"]["inputs"]["sampler_name"] = "euler_ancestral"
    assert not torch.allclose(run(prompt, settings, targets=["13"]).output("13").samples,
                              two_euler)  # fmt: skip


def test_advanced_example_split_in_two_equals_one_run_over_the_whole_schedule(settings):
    prompt = api("custom_advanced_api.json")
    split = run(prompt, settings, targets=["31"]).output("31").samples
    whole = json.loads(json.dumps(prompt))
    whole["30"]["inputs"]["sigmas"] = ["17", 0]
    whole["8"]["inputs"]["samples"] = ["30", 0]
    del whole["31"]
    import torch

    assert torch.equal(run(whole, settings, targets=["30"]).output("30").samples, split)
    assert len(saved(run(prompt, settings), settings, "9")) == 2


def _pair(sampler_name: str, steps: int) -> tuple[dict, dict]:
    custom = api("sdturbo_api.json")
    custom["14"]["inputs"]["sampler_name"] = sampler_name
    custom["22"] = {"class_type": "BasicScheduler",
                    "inputs": {"model": ["20", 0], "scheduler": "normal", "steps": steps,
                               "denoise": 1.0}}  # fmt: skip
    custom["13"]["inputs"]["cfg"] = 7.0
    classic = json.loads(json.dumps(custom))
    for node in ("13", "14", "22"):
        del classic[node]
    classic["13"] = {"class_type": "KSampler",
                     "inputs": {"seed": 1234, "steps": steps, "cfg": 7.0,
                                "sampler_name": sampler_name, "scheduler": "normal",
                                "denoise": 1.0, "model": ["20", 0], "positive": ["6", 0],
                                "negative": ["7", 0], "latent_image": ["5", 0]}}  # fmt: skip
    return custom, classic


@pytest.mark.parametrize("sampler_name", ["euler", "euler_ancestral"])
def test_sampler_custom_with_basic_scheduler_equals_ksampler(settings, sampler_name):
    """Byte-identical at 4 steps. At 3 steps diffusers' linspace timesteps (999, 499.5, 0) are
    not whole: KSampler's diffusers scheduler interpolates the noise level linearly between
    training timesteps, while a given level is turned back into a timestep by interpolating
    log sigma (diffusers' `_sigma_to_t`, ComfyUI's rule too), so the UNet sees timestep
    499.46 instead of 499.5: the latents agree to about 1e-5 of their range."""
    import torch

    for steps in (4, 3):
        custom, classic = _pair(sampler_name, steps)
        ours = run(custom, settings, targets=["13"]).output("13").samples
        theirs = run(classic, settings, targets=["13"]).output("13").samples
        if steps == 4:
            assert torch.equal(ours, theirs)
        else:
            scale = theirs.abs().max()
            torch.testing.assert_close(ours / scale, theirs / scale, rtol=0, atol=1e-5)


def test_the_editor_sees_comfyui_socket_types():
    import latentgraph.nodes  # noqa: F401

    info = object_info(default_registry)
    custom = info["SamplerCustom"]["input"]["required"]
    assert {k: custom[k][0] for k in ("sampler", "sigmas")} == {"sampler": "SAMPLER",
                                                                "sigmas": "SIGMAS"}  # fmt: skip
    advanced = info["SamplerCustomAdvanced"]["input"]["required"]
    assert advanced["noise"][0] == "NOISE" and advanced["guider"][0] == "GUIDER"
    assert info["SamplerCustomAdvanced"]["output_name"] == ["output", "denoised_output"]
    assert info["SplitSigmas"]["output"] == ["SIGMAS", "SIGMAS"]
    for name, output in (("KSamplerSelect", "SAMPLER"), ("BasicScheduler", "SIGMAS"),
                         ("RandomNoise", "NOISE"), ("DualCFGGuider", "GUIDER")):  # fmt: skip
        assert info[name]["output"] == [output]
    assert info["SamplerCustom"]["input"]["required"]["noise_seed"][1]["control_after_generate"]


def test_turbo_editor_workflow_is_the_api_prompts_graph(settings):
    """The same Turbo graph saved by the editor (widgets_values, the seed's control value, the
    SIGMAS/SAMPLER links) loads as the API prompt does and samples the same latent."""
    import torch

    from latentgraph.graph.comfy_editor import graph_from_editor

    editor = graph_from_editor(json.loads((DATA / "sdturbo_editor.json").read_text()),
                               default_registry)  # fmt: skip
    api_graph = graph_from_prompt(api("sdturbo_api.json"), default_registry)
    assert {n.id: (n.type, n.inputs) for n in editor} == {n.id: (n.type, n.inputs)
                                                          for n in api_graph}  # fmt: skip
    sched = Scheduler(default_registry, settings=settings)
    ours = sched.run(editor, targets=["13"])
    assert ours.ok, ours.failures
    assert torch.equal(ours.output("13").samples, run(api("sdturbo_api.json"), settings,
                                                      targets=["13"]).output("13").samples)  # fmt: skip


def _with_sampling(prompt: dict, sampling: str, zsnr: bool = False) -> dict:
    prompt = json.loads(json.dumps(prompt))
    prompt["30"] = {"class_type": "ModelSamplingDiscrete",
                    "inputs": {"model": ["20", 0], "sampling": sampling, "zsnr": zsnr}}  # fmt: skip
    for node in prompt.values():
        if (
            node["inputs"].get("model") == ["20", 0]
            and node["class_type"] != "ModelSamplingDiscrete"
        ):
            node["inputs"]["model"] = ["30", 0]
    return prompt


def test_the_models_sampling_reaches_the_custom_sampler(settings):
    """v-prediction (and zsnr) set on the MODEL: SamplerCustom still equals KSampler, and
    differs from the eps result; an lcm model cannot run a given schedule: refused, naming
    the sampler input."""
    import torch

    custom, classic = _pair("euler", 4)
    eps = run(custom, settings, targets=["13"]).output("13").samples
    for zsnr in (False, True):
        ours = run(_with_sampling(custom, "v_prediction", zsnr), settings, targets=["13"])
        theirs = run(_with_sampling(classic, "v_prediction", zsnr), settings, targets=["13"])
        assert torch.equal(ours.output("13").samples, theirs.output("13").samples)
        assert not torch.allclose(ours.output("13").samples, eps)
    graph = graph_from_prompt(_with_sampling(custom, "lcm"), default_registry)
    result = Scheduler(default_registry, settings=settings).run(graph, targets=["13"])
    [failure] = result.failures
    assert "'sampler'" in failure.message and "LCMScheduler" in failure.message
