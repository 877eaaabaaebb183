"""Every ComfyUI sampler gives finite latents (no NaN, no black image) on the tiny model, also
stopping early at zero noise; the NaN warning's advice fits the run's precision."""

from __future__ import annotations

import pytest
import torch

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.scheduler import Scheduler
from latentgraph.nodes import comfy, runtime, step_window
from latentgraph.nodes.schedulers import build_scheduler

from .conftest import BARE_MODEL

# the samplers whose early stop at zero noise runs (KSamplerAdvanced refuses the others)
CLEAN_EARLY = [s for s in comfy.SAMPLERS if s not in comfy.WITHOUT_SIGMAS]


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


def _advanced(sampler: str, start: int, end: int, steps: int = 4) -> dict:
    return {"class_type": "KSamplerAdvanced",
            "inputs": {"add_noise": "enable", "noise_seed": 42, "steps": steps, "cfg": 7.0,
                       "sampler_name": sampler, "scheduler": "normal", "start_at_step": start,
                       "end_at_step": end, "return_with_leftover_noise": "disable"}}  # fmt: skip


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


@pytest.mark.parametrize("start", [0, 1])
def test_early_stop_at_zero_noise_is_finite_with_every_sampler_that_allows_it(settings, start):
    """Steps start..3 of 4, finishing at zero noise: the multistep samplers (dpmpp_2m,
    dpmpp_2m_sde, deis, uni_pc, uni_pc_bh2) took a second-order step to zero noise: NaN."""
    nodes = {f"a_{name}": _advanced(name, start, 3) for name in CLEAN_EARLY}
    latents, warnings = _run(_prompt(nodes), settings)
    _assert_finite(latents, warnings)


def test_early_stop_refusal_names_only_samplers_that_run_it(settings):
    with pytest.raises(WorkflowError) as refused:
        _run(_prompt({"9": _advanced("ddim", 0, 3)}), settings)
    message = str(refused.value)
    assert "input 'return_with_leftover_noise'" in message
    named = message.split("the samplers that can: ")[1].split(", ")
    assert named == CLEAN_EARLY  # each tested just above


def test_unet_denoise_end_step_at_zero_noise_is_finite(settings, tmp_path):
    """Our own nodes: UNetDenoise with end_step, with the default dpm++2m and the other
    multistep schedulers."""
    import latentgraph

    nodes = {
        "model": {"type": "LoadModel", "source": "builtin:tiny-sd"},
        "pos": {"type": "TextEncode", "clip": "model.clip", "text": "a cat"},
        "neg": {"type": "TextEncode", "clip": "model.clip", "text": ""},
        "noise": {"type": "LatentNoise", "vae": "model.vae", "width": 64, "height": 64, "seed": 1},
    }
    for name in ("dpm++2m", "dpm++2m_sde", "dpm++3m", "deis", "unipc", "heun"):
        nodes[f"sel_{name}"] = {
            "type": "SchedulerSelect",
            "scheduler": "model.scheduler",
            "name": name,
        }
        nodes[f"d_{name}"] = {"type": "UNetDenoise", "unet": "model.unet",
                              "scheduler": f"sel_{name}.scheduler", "positive": "pos.conditioning",
                              "negative": "neg.conditioning", "latent": "noise.latent",
                              "steps": 4, "end_step": 3}  # fmt: skip
    path = tmp_path / "wf.yaml"
    import yaml

    path.write_text(yaml.safe_dump({"version": 1, "nodes": nodes}))
    graph = latentgraph.load(path).graph
    targets = [n for n in nodes if n.startswith("d_")]
    result = Scheduler(default_registry, settings=settings).run(graph, targets=targets)
    assert result.ok, result.failures
    _assert_finite({n: result.output(n).samples for n in targets}, [])


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpm_2", "dpm_2_ancestral", "dpmpp_sde",
                                     "lms", "dpmpp_2m"])  # fmt: skip
@pytest.mark.parametrize("end", [1, 3])
@pytest.mark.filterwarnings("ignore:The `scale_model_input` function:UserWarning")  # no model here
def test_early_stop_lands_on_zero_noise(sampler, end):
    """A model that always predicts the starting noise N has the clean latent 0 (sigma-space
    samplers start at sigma_max * N): a clean finish returns 0, one that stops at step `end`'s
    level returns sigma_end * N. Heun, DPM2 and DPM++ SDE ended their window with a second
    evaluation at that level, so they returned the leftover noise."""
    import inspect

    torch.manual_seed(0)
    noise = torch.randn(1, 4, 8, 8)
    sched = build_scheduler(comfy.sampler_spec(BARE_MODEL, sampler, "normal"), seed=1)
    sched.set_timesteps(4)
    assert step_window.finish_at_zero_noise(sched, end)
    x = noise * sched.init_noise_sigma
    stochastic = {"generator": torch.Generator().manual_seed(0)}
    kwargs = stochastic if "generator" in inspect.signature(sched.step).parameters else {}
    for t in sched.timesteps:
        x = sched.step(noise, t, x, return_dict=False, **kwargs)[0]
    if sampler == "dpmpp_2m":  # VP space: starting at N with eps N leaves 3% of a clean latent
        full = build_scheduler(comfy.sampler_spec(BARE_MODEL, sampler, "normal"))
        full.set_timesteps(4)
        y = noise * full.init_noise_sigma
        for t in full.timesteps:
            y = full.step(noise, t, y, return_dict=False)[0]
        assert torch.allclose(x, y, atol=1e-5)  # the same clean latent as the full run's
    elif end == 1 or sampler in ("euler", "heun", "dpm_2", "lms"):  # (no noise added yet)
        assert float(x.abs().max()) < 1e-4


def test_nan_warning_in_fp32_blames_the_sampler_not_the_precision():
    fp32 = runtime.nan_warning(
        "the denoised latents",
        torch.float32,
        "the sampler, scheduler 'unipc', made them; try another sampler",
    )
    assert "the run is in fp32, so this is no half-precision overflow" in fp32
    assert "scheduler 'unipc'" in fp32 and "try another sampler" in fp32
    assert "--dtype" not in fp32 and "fp16 overflow" not in fp32
    assert fp32.endswith("This result is not cached")


@pytest.mark.parametrize(("dtype", "advice"), [(torch.float16, "fp16 overflow? the image would "
                         "be black): run with --dtype fp32 or bf16"),
                         (torch.bfloat16, "bf16 overflow? the image would be black): run with "
                         "--dtype fp32 (")])  # fmt: skip
def test_nan_warning_in_reduced_precision_suggests_a_wider_dtype(dtype, advice):
    message = runtime.nan_warning("the denoised latents", dtype, "the sampler made them",
                                  " (or --option sdpa=false)")  # fmt: skip
    assert advice in message and "the sampler made them" not in message
    assert message.endswith("(or --option sdpa=false). This result is not cached")


def _with_broken_latent() -> tuple:
    """The registry plus BrokenLatent (a latent of NaN, as a broken upstream node makes), and
    a prompt feeding it to a KSampler ('9') and a SamplerCustomAdvanced ('12')."""
    from dataclasses import replace

    from latentgraph.graph import LATENT, Output, Registry, Socket, node

    registry = Registry()
    for node_type in default_registry:
        registry.add(node_type)

    @node("BrokenLatent", registry=registry, inputs=[Socket("samples", LATENT)],
          outputs=[Output("LATENT", LATENT)])  # fmt: skip
    def broken(ctx, samples):
        return replace(samples, samples=samples.samples * float("nan"))

    prompt = _prompt({"9": _ksampler("euler")})
    prompt["7"] = {"class_type": "BrokenLatent", "inputs": {"samples": ["4", 0]}}
    prompt["9"]["inputs"]["latent_image"] = ["7", 0]
    prompt |= {
        "10": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "11": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "steps": 2,
               "scheduler": "normal", "denoise": 1.0}},
        "12": {"class_type": "SamplerCustom", "inputs": {"model": ["1", 0], "add_noise": True,
               "noise_seed": 1, "cfg": 7.0, "positive": ["2", 0], "negative": ["3", 0],
               "sampler": ["10", 0], "sigmas": ["11", 0], "latent_image": ["7", 0]}},
    }  # fmt: skip
    return registry, prompt


@pytest.mark.parametrize("with_prompt", [True, False])
def test_nan_in_the_samplers_input_is_refused_naming_the_input_and_its_maker(settings,
                                                                             with_prompt):  # fmt: skip
    """NaN already in the input latent was blamed on the sampler ('the denoised latents contain
    NaN ... the sampler, ..., made them'): now refused before any step, on latent_image, naming
    the node that made it when the run knows its prompt (the CLI's and the server's runs)."""
    registry, prompt = _with_broken_latent()
    graph = graph_from_prompt(prompt, registry)
    extra = {"prompt": prompt} if with_prompt else {}
    result = Scheduler(registry, settings=settings).run(graph, targets=["9", "12"], extra=extra)
    assert not result.ok and result.warnings == []
    failures = {f.node_id: f for f in result.failures}
    assert set(failures) == {"9", "12"}
    maker = " by node '7' (BrokenLatent)" if with_prompt else ""
    for failure in failures.values():
        assert failure.user_error and failure.input_name == "latent_image"
        assert (
            f"input 'latent_image': the latent contains NaN or infinite values, made "
            f"upstream{maker}, before any sampling step"
        ) in failure.message
        assert "the sampler" not in failure.message.split("sampling step")[0]
