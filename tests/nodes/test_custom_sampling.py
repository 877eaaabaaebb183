"""Custom sampling (sigmas, noise, sampler and guider as values) on the tiny model: schedules
against their formulas, the sampling loop against UNetDenoise and against the UNet called by
hand, split schedules, the guiders' arithmetic, and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.validate import validate
from latentgraph.graph.workflow import load_workflow
from latentgraph.nodes import custom_sampler, denoise, guiders, latents, schedulers, sigmas, text
from latentgraph.nodes.values import Latent

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
SHAPE = (1, 4, 16, 16)


def train_sigmas(config: dict) -> np.ndarray:
    """The model's noise level at each training timestep, from its beta schedule (float64;
    diffusers computes in float32: expect ~1e-5 relative differences)."""
    assert config["beta_schedule"] == "scaled_linear"
    betas = np.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5,
                        config["num_train_timesteps"], dtype=np.float64) ** 2  # fmt: skip
    alphas_cumprod = np.cumprod(1.0 - betas)
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


@pytest.fixture(scope="module")
def conds(tiny):
    from latentgraph.graph import CancelToken, Context

    ctx = Context("t", "TextEncode", Settings(), CancelToken())
    clip = tiny[1]
    return {name: text.text_encode(ctx, clip, prompt) for name, prompt in
            (("pos", "a red house"), ("neg", "blurry"), ("style", "oil painting"))}  # fmt: skip


def sample(make_ctx, guider, sampler, levels, latent, noise):
    return custom_sampler.sampler_custom_advanced(make_ctx("SamplerCustomAdvanced"), noise,
                                                  guider, sampler, levels, latent)  # fmt: skip


# --- schedules -------------------------------------------------------------------------------


def test_formula_schedules_match_the_published_formulas():
    n, lo, hi = 7, 0.0291675, 14.614642
    i = np.arange(n) / (n - 1)
    for rho in (7.0, 3.0):  # Karras et al. 2022, eq. 5
        expected = (hi ** (1 / rho) + i * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
        got = sigmas.karras_scheduler(None, n, hi, lo, rho).numpy()
        np.testing.assert_allclose(got[:-1], expected, rtol=1e-6)
        assert got[-1] == 0 and got.dtype == np.float32
    expected = np.exp(np.log(hi) + i * (np.log(lo) - np.log(hi)))  # geometric spacing
    np.testing.assert_allclose(sigmas.exponential_scheduler(None, n, hi, lo).numpy()[:-1],
                               expected, rtol=1e-6)  # fmt: skip
    for rho in (1.0, 2.5):  # log sigma falls as (1 - i) ** rho
        expected = np.exp(np.log(lo) + (1 - i) ** rho * (np.log(hi) - np.log(lo)))
        got = sigmas.polyexponential_scheduler(None, n, hi, lo, rho).numpy()
        np.testing.assert_allclose(got[:-1], expected, rtol=1e-6)
        assert got[-1] == 0
    # rho 1 is the exponential schedule
    np.testing.assert_allclose(sigmas.polyexponential_scheduler(None, n, hi, lo, 1.0).numpy(),
                               sigmas.exponential_scheduler(None, n, hi, lo).numpy(), rtol=1e-6)  # fmt: skip


def test_schedule_sigmas_are_the_models_levels_at_diffusers_timesteps(tiny, make_ctx):
    spec = tiny[3]
    table = train_sigmas(spec.config)
    linspace = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "euler",
                                           timestep_spacing="linspace")  # fmt: skip
    got = sigmas.schedule_sigmas(None, linspace, 5).numpy()
    t = np.linspace(0, 999, 5)[::-1]  # linear interpolation in the table between timesteps
    np.testing.assert_allclose(got[:-1], np.interp(t, np.arange(1000), table), rtol=5e-5)
    assert got[-1] == 0 and len(got) == 6
    # denoise 0.5: the last 5 steps of a 10-step schedule; denoise 0: nothing to run
    ten = sigmas.schedule_sigmas(None, linspace, 10).numpy()
    np.testing.assert_array_equal(sigmas.schedule_sigmas(None, linspace, 5, 0.5).numpy(), ten[5:])
    assert len(sigmas.schedule_sigmas(None, linspace, 5, 0.0)) == 0
    # SchedulerSelect's Karras option shapes the levels: Karras between the model's extremes
    karras = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "euler", True,
                                         "linspace")  # fmt: skip
    got = sigmas.schedule_sigmas(None, karras, 5).numpy()
    expected = sigmas.karras_scheduler(None, 5, float(table[-1]), float(table[0]), 7.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=5e-5)


@pytest.mark.parametrize("steps, denoise, timesteps", [(1, 1.0, [999]),
                                                       (4, 1.0, [999, 899, 799, 699]),
                                                       (2, 0.5, [499, 399]), (3, 0.2, [199, 99])])  # fmt: skip
def test_turbo_sigmas_count_and_denoise(tiny, steps, denoise, timesteps):
    table = train_sigmas(tiny[3].config)
    got = sigmas.schedule_turbo(None, tiny[3], steps, denoise).numpy()
    np.testing.assert_allclose(got, [*table[timesteps], 0.0], rtol=5e-5)


def test_split_sigmas_share_the_level_at_the_split():
    full = sigmas.karras_scheduler(None, 6, 14.6, 0.03, 7.0)
    high, low = sigmas.split_sigmas(None, full, 2)
    assert high.tolist() == full[:3].tolist() and low.tolist() == full[2:].tolist()
    high, low = sigmas.split_sigmas(None, full, 0)
    assert len(high) == 1 and low.tolist() == full.tolist()


# --- the sampling loop -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["euler", "euler_a"])
def test_custom_sampling_equals_unet_denoise_on_the_same_seed(tiny, conds, make_ctx, name):
    """4 steps: diffusers' linspace timesteps are whole numbers there, so the timesteps it
    derives from the noise levels are the same and the latents are byte-identical."""
    import torch

    unet, _, _, spec = tiny
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name,
                                     timestep_spacing="linspace")  # fmt: skip
    seeds = [11]
    noise = Latent(latents.make_noise(SHAPE[1:], seeds), seeds, is_noise=True)
    ref = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, conds["pos"], conds["neg"],
                               noise, steps=4, guidance=6.0, seed=11)  # fmt: skip
    guider = guiders.cfg_guider(None, unet, conds["pos"], conds["neg"], 6.0)
    levels = sigmas.schedule_sigmas(None, sp, 4)
    empty = Latent(torch.zeros(SHAPE))
    out, _ = sample(make_ctx, guider, custom_sampler.Sampler(name), levels, empty,
                    custom_sampler.Noise(11))  # fmt: skip
    assert torch.equal(out.samples, ref.samples)
    assert out.seeds is None  # RandomNoise's (ComfyUI's) batch rule has no seed per image
    # a LatentNoise latent is its own starting noise: the same result (the seed still seeds
    # the ancestral sampler's per-step noise, as UNetDenoise's seed does)
    same, _ = sample(make_ctx, guider, custom_sampler.Sampler(name), levels, noise,
                     custom_sampler.Noise(11, enabled=False))  # fmt: skip
    assert torch.equal(same.samples, ref.samples)


def test_split_schedule_without_noise_in_between_equals_the_full_run(tiny, conds, make_ctx):
    import torch

    unet = tiny[0]
    guider = guiders.cfg_guider(None, unet, conds["pos"], conds["neg"], 5.0)
    euler = custom_sampler.Sampler("euler")
    full_levels = sigmas.karras_scheduler(None, 6, 14.6, 0.03, 7.0)
    empty = Latent(torch.zeros(SHAPE))
    full, _ = sample(make_ctx, guider, euler, full_levels, empty, custom_sampler.Noise(3))
    high, low = sigmas.split_sigmas(None, full_levels, 4)
    first, _ = sample(make_ctx, guider, euler, high, empty, custom_sampler.Noise(3))
    second, _ = sample(make_ctx, guider, euler, low, first,
                       custom_sampler.disable_noise(None))  # fmt: skip
    assert torch.equal(second.samples, full.samples)
    # with noise added again the second half is another image
    renoised, _ = sample(make_ctx, guider, euler, low, first, custom_sampler.Noise(3))
    assert not torch.allclose(renoised.samples, full.samples)


def test_disable_noise_starts_from_the_latent_and_random_noise_adds_seeded_noise(tiny, conds,
                                                                                  make_ctx):  # fmt: skip
    import torch

    guider = guiders.basic_guider(None, tiny[0], conds["pos"])
    euler = custom_sampler.Sampler("euler")
    levels = sigmas.karras_scheduler(None, 3, 10.0, 0.1, 7.0)
    # RandomNoise on an empty latent == DisableNoise on a latent holding that noise at the
    # first level: the noise added is LatentNoise's for the seed (batch 1: the rules agree),
    # times sigma_max
    seeded = latents.latent_noise(make_ctx("LatentNoise"), 128, 128, seed=9).samples
    assert seeded.shape == SHAPE
    empty = Latent(torch.zeros(SHAPE))
    with_noise, _ = sample(
        make_ctx, guider, euler, levels, empty, custom_sampler.random_noise(None, 9)
    )
    by_hand = Latent(seeded * levels[0])
    without, _ = sample(
        make_ctx, guider, euler, levels, by_hand, custom_sampler.disable_noise(None)
    )
    torch.testing.assert_close(with_noise.samples, without.samples, rtol=0, atol=1e-5)
    other_seed, _ = sample(make_ctx, guider, euler, levels, empty, custom_sampler.Noise(10))
    assert not torch.allclose(other_seed.samples, with_noise.samples)
    # ComfyUI's batch rule (one generator for the batch) has no seed per image to keep
    assert without.seeds is None and with_noise.seeds is None


def unet_eps(unet, cond, x, sigma, t):
    """The UNet's noise prediction for one conditioning, called by hand (Euler's input scaling)."""
    import torch

    with torch.inference_mode():
        scaled = x / (sigma**2 + 1) ** 0.5
        return unet.unet(scaled, t, encoder_hidden_states=cond.embeds).sample


def test_one_step_output_and_denoised_output_by_hand(tiny, conds, make_ctx):
    """From noise level s0 to s1 > 0 Euler moves x by (s1 - s0) * eps; denoised_output is the
    model's clean prediction x - s0 * eps (ComfyUI's x0), with eps guided by CFG."""
    import torch

    unet = tiny[0]
    levels = torch.tensor([8.0, 2.0])
    empty = Latent(torch.zeros(SHAPE))
    out, x0 = sample(make_ctx, guiders.cfg_guider(None, unet, conds["pos"], conds["neg"], 4.0),
                     custom_sampler.Sampler("euler"), levels, empty, custom_sampler.Noise(21))  # fmt: skip
    x = latents.make_noise(SHAPE[1:], [21]) * 8.0
    t = torch.tensor(float(sigma_timestep(tiny[3].config, 8.0)))
    pos, neg = (unet_eps(unet, conds[k], x, 8.0, t) for k in ("pos", "neg"))
    eps = neg + 4.0 * (pos - neg)
    torch.testing.assert_close(x0.samples, x - 8.0 * eps, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.samples, x + (2.0 - 8.0) * eps, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(out.samples, x0.samples)


def sigma_timestep(config: dict, sigma: float) -> float:
    """The (fractional) training timestep at noise level `sigma`: log-sigma interpolation."""
    logs = np.log(train_sigmas(config))
    i = int(np.searchsorted(logs, np.log(sigma))) - 1
    return i + (np.log(sigma) - logs[i]) / (logs[i + 1] - logs[i])


def test_dual_cfg_guider_combines_three_predictions(tiny, conds):
    import torch

    unet = tiny[0]
    x = latents.make_noise(SHAPE[1:], [4]) * 3.0
    t = torch.tensor(500.0)
    pos, mid, neg = (unet_eps(unet, conds[k], x, 0.0, t) for k in ("style", "pos", "neg"))
    for style, expected in (
        ("regular", neg + 5.0 * (mid - neg) + 2.0 * (pos - mid)),
        ("nested", neg + 5.0 * (mid + 2.0 * (pos - mid) - neg)),
    ):
        guider = guiders.dual_cfg_guider(None, unet, conds["style"], conds["pos"], conds["neg"],
                                         2.0, 5.0, style)  # fmt: skip
        with torch.inference_mode():
            got = guider.predictor(None, x.device, tuple(x.shape), 1000)(x, t)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    basic = guiders.basic_guider(None, unet, conds["pos"])
    with torch.inference_mode():
        got = basic.predictor(None, x.device, tuple(x.shape), 1000)(x, t)
    torch.testing.assert_close(got, mid, rtol=1e-4, atol=1e-4)


def test_too_few_levels_return_the_latent_unchanged(tiny, conds, make_ctx):
    import torch

    latent = Latent(torch.randn(SHAPE))
    guider = guiders.basic_guider(None, tiny[0], conds["pos"])
    out, x0 = sample(make_ctx, guider, custom_sampler.Sampler("euler"), torch.zeros(1), latent,
                     custom_sampler.Noise(1))  # fmt: skip
    assert torch.equal(out.samples, latent.samples) and torch.equal(x0.samples, latent.samples)


# --- which samplers can run a given schedule ---------------------------------------------------


@pytest.mark.parametrize("name", list(schedulers.SCHEDULERS))
def test_the_sigma_rule_matches_diffusers(tiny, name):
    """Samplers said to take a schedule do (their levels are the ones given); the others have no
    `sigmas=` or refuse it, and are refused with the usable ones named."""
    import inspect

    import torch

    spec = custom_sampler.Sampler(name, config=tiny[3].config).spec(tiny[0])
    sched = schedulers.build_scheduler(spec, 0)
    levels = torch.tensor([9.0, 3.0, 0.5, 0.0])
    if custom_sampler.sigma_problem(name) is None:
        custom_sampler.set_schedule(sched, spec, levels, "cpu")
        assert sched.sigmas.tolist() == levels.tolist()
        assert len(sched.timesteps) == 3
        return
    message = custom_sampler.sigma_problem(name)
    assert name in message and "euler" in message
    if "sigmas" in inspect.signature(sched.set_timesteps).parameters:
        with pytest.raises(ValueError):
            sched.set_timesteps(sigmas=levels.tolist())


def problems(nodes: dict) -> list[tuple[str, str | None, str]]:
    from latentgraph.graph.comfy_api import graph_from_prompt

    graph = graph_from_prompt({k: {"class_type": v.pop("type"), "inputs": v}
                               for k, v in nodes.items()})  # fmt: skip
    return [(p.node_id, p.input_name, p.message) for p in validate(graph, default_registry)
            if p.severity == "error" and p.node_id]  # fmt: skip


def test_refusals_name_the_node_and_input():
    found = problems({"s": {"type": "SamplerSelect", "name": "dpm++2m"},
                      "k": {"type": "KSamplerSelect", "sampler_name": "dpmpp_2m"},
                      "r": {"type": "KarrasScheduler", "steps": 5, "sigma_max": 14.0,
                            "sigma_min": 0.03, "rho": 0.0},
                      "e": {"type": "ExponentialScheduler", "steps": 5, "sigma_max": 14.0,
                            "sigma_min": 0.0}})  # fmt: skip
    where = {(node, name) for node, name, _ in found}
    assert where == {("s", "name"), ("k", "sampler_name"), ("r", "rho"), ("e", "sigma_min")}
    messages = dict(((n, i), m) for n, i, m in found)
    assert "'euler', 'euler_a'" in messages[("s", "name")]  # the native list: only those
    message = messages[("k", "sampler_name")]
    assert "dpmpp_2m" in message and "euler, euler_ancestral" in message
    assert problems({"k": {"type": "KSamplerSelect", "sampler_name": "euler_ancestral"}}) == []


# --- the example workflow --------------------------------------------------------------------


def test_custom_sampling_workflow_runs_and_is_an_editor_template(tiny, tmp_path):
    from latentgraph.graph.comfy_editor import graph_from_editor
    from latentgraph.server.api_templates import editor_workflow, index

    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    small = {"width": "32", "height": "32", "steps": "5", "switch": "3"}
    wf = load_workflow(WORKFLOWS / "custom_sampling.yaml", overrides=small)
    result = Scheduler(default_registry, settings=settings).run(wf.graph)
    assert result.ok, result.failures
    assert {"high", "low", "dual", "split"} <= set(result.executed)
    assert (settings.output_dir / result.ui["save"]["images"][0]["filename"]).is_file()
    names = [t["name"] for t in index(WORKFLOWS, default_registry)[0]["templates"]]
    assert "custom_sampling" in names
    editor = editor_workflow(WORKFLOWS / "custom_sampling.yaml", default_registry)
    graph = graph_from_editor(editor, default_registry)
    assert {n.id: n.type for n in graph} == {n.id: n.type for n in wf.graph}


def test_sampler_select_takes_the_models_schedule_when_given(tiny, conds, make_ctx):
    """A schedule given to SamplerSelect (other betas) is the one sampled with; without one,
    the guider's MODEL's is used. The MODEL's sampling still decides the prediction type."""
    import torch

    from latentgraph.nodes.values import SchedulerSpec

    unet, _, _, spec = tiny
    other = SchedulerSpec({**spec.config, "beta_end": 0.02, "prediction_type": "v_prediction"})
    ctx = make_ctx("SamplerSelect")
    given = custom_sampler.sampler_select(ctx, "euler", other).spec(unet).config
    assert given["beta_end"] == 0.02
    assert custom_sampler.sampler_select(ctx, "euler").spec(unet).config["beta_end"] == 0.012
    guider = guiders.basic_guider(None, unet, conds["pos"])
    levels = torch.tensor([6.0, 1.0])
    empty = Latent(torch.zeros(SHAPE))
    plain, _ = sample(make_ctx, guider, custom_sampler.sampler_select(ctx, "euler"), levels,
                      empty, custom_sampler.Noise(2))  # fmt: skip
    changed, _ = sample(make_ctx, guider, custom_sampler.sampler_select(ctx, "euler", other),
                        levels, empty, custom_sampler.Noise(2))  # fmt: skip
    assert not torch.allclose(plain.samples, changed.samples)


def test_a_noise_mask_keeps_the_original_outside_and_changes_the_inside(tiny, conds, make_ctx):
    """SetLatentNoiseMask is honoured by the custom sampler as by UNetDenoise: outside the mask
    the clean original comes back exactly, inside the model repaints."""
    import torch

    guider = guiders.basic_guider(None, tiny[0], conds["pos"])
    levels = sigmas.karras_scheduler(None, 3, 10.0, 0.1, 7.0)
    levels = torch.cat([levels[:-1], levels.new_zeros(1)])  # end clean
    original = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(1, SHAPE[2] * 8, SHAPE[3] * 8)
    mask[:, :, mask.shape[2] // 2 :] = 1.0  # repaint the right half
    latent = Latent(original, noise_mask=mask)
    out, _ = sample(make_ctx, guider, custom_sampler.Sampler("euler"), levels, latent,
                    custom_sampler.random_noise(None, 3))  # fmt: skip
    half = SHAPE[3] // 2
    assert torch.equal(out.samples[..., :half], original[..., :half])
    assert not torch.allclose(out.samples[..., half:], original[..., half:], atol=1e-3)
    unmasked, _ = sample(make_ctx, guider, custom_sampler.Sampler("euler"), levels,
                         Latent(original), custom_sampler.random_noise(None, 3))  # fmt: skip
    assert not torch.equal(unmasked.samples[..., :half], original[..., :half])
