"""KSampler and the custom sampler as ComfyUI's (the tiny model, 64x64, 2 steps): cfg follows
ComfyUI's rule (only 1 leaves the negative out); the step limit names what the user set;
progress counts steps."""

from __future__ import annotations

import pytest

from latentgraph.graph.events import NodeProgress

from . import ksampler_prompts as ks


@pytest.mark.parametrize("make", [ks.ksampler, ks.sampler_custom])
def test_cfg_follows_comfyui_only_cfg_one_leaves_the_negative_out(settings, make):
    """cfg 0 is the negative's (unconditional) prediction: the same as a run whose positive is
    the negative's text at cfg 1; cfg 0, 0.5 and 1 all differ (they were all cfg 1)."""
    import torch

    def run(cfg: float, positive: str = "a castle"):
        prompt = ks.prompt(make(7, cfg=cfg), positive=positive)
        return ks.latent(ks.with_custom_parts(prompt, "euler"), settings)

    zero, half, one = run(0.0), run(0.5), run(1.0)
    assert not torch.allclose(zero, one, atol=1e-3)
    assert not torch.allclose(half, one, atol=1e-3) and not torch.allclose(half, zero, atol=1e-3)
    torch.testing.assert_close(zero, run(1.0, positive="blurry"), rtol=1e-4, atol=1e-4)


def _failure(result) -> tuple[str | None, str]:
    """(input named, message) of the sampler's failure."""
    assert not result.ok
    (failure,) = [f for f in result.failures if f.node_id == ks.SAMPLER]
    return failure.input_name, failure.message


def test_a_schedule_past_the_schedulers_most_names_steps_and_denoise(settings):
    """steps 500 at denoise 0.5 is a 1000-step schedule; dpmpp_2m makes at most 999: the
    message says so and names `denoise` (steps 500 alone fits); steps 1000 alone names steps,
    and steps 1000 at denoise 0.5 steps too (it does not fit alone either). The node is named
    as validation names one, the sampler as the user named it (not our 'dpm++2m')."""
    result = ks.run(ks.prompt(ks.ksampler(1, "dpmpp_2m", steps=500, denoise=0.5)), settings)
    name, message = _failure(result)
    assert name == "denoise"
    assert message.startswith(
        "node '5' (KSampler) input 'denoise': steps 500 with denoise 0.5 makes a schedule of "
        "1000 steps (steps / denoise); sampler 'dpmpp_2m' (scheduler 'normal') makes at most "
        "999 distinct steps"
    )
    assert message.endswith("raise denoise or lower steps")
    name, message = _failure(ks.run(ks.prompt(ks.ksampler(1, "dpmpp_2m", steps=1000)), settings))
    assert name == "steps" and "denoise" not in message
    assert "sampler 'dpmpp_2m' (scheduler 'normal') makes at most 999 distinct steps" in message
    result = ks.run(ks.prompt(ks.ksampler(1, "lcm", steps=51, denoise=0.5)), settings)
    name, message = _failure(result)
    assert name == "steps" and "steps 51 with denoise 0.5 makes a schedule of 102" in message
    assert message.endswith("; lower steps")


def test_heun_progress_counts_steps_not_model_evaluations(settings):
    events: list = []
    result = ks.run(ks.prompt(ks.ksampler(1, "heun", steps=2)), settings, events)
    assert result.ok, result.failures
    progress = [(e.value, e.max) for e in events
                if isinstance(e, NodeProgress) and e.node_id == ks.SAMPLER]  # fmt: skip
    assert progress[-1] == (2, 2) and {total for _, total in progress} == {2}


@pytest.mark.parametrize("sampler_name", ["uni_pc", "dpmpp_2m"])
def test_multistep_samplers_run_beta_schedules_whose_first_timesteps_repeat(settings,
                                                                           sampler_name):  # fmt: skip
    """beta at 40 steps rounds its first two levels to timestep 999: the run starts at the
    first step (it started at the second and ran past the tables: UniPC's AssertionError,
    DPM++'s IndexError) and ends at a finite latent."""
    import torch

    sampler = ks.ksampler(1, sampler_name, steps=40)
    sampler["inputs"]["scheduler"] = "beta"
    result = ks.run(ks.prompt(sampler), settings)
    assert result.ok, result.failures
    assert bool(torch.isfinite(result.output(ks.SAMPLER).samples).all())
