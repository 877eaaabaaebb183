"""KSampler's sigma shapes (karras, exponential, beta) are ComfyUI's: they run with every
sampler that can run a given noise schedule (euler_ancestral: the shape made by diffusers'
Euler, handed over as a table) and span the model's whole noise range, from its highest level
down, whatever timestep spacing the checkpoint's scheduler config names (tiny-sdxl's and
SDXL's "leading"), at 1 step too."""

from __future__ import annotations

import numpy as np
import pytest

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.validate import validate
from latentgraph.nodes import comfy, sigmas
from latentgraph.nodes.tiny_model import SCHEDULER_CONFIG
from latentgraph.nodes.tiny_sdxl import SDXL_SCHEDULER_CONFIG
from latentgraph.nodes.values import UNetModel

STEPS = 4


def sigma_range(config: dict) -> tuple[float, float]:
    """(lowest, highest) noise level the model was trained on, from its beta schedule (float64;
    ComfyUI's sigma_min and sigma_max: timesteps 0 and T - 1)."""
    assert config["beta_schedule"] == "scaled_linear"
    betas = np.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5,
                        config["num_train_timesteps"], dtype=np.float64) ** 2  # fmt: skip
    alphas_cumprod = np.cumprod(1.0 - betas)
    levels = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    return float(levels[0]), float(levels[-1])


def prompt(ckpt: str, sampler_name: str, scheduler: str, steps: int = STEPS) -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "5": {"class_type": "KSampler",
              "inputs": {"model": ["1", 0], "seed": 3, "steps": steps, "cfg": 5.0,
                         "sampler_name": sampler_name, "scheduler": scheduler,
                         "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
                         "denoise": 1.0}},
        "6": {"class_type": "BasicScheduler",
              "inputs": {"model": ["1", 0], "scheduler": scheduler, "steps": steps,
                         "denoise": 1.0}},
    }  # fmt: skip


def sampler_problems(graph_prompt: dict, settings: Settings) -> list:
    graph = graph_from_prompt(graph_prompt, default_registry)
    return [p for p in validate(graph, default_registry, settings) if p.node_id == "5"]


def run(graph_prompt: dict, settings: Settings, target: str):
    graph = graph_from_prompt(graph_prompt, default_registry)
    result = Scheduler(default_registry, settings=settings).run(graph, targets=[target])
    assert result.ok, result.failures
    return result.output(target)


def stepped_sigmas(monkeypatch, class_name: str) -> list:
    """The noise levels each `class_name` scheduler instance holds at its first step."""
    import diffusers

    cls = getattr(diffusers, class_name)
    seen: list = []
    step = cls.step

    def recording(self, *args, **kwargs):
        if self.step_index is None or self.step_index == 0:
            seen.append(self.sigmas.clone().double().cpu().numpy())
        return step(self, *args, **kwargs)

    monkeypatch.setattr(cls, "step", recording)
    return seen


def assert_karras(levels: np.ndarray, config: dict) -> None:
    """ComfyUI's karras: rho 7 from the model's highest level to its lowest, then 0."""
    low, high = sigma_range(config)
    assert levels[0] == pytest.approx(high, rel=1e-4)
    assert np.all(np.diff(levels) < 0) and levels[-2] > 0 and levels[-1] == 0
    expected = sigmas.karras(STEPS, low, high, 7.0).double().numpy()
    np.testing.assert_allclose(levels, expected, rtol=1e-4)


@pytest.mark.parametrize("scheduler", sorted(comfy.SIGMA_SHAPES))
def test_euler_ancestral_with_a_sigma_shape_passes_validation(settings, scheduler):
    assert sampler_problems(prompt("builtin:tiny-sd", "euler_ancestral", scheduler), settings) == []


def test_a_sampler_that_runs_no_table_is_still_refused_saying_which(settings):
    [problem] = sampler_problems(prompt("builtin:tiny-sd", "ddim", "karras"), settings)
    assert problem.input_name == "scheduler"
    assert problem.message == (
        "scheduler 'karras' has no diffusers equivalent with sampler 'ddim' (no karras sigmas, "
        "no given noise schedule); with 'ddim' use one of: normal, sgm_uniform, simple, "
        "ddim_uniform; or with 'karras' any sampler but ddpm, lcm, ddim"
    )


def test_ksampler_runs_euler_ancestral_on_karras_sigmas(settings, monkeypatch):
    seen = stepped_sigmas(monkeypatch, "EulerAncestralDiscreteScheduler")
    latent = run(prompt("builtin:tiny-sd", "euler_ancestral", "karras"), settings, "5")
    assert latent.samples.isfinite().all() and latent.samples.shape == (1, 4, 4, 4)
    [levels] = seen
    assert_karras(levels, SCHEDULER_CONFIG)


@pytest.mark.parametrize("sampler_name, class_name", [
    ("euler", "EulerDiscreteScheduler"), ("euler_ancestral", "EulerAncestralDiscreteScheduler"),
])  # fmt: skip
def test_leading_spacing_karras_starts_at_the_models_highest_level(settings, monkeypatch,
                                                                   sampler_name, class_name):  # fmt: skip
    """tiny-sdxl's config spaces timesteps "leading": diffusers' Euler took Karras's range from
    timesteps 751..1 (4 steps), its first level 4.12, not the model's highest, 14.61."""
    assert SDXL_SCHEDULER_CONFIG["timestep_spacing"] == "leading"
    seen = stepped_sigmas(monkeypatch, class_name)
    run(prompt("builtin:tiny-sdxl", sampler_name, "karras"), settings, "5")
    [levels] = seen
    assert_karras(levels, SDXL_SCHEDULER_CONFIG)


@pytest.mark.parametrize("scheduler", ["karras", "exponential"])
def test_basic_scheduler_shapes_span_the_leading_checkpoints_whole_range(settings, scheduler):
    levels = run(prompt("builtin:tiny-sdxl", "euler", scheduler), settings, "6").double().numpy()
    low, high = sigma_range(SDXL_SCHEDULER_CONFIG)
    formula = {"karras": lambda: sigmas.karras(STEPS, low, high, 7.0),
               "exponential": lambda: sigmas.exponential(STEPS, low, high)}[scheduler]  # fmt: skip
    np.testing.assert_allclose(levels, formula().double().numpy(), rtol=1e-4)
    assert levels[0] == pytest.approx(high, rel=1e-4)


def test_every_sampler_that_runs_a_shape_starts_it_at_the_models_highest_level():
    """Each diffusers class KSampler runs a shape on (its own option or a given table), with a
    "leading" config: the first level is the model's highest."""
    from latentgraph.nodes.custom_sampler import set_steps
    from latentgraph.nodes.schedulers import build_scheduler

    model = UNetModel(None, "no-weights", "cpu", "fp32", scheduler_config=SDXL_SCHEDULER_CONFIG)
    _, high = sigma_range(SDXL_SCHEDULER_CONFIG)
    for sampler_name in comfy.SAMPLERS:
        for shape in sorted(comfy.SIGMA_SHAPES):
            if comfy.sampler_problem(sampler_name, shape):
                assert sampler_name in ("ddim", "ddpm", "lcm"), (sampler_name, shape)
                continue
            spec = comfy.sampler_spec(model, sampler_name, shape)
            sched = build_scheduler(spec, seed=1)
            set_steps(sched, spec, STEPS)
            first = float(sched.sigmas[0])
            assert first == pytest.approx(high, rel=1e-4), (sampler_name, shape)


# ComfyUI's schedulers whose 1-step schedule is [sigma_max, 0]; only ddim_uniform's starts lower
WHOLE_RANGE = [name for name in comfy.SIGMAS if name != "ddim_uniform"]


@pytest.mark.parametrize("config", [SCHEDULER_CONFIG, SDXL_SCHEDULER_CONFIG], ids=["sd", "sdxl"])
def test_a_one_step_schedule_starts_at_the_models_highest_level(config):
    """diffusers' "linspace" of 1 step is timestep 0: KSampler's normal, karras, exponential
    and beta ran their 1 step from the model's lowest level (0.029), not its highest (14.61)."""
    from latentgraph.nodes.custom_sampler import set_steps
    from latentgraph.nodes.schedulers import build_scheduler

    model = UNetModel(None, "no-weights", "cpu", "fp32", scheduler_config=config)
    _, high = sigma_range(config)
    top = config["num_train_timesteps"] - 1
    for sampler_name in ("euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "ddim"):
        for scheduler in WHOLE_RANGE:
            if comfy.sampler_problem(sampler_name, scheduler):
                continue
            spec = comfy.sampler_spec(model, sampler_name, scheduler)
            sched = build_scheduler(spec, seed=1)
            set_steps(sched, spec, 1)
            where = (sampler_name, scheduler)
            if getattr(sched, "sigmas", None) is None:  # stepping on timesteps: DDIM
                assert int(sched.timesteps[0]) == top, where
            else:
                assert float(sched.sigmas[0]) == pytest.approx(high, rel=1e-4), where


@pytest.mark.parametrize("scheduler", WHOLE_RANGE)
def test_basic_scheduler_of_one_step_is_the_highest_level_then_zero(settings, scheduler):
    levels = run(prompt("builtin:tiny-sd", "euler", scheduler, steps=1), settings, "6")
    _, high = sigma_range(SCHEDULER_CONFIG)
    np.testing.assert_allclose(levels.double().numpy(), [high, 0.0], rtol=1e-4)


@pytest.mark.parametrize("sampler_name", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_a_one_step_ksampler_denoises_from_full_noise_whatever_the_scheduler(settings,
                                                                             sampler_name):  # fmt: skip
    """SD-Turbo's recipe (1 step, euler): the starting noise was scaled by 0.029, so the model
    saw an almost clean latent and left noise (latent std 0.03 where 2 steps give 16). At 1
    step every whole-range shape is [sigma_max, 0]: the same latent as `simple`, which always
    started at the top, and of the size a 2-step run gives."""
    one = {name: run(prompt("builtin:tiny-sd", sampler_name, name, steps=1), settings, "5")
           for name in WHOLE_RANGE}  # fmt: skip
    two = run(prompt("builtin:tiny-sd", sampler_name, "normal", steps=2), settings, "5")
    reference = one["simple"].samples
    for name, latent in one.items():  # (DPM++ rounds some shapes' first timestep to 998)
        off = float((latent.samples - reference).norm() / reference.norm())
        assert off < 0.05, (name, off)
    ratio = float(reference.std()) / float(two.samples.std())
    assert 0.5 < ratio < 2, ratio
