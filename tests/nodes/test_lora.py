"""LoadLoRA / LoraLoader against diffusers' load_lora_weights + fuse_lora, base model untouched."""

from __future__ import annotations

import pytest

from latentgraph.nodes import denoise, latents, lora, schedulers, text, vae
from latentgraph.nodes.images import to_uint8

PROMPT = "a photograph of an astronaut riding a horse"
STEPS, SIZE, SEED = 4, 32, 42


def generate(make_ctx, unet, clip, v, spec):
    pos = text.text_encode(make_ctx("TextEncode"), clip, PROMPT)
    neg = text.text_encode(make_ctx("TextEncode"), clip, "")
    noise = latents.latent_noise(make_ctx("LatentNoise"), SIZE, SIZE, 1, SEED, vae=v)
    sp = schedulers.scheduler_select(make_ctx("SchedulerSelect"), spec, "ddim")
    out = denoise.unet_denoise(make_ctx("UNetDenoise"), unet, sp, pos, neg, noise, STEPS, 7.5,
                               1.0, SEED)  # fmt: skip
    return to_uint8(vae.vae_decode(make_ctx("VAEDecode"), samples=out, vae=v)), sp


def pipeline_image(tiny_folder, spec, loras):
    """diffusers: each (file, strength) loaded with load_lora_weights, fused, unloaded."""
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    pipe = StableDiffusionPipeline.from_pretrained(tiny_folder, safety_checker=None,
                                                   requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    for i, (path, strength) in enumerate(loras):
        pipe.load_lora_weights(load_file(str(path)), adapter_name=f"l{i}")
        pipe.fuse_lora(components=["unet", "text_encoder"], lora_scale=strength,
                       adapter_names=[f"l{i}"])  # fmt: skip
        pipe.unload_lora_weights()
    pipe.scheduler = schedulers.build_scheduler(spec, SEED)
    ref = pipe(PROMPT, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(SEED), output_type="np").images  # fmt: skip
    return (ref * 255).round().astype("uint8")


def state_bytes(module) -> dict[str, bytes]:
    return {k: v.numpy().tobytes() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", ["builtin:tiny-lora", "builtin:tiny-lora-diffusers"])
def test_lora_matches_diffusers_load_lora_weights_and_fuse(make_ctx, tiny, tiny_folder, name):
    unet, clip, v, spec = tiny
    u2, c2 = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, name, 0.8, 0.8)
    ours, sp = generate(make_ctx, u2, c2, v, spec)
    ref = pipeline_image(tiny_folder, sp, [(lora.lora_path(name), 0.8)])
    assert ours.tobytes() == ref.tobytes()


def test_stacked_loras_match_diffusers_fusing_one_after_another(make_ctx, tiny, tiny_folder):
    unet, clip, v, spec = tiny
    u1, c1 = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-lora", 0.6, 0.6)
    u2, c2 = lora.load_lora(make_ctx("LoadLoRA"), u1, c1, "builtin:tiny-lora-diffusers", -0.3,
                            -0.3)  # fmt: skip
    ours, sp = generate(make_ctx, u2, c2, v, spec)
    ref = pipeline_image(tiny_folder, sp, [(lora.lora_path("builtin:tiny-lora"), 0.6),
                                           (lora.lora_path("builtin:tiny-lora-diffusers"), -0.3)])  # fmt: skip
    assert ours.tobytes() == ref.tobytes()
    one, _ = generate(make_ctx, u1, c1, v, spec)
    assert one.tobytes() != ours.tobytes()


def test_unfused_diffusers_lora_is_within_rounding(make_ctx, tiny, tiny_folder):
    """diffusers without fuse_lora computes W x + s B A x instead of (W + s B A) x: the same
    up to float rounding (documented in docs/comfy-compat.md)."""
    import numpy as np
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    unet, clip, v, spec = tiny
    u2, c2 = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-lora", 0.8, 0.8)
    ours, sp = generate(make_ctx, u2, c2, v, spec)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_folder, safety_checker=None,
                                                   requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(load_file(str(lora.lora_path("builtin:tiny-lora"))), adapter_name="a")
    pipe.set_adapters(["a"], adapter_weights=[0.8])
    pipe.scheduler = schedulers.build_scheduler(sp, SEED)
    ref = pipe(PROMPT, height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=7.5,
               generator=torch.Generator().manual_seed(SEED), output_type="np").images  # fmt: skip
    diff = np.abs(ours.astype(int) - (ref * 255).round().astype(int))
    assert diff.max() <= 1


def test_base_model_is_never_changed_and_removing_the_lora_gives_its_image_back(make_ctx, tiny):
    unet, clip, v, spec = tiny
    before, _ = generate(make_ctx, unet, clip, v, spec)
    unet_bytes, clip_bytes = state_bytes(unet.unet), state_bytes(clip.text_encoder)
    u2, c2 = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-lora", 1.0, 1.0)
    with_lora, _ = generate(make_ctx, u2, c2, v, spec)
    assert with_lora.tobytes() != before.tobytes()
    assert state_bytes(unet.unet) == unet_bytes and state_bytes(clip.text_encoder) == clip_bytes
    after, _ = generate(make_ctx, unet, clip, v, spec)
    assert after.tobytes() == before.tobytes()


def test_zero_strength_returns_the_inputs_and_model_only_leaves_the_clip(make_ctx, tiny):
    unet, clip, _, _ = tiny
    u, c = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-lora", 0.0, 0.0)
    assert u is unet and c is clip
    u, c = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-lora", 0.5, 0.0)
    assert c is clip and u.key != unet.key
    use = lora.LoraUse("builtin:tiny-lora", 0.5, 0.5)
    u2, c2 = lora.apply_lora(make_ctx("LoraLoaderModelOnly"), unet, None, use)
    assert c2 is None and u2.unet is u.unet


def test_same_lora_and_strength_is_applied_once_per_process(make_ctx, tiny):
    from latentgraph.nodes.model_manager import manager

    unet, clip, _, _ = tiny
    a, _ = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-lora", 0.7, 0.7)
    loads = manager().loads
    b, _ = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-lora", 0.7, 0.7)
    assert b.unet is a.unet and manager().loads == loads
    c, _ = lora.load_lora(make_ctx("LoadLoRA"), unet, clip, "builtin:tiny-lora", 0.71, 0.7)
    assert c.unet is not a.unet and c.key != a.key


def test_lora_for_another_architecture_is_refused_naming_the_file(make_ctx, tiny, tmp_path):
    import torch

    from latentgraph.nodes.tiny_addons import lora_tensors, save_atomic

    bad = {k: (torch.zeros(v.shape[0], 768) if k.endswith("lora_down.weight") else v)
           for k, v in lora_tensors("kohya").items() if k.startswith("lora_unet_")}  # fmt: skip
    path = save_atomic(bad, tmp_path / "loras" / "sd15-style.safetensors")
    with pytest.raises(ValueError, match=r"node 'n1' \(LoadLoRA\) input 'lora'.*sd15-style"):
        lora.load_lora(make_ctx("LoadLoRA", models_dirs=[tmp_path]), tiny[0], tiny[1],
                       "sd15-style.safetensors", 1.0, 0.0)  # fmt: skip
    assert path.is_file()


@pytest.mark.parametrize(
    ("name", "message"),
    [("nope.safetensors", "not found"), ("x.ckpt", "pickle"), ("builtin:nope", "known")],
)
def test_bad_lora_names_are_refused_at_validation(name, message):
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.validate import validate

    prompt = {"1": {"class_type": "LoadModel", "inputs": {"source": "builtin:tiny-sd"}},
              "2": {"class_type": "LoadLoRA",
                    "inputs": {"unet": ["1", 0], "clip": ["1", 1], "lora": name}}}  # fmt: skip
    found = [p for p in validate(graph_from_prompt(prompt))
             if p.severity == "error" and p.code != "prompt_no_outputs"]  # fmt: skip
    assert [(p.node_id, p.input_name) for p in found] == [("2", "lora")]
    assert message in found[0].message


def test_comfy_lora_loader_keeps_scheduler_config_and_clip_skip(make_ctx):
    from latentgraph.nodes.comfy import checkpoint_loader, clip_set_last_layer
    from latentgraph.nodes.comfy_models import lora_loader, lora_loader_model_only

    model, clip, _ = checkpoint_loader(make_ctx("CheckpointLoaderSimple"), "builtin:tiny-sd")
    skip = clip_set_last_layer(make_ctx("CLIPSetLastLayer"), clip, -2)
    m2, c2 = lora_loader(make_ctx("LoraLoader"), model, skip, "builtin:tiny-lora", 0.5, 0.5)
    assert m2.scheduler_config == model.scheduler_config is not None
    assert c2.stop_at_layer == -2
    assert m2.unet is not model.unet and c2.text_encoder is not clip.text_encoder
    m3 = lora_loader_model_only(make_ctx("LoraLoaderModelOnly"), model, "builtin:tiny-lora", 0.5)
    assert m3.unet is m2.unet  # same LoRA and strength: the same patched copy


def test_clip_skip_survives_our_lora_and_text_encoder_merge(make_ctx, tiny):
    """CLIPSetLastLayer's layer is the CLIP's own field: our LoadLoRA and MergeTextEncoders
    keep it, so CLIPTextEncode after them reads the layer asked for, not the last."""
    import torch

    from latentgraph.nodes import lora, merge
    from latentgraph.nodes.comfy import clip_set_last_layer, clip_text_encode

    unet, clip, _, _ = tiny
    skip = clip_set_last_layer(make_ctx("CLIPSetLastLayer"), clip, -2)
    _, patched = lora.load_lora(make_ctx("LoadLoRA"), unet, skip, "builtin:tiny-lora", 0, 0.5)
    assert patched.stop_at_layer == -2 and patched.text_encoder is not clip.text_encoder
    same = merge.merge_text_encoders(make_ctx("MergeTextEncoders"), skip, clip, 1.0)

    def encoded(c):
        return clip_text_encode(make_ctx("CLIPTextEncode"), "a fox", c).entries[0].embeds

    assert torch.equal(encoded(same), encoded(skip))  # ratio 1: the same weights, layer -2
    assert not torch.equal(encoded(same), encoded(clip))


def test_corrupt_or_foreign_file_is_an_error_naming_it(make_ctx, tiny, tmp_path):
    import torch

    from latentgraph.nodes.tiny_addons import save_atomic

    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00not a header")
    save_atomic({"weight": torch.zeros(2)}, tmp_path / "loras" / "checkpoint.safetensors")
    ctx = make_ctx("LoadLoRA", models_dirs=[tmp_path])
    for name, message in (("cut.safetensors", "not a readable .safetensors"),
                          ("checkpoint.safetensors", "checkpoint.safetensors")):  # fmt: skip
        with pytest.raises(ValueError, match=rf"node 'n1' \(LoadLoRA\) input 'lora'.*{message}"):
            lora.load_lora(ctx, tiny[0], tiny[1], name, 1.0, 1.0)


def test_a_path_into_loras_is_the_file_its_name_there_is_and_one_elsewhere_is_read_too(
        make_ctx, tiny, tmp_path, monkeypatch):  # fmt: skip
    """`--set lora=models/loras/x.safetensors` (from the current directory) loads the file the
    name `x.safetensors` stands for; a relative path outside loras/ is a path as an absolute
    one is (LoadModel's rule): it was refused as 'not inside the models folders' loras/'."""
    from latentgraph.nodes.tiny_addons import lora_tensors, save_atomic

    models = tmp_path / "models"
    save_atomic(lora_tensors("kohya"), models / "loras" / "style.safetensors")
    save_atomic(lora_tensors("kohya"), tmp_path / "elsewhere.safetensors")
    monkeypatch.chdir(tmp_path)
    assert lora.lora_path("models/loras/style.safetensors", [models]) == \
        models / "loras" / "style.safetensors"  # fmt: skip
    ctx = make_ctx("LoadLoRA", models_dirs=[models])
    by_path, _ = lora.load_lora(ctx, tiny[0], tiny[1], "models/loras/style.safetensors", 0.5, 0.0)
    by_name, _ = lora.load_lora(ctx, tiny[0], tiny[1], "style.safetensors", 0.5, 0.0)
    elsewhere, _ = lora.load_lora(ctx, tiny[0], tiny[1], "elsewhere.safetensors", 0.5, 0.0)
    assert state_bytes(by_path.unet) == state_bytes(by_name.unet) == state_bytes(elsewhere.unet)
    assert lora.lora_path("elsewhere.safetensors", [models]) == tmp_path / "elsewhere.safetensors"


def test_a_lora_that_does_not_fit_says_so_in_one_line_with_no_library_log(make_ctx, tiny,
                                                                          tmp_path):  # fmt: skip
    """One lora_down tensor of another shape (and an SDXL LoRA on SD): one complete line
    counting the tensors, the first with both shapes, and the likely cause; diffusers' own
    log of every tensor reaches none of its handlers (the terminal's among them)."""
    import logging

    import torch

    from latentgraph.nodes.tiny_addons import lora_tensors, save_atomic

    tensors = lora_tensors("kohya")
    key = next(k for k in tensors if k.startswith("lora_unet_") and k.endswith("lora_down.weight"))
    tensors[key] = torch.zeros(tensors[key].shape[0], 320)
    save_atomic(tensors, tmp_path / "loras" / "wrongshape.safetensors")
    ctx = make_ctx("LoadLoRA", models_dirs=[tmp_path])
    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("diffusers").addHandler(handler)
    try:
        with pytest.raises(ValueError) as info:
            lora.load_lora(ctx, tiny[0], tiny[1], "wrongshape.safetensors", 1.0, 1.0)
        # a built-in LoRA is named as the workflow names it, not by its file in the cache
        with pytest.raises(ValueError, match=r"input 'lora': builtin:tiny-sdxl-lora does not fit "
                           r"this model's unet: 8 tensors have other shapes \(first: .*lora_A "
                           r"weight: file \[4, 96\], model \[4, 32\]\); is it a LoRA for "
                           r"another model family"):  # fmt: skip
            lora.load_lora(ctx, tiny[0], tiny[1], "builtin:tiny-sdxl-lora", 1.0, 1.0)
    finally:
        logging.getLogger("diffusers").removeHandler(handler)
    message = str(info.value)
    assert "\n" not in message and message.endswith(
        "wrongshape.safetensors does not fit this model's unet: 1 tensor has another shape "
        "(first: down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.lora_A weight: "
        "file [4, 320], model [4, 64]); is it a LoRA for another model family (SDXL vs SD 1.5)?"
    )
    assert not [m for m in logged if "size mismatch" in m or "was unsuccessful" in m]


def test_an_absolute_lora_path_is_refused_for_what_is_wrong_with_it(tmp_path):
    """A missing absolute path says it does not exist (it said the name must be inside a
    models folder 'not a path', then offered an absolute path as the way out); a file of
    another kind says what was expected. A .safetensors file there loads by that path."""
    from latentgraph.nodes.lora import LoraError, lora_path

    missing = tmp_path / "gone.safetensors"
    with pytest.raises(LoraError) as caught:
        lora_path(str(missing))
    assert str(caught.value) == f"{missing} does not exist (expected a .safetensors file)"
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(LoraError) as caught:
        lora_path(str(other))
    assert str(caught.value) == f"{other} is not a .safetensors file"
    real = tmp_path / "style.safetensors"
    real.write_bytes(b"")
    assert lora_path(str(real)) == real


@pytest.fixture
def library_log():
    """The messages diffusers' and transformers' loggers hand their handlers (the terminal's
    among them) while a test runs."""
    import logging

    logged: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).addHandler(handler)
    yield logged
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).removeHandler(handler)


def test_lora_layers_the_model_lacks_are_one_node_warning_not_a_library_log(
        make_ctx, tiny, tmp_path, library_log):  # fmt: skip
    """up_blocks renamed (a file for another UNet, a converter's typo): the rest is applied and
    the node warns once per run, naming the file, the count and a few layers; diffusers' line
    of every key (and transformers' table for a text encoder) reaches no handler. A file none
    of whose UNet layers fits is that warning too, the UNet left as it was (peft refused it)."""
    from latentgraph.nodes.tiny_addons import lora_tensors, save_atomic

    tensors = lora_tensors("kohya")
    renamed = {k.replace("lora_unet_up_blocks_", "lora_unet_upp_blockz_")
               .replace("lora_te_text_model_encoder_layers_0_", "lora_te_text_model_encoder_layerz_0_"): t
               for k, t in tensors.items()}  # fmt: skip
    save_atomic(renamed, tmp_path / "loras" / "partial.safetensors")
    nothing = {k: t for k, t in tensors.items() if k.startswith("lora_unet_up_blocks_0_")}
    nothing = {k.replace("up_blocks_0", "nope_0"): t for k, t in nothing.items()}
    save_atomic(nothing, tmp_path / "loras" / "nothing.safetensors")
    unet, clip = tiny[0], tiny[1]
    for _ in range(2):  # the second is served the copy the first built: it warns the same
        ctx = make_ctx("LoadLoRA", models_dirs=[tmp_path])
        u2, c2 = lora.load_lora(ctx, unet, clip, "partial.safetensors", 1.0, 1.0)
        assert u2.unet is not unet.unet and c2.text_encoder is not clip.text_encoder
        shown = tmp_path / "loras" / "partial.safetensors"
        assert ctx.rec.warnings == [
            f"{shown}: 16 of 32 unet LoRA layers not loaded, this model has no such layer: "
            "upp.blockz.0.attentions.0.transformer_blocks.0.attn1.to_k, "
            "upp.blockz.0.attentions.0.transformer_blocks.0.attn1.to_out.0, "
            "upp.blockz.0.attentions.0.transformer_blocks.0.attn1.to_q and 13 more",
            f"{shown}: 4 of 20 text_encoder LoRA layers not loaded, this model has no such "
            "layer: text_model.encoder.layerz.0.self_attn.k_proj, "
            "text_model.encoder.layerz.0.self_attn.out_proj, "
            "text_model.encoder.layerz.0.self_attn.q_proj and 1 more",
        ]
    ctx = make_ctx("LoadLoRA", models_dirs=[tmp_path])
    u3, _ = lora.load_lora(ctx, unet, clip, "nothing.safetensors", 1.0, 1.0)
    assert u3.unet is unet.unet
    assert ctx.rec.warnings == [f"{tmp_path / 'loras' / 'nothing.safetensors'}: 16 of 16 unet LoRA "
                                "layers not loaded, this model has no such layer: "
                                "nope.0.attentions.0.transformer_blocks.0.attn1.to_k, "
                                "nope.0.attentions.0.transformer_blocks.0.attn1.to_out.0, "
                                "nope.0.attentions.0.transformer_blocks.0.attn1.to_q and 13 more; "
                                "is it a LoRA for another model?"]  # fmt: skip
    assert not [m for m in library_log if "unexpected keys" in m or "LOAD REPORT" in m]
    for name in ("builtin:tiny-lora", "builtin:tiny-lora-diffusers"):  # every layer fits
        ctx = make_ctx("LoadLoRA")
        lora.load_lora(ctx, unet, clip, name, 0.9, 0.9)
        assert ctx.rec.warnings == []


def test_lora_parts_the_model_has_no_place_for_are_warned_unless_their_strength_is_0(
        make_ctx, tiny, tmp_path):  # fmt: skip
    """A text-encoder-only LoRA on LoraLoaderModelOnly did nothing without a word, as did an
    SDXL LoRA's second-encoder layers on SD 1.5's one-encoder CLIP; at strength 0 leaving a
    part out is what was asked."""
    from latentgraph.nodes.comfy_models import lora_loader_model_only
    from latentgraph.nodes.tiny_addons import lora_tensors, save_atomic

    te_only = {k: t for k, t in lora_tensors("kohya").items() if k.startswith("lora_te_")}
    save_atomic(te_only, tmp_path / "loras" / "te-only.safetensors")
    unet, clip = tiny[0], tiny[1]
    ctx = make_ctx("LoraLoaderModelOnly", models_dirs=[tmp_path])
    assert lora_loader_model_only(ctx, unet, "te-only.safetensors", 1.0).unet is unet.unet
    assert ctx.rec.warnings == [f"{tmp_path / 'loras' / 'te-only.safetensors'}: its text_encoder "
                                "LoRA layers were not applied: this node takes no CLIP "
                                "(LoraLoader applies them)"]  # fmt: skip
    ctx = make_ctx("LoadLoRA", models_dirs=[tmp_path])
    lora.load_lora(ctx, unet, clip, "te-only.safetensors", 1.0, 0.0)
    assert ctx.rec.warnings == []

    ctx = make_ctx("LoadLoRA")
    u2, c2 = lora.load_lora(ctx, unet, clip, "builtin:tiny-sdxl-lora", 0.0, 1.0)
    assert u2 is unet and c2.text_encoder is not clip.text_encoder  # its te1 layers fit SD's
    assert ctx.rec.warnings == ["builtin:tiny-sdxl-lora: its text_encoder_2 LoRA layers were not "
                                "applied: this CLIP has no text_encoder_2; is it a LoRA for "
                                "another model family (SDXL vs SD 1.5)?"]  # fmt: skip
    ctx = make_ctx("LoadLoRA")
    lora.load_lora(ctx, unet, clip, "builtin:tiny-sdxl-lora", 0.0, 0.0)
    assert ctx.rec.warnings == []


@pytest.mark.parametrize("kind", ["hada_w1_a", "lokr_w1"])
def test_loha_and_lokr_files_are_refused_as_what_they_are(make_ctx, tiny, tmp_path, kind):
    """diffusers' converters fail on them saying keys 'have not been correctly renamed'."""
    import torch

    from latentgraph.nodes.tiny_addons import save_atomic

    layer = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_k"
    tensors = {f"{layer}.{kind}": torch.zeros(8, 8), f"{layer}.{kind[:-1]}b": torch.zeros(8, 8),
               f"{layer}.alpha": torch.tensor(4.0)}  # fmt: skip
    save_atomic(tensors, tmp_path / "loras" / "lyco.safetensors")
    with pytest.raises(ValueError) as caught:
        lora.load_lora(make_ctx("LoadLoRA", models_dirs=[tmp_path]), tiny[0], tiny[1],
                       "lyco.safetensors", 1.0, 1.0)  # fmt: skip
    assert str(caught.value) == (f"node 'n1' (LoadLoRA) input 'lora': {tmp_path}/loras/"
                                 "lyco.safetensors: a LoHa/LoKr (LyCORIS) file: not supported")  # fmt: skip


def _with_bogus_layers(path, alpha: float = 4.0):
    """The tiny kohya LoRA with two UNet layers no SD model has (their alpha its own, as a
    LoRA for another model may have), saved at `path`."""
    import torch

    from latentgraph.nodes.tiny_addons import lora_tensors, save_atomic

    tensors = lora_tensors("kohya")
    like = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_k"
    for name in ("lora_unet_bogus_block_one", "lora_unet_bogus_block_two"):
        for end in (".lora_down.weight", ".lora_up.weight"):
            tensors[name + end] = tensors[like + end].clone()
        tensors[name + ".alpha"] = torch.tensor(alpha)
    save_atomic(tensors, path)
    return path


def test_a_strength_sweep_keeps_only_the_warnings_of_the_copies_the_manager_holds(
        make_ctx, tiny, tmp_path, monkeypatch):  # fmt: skip
    """The warnings a LoRA copy's build found were kept in a dict of the process, under the
    manager's key (the strength in it): a sweep on a long-running server grew it for good,
    past the copies the manager evicted. They live in the manager's entry now, evicted with
    the copy; each load still says them once, a copy served or rebuilt alike."""
    from latentgraph.nodes import model_manager

    mine = model_manager.ModelManager()  # the session's tiny model stays in the shared one
    monkeypatch.setattr(model_manager, "_manager", mine)
    _with_bogus_layers(tmp_path / "loras" / "extra.safetensors")
    unet, clip = tiny[0], tiny[1]

    def load(strength: float) -> tuple[list[str], str]:
        ctx = make_ctx("LoadLoRA", models_dirs=[tmp_path])
        out, _ = lora.load_lora(ctx, unet, clip, "extra.safetensors", strength, 0.0)
        return ctx.rec.warnings, out.key

    said, first = load(0.1)
    assert said == [f"{tmp_path / 'loras' / 'extra.safetensors'}: 2 of 34 unet LoRA layers not "
                    "loaded, this model has no such layer: bogus.block.one, bogus.block.two"]  # fmt: skip
    mine.ram_budget = 2 * mine.used("ram")  # room for two copies
    keys = [first]
    for strength in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        again, key = load(strength)
        assert again == said
        keys.append(key)
    assert len(set(keys)) == 8 and first not in mine
    held = [key for key in keys if key in mine]
    assert 1 <= len(held) <= 2

    def unexpected():
        pytest.fail("a held copy was built again")

    assert [mine.get(key, unexpected).notes for key in held] == [tuple(said)] * len(held)
    assert load(0.8) == (said, keys[-1])  # served the held copy: it says them too
    loads = mine.loads
    assert load(0.1) == (said, first) and mine.loads == loads + 1  # built again: said again


@pytest.mark.parametrize("layout", ["kohya", "diffusers"])
def test_the_layers_named_unplaced_are_those_peft_finds_no_module_for(
        tiny, tmp_path, monkeypatch, library_log, layout):  # fmt: skip
    """`unplaced` names the UNet layers as diffusers' `load_lora_into_unet` hands them to peft
    (`_layers` repeats its "is the first key in peft's layout" test and its converter, since
    diffusers returns nothing of the load): pinned against the installed diffusers by what
    peft reports unexpected, which diffusers logs (the log LoadLoRA otherwise drops)."""
    import logging

    from latentgraph.nodes.tiny_addons import lora_tensors, save_atomic

    old, new = ("up_blocks_0", "upp_blockz_0") if layout == "kohya" else ("up_blocks.0", "upp.0")
    renamed = {k.replace(old, new): t for k, t in lora_tensors(layout).items()}
    save_atomic(renamed, tmp_path / "renamed.safetensors")
    state, alphas = lora.read_lora(tmp_path / "renamed.safetensors")
    missing, total = lora.unplaced(state, "unet", tiny[0].unet)
    assert len(missing) == 16 and total == 32
    monkeypatch.setattr(logging.getLogger("diffusers.utils.peft_utils"), "filters", [])
    lora._fused_unet(tiny[0].unet, state, alphas, 1.0)
    (line,) = [m for m in library_log if "unexpected keys" in m]
    keys = line.partition("found in the model: ")[2].rstrip(". ").split(", ")
    assert sorted({key.split(".lora_")[0] for key in keys}) == missing


def test_latentgraph_run_says_a_lora_s_missing_layers_once_and_no_library_warning(
        tiny_folder, tmp_path):  # fmt: skip
    """`latentgraph run lora.yaml --set lora=extra.safetensors` (two layers the model lacks,
    with their own alpha): peft's RuntimeWarning about the alphas, with its site-packages
    file and line, reached stderr even under -q, and without -q a run with another seed
    printed our warning twice (said again for the cached prompts, then by LoadLoRA running
    again). Now -q prints nothing (README: it leaves out nodes' warnings), and a run one line."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    extra = _with_bogus_layers(tmp_path / "extra.safetensors")
    workflow = Path(__file__).parents[2] / "workflows" / "lora.yaml"
    env = {**os.environ, "LATENTGRAPH_DATA_DIR": str(tmp_path / "data")}

    def run(*flags: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "latentgraph.cli", "run", str(workflow),
                               "--set", f"lora={extra}", "--set", "steps=1", "--set", "width=64",
                               "--set", "height=64", "--cache-dir", "cache", *flags],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "RuntimeWarning" not in proc.stderr and "site-packages" not in proc.stderr
        return proc.stderr

    assert run("-q") == ""
    lines = run("--set", "seed=7").splitlines()
    assert "cached: positive, negative, sampler" in lines  # the case that said it twice
    assert [line for line in lines if "warning" in line.lower()] == [
        f"warning: {workflow}:27:3: node 'style' (LoadLoRA): {extra}: 2 of 34 unet LoRA layers "
        "not loaded, this model has no such layer: bogus.block.one, bogus.block.two"]  # fmt: skip
