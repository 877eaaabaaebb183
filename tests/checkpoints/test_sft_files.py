""".sft files (ComfyUI's other safetensors suffix, as Flux files ship): every loader lists and
loads one exactly as the same bytes named .safetensors, and nothing ever torch.loads it (a full
checkpoint too: diffusers' pipeline loader is given it under a .safetensors name)."""

from __future__ import annotations

import shutil

import pytest

from latentgraph.graph import Settings
from latentgraph.nodes import controlnet, loaders, lora, models_dirs, text, vae
from latentgraph.nodes.comfy import checkpoint_loader, vae_loader
from latentgraph.nodes.values import Latent

from ..nodes.conftest import make_ctx, tiny  # noqa: F401 - shared node fixtures
from .conftest import context


@pytest.fixture(autouse=True)
def never_unpickled(monkeypatch):
    """torch.load raises: a .sft read through a path-by-suffix API would reach it."""
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError(f"torch.load called on {args[:1]}")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.fixture
def models(tmp_path, tiny_file, tiny_folder):
    """A models root with each file twice, as x.safetensors and as the same bytes x.sft."""
    from latentgraph.nodes.tiny_addons import lora_tensors, save_atomic
    from latentgraph.nodes.tiny_control import write_controlnet_folder

    root = tmp_path / "models"
    write_controlnet_folder(root)
    save_atomic(lora_tensors("kohya"), root / "loras" / "style.safetensors")
    (root / "vae").mkdir()
    (root / "text_encoders").mkdir()
    (root / "checkpoints").mkdir()
    shutil.copy(tiny_file, root / "vae" / "full.safetensors")  # a full checkpoint's VAE
    shutil.copy(tiny_folder / "vae" / "diffusion_pytorch_model.safetensors",
                root / "vae" / "diffusers.safetensors")  # fmt: skip
    shutil.copy(tiny_file, root / "text_encoders" / "full.safetensors")
    shutil.copy(tiny_file, root / "checkpoints" / "tiny.safetensors")
    for name in ("loras/style", "vae/full", "vae/diffusers", "text_encoders/full",
                 "controlnet/tiny-controlnet-original", "checkpoints/tiny"):  # fmt: skip
        shutil.copy(root / f"{name}.safetensors", root / f"{name}.sft")
    return root


def decoded(make, handle):
    import torch

    latent = Latent(torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1)))
    return vae.vae_decode(make("VAEDecode"), samples=latent, vae=handle)


@pytest.mark.parametrize("stem", ["full", "diffusers"])
def test_an_sft_vae_decodes_as_its_safetensors_copy(make_ctx, models, stem):  # noqa: F811
    import torch

    ctx = make_ctx("LoadVAE", models_dirs=[models])
    assert f"{stem}.sft" in models_dirs.list_files("vae", [models])
    sft = loaders.load_vae(ctx, f"{stem}.sft")
    same = loaders.load_vae(ctx, f"{stem}.safetensors")
    assert sft.vae is not same.vae
    assert torch.equal(decoded(make_ctx, sft), decoded(make_ctx, same))
    by_name = vae_loader(make_ctx("VAELoader", models_dirs=[models]), f"{stem}.sft")
    assert torch.equal(decoded(make_ctx, by_name), decoded(make_ctx, same))


def test_an_sft_text_encoder_encodes_as_its_safetensors_copy(make_ctx, models):  # noqa: F811
    import torch

    ctx = make_ctx("LoadTextEncoder", models_dirs=[models])
    sft = loaders.load_text_encoder(ctx, "full.sft")
    same = loaders.load_text_encoder(ctx, "full.safetensors")
    a = text.text_encode(make_ctx("TextEncode"), sft, "a fox")
    b = text.text_encode(make_ctx("TextEncode"), same, "a fox")
    assert torch.equal(a.entries[0].embeds, b.entries[0].embeds)


@pytest.mark.parametrize("where", ["name", "absolute path"])
def test_an_sft_lora_patches_as_its_safetensors_copy(make_ctx, tiny, models, where):  # noqa: F811
    import torch

    ctx = make_ctx("LoadLoRA", models_dirs=[models])
    folder = models / "loras"
    name = str(folder / "style.sft") if where == "absolute path" else "style.sft"
    sft_unet, sft_clip = lora.load_lora(ctx, tiny[0], tiny[1], name, 0.7, 0.7)
    unet, clip = lora.load_lora(ctx, tiny[0], tiny[1], "style.safetensors", 0.7, 0.7)
    for a, b in ((sft_unet.unet, unet.unet), (sft_clip.text_encoder, clip.text_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sb)


@pytest.mark.parametrize("where", ["name", "absolute path"])
def test_an_sft_controlnet_loads_as_its_safetensors_copy(make_ctx, models, where):  # noqa: F811
    import torch

    ctx = make_ctx("LoadControlNet", models_dirs=[models])
    stem = "tiny-controlnet-original"
    name = str(models / "controlnet" / f"{stem}.sft") if where == "absolute path" else f"{stem}.sft"
    sft = controlnet.load_control_net(ctx, name)
    same = controlnet.load_control_net(ctx, f"{stem}.safetensors")
    sa, sb = sft.model.state_dict(), same.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sb)


def _same_model(a, b) -> bool:
    import torch

    for x, y in (
        (a[0].unet, b[0].unet),
        (a[1].text_encoder, b[1].text_encoder),
        (a[2].vae, b[2].vae),
    ):
        sx, sy = x.state_dict(), y.state_dict()
        if sx.keys() != sy.keys() or not all(torch.equal(sx[k], sy[k]) for k in sy):
            return False
    return True


def test_a_sft_checkpoint_is_listed_and_loads_as_its_safetensors_copy(models):
    """checkpoints/ refused a .sft ("rename it to .safetensors": diffusers' pipeline loader
    reads a path by its suffix, torch.load for any but .safetensors). It is listed and loads,
    by name and by path, as the same bytes named .safetensors, never unpickled."""
    assert models_dirs.list_files("checkpoints", [models]) == ["tiny.safetensors", "tiny.sft"]
    same = loaders.load_model(context("LoadModel", "1", models_dirs=[models]), "tiny.safetensors")
    by_name = checkpoint_loader(context("CheckpointLoaderSimple", "4", models_dirs=[models]),
                                "tiny.sft")  # fmt: skip
    assert _same_model(by_name, same) and by_name[0].unet is not same[0].unet
    by_path = loaders.load_model(
        context("LoadModel", "1"), str(models / "checkpoints" / "tiny.sft")
    )
    assert _same_model(by_path, same)
    assert loaders.check_source({"source": "tiny.sft"}, Settings(models_dirs=[models])) == []


def test_a_checkpoint_named_in_capitals_is_read_as_safetensors(models):
    """diffusers reads safetensors only for a name ending in exactly '.safetensors': a listed
    UP.SAFETENSORS would have been torch.loaded (the fixture refuses it)."""
    shutil.copy(
        models / "checkpoints" / "tiny.safetensors", models / "checkpoints" / "UP.SAFETENSORS"
    )
    assert "UP.SAFETENSORS" in models_dirs.list_files("checkpoints", [models])
    same = loaders.load_model(context("LoadModel", "1", models_dirs=[models]), "tiny.safetensors")
    upper = loaders.load_model(context("LoadModel", "2", models_dirs=[models]), "UP.SAFETENSORS")
    assert _same_model(upper, same)


def test_validate_and_run_take_a_sft_checkpoint_name(models, tmp_path, monkeypatch, capsys):
    """`latentgraph validate --set model=tiny.sft` said the checkpoint was refused; it passes."""
    from pathlib import Path

    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    workflow = Path(__file__).parents[2] / "workflows" / "txt2img.yaml"
    code = main(["validate", str(workflow), "--set", "model=tiny.sft", "--models-dir", str(models)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "rename" not in err and "Traceback" not in err
