"""img2img at partial strength against diffusers' StableDiffusionImg2ImgPipeline, batches of
img2img, and what SchedulerSelect's options do to the diffusers scheduler's config."""

from __future__ import annotations

import pytest

from latentgraph.nodes import denoise, schedulers, text, vae

PROMPT = "a watercolor painting of a lighthouse"


def encoded_pictures(make_ctx, tiny, count=1, size=64):
    import torch

    pixels = torch.rand(count, size, size, 3, generator=torch.Generator().manual_seed(0))
    return vae.vae_encode(make_ctx("VAEEncode"), pixels=pixels, vae=tiny[2])


def img2img(make_ctx, tiny, latent, name="ddim", steps=10, strength=0.6, seed=5):
    """Our node chain; returns (latent out, progress events, conditioning, scheduler spec)."""
    unet, clip, _, spec = tiny
    pos = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    neg = text.text_encode(make_ctx("TextEncode"), clip, "")
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name)
    ctx = make_ctx("UNetDenoise")
    out = denoise.unet_denoise(ctx, unet, sp, pos, neg, latent, steps, 7.5, strength, seed)
    return out, ctx.rec.progress, (pos, neg), sp


# euler at 1.0: full strength still starts from the image noised to the first level (as
# diffusers and ComfyUI do), not from pure noise
@pytest.mark.parametrize(
    "name, strength", [("ddim", 0.6), ("ddim", 0.35), ("euler", 0.5), ("heun", 0.5), ("euler", 1.0)]
)
def test_partial_strength_matches_the_img2img_pipeline(make_ctx, tiny, tiny_folder, name,
                                                       strength):  # fmt: skip
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    latent = encoded_pictures(make_ctx, tiny)
    ours, progress, (pos, neg), sp = img2img(make_ctx, tiny, latent, name, 10, strength, seed=5)
    expected_steps = int(10 * strength)  # diffusers' rule; progress counts steps
    assert [done for done, _ in progress] == list(range(1, expected_steps + 1))
    if name == "heun":  # second-order Heun evaluates the model 2n - 1 times
        expected_steps = 2 * expected_steps - 1

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_folder, safety_checker=None,
                                                          requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = schedulers.build_scheduler(sp, 5)
    steps_run = []

    def count(pipeline, i, t, kwargs):
        steps_run.append(int(t))
        return kwargs

    # 4-channel input is taken as latents by the pipeline: no second VAE encode to differ.
    ref = pipe(prompt_embeds=pos.embeds, negative_prompt_embeds=neg.embeds, image=latent.samples,
               strength=strength, num_inference_steps=10, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(5), output_type="latent",
               callback_on_step_end=count).images  # fmt: skip
    assert len(steps_run) == expected_steps
    assert steps_run == [int(t) for t in pipe.scheduler.timesteps[-expected_steps:]]
    assert ours.samples.shape == ref.shape
    assert torch.equal(ours.samples, ref)


def test_batched_img2img_image_i_equals_a_single_run_with_seed_plus_i(make_ctx, tiny):
    import torch

    from latentgraph.nodes.values import Latent

    batch = encoded_pictures(make_ctx, tiny, count=3, size=32)
    together, *_ = img2img(make_ctx, tiny, batch, "ddim", 6, 0.5, seed=20)
    for i in range(3):
        one = Latent(batch.samples[i : i + 1].clone(), None, is_noise=False)
        alone, *_ = img2img(make_ctx, tiny, one, "ddim", 6, 0.5, seed=20 + i)
        assert torch.allclose(together.samples[i], alone.samples[0], atol=1e-4), i
    assert not torch.allclose(together.samples[0], together.samples[1], atol=1e-2)


# --- SchedulerSelect -> diffusers config ---------------------------------------------------


def built(make_ctx, tiny, name, **options):
    ctx = make_ctx("SchedulerSelect")
    spec = schedulers.scheduler_select(ctx, tiny[3], name, **options)
    return schedulers.build_scheduler(spec), ctx.rec.warnings


@pytest.mark.parametrize(
    "name, cls, expected",
    [
        ("dpm++2m", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
        ("dpm++3m", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 3}),
        ("dpm++2m_sde", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
        ("dpm++1s", "DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++"}),
        ("pndm", "PNDMScheduler", {"skip_prk_steps": True}),
        ("euler_a", "EulerAncestralDiscreteScheduler", {}),
    ],
)  # fmt: skip
def test_scheduler_name_gives_its_class_and_settings(make_ctx, tiny, name, cls, expected):
    sched, warnings = built(make_ctx, tiny, name)
    assert type(sched).__name__ == cls and warnings == []
    assert {k: sched.config[k] for k in expected} == expected
    model = tiny[3].config  # the model's own noise schedule is kept
    for key in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule"):
        assert sched.config[key] == model[key], key


def test_karras_and_timestep_spacing_reach_the_config(make_ctx, tiny):
    sched, warnings = built(make_ctx, tiny, "dpm++2m", karras=True, timestep_spacing="trailing")
    assert sched.config.use_karras_sigmas is True
    assert sched.config.timestep_spacing == "trailing" and warnings == []
    plain, _ = built(make_ctx, tiny, "dpm++2m")
    assert plain.config.use_karras_sigmas is False
    assert plain.config.timestep_spacing == tiny[3].config.get("timestep_spacing", "linspace")
    plain.set_timesteps(10)
    sched.set_timesteps(10)
    assert sched.sigmas.tolist() != plain.sigmas.tolist()  # the options change the schedule


def test_karras_on_a_scheduler_without_it_is_refused(make_ctx, tiny):
    """(It was warned about and left out; tests/nodes/test_schedulers.py: at validation too.)"""
    from latentgraph.nodes.values import NodeInputError

    with pytest.raises(NodeInputError, match="scheduler 'ddim' has no Karras sigmas"):
        built(make_ctx, tiny, "ddim", karras=True)
    spaced, _ = built(make_ctx, tiny, "ddim", timestep_spacing="leading")
    assert spaced.config.timestep_spacing == "leading"


def test_the_model_scheduler_class_comes_from_its_config_else_ddim(tiny):
    from latentgraph.nodes.values import SchedulerSpec

    model = tiny[3]
    own = schedulers.build_scheduler(model)
    assert type(own).__name__ == model.config["_class_name"]
    euler = SchedulerSpec({**model.config, "_class_name": "EulerDiscreteScheduler"})
    assert type(schedulers.build_scheduler(euler)).__name__ == "EulerDiscreteScheduler"
    bare = {k: v for k, v in model.config.items() if k != "_class_name"}
    assert type(schedulers.build_scheduler(SchedulerSpec(bare))).__name__ == "DDIMScheduler"


def test_the_run_seed_reaches_sde_noise_samplers_only(make_ctx, tiny):
    from latentgraph.nodes.seeds import generator_seed

    spec = schedulers.scheduler_select(make_ctx("SchedulerSelect"), tiny[3], "dpm++sde")
    assert schedulers.build_scheduler(spec, 7).config.noise_sampler_seed == generator_seed(7)
    assert schedulers.build_scheduler(spec).config.noise_sampler_seed is None
    ddim = schedulers.scheduler_select(make_ctx("SchedulerSelect"), tiny[3], "ddim")
    assert "noise_sampler_seed" not in schedulers.build_scheduler(ddim, 7).config


def test_only_torchsde_rounding_warning_is_silenced_and_only_for_sde(make_ctx, tiny):
    import warnings

    def heard(message: str, module: str, category: type[Warning] = UserWarning) -> bool:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            schedulers.build_scheduler(spec)  # installs the filter inside this block
            warnings.warn_explicit(message, category, "brownian.py", 1, module=module)
        return any(str(w.message) == message for w in seen)

    rounding = "Should have ta>=t0 but got ta=0.0291675366461277 and t0=0.029168"
    spec = schedulers.scheduler_select(make_ctx("SchedulerSelect"), tiny[3], "dpm++sde")
    assert not heard(rounding, "torchsde._brownian.derived")
    assert not heard("Should have tb<=t1 but got tb=1.0000001 and t1=1.0", "torchsde._core")
    assert heard("Should have tb<=t1 but got tb=1.0000001 and t1=1.0", "mypackage.sde")
    assert heard("some other torchsde warning", "torchsde._brownian.derived")
    assert heard(rounding, "torchsde._brownian.derived", RuntimeWarning)  # another kind
    spec = schedulers.scheduler_select(make_ctx("SchedulerSelect"), tiny[3], "ddim")
    assert heard(rounding, "torchsde._brownian.derived")  # no SDE sampler: nothing silenced
