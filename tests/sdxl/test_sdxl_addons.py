"""SDXL with LoRA, CLIP merges, textual-inversion embeddings and a separate VAE: both text
encoders get their part, against diffusers' StableDiffusionXLPipeline."""

from __future__ import annotations

import pytest

from latentgraph.nodes import lora, merge, text

from .test_sdxl import PROMPT, _pipeline, generate


def state_bytes(module) -> dict[str, bytes]:
    return {k: v.numpy().tobytes() for k, v in module.state_dict().items()}


def _lora_pipeline_image(folder, spec, path, strength):
    """diffusers: load_lora_weights, fuse into the UNet and both text encoders, unload."""
    import torch
    from safetensors.torch import load_file

    from latentgraph.nodes import schedulers

    pipe = _pipeline(folder)
    pipe.load_lora_weights(load_file(str(path)), adapter_name="l")
    pipe.fuse_lora(components=["unet", "text_encoder", "text_encoder_2"], lora_scale=strength,
                   adapter_names=["l"])  # fmt: skip
    pipe.unload_lora_weights()
    pipe.scheduler = schedulers.build_scheduler(spec, 42)
    ref = pipe(PROMPT, negative_prompt="", height=32, width=32, num_inference_steps=4,
               guidance_scale=5.0, generator=torch.Generator().manual_seed(42),
               output_type="np").images  # fmt: skip
    return (ref * 255).round().astype("uint8")


@pytest.mark.parametrize("name", ["builtin:tiny-sdxl-lora", "builtin:tiny-sdxl-lora-diffusers"])
def test_sdxl_lora_matches_diffusers_on_unet_and_both_text_encoders(make_ctx, sdxl, sdxl_folder,
                                                                    name):  # fmt: skip
    unet, clip, v, spec = sdxl
    ctx = make_ctx("LoadLoRA")
    u2, c2 = lora.load_lora(ctx, unet, clip, name, 0.8, 0.8)
    assert ctx.rec.warnings == []  # every layer has its place (nodes/lora.py `unplaced`)
    assert c2.text_encoder is not clip.text_encoder
    assert c2.text_encoder_2 is not clip.text_encoder_2 and c2.tokenizer_2 is clip.tokenizer_2
    ours, sp = generate(make_ctx, (u2, c2, v, spec), steps=4, size=32)
    ref = _lora_pipeline_image(sdxl_folder, sp, lora.lora_path(name), 0.8)
    assert ours.tobytes() == ref.tobytes()


def test_sdxl_lora_on_the_second_encoder_alone_changes_the_conditioning(make_ctx, sdxl, tmp_path):
    """A LoRA with only lora_te2_ keys changes the second encoder's half (and pooled) only."""
    import torch

    from latentgraph.nodes.tiny_addons import lora_tensors, save_atomic

    unet, clip, _, _ = sdxl
    te2_only = {k: t for k, t in lora_tensors("kohya", model="sdxl").items()
                if k.startswith("lora_te2_")}  # fmt: skip
    save_atomic(te2_only, tmp_path / "loras" / "te2.safetensors")
    ctx = make_ctx("LoadLoRA", models_dirs=[tmp_path])
    _, c2 = lora.load_lora(ctx, unet, clip, "te2.safetensors", 1.0, 1.0)
    assert c2.text_encoder is clip.text_encoder  # nothing for the first encoder
    before = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    after = text.text_encode(make_ctx("TextEncode"), c2, PROMPT)
    width_l = clip.text_encoder.config.hidden_size
    assert torch.equal(after.embeds[..., :width_l], before.embeds[..., :width_l])
    assert not torch.equal(after.embeds[..., width_l:], before.embeds[..., width_l:])
    assert not torch.equal(after.pooled, before.pooled)


def test_removing_the_sdxl_lora_restores_the_base_output_exactly(make_ctx, sdxl):
    unet, clip, v, spec = sdxl
    before, _ = generate(make_ctx, sdxl, steps=3, size=32)
    saved = [state_bytes(m) for m in (unet.unet, clip.text_encoder, clip.text_encoder_2)]
    u2, c2 = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-sdxl-lora", 1.0, 1.0)
    with_lora, _ = generate(make_ctx, (u2, c2, v, spec), steps=3, size=32)
    assert with_lora.tobytes() != before.tobytes()
    assert [state_bytes(m) for m in (unet.unet, clip.text_encoder, clip.text_encoder_2)] == saved
    after, _ = generate(make_ctx, sdxl, steps=3, size=32)
    assert after.tobytes() == before.tobytes()


def test_sdxl_lora_on_the_refiner_patches_its_only_encoder(make_ctx, refiner):
    unet, clip, _, _ = refiner
    _, c2 = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-sdxl-lora", 0.0, 1.0)
    assert c2.text_encoder is None and c2.text_encoder_2 is not clip.text_encoder_2


def _blend(a, b, ratio):
    return {k: (a[k].float() * ratio + b[k].float() * (1 - ratio)).to(a[k].dtype) for k in a}


def test_clip_merge_blends_both_sdxl_encoders(make_ctx, sdxl):
    import torch

    from latentgraph.nodes import comfy_models

    unet, clip, _, _ = sdxl
    _, other = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-sdxl-lora", 0.0, 2.0)
    merged = comfy_models.clip_merge_simple(make_ctx("CLIPMergeSimple"), clip, other, 0.25)
    for name in ("text_encoder", "text_encoder_2"):
        a, b = getattr(clip, name).state_dict(), getattr(other, name).state_dict()
        expected, got = _blend(a, b, 0.25), getattr(merged, name).state_dict()
        assert all(torch.equal(got[k], expected[k]) for k in a if k.endswith("weight"))
        assert any(not torch.equal(got[k], a[k]) for k in a)
    assert merged.tokenizer_2 is clip.tokenizer_2
    again = merge.merge_text_encoders(make_ctx("MergeTextEncoders"), clip, other, 0.25)
    assert again.text_encoder_2 is merged.text_encoder_2  # computed once per process


def test_merging_an_sdxl_clip_with_an_sd_clip_is_refused(make_ctx, sdxl, tiny):
    with pytest.raises(ValueError, match=r"node 'n1' \(MergeTextEncoders\).*only the first has a "
                                         r"text_encoder_2"):  # fmt: skip
        merge.merge_text_encoders(make_ctx("MergeTextEncoders"), sdxl[1], tiny[1], 0.5)


# --- embeddings --------------------------------------------------------------------------------


@pytest.fixture
def addons(tmp_path):
    from latentgraph.nodes.tiny_addons import write_models_folder

    write_models_folder(tmp_path)
    return tmp_path


def test_sdxl_embedding_gives_each_encoder_its_part_as_diffusers_does(make_ctx, sdxl, sdxl_folder,
                                                                      addons):  # fmt: skip
    """diffusers' recipe: load_textual_inversion of "clip_l" into the first encoder and of
    "clip_g" into the second, under one token."""
    import torch
    from safetensors.torch import load_file

    path = addons / "embeddings" / "tiny-embedding-sdxl.safetensors"
    tensors = load_file(str(path))
    ours = text.text_encode(make_ctx("TextEncode", models_dirs=[addons]), sdxl[1],
                            "embedding:tiny-embedding-sdxl a car")  # fmt: skip
    pipe = _pipeline(sdxl_folder)
    pipe.load_textual_inversion(tensors["clip_l"], token="<e>", text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)  # fmt: skip
    pipe.load_textual_inversion(tensors["clip_g"], token="<e>", text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)  # fmt: skip
    embeds, _, pooled, _ = pipe.encode_prompt("<e> a car", device="cpu", num_images_per_prompt=1,
                                              do_classifier_free_guidance=False)  # fmt: skip
    assert torch.equal(ours.embeds, embeds)
    assert torch.equal(ours.pooled, pooled)
    plain = text.text_encode(make_ctx("TextEncode"), sdxl[1], "a car")
    width_l = sdxl[1].text_encoder.config.hidden_size
    for part in (slice(0, width_l), slice(width_l, None)):  # both halves changed
        assert not torch.equal(ours.embeds[..., part], plain.embeds[..., part])


def test_sdxl_embedding_on_the_refiner_uses_clip_g(make_ctx, refiner, addons):
    import torch

    cond = text.text_encode(make_ctx("TextEncode", models_dirs=[addons]), refiner[1],
                            "embedding:tiny-embedding-sdxl a car")  # fmt: skip
    plain = text.text_encode(make_ctx("TextEncode"), refiner[1], "a car")
    assert not torch.equal(cond.embeds, plain.embeds)


def test_sd1_embedding_or_a_missing_one_on_sdxl_is_named(make_ctx, sdxl, addons):
    from latentgraph.nodes import comfy_sdxl

    ctx = make_ctx("TextEncode", models_dirs=[addons])
    with pytest.raises(ValueError, match=r"'text'.*embedding 'tiny-embedding' has no SDXL "
                                         r"'clip_g' vectors"):  # fmt: skip
        text.text_encode(ctx, sdxl[1], "embedding:tiny-embedding a car")
    with pytest.raises(ValueError, match=r"'text'.*embedding 'nope' not found"):
        text.text_encode(ctx, sdxl[1], "a embedding:nope car")
    ctx = make_ctx("CLIPTextEncodeSDXL", models_dirs=[addons])
    with pytest.raises(ValueError, match=r"input 'text_l'.*embedding 'nope' not found"):
        comfy_sdxl.clip_text_encode_sdxl(ctx, sdxl[1], 64, 64, 0, 0, 64, 64, "a car",
                                         "embedding:nope")  # fmt: skip


# --- LoadVAE --------------------------------------------------------------------------------


def test_load_vae_takes_the_scaling_factor_from_the_file_or_the_config(make_ctx, sdxl, tmp_path):
    from safetensors.torch import load_file, save_file

    from latentgraph.nodes import loaders
    from latentgraph.nodes.tiny_model import write_single_file as write_sd
    from latentgraph.nodes.tiny_sdxl import write_single_file as write_sdxl

    def scaling(source, config="auto"):
        return loaders.load_vae(make_ctx("LoadVAE"), str(source), config).scaling_factor

    sdxl_file = write_sdxl(tmp_path / "sdxl.safetensors")
    sd_file = write_sd(tmp_path / "sd.safetensors")
    assert scaling(sdxl_file) == 0.13025  # a full SDXL checkpoint's VAE: SDXL's factor
    assert scaling(sd_file) == 0.18215
    vae_only = {k: t for k, t in load_file(str(sdxl_file)).items()
                if k.startswith("first_stage_model.")}  # fmt: skip
    save_file(vae_only, str(tmp_path / "vae.safetensors"))
    assert scaling(tmp_path / "vae.safetensors") == 0.18215  # same shapes as SD's: SD assumed
    spec = {"modelspec.architecture": "stable-diffusion-xl-v1-base/vae"}  # SAI model spec
    save_file(vae_only, str(tmp_path / "vae-spec.safetensors"), metadata=spec)
    assert scaling(tmp_path / "vae-spec.safetensors") == 0.13025
    assert scaling(tmp_path / "vae.safetensors", "tiny-sdxl") == 0.13025  # declared
    assert scaling(tmp_path / "sdxl.safetensors", "builtin:tiny-sd") == 0.18215
    folder_vae = loaders.load_vae(make_ctx("LoadVAE"), "builtin:tiny-sdxl")  # its config
    assert folder_vae.scaling_factor == sdxl[2].scaling_factor == 0.13025


def test_comfy_vae_loader_reads_an_sdxl_checkpoint_with_its_factor(make_ctx, tmp_path):
    from latentgraph.nodes import comfy
    from latentgraph.nodes.tiny_sdxl import write_single_file

    write_single_file(tmp_path / "vae" / "sdxl-full.safetensors")
    vae = comfy.vae_loader(make_ctx("VAELoader", models_dirs=[tmp_path]), "sdxl-full.safetensors")
    assert vae.scaling_factor == 0.13025


# --- SaveCheckpoint ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["base", "refiner"])
def test_save_checkpoint_keeps_both_sdxl_encoders_and_the_v_prediction_marker(
        make_ctx, sdxl, refiner, tmp_path, which):  # fmt: skip
    import torch

    from latentgraph.nodes import loaders, model_sampling
    from latentgraph.nodes.values import ModelSampling

    unet, clip, vae, _ = sdxl if which == "base" else refiner
    v_unet = model_sampling.set_model_sampling(make_ctx(), unet, "v_prediction", True)
    merge.save_checkpoint(make_ctx("SaveCheckpoint"), v_unet, clip, vae, "checkpoints/xl")
    path = tmp_path / "output" / "checkpoints" / "xl_00001_.safetensors"
    back_unet, back_clip, back_vae, spec = loaders.load_model(make_ctx("LoadModel"), str(path))
    assert back_unet.sampling == ModelSampling("v_prediction", True)
    assert spec.config["prediction_type"] == "v_prediction"
    assert back_vae.scaling_factor == 0.13025
    pairs = [(back_clip.text_encoder_2, clip.text_encoder_2), (back_unet.unet, unet.unet)]
    if which == "base":
        pairs.append((back_clip.text_encoder, clip.text_encoder))
    else:
        assert back_clip.text_encoder is None
    for saved, original in pairs:
        theirs = original.state_dict()
        for k, v in saved.state_dict().items():
            assert torch.equal(v, theirs[k]), k
