"""The tiny model as a single-file checkpoint: layout, atomic write, same images as builtin."""

from __future__ import annotations

import hashlib

import pytest

from latentgraph.nodes import denoise, latents, schedulers, text, vae
from latentgraph.nodes.images import to_uint8

from .conftest import context

PROMPT = "a photograph of an astronaut riding a horse"


def tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_checkpoint_uses_the_original_key_layout(tiny_file, tiny_folder):
    state = tensors(tiny_file)
    tops = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.")
    assert all(k.startswith(tops) for k in state)
    assert all(any(k.startswith(t) for k in state) for t in tops)
    # the names diffusers' own single-file detection looks for
    assert state["model.diffusion_model.input_blocks.0.0.weight"].shape == (32, 4, 3, 3)
    assert "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" in state
    # original layout: resnet and attention names, and 1x1-conv VAE attention weights
    assert "model.diffusion_model.input_blocks.1.0.in_layers.0.weight" in state
    assert "model.diffusion_model.input_blocks.2.0.op.weight" in state  # down-sampler
    assert "model.diffusion_model.output_blocks.1.2.conv.weight" in state  # up-sampler after attn
    assert "model.diffusion_model.middle_block.2.out_layers.3.weight" in state
    assert state["first_stage_model.decoder.mid.attn_1.q.weight"].shape == (64, 64, 1, 1)
    assert "first_stage_model.decoder.up.1.upsample.conv.weight" in state
    # every tensor of the three diffusers files is there exactly once
    counts = [len(tensors(p)) for p in sorted(tiny_folder.glob("*/*.safetensors"))]
    assert len(state) == sum(counts)


def test_written_atomically_and_replaces_an_old_file(tiny_folder, tmp_path, monkeypatch):
    import safetensors.torch

    from latentgraph.nodes.tiny_model import write_single_file

    out = tmp_path / "ck" / "tiny.safetensors"
    write_single_file(out, tiny_folder)
    first = tensors(out)
    write_single_file(out, tiny_folder)  # over an existing file: same model, same tensors
    again = tensors(out)
    assert set(first) == set(again) and all(first[k].equal(again[k]) for k in first)
    before = out.read_bytes()

    def broken(state, path, metadata=None):
        with open(path, "wb") as fh:
            fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        write_single_file(out, tiny_folder)
    assert out.read_bytes() == before  # the old checkpoint is untouched
    assert [p.name for p in out.parent.iterdir()] == ["tiny.safetensors"]  # no temp file left


def test_single_file_loads_exactly_the_builtin_weights(builtin, single):
    import torch

    for a, b in ((builtin[0].unet, single[0].unet), (builtin[2].vae, single[2].vae),
                 (builtin[1].text_encoder, single[1].text_encoder)):  # fmt: skip
        sa, sb = a.state_dict(), b.state_dict()
        assert set(sa) == set(sb)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert builtin[1].tokenizer("a red fox").input_ids == single[1].tokenizer("a red fox").input_ids
    assert single[3].config["_class_name"] == "DDIMScheduler"
    assert single[3].config["beta_schedule"] == builtin[3].config["beta_schedule"]


def generate(model, name: str, seed: int = 7, steps: int = 5, size: int = 32):
    unet, clip, v, spec = model
    pos = text.text_encode(context("TextEncode"), clip, PROMPT)
    neg = text.text_encode(context("TextEncode"), clip, "")
    noise = latents.latent_noise(context("LatentNoise"), size, size, 1, seed, vae=v)
    sp = schedulers.scheduler_select(context("SchedulerSelect"), spec, name)
    out = denoise.unet_denoise(context("UNetDenoise"), unet, sp, pos, neg, noise, steps,
                               7.5, 1.0, seed)  # fmt: skip
    return to_uint8(vae.vae_decode(context("VAEDecode"), samples=out, vae=v))


@pytest.mark.parametrize("name", ["dpm++2m", "euler_a"])
def test_single_file_gives_byte_identical_images(builtin, single, name):
    a = generate(builtin, name)
    b = generate(single, name)
    assert a.shape == (1, 32, 32, 3)
    assert hashlib.sha256(a.tobytes()).hexdigest() == hashlib.sha256(b.tobytes()).hexdigest()


def test_same_checkpoint_loads_once(single, tiny_file):
    from latentgraph.nodes import loaders
    from latentgraph.nodes.model_manager import manager

    loads = manager().loads
    for config in ("auto", "builtin:tiny-sd", "tiny-sd"):  # all resolve to one config folder
        again = loaders.load_model(context("LoadModel", "again"), str(tiny_file), config)
        assert again[0].unet is single[0].unet
    assert manager().loads == loads
