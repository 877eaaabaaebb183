"""Model sampling: v-prediction detected or declared, SetModelSampling / ModelSamplingDiscrete
(eps, v_prediction, lcm, zsnr) reaching every sampler, against diffusers' pipeline."""

from __future__ import annotations

import pytest

from latentgraph.graph import CancelToken, Context, Settings
from latentgraph.nodes import denoise, latents, loaders, model_sampling, schedulers, text, vae
from latentgraph.nodes.images import to_uint8
from latentgraph.nodes.model_presets import config_folder
from latentgraph.nodes.values import ModelSampling

PROMPT = "a photograph of an astronaut riding a horse"
STEPS, SIZE, SEED = 4, 32, 7


@pytest.fixture(scope="session")
def tiny_v(cache_dir, torch_1thread):
    """(unet, clip, vae, scheduler spec) of builtin:tiny-sd2-v, and its folder."""
    from latentgraph.nodes.tiny_sd2 import ensure_tiny_sd2

    folder = ensure_tiny_sd2()
    ctx = Context("model", "LoadModel", Settings(), CancelToken())
    return loaders.load_model(ctx, "builtin:tiny-sd2-v"), folder


def generate(make_ctx, unet, clip, v, spec, name="euler", ctx=None):
    pos = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    neg = text.text_encode(make_ctx("TextEncode"), clip, "")
    noise = latents.latent_noise(make_ctx("LatentNoise"), SIZE, SIZE, 1, SEED, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name)
    out = denoise.unet_denoise(ctx or make_ctx("UNetDenoise"), unet, sp, pos, neg, noise, STEPS,
                               7.5, 1.0, SEED)  # fmt: skip
    return to_uint8(vae.vae_decode(make_ctx("VAEDecode"), samples=out, vae=v))


def pipeline_image(folder, scheduler, stochastic=False):
    """diffusers' own StableDiffusionPipeline on the folder, with the given scheduler. A
    `stochastic` scheduler's per-step noise comes from a generator of its own seeded with the
    seed (nodes/seeds.py), so the pipeline is given the starting noise and a fresh generator."""
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None,
                                                   requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = scheduler
    start = None
    if stochastic:
        start = latents.make_noise((4, SIZE // 8, SIZE // 8), [SEED])
    ref = pipe(PROMPT, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(SEED), latents=start,
               output_type="np").images  # fmt: skip
    return (ref * 255).round().astype("uint8")


def test_v_model_folder_is_detected_and_matches_the_v_prediction_pipeline(make_ctx, tiny_v):
    from diffusers import EulerDiscreteScheduler

    (unet, clip, v, spec), folder = tiny_v
    assert unet.sampling == ModelSampling("v_prediction")
    assert spec.config["prediction_type"] == "v_prediction"
    ours = generate(make_ctx, unet, clip, v, spec)
    reference = EulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler")
    assert reference.config.prediction_type == "v_prediction"
    assert ours.tobytes() == pipeline_image(folder, reference).tobytes()


def test_declaring_eps_on_the_v_model_changes_the_scheduler_and_the_image(make_ctx, tiny_v):
    (unet, clip, v, spec), _ = tiny_v
    ctx = Context("model", "LoadModel", Settings(), CancelToken())
    eps_unet, _, _, eps_spec = loaders.load_model(ctx, "builtin:tiny-sd2-v", prediction="eps")
    assert eps_unet.unet is unet.unet  # same weights, loaded once
    assert eps_spec.config["prediction_type"] == "epsilon" and eps_unet.sampling.kind == "eps"
    assert (generate(make_ctx, eps_unet, clip, v, eps_spec).tobytes()
            != generate(make_ctx, unet, clip, v, spec).tobytes())  # fmt: skip


def test_set_model_sampling_v_prediction_matches_diffusers_and_differs_from_eps(
        make_ctx, tiny, tiny_folder):  # fmt: skip
    from diffusers import DDIMScheduler

    unet, clip, v, spec = tiny
    assert unet.sampling == ModelSampling("eps")
    v_unet = model_sampling.set_model_sampling(make_ctx("SetModelSampling"), unet, "v_prediction")
    assert v_unet.unet is unet.unet and v_unet.key == unet.key
    sp = model_sampling.for_model(spec, v_unet)
    assert sp.config["prediction_type"] == "v_prediction" and sp.config is not spec.config
    assert spec.config["prediction_type"] == "epsilon"  # the loader's spec is not changed
    ours = generate(make_ctx, v_unet, clip, v, spec, "ddim")
    reference = DDIMScheduler.from_pretrained(tiny_folder, subfolder="scheduler",
                                              prediction_type="v_prediction")  # fmt: skip
    assert ours.tobytes() == pipeline_image(tiny_folder, reference).tobytes()
    assert ours.tobytes() != generate(make_ctx, unet, clip, v, spec, "ddim").tobytes()


def test_zsnr_rescales_the_betas_as_diffusers_does(make_ctx, tiny, tiny_folder):
    from diffusers import EulerDiscreteScheduler

    unet, clip, v, spec = tiny
    z_unet = model_sampling.set_model_sampling(make_ctx("SetModelSampling"), unet, "v_prediction",
                                               True)  # fmt: skip
    sp = model_sampling.for_model(schedulers.scheduler_select(make_ctx(), spec, "euler"), z_unet)
    assert sp.config["rescale_betas_zero_snr"] is True
    built = schedulers.build_scheduler(sp)
    assert built.config.rescale_betas_zero_snr and float(built.alphas_cumprod[-1]) < 1e-6
    ours = generate(make_ctx, z_unet, clip, v, spec)
    reference = EulerDiscreteScheduler.from_pretrained(
        tiny_folder, subfolder="scheduler", prediction_type="v_prediction",
        rescale_betas_zero_snr=True)  # fmt: skip
    assert ours.tobytes() == pipeline_image(tiny_folder, reference).tobytes()
    v_only = model_sampling.set_model_sampling(make_ctx(), unet, "v_prediction")
    assert ours.tobytes() != generate(make_ctx, v_only, clip, v, spec).tobytes()


def test_zsnr_with_a_scheduler_that_cannot_do_it_is_refused_naming_the_input(make_ctx, tiny):
    unet, clip, v, spec = tiny
    z_unet = model_sampling.set_model_sampling(make_ctx(), unet, "eps", True)
    with pytest.raises(
        ValueError, match=r"node 'n1' \(UNetDenoise\) input 'scheduler'.*'heun'.*zsnr"
    ):
        generate(make_ctx, z_unet, clip, v, spec, "heun")


def test_lcm_sampling_uses_lcm_scheduler_whatever_the_sampler(make_ctx, tiny, tiny_folder):
    from diffusers import LCMScheduler

    unet, clip, v, spec = tiny
    lcm = model_sampling.set_model_sampling(make_ctx(), unet, "lcm")
    sp = model_sampling.for_model(schedulers.scheduler_select(make_ctx(), spec, "euler"), lcm)
    assert sp.class_name == "LCMScheduler" and sp.config["prediction_type"] == "epsilon"
    ctx = make_ctx("UNetDenoise")
    with_euler = generate(make_ctx, lcm, clip, v, spec, "euler", ctx=ctx)
    assert any("LCMScheduler" in w and "'euler'" in w for w in ctx.rec.warnings)
    ctx = make_ctx("UNetDenoise")
    with_lcm = generate(make_ctx, lcm, clip, v, spec, "lcm", ctx=ctx)
    assert ctx.rec.warnings == [] and with_lcm.tobytes() == with_euler.tobytes()
    reference = LCMScheduler.from_pretrained(tiny_folder, subfolder="scheduler")
    assert with_lcm.tobytes() == pipeline_image(tiny_folder, reference, stochastic=True).tobytes()
    assert with_lcm.tobytes() != generate(make_ctx, unet, clip, v, spec, "euler").tobytes()


def test_sampling_survives_lora_and_merges(make_ctx, tiny):
    from latentgraph.nodes import lora, merge

    unet, clip, _, _ = tiny
    v_unet = model_sampling.set_model_sampling(make_ctx(), unet, "v_prediction", True)
    patched, _ = lora.load_lora(make_ctx("LoadLoRA"), v_unet, clip, "builtin:tiny-lora", 0.5, 0)
    assert patched.sampling == ModelSampling("v_prediction", True)
    merged = merge.merge_models(make_ctx("MergeModels"), v_unet, unet, 0.5)
    assert merged.sampling == v_unet.sampling  # the first model's, as ComfyUI keeps model1's


def _single_file(tmp_path, extra: dict) -> str:
    from safetensors.torch import load_file, save_file

    from latentgraph.nodes.tiny_model import write_single_file

    path = write_single_file(tmp_path / "plain.safetensors")
    state = {**load_file(str(path)), **extra}
    out = tmp_path / "marked.safetensors"
    save_file(state, str(out))
    return str(out)


@pytest.mark.parametrize(("markers", "expected"), [
    ((), ModelSampling("eps")),
    (("v_pred",), ModelSampling("v_prediction")),
    (("v_pred", "ztsnr"), ModelSampling("v_prediction", True)),
])  # fmt: skip
def test_single_file_markers_are_detected(make_ctx, tiny, tmp_path, markers, expected):
    import torch

    from latentgraph.nodes import comfy

    path = _single_file(tmp_path, {m: torch.tensor([]) for m in markers})
    unet, _, _, spec = loaders.load_model(make_ctx("LoadModel"), path)
    assert unet.sampling == expected
    assert spec.config["prediction_type"] == expected.prediction_type
    assert spec.config["rescale_betas_zero_snr"] is expected.zsnr
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "m.safetensors").symlink_to(path)
    model, _, _ = comfy.checkpoint_loader(make_ctx("CheckpointLoaderSimple",
                                                   models_dirs=[tmp_path]), "m.safetensors")  # fmt: skip
    assert model.sampling == expected
    used = model_sampling.for_model(comfy.sampler_spec(model, "euler", "normal"), model)
    assert used.config["prediction_type"] == expected.prediction_type


@pytest.mark.parametrize(("spread", "preset"), [(0.2, "sd2"), (0.01, "sd2-base")])
def test_sd2_768_v_and_512_base_are_told_apart_by_their_weights(make_ctx, tmp_path, spread,
                                                                preset):  # fmt: skip
    """Same shapes; ComfyUI's rule: the v-model's last attention norm biases spread wider."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    state = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight":
            torch.zeros(320, 1024),
        model_sampling.SD2_V_PROBE: torch.randn(640, generator=gen) * spread,
    }  # fmt: skip
    path = tmp_path / "sd2.safetensors"
    save_file(state, str(path))
    folder = loaders.single_file_config(make_ctx("LoadModel"), str(path), "auto")
    assert folder == str(config_folder(preset))
    from diffusers import DDIMScheduler

    config = DDIMScheduler.load_config(folder, subfolder="scheduler")
    wanted = "v_prediction" if preset == "sd2" else "epsilon"
    assert model_sampling.from_scheduler_config(config).prediction_type == wanted


def test_comfy_model_sampling_discrete_keeps_the_checkpoints_schedule(make_ctx):
    from latentgraph.nodes import comfy, comfy_models

    names = {t.name: [i.name for i in t.inputs] for t in comfy.comfy_registry}
    assert names["ModelSamplingDiscrete"] == ["model", "sampling", "zsnr"]
    model, _, _ = comfy.checkpoint_loader(make_ctx("CheckpointLoaderSimple"), "builtin:tiny-sd")
    out = comfy_models.model_sampling_discrete(make_ctx("ModelSamplingDiscrete"), model,
                                               "v_prediction", True)  # fmt: skip
    assert out.scheduler_config == model.scheduler_config is not None
    assert out.sampling == ModelSampling("v_prediction", True)
    spec = comfy.sampler_spec(out, "euler", "normal")
    assert model_sampling.for_model(spec, out).config["prediction_type"] == "v_prediction"


def _lcm_lora_prompt(sampler: str) -> dict:
    """ComfyUI's LCM-LoRA recipe: LoraLoader, ModelSamplingDiscrete lcm, KSampler lcm."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
        "2": {"class_type": "LoraLoader",
              "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": "builtin:tiny-lora",
                         "strength_model": 1.0, "strength_clip": 1.0}},
        "3": {"class_type": "ModelSamplingDiscrete",
              "inputs": {"model": ["2", 0], "sampling": "lcm", "zsnr": False}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": PROMPT}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": ""}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32,
                                                          "batch_size": 1}},
        "7": {"class_type": "KSampler",
              "inputs": {"model": ["3", 0], "seed": SEED, "steps": 4, "cfg": 1.5,
                         "sampler_name": sampler, "scheduler": "sgm_uniform",
                         "positive": ["4", 0], "negative": ["5", 0], "latent_image": ["6", 0],
                         "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "lcm"}},
    }  # fmt: skip


def _run_image(prompt: dict, settings: Settings):
    import numpy as np
    from PIL import Image

    import latentgraph.nodes  # noqa: F401 - registers the nodes, ComfyUI's included
    from latentgraph.graph import default_registry
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.scheduler import Scheduler

    graph = graph_from_prompt(prompt, default_registry)
    result = Scheduler(default_registry, settings=settings).run(graph)
    assert result.ok, result.failures
    [image] = result.ui["9"]["images"]
    with Image.open(settings.output_dir / image["subfolder"] / image["filename"]) as img:
        return np.asarray(img.convert("RGB")).tobytes()


def test_comfy_lcm_lora_prompt_runs_and_its_sampling_reaches_ksampler(tiny, tmp_path):
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    with_lcm = _run_image(_lcm_lora_prompt("lcm"), settings)
    # euler on an lcm model: sampled with LCMScheduler all the same
    assert _run_image(_lcm_lora_prompt("euler"), settings) == with_lcm
    eps = _lcm_lora_prompt("euler")
    eps["3"]["inputs"]["sampling"] = "eps"
    assert _run_image(eps, settings) != with_lcm


def test_lcm_lora_workflow_runs_and_a_sampling_change_reruns_only_the_sampler(tiny, tmp_path):
    from pathlib import Path

    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.graph import default_registry
    from latentgraph.graph.scheduler import Scheduler
    from latentgraph.graph.workflow import load_workflow

    path = Path(__file__).resolve().parents[2] / "workflows" / "lcm_lora.yaml"
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(default_registry, settings=settings)
    small = {"width": "32", "height": "32"}
    first = sched.run(load_workflow(path, overrides=small).graph)
    assert first.ok, first.failures
    second = sched.run(load_workflow(path, overrides={**small, "sampling": "eps"}).graph)
    assert second.ok, second.failures
    assert set(second.executed) == {"sampling", "denoise", "decode", "save"}
    assert {"model", "lcm", "positive", "negative", "noise"} <= set(second.cached)
