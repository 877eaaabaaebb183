"""UNetDenoise's loop (nodes/denoise.py): previews, stochastic step noise."""

from __future__ import annotations

import pytest

from latentgraph.nodes import denoise, latents, schedulers, text


def test_preview_stretches_each_of_the_first_three_channels_to_0_255():
    import numpy as np
    import torch

    x = torch.zeros(2, 4, 2, 2)
    x[0, 0] = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    x[0, 1] = torch.tensor([[40.0, 30.0], [20.0, 10.0]])  # its own range, not the first's
    x[0, 2] = torch.tensor([[0.0, 5e-7], [0.0, 0.0]])  # nearly flat: no blow-up
    x[0, 3] = 100.0  # the fourth channel and the other images are not shown
    x[1] = -50.0
    image = denoise.preview_image(x)
    assert image.mode == "RGB" and image.size == (2, 2)
    pixels = np.asarray(image)
    assert pixels[..., 0].tolist() == [[0, 85], [170, 255]]
    assert pixels[..., 1].tolist() == [[255, 170], [85, 0]]
    assert pixels[..., 2].tolist() == [[0, 85], [0, 0]]  # 5e-7 / (5e-7 + 1e-6) of 255


# euler_a draws noise at every step from a generator seeded with the run's seed; dpm++sde from
# a Brownian tree seeded by it (an unseeded tree would differ run to run)
@pytest.mark.parametrize("name, steps", [("euler_a", 3), ("dpm++sde", 2)],
                         ids=["step_generator", "sde_brownian_tree"])  # fmt: skip
def test_stochastic_step_noise_comes_from_the_run_seed(make_ctx, tiny, name, steps):
    """The same seed repeats the image; another seed on the same starting noise changes it."""
    import torch

    unet, clip, v, spec = tiny
    cond = text.text_encode(make_ctx("TextEncode"), clip, "x")
    noise = latents.latent_noise(make_ctx("LatentNoise"), 32, 32, 1, 0, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name)

    def run(seed):
        return denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, cond, cond, noise, steps,
                                    7.5, 1.0, seed).samples  # fmt: skip

    assert torch.equal(run(4), run(4))
    assert not torch.equal(run(4), run(5))


def test_denoise_below_1_on_pure_noise_warns_and_changes_nothing(make_ctx, tiny):
    import torch

    from latentgraph.nodes import vae

    unet, clip, v, spec = tiny
    cond = text.text_encode(make_ctx("TextEncode"), clip, "x")
    noise = latents.latent_noise(make_ctx("LatentNoise"), 32, 32, 1, 0, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "ddim")

    def run(latent, strength):
        ctx = make_ctx("UNetDenoise")
        out = denoise.unet_denoise(ctx, unet, sp, cond, cond, latent, 4, 7.5, strength, 0)
        return out.samples, ctx.rec.warnings, [done for done, _ in ctx.rec.progress]

    full, warnings, steps = run(noise, 1.0)
    assert warnings == [] and steps == [1, 2, 3, 4]
    half, warnings, steps = run(noise, 0.5)
    assert warnings == ["denoise < 1 has no effect on pure noise from LatentNoise; use "
                        "VAEEncode for img2img"]  # fmt: skip
    assert steps == [1, 2, 3, 4] and torch.equal(half, full)
    encoded = vae.vae_encode(make_ctx("VAEEncode"), pixels=torch.rand(1, 32, 32, 3), vae=v)
    _, warnings, steps = run(encoded, 0.5)  # img2img: half the schedule, no warning
    assert warnings == [] and steps == [1, 2]


def test_img2img_denoise_rounding_to_no_step_warns_with_what_runs_one(make_ctx, tiny):
    """diffusers' strength rule runs int(steps x denoise) steps: a hires-fix pass at denoise
    0.05 of 12 steps runs none, and says so (diffusers refuses it); denoise 0 stays silent."""
    import torch

    from latentgraph.nodes import vae

    unet, cond, v, sp = _setup(make_ctx, tiny)
    encoded = vae.vae_encode(make_ctx("VAEEncode"), pixels=torch.rand(1, 32, 32, 3), vae=v)

    def run(steps, strength, **settings):
        ctx = make_ctx("UNetDenoise", **settings)
        out = denoise.unet_denoise(ctx, unet, sp, cond, cond, encoded, steps, 7.5, strength, 0)
        return out.samples, ctx.rec.warnings, ctx.rec.progress

    samples, warnings, progress = run(12, 0.05)
    assert torch.equal(samples, encoded.samples) and progress == []
    assert warnings == ["denoise 0.05 x 12 steps rounds to 0 steps: the latent is returned "
                        "unchanged (raise steps to at least 20 or denoise to at least 0.09)"]  # fmt: skip
    # the least it names runs one step
    assert len(run(20, 0.05)[2]) == 1 and len(run(12, 0.09)[2]) == 1
    assert run(12, 0.0)[1] == []  # denoise 0: the input, as documented
    _, warnings, _ = run(3, 0.001, max_steps=500)  # 1000 steps would be over the limit
    assert warnings == ["denoise 0.001 x 3 steps rounds to 0 steps: the latent is returned "
                        "unchanged (raise denoise to at least 0.34)"]  # fmt: skip


def test_stopping_early_at_zero_noise_needs_a_sigma_scheduler(make_ctx, tiny):

    from latentgraph.nodes.values import NodeInputError

    unet, clip, v, spec = tiny
    cond = text.text_encode(make_ctx("TextEncode"), clip, "x")
    noise = latents.latent_noise(make_ctx("LatentNoise"), 32, 32, 1, 0, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "ddim")
    with pytest.raises(NodeInputError, match=r"input 'return_with_leftover_noise': stopping "
                       r"early at zero noise needs a sigma-based scheduler \(euler, dpm\+\+2m, "
                       r"\.\.\.\); or return the leftover noise"):  # fmt: skip
        denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, cond, cond, noise, 4, 7.5, 1.0,
                             0, end_step=2)  # fmt: skip


def test_a_noise_mask_keeps_the_models_dtype(make_ctx, tiny):
    """With a bf16 model the kept original is cast like the latents, so every step's input
    stays bf16 (a float32 original would promote the blend and break the next UNet call)."""
    import copy

    import torch

    from latentgraph.nodes import inpaint, vae
    from latentgraph.nodes.values import UNetModel

    unet, clip, v, spec = tiny
    bf16 = UNetModel(copy.deepcopy(unet.unet).to(torch.bfloat16), "tiny-bf16", "cpu", "bf16")
    cond = text.text_encode(make_ctx("TextEncode"), clip, "x")
    encoded = vae.vae_encode(make_ctx("VAEEncode"), pixels=torch.rand(1, 32, 32, 3), vae=v)
    mask = torch.zeros(1, 32, 32)
    mask[:, :16] = 1.0
    masked = inpaint.set_latent_noise_mask(make_ctx(), encoded, mask)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "ddim")
    out = denoise.unet_denoise(make_ctx("UNetDenoise"), bf16, sp, cond, cond, masked, 2, 7.5,
                               1.0, 0)  # fmt: skip
    assert out.samples.dtype == torch.bfloat16
    kept = encoded.samples.to(torch.bfloat16)[..., 2:, :]  # the unmasked half, cast
    assert torch.equal(out.samples[..., 2:, :], kept)


@pytest.mark.parametrize("first", [True, False])
def test_img2img_starting_on_a_repeated_timestep_matches_the_pipeline(make_ctx, tiny, tiny_folder,
                                                                      first):  # fmt: skip
    """dpm++2m with Karras sigmas rounds the last levels of 50 steps to timesteps 1, 1: an
    img2img run starting on the first of them (denoise 0.06: the last 3 steps) must tell the
    scheduler where it begins, as diffusers' img2img pipeline does; found from the timestep
    alone it would be the second. Both starts are compared byte for byte with the pipeline."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    from .test_img2img import encoded_pictures

    unet, clip, _, spec = tiny
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "dpm++2m", karras=True)
    sched = schedulers.build_scheduler(sp, 5)
    sched.set_timesteps(50)
    assert sched.timesteps[47] == sched.timesteps[48] and sched.timesteps[46] != 1
    strength = 0.06 if first else 0.04  # begins at index 47, else 48
    latent = encoded_pictures(make_ctx, tiny, size=32)
    pos = text.text_encode(make_ctx("TextEncode"), clip, "a lighthouse")
    neg = text.text_encode(make_ctx("TextEncode"), clip, "")
    ours = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, pos, neg, latent, 50, 7.5,
                                strength, 5).samples  # fmt: skip
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_folder, safety_checker=None,
                                                          requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = schedulers.build_scheduler(sp, 5)
    ref = pipe(prompt_embeds=pos.embeds, negative_prompt_embeds=neg.embeds, image=latent.samples,
               strength=strength, num_inference_steps=50, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(5), output_type="latent").images  # fmt: skip
    assert torch.equal(ours, ref)


def _setup(make_ctx, tiny, name="euler"):
    unet, clip, v, spec = tiny
    cond = text.text_encode(make_ctx("TextEncode"), clip, "x")
    return unet, cond, v, schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name)


# euler's latents are the noise x sigma; dpm++2m's are scaled (sigma / sqrt(sigma^2 + 1)).
# Karras dpm++2m's step 47 of 50 is the first of two equal timesteps (see the test above): a
# start found from the timestep alone would take the second one's level.
@pytest.mark.parametrize(
    "name, karras, steps, start, scale",
    [
        ("euler", False, 6, 2, lambda s: s),
        ("dpm++2m", True, 50, 47, lambda s: s / (s * s + 1) ** 0.5),
    ],
    ids=["euler", "karras_on_a_repeated_timestep"],
)
def test_a_window_starting_part_way_on_pure_noise_starts_from_that_noise_level(
    make_ctx, tiny, name, karras, steps, start, scale
):
    """LatentNoise into a run from step k that adds noise: a blank latent noised to step k's
    level (ComfyUI's KSamplerAdvanced on an empty latent), the same run as continuing a
    latent that holds exactly that."""
    import torch

    from latentgraph.nodes.values import Latent

    unet, clip, v, spec = tiny
    cond = text.text_encode(make_ctx("TextEncode"), clip, "x")
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name, karras=karras)
    noise = latents.latent_noise(make_ctx("LatentNoise"), 32, 32, 1, 3, vae=v)
    sched = schedulers.build_scheduler(sp, 0)
    sched.set_timesteps(steps)

    def run(latent, add_noise):
        return denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, cond, cond, latent, steps,
                                    7.5, 1.0, 0, start_step=start, add_noise=add_noise).samples  # fmt: skip

    held = Latent(noise.samples * scale(sched.sigmas[start]))
    assert torch.allclose(run(noise, True), run(held, False), atol=1e-6)


def test_a_window_with_nothing_to_run_returns_its_latent_unchanged(make_ctx, tiny):
    """start_step == end_step runs no step and returns the input as it is (as ComfyUI's
    KSamplerAdvanced does): pure noise stays noise, so a run from it is a run from the noise."""
    import torch

    unet, cond, v, sp = _setup(make_ctx, tiny)
    noise = latents.latent_noise(make_ctx("LatentNoise"), 32, 32, 1, 3, vae=v)

    def run(latent, **window):
        ctx = make_ctx("UNetDenoise")
        out = denoise.unet_denoise(ctx, unet, sp, cond, cond, latent, 4, 7.5, 1.0, 0, **window)
        return out, ctx.rec.progress

    out, progress = run(noise, start_step=2, end_step=2)
    assert progress == []
    assert torch.equal(out.samples, noise.samples)
    assert out.is_noise and out.seeds == noise.seeds == [3]
    assert torch.equal(run(out)[0].samples, run(noise)[0].samples)


def test_the_result_names_the_seed_of_each_image(make_ctx, tiny):
    """LatentNoise's seeds stay with its images; latents without seeds (VAEEncode) get the
    run's, seed + i."""
    import torch

    from latentgraph.nodes import vae

    unet, cond, v, sp = _setup(make_ctx, tiny)
    pixels = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    encoded = vae.vae_encode(make_ctx("VAEEncode"), pixels, v)
    noise = latents.latent_noise(make_ctx("LatentNoise"), 32, 32, 2, 40, vae=v)

    def run(latent, strength):
        return denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, cond, cond, latent, 2, 7.5,
                                    strength, 7)  # fmt: skip

    assert encoded.seeds is None
    assert run(encoded, 0.5).seeds == [7, 8]
    assert run(noise, 1.0).seeds == noise.seeds == [40, 41]


def test_a_run_from_pure_noise_returns_latents_the_next_run_cuts_for_img2img(make_ctx, tiny):
    """The result of a run is no longer pure noise: a second run at denoise 0.5 on it is
    img2img (half the steps, no warning), not a fresh run from noise."""
    unet, cond, v, sp = _setup(make_ctx, tiny)
    noise = latents.latent_noise(make_ctx("LatentNoise"), 32, 32, 1, 3, vae=v)
    first = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, cond, cond, noise, 2)
    assert first.is_noise is False
    ctx = make_ctx("UNetDenoise")
    denoise.unet_denoise(ctx, unet, sp, cond, cond, first, 4, 7.5, 0.5, 0)
    assert [done for done, _ in ctx.rec.progress] == [1, 2] and ctx.rec.warnings == []


def drive(sched, steps: int) -> None:
    """Every step of a `steps` schedule, with a random model output (no UNet: fast)."""
    import torch

    torch.manual_seed(0)
    sched.set_timesteps(steps)
    x = torch.randn(1, 4, 1, 1) * sched.init_noise_sigma
    for t in sched.timesteps:
        x = sched.step(torch.randn_like(x), t, sched.scale_model_input(x, t), return_dict=False)[0]
    assert torch.isfinite(x).all()


# the tiny model's config is SD's DDIM one, 'leading' spacing as SDXL's. At 1000 steps unipc
# asserted at the last step, ddim and dpm++2m indexed past their tables (after every UNet
# call), lcm raised diffusers' ValueError; dpm++2m at 999 and linspace 1000 made NaN latents.
@pytest.mark.parametrize("name", list(schedulers.SCHEDULERS))
def test_every_scheduler_runs_1000_steps_or_the_most_it_says_it_can(tiny, name):
    import re

    spec = schedulers.scheduler_select(None, tiny[3], name)
    problem = schedulers.steps_problem(
        schedulers.build_scheduler(spec, 0), f"scheduler '{name}'", 1000
    )
    most = 1000
    if problem:
        assert re.match(rf"scheduler '{re.escape(name)}' makes at most \d+ distinct steps from "
                        "this model's 1000 training timesteps", problem), problem  # fmt: skip
        most = int(re.search(r"at most (\d+)", problem)[1])
    assert most == 50 if name in ("lcm", "tcd") else most >= 998  # LCM: 50 distilled steps
    drive(schedulers.build_scheduler(spec, 0), most)


@pytest.mark.parametrize("name", ["ddim", "euler", "unipc"])
def test_linspace_spacing_runs_as_many_steps_as_training_timesteps(tiny, make_ctx, name):
    spec = schedulers.scheduler_select(make_ctx("SchedulerSelect"), tiny[3], name,
                                       timestep_spacing="linspace")  # fmt: skip
    most = 999 if name == "unipc" else 1000  # multistep solvers: one fewer rounded timestep
    assert schedulers.steps_problem(schedulers.build_scheduler(spec, 0), name, most) is None
    drive(schedulers.build_scheduler(spec, 0), most)
    if name == "euler":  # interpolated levels: as many as the declared maximum
        assert schedulers.steps_problem(schedulers.build_scheduler(spec, 0), name, 10000) is None


def test_steps_over_the_schedulers_most_are_refused_before_any_step(make_ctx, tiny, monkeypatch):
    from latentgraph.nodes.values import NodeInputError

    unet, clip, v, spec = tiny
    cond = text.text_encode(make_ctx("TextEncode"), clip, "x")
    noise = latents.latent_noise(make_ctx("LatentNoise"), 8, 8, 1, 0, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "dpm++2m")
    calls = []
    monkeypatch.setattr(denoise.Guidance, "predict", lambda *a: calls.append(a))
    with pytest.raises(NodeInputError) as err:
        denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, cond, cond, noise, 1000)
    assert err.value.input_name == "steps" and not calls
    assert (
        "scheduler 'dpm++2m' makes at most 998 distinct steps from this model's 1000 "
        "training timesteps with 'leading' timestep spacing; got 1000"
    ) in str(err.value)


def test_dpm_1s_says_nothing_about_lower_order_final(tiny, monkeypatch):
    """diffusers warned "Changing scheduler {self.config} to have `lower_order_final` set to
    True" (a literal {self.config}) on every dpm++1s run: the option is set to that already."""
    from diffusers.schedulers import scheduling_dpmsolver_singlestep as single

    said = []
    monkeypatch.setattr(single.logger, "warning", lambda *a, **k: said.append(a))
    spec = schedulers.scheduler_select(None, tiny[3], "dpm++1s")
    drive(schedulers.build_scheduler(spec, 0), 4)
    assert not said
