"""SDXL: the tiny model, encoding with both encoders, and the graph against diffusers' pipeline."""

from __future__ import annotations

import json

import pytest

from latentgraph.nodes import comfy, comfy_sdxl, denoise, latents, schedulers, sdxl, text, vae
from latentgraph.nodes.images import to_uint8
from latentgraph.nodes.values import Conditioning, SizeConditioning

PROMPT = "a photograph of an astronaut riding a horse"


def test_tiny_sdxl_has_sdxl_structure(sdxl_folder, refiner_folder, sdxl):
    from latentgraph.nodes.tiny_sdxl import TEXT_CONFIG, TEXT_CONFIG_2

    index = json.loads((sdxl_folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    unet, clip, _, spec = sdxl
    config = unet.unet.config
    assert config.addition_embed_type == "text_time"
    assert config.cross_attention_dim == TEXT_CONFIG["hidden_size"] + TEXT_CONFIG_2["hidden_size"]
    assert config.projection_class_embeddings_input_dim == (
        6 * config.addition_time_embed_dim + TEXT_CONFIG_2["projection_dim"]
    )
    assert type(clip.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert clip.tokenizer_2.pad_token == "!" and clip.tokenizer.pad_token == "<|endoftext|>"
    assert spec.class_name == "EulerDiscreteScheduler"
    refiner_index = json.loads((refiner_folder / "model_index.json").read_text())
    assert refiner_index["text_encoder"] == [None, None]
    assert refiner_index["requires_aesthetics_score"] is True


def test_refiner_shares_the_base_vae_and_second_encoder(sdxl, refiner):
    import torch

    assert refiner[1].text_encoder is None and refiner[1].tokenizer is None
    for a, b in (
        (sdxl[1].text_encoder_2, refiner[1].text_encoder_2),
        (sdxl[2].vae, refiner[2].vae),
    ):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert refiner[0].unet.config.cross_attention_dim == sdxl[1].text_encoder_2.config.hidden_size


def _pipeline(folder):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(folder, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_text_encode_matches_the_pipelines_encode_prompt(make_ctx, sdxl, sdxl_folder):
    import torch

    cond = text.text_encode(make_ctx("TextEncode"), sdxl[1], PROMPT)
    pipe = _pipeline(sdxl_folder)
    embeds, _, pooled, _ = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1,
                                              do_classifier_free_guidance=False)  # fmt: skip
    assert cond.embeds.shape == embeds.shape == (1, 77, 96)
    assert torch.equal(cond.embeds, embeds)
    assert torch.equal(cond.pooled, pooled) and cond.pooled.shape == (1, 32)
    assert cond.single.size == SizeConditioning()  # unset: taken from the latent at sampling


def generate(make_ctx, model, name=None, seed=42, steps=6, size=64, guidance=5.0, pos=None,
             neg=None):  # fmt: skip
    unet, clip, v, spec = model
    pos = pos or text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    neg = neg or text.text_encode(make_ctx("TextEncode"), clip, "")
    noise = latents.latent_noise(make_ctx("LatentNoise"), size, size, 1, seed, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, name) if name else spec
    out = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, pos, neg, noise, steps,
                               guidance, 1.0, seed)  # fmt: skip
    return to_uint8(vae.vae_decode(make_ctx("VAEDecode"), samples=out, vae=v)), sp


@pytest.mark.parametrize("name", [None, "dpm++2m"])  # None: the model's own (Euler)
def test_golden_matches_stable_diffusion_xl_pipeline(make_ctx, sdxl, sdxl_folder, name):
    import torch

    ours, spec = generate(make_ctx, sdxl, name, seed=42, steps=8, size=64)
    pipe = _pipeline(sdxl_folder)
    pipe.scheduler = schedulers.build_scheduler(spec, 42)
    ref = pipe(PROMPT, negative_prompt="", height=64, width=64, num_inference_steps=8,
               guidance_scale=5.0, generator=torch.Generator().manual_seed(42),
               output_type="np").images  # fmt: skip
    ref8 = (ref * 255).round().astype("uint8")
    assert ours.shape == ref8.shape == (1, 64, 64, 3)
    assert ours.tobytes() == ref8.tobytes()


def test_size_conditioning_reaches_the_unet(make_ctx, sdxl):
    clip = sdxl[1]
    pos = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    plain, _ = generate(make_ctx, sdxl, steps=3, size=32, pos=pos)
    # the latent's own size, said explicitly: the same image
    explicit = sdxl_size(pos, width=32, height=32, target_width=32, target_height=32)
    again, _ = generate(make_ctx, sdxl, steps=3, size=32, pos=explicit)
    assert again.tobytes() == plain.tobytes()
    cropped, _ = generate(make_ctx, sdxl, steps=3, size=32,
                          pos=sdxl_size(pos, crop_w=256, crop_h=128))  # fmt: skip
    assert cropped.tobytes() != plain.tobytes()


def sdxl_size(cond, **size):
    return sdxl.size_conditioning(cond, **size)


def test_time_ids_base_and_refiner_defaults():
    unset = SizeConditioning()
    assert sdxl.time_ids(unset, (8, 12), 6, negative=False) == [64, 96, 0, 0, 64, 96]
    assert sdxl.time_ids(unset, (8, 12), 5, negative=False) == [64, 96, 0, 0, 6.0]
    assert sdxl.time_ids(unset, (8, 12), 5, negative=True) == [64, 96, 0, 0, 2.5]
    given = SizeConditioning(1024, 768, 16, 32, None, None, 7.5)
    assert sdxl.time_ids(given, (8, 8), 6, negative=False) == [768, 1024, 32, 16, 768, 1024]
    assert sdxl.time_ids(given, (8, 8), 5, negative=True) == [768, 1024, 32, 16, 7.5]


def test_clip_text_encode_sdxl_encodes_g_and_l_separately(make_ctx, sdxl):
    import torch

    clip = sdxl[1]
    both = comfy_sdxl.clip_text_encode_sdxl(make_ctx("CLIPTextEncodeSDXL"), clip, 1024, 768, 8,
                                            16, 2048, 1536, "a red fox", "a blue bird")  # fmt: skip
    g = text.text_encode(make_ctx("TextEncode"), clip, "a red fox")
    l_ = text.text_encode(make_ctx("TextEncode"), clip, "a blue bird")
    width_l = clip.text_encoder.config.hidden_size
    assert torch.equal(both.embeds[..., :width_l], l_.embeds[..., :width_l])
    assert torch.equal(both.embeds[..., width_l:], g.embeds[..., width_l:])
    assert torch.equal(both.pooled, g.pooled)  # pooled from the second (g) encoder
    assert both.single.size == SizeConditioning(1024, 768, 8, 16, 2048, 1536, None)


def test_clip_text_encode_on_sdxl_equals_text_encode(make_ctx, sdxl):
    import torch

    ours = text.text_encode(make_ctx("TextEncode"), sdxl[1], PROMPT)
    theirs = comfy.clip_text_encode(make_ctx("CLIPTextEncode"), PROMPT, sdxl[1])
    assert torch.equal(ours.embeds, theirs.embeds) and torch.equal(ours.pooled, theirs.pooled)


def test_refiner_encoding_uses_only_the_second_encoder(make_ctx, refiner, sdxl):
    import torch

    cond = comfy_sdxl.clip_text_encode_sdxl_refiner(make_ctx("CLIPTextEncodeSDXLRefiner"),
                                                    refiner[1], 2.5, 512, 512, PROMPT)  # fmt: skip
    base = text.text_encode(make_ctx("TextEncode"), sdxl[1], PROMPT)
    width_l = sdxl[1].text_encoder.config.hidden_size
    assert cond.embeds.shape[-1] == refiner[0].unet.config.cross_attention_dim
    assert torch.equal(cond.embeds, base.embeds[..., width_l:])
    assert cond.single.size.aesthetic_score == 2.5 and cond.single.size.width == 512


def test_sd_conditioning_on_an_sdxl_model_is_a_clear_error(make_ctx, sdxl, tiny):
    sd_cond = text.text_encode(make_ctx("TextEncode"), tiny[1], PROMPT)
    with pytest.raises(ValueError, match="'positive'.*SDXL text encoder"):
        generate(make_ctx, sdxl, steps=2, size=32, pos=sd_cond, guidance=1.0)


def test_sdxl_encoders_refused_by_clip_text_encode_sdxl_for_sd(make_ctx, tiny):
    with pytest.raises(ValueError, match="not an SDXL text encoder"):
        comfy_sdxl.clip_text_encode_sdxl(make_ctx("CLIPTextEncodeSDXL"), tiny[1], 1024, 1024, 0,
                                         0, 1024, 1024, "a", "b")  # fmt: skip


def test_conditioning_codec_keeps_pooled_and_size(make_ctx, sdxl):
    import torch

    from latentgraph.graph.cache import codec_for

    cond = sdxl_size(text.text_encode(make_ctx("TextEncode"), sdxl[1], PROMPT), width=640,
                     crop_h=8, aesthetic_score=3.0)  # fmt: skip
    codec = codec_for(cond)
    back = codec.decode(codec.encode(cond))
    assert isinstance(back, Conditioning) and back.single.size == cond.single.size
    assert torch.equal(back.pooled, cond.pooled) and torch.equal(back.embeds, cond.embeds)


def test_clip_set_last_layer_on_sdxl_picks_the_layer_of_both_encoders(make_ctx, sdxl):
    import torch

    plain = comfy.clip_text_encode(make_ctx("CLIPTextEncode"), PROMPT, sdxl[1])
    skip2 = comfy.clip_set_last_layer(make_ctx("CLIPSetLastLayer"), sdxl[1], -2)
    same = comfy.clip_text_encode(make_ctx("CLIPTextEncode"), PROMPT, skip2)
    assert torch.equal(same.embeds, plain.embeds)  # SDXL's default is the penultimate layer
    last = comfy.clip_set_last_layer(make_ctx("CLIPSetLastLayer"), sdxl[1], -1)
    other = comfy.clip_text_encode(make_ctx("CLIPTextEncode"), PROMPT, last)
    assert not torch.equal(other.embeds, plain.embeds)
    assert torch.equal(other.pooled, plain.pooled)  # the pooled output is the final one


@pytest.mark.parametrize("which", ["sdxl", "refiner"])
def test_load_text_encoder_on_an_sdxl_folder_loads_both_pairs(make_ctx, sdxl, refiner,
                                                              sdxl_folder, refiner_folder, which):  # fmt: skip
    import torch

    from latentgraph.nodes import loaders

    model, folder = (sdxl, sdxl_folder) if which == "sdxl" else (refiner, refiner_folder)
    clip = loaders.load_text_encoder(make_ctx("LoadTextEncoder"), str(folder))
    assert clip.is_sdxl and (clip.text_encoder is None) == (which == "refiner")
    ours = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    theirs = text.text_encode(make_ctx("TextEncode"), model[1], PROMPT)
    assert torch.equal(ours.embeds, theirs.embeds) and torch.equal(ours.pooled, theirs.pooled)


def test_load_model_detects_a_plain_sdxl_folder(make_ctx, sdxl_folder, sdxl):
    import torch

    from latentgraph.nodes import loaders

    unet, clip, _, spec = loaders.load_model(make_ctx("LoadModel"), str(sdxl_folder))
    assert clip.is_sdxl and spec.class_name == "EulerDiscreteScheduler"
    assert torch.equal(unet.unet.state_dict()["add_embedding.linear_1.weight"],
                       sdxl[0].unet.state_dict()["add_embedding.linear_1.weight"])  # fmt: skip


def test_comfy_sdxl_encoders_keep_comfyuis_input_order():
    """The editor's widgets_values map by this order (nodes_clip_sdxl.py in ComfyUI)."""
    names = {t.name: [i.name for i in t.inputs] for t in comfy.comfy_registry}
    assert names["CLIPTextEncodeSDXL"] == ["clip", "width", "height", "crop_w", "crop_h",
                                           "target_width", "target_height", "text_g", "text_l"]  # fmt: skip
    assert names["CLIPTextEncodeSDXLRefiner"] == ["clip", "ascore", "width", "height", "text"]


def test_sdxl_prompt_weights_move_only_the_weighted_tokens_of_both_encoders(make_ctx, sdxl):
    import torch

    clip = sdxl[1]
    plain = text.text_encode(make_ctx("TextEncode"), clip, "a red fox")
    same = text.text_encode(make_ctx("TextEncode"), clip, "a (red:1.0) fox")
    assert torch.equal(same.embeds, plain.embeds) and torch.equal(same.pooled, plain.pooled)
    ctx = make_ctx("TextEncode")
    heavy = text.text_encode(ctx, clip, "a (red:1.3) fox")
    empty = text.text_encode(make_ctx("TextEncode"), clip, "")
    assert ctx.rec.warnings == []
    changed = (heavy.embeds != plain.embeds).any(dim=-1)[0]
    assert changed.nonzero().flatten().tolist() == [2]  # <bos> a red: only "red", both halves
    width_l = clip.text_encoder.config.hidden_size
    for part in (slice(0, width_l), slice(width_l, None)):
        assert (heavy.embeds[0, 2, part] != plain.embeds[0, 2, part]).any()
    expected = (plain.embeds[0, 2] - empty.embeds[0, 2]) * 1.3 + empty.embeds[0, 2]
    assert torch.allclose(heavy.embeds[0, 2], expected, atol=1e-6)
    assert torch.equal(heavy.pooled, plain.pooled)  # weights act on the hidden states only
