"""LoadVAE and LoadTextEncoder from folders and from files written from the tiny model."""

from __future__ import annotations

import shutil

import pytest

from latentgraph.nodes import latents, loaders, text, vae
from latentgraph.nodes.values import NodeInputError

from .conftest import context


def same_weights(a, b) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def original_subset(tiny_file, prefix: str, keep_prefix: bool = False) -> dict:
    from safetensors.torch import load_file

    state = load_file(str(tiny_file))
    return {(k if keep_prefix else k[len(prefix) :]): v for k, v in state.items()
            if k.startswith(prefix)}  # fmt: skip


@pytest.fixture(scope="module")
def vae_files(tiny_file, tiny_folder, tmp_path_factory):
    """The tiny VAE as a models/vae/ folder would hold it, in each layout people share."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("vae")
    ldm = root / "tiny-vae-original.safetensors"  # like vae-ft-mse-840000-ema-pruned
    save_file(original_subset(tiny_file, "first_stage_model."), str(ldm))
    hf = root / "tiny-vae-diffusers.safetensors"  # like sd-vae-ft-mse's weights file
    shutil.copy(tiny_folder / "vae" / "diffusion_pytorch_model.safetensors", hf)
    return {"original": ldm, "diffusers": hf, "checkpoint": tiny_file,
            "folder": tiny_folder, "vae folder": tiny_folder / "vae"}  # fmt: skip


@pytest.mark.parametrize("kind", ["original", "diffusers", "checkpoint", "folder", "vae folder"])
def test_load_vae_from_every_layout(builtin, vae_files, kind):
    loaded = loaders.load_vae(context("LoadVAE"), str(vae_files[kind]))
    assert same_weights(loaded.vae, builtin[2].vae)
    assert loaded.vae is not builtin[2].vae  # its own module, not the model's


def test_swapped_vae_decodes_with_its_own_weights(builtin, tiny_file, tmp_path):
    import torch
    from safetensors.torch import save_file

    state = original_subset(tiny_file, "first_stage_model.")
    state["decoder.conv_out.bias"] = state["decoder.conv_out.bias"] + 0.5  # a "better" decoder
    path = tmp_path / "brighter.safetensors"
    save_file(state, str(path))
    swapped = loaders.load_vae(context("LoadVAE"), str(path), "builtin:tiny-sd")
    assert torch.equal(swapped.vae.decoder.conv_out.bias, state["decoder.conv_out.bias"])
    noise = latents.latent_noise(context("LatentNoise"), 32, 32, 1, 3, vae=builtin[2])
    own = vae.vae_decode(context("VAEDecode"), samples=noise, vae=builtin[2])
    other = vae.vae_decode(context("VAEDecode"), samples=noise, vae=swapped)
    assert own.shape == other.shape
    assert float(other.mean()) > float(own.mean())  # decoded through the swapped weights


def test_vae_of_the_wrong_architecture_is_a_located_error(vae_files):
    with pytest.raises(
        NodeInputError, match=r"node 'n1' \(LoadVAE\) input 'source': could not load"
    ):
        loaders.load_vae(context("LoadVAE"), str(vae_files["original"]), "sd15")


def test_vae_file_without_vae_weights(tmp_path, torch_1thread):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "nothing.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(NodeInputError, match=r"input 'source': .*no VAE weights"):
        loaders.load_vae(context("LoadVAE"), str(path))


@pytest.fixture(scope="module")
def clip_files(tiny_file, tiny_folder, tmp_path_factory):
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("clip")
    hf = root / "tiny-clip.safetensors"  # like ComfyUI's text_encoders/ files
    shutil.copy(tiny_folder / "text_encoder" / "model.safetensors", hf)
    prefixed = root / "tiny-clip-prefixed.safetensors"  # with the text_model. level
    save_file(original_subset(tiny_file, "cond_stage_model.transformer."), str(prefixed))
    return {"file": hf, "prefixed file": prefixed, "checkpoint": tiny_file,
            "folder": tiny_folder, "builtin": "builtin:tiny-sd"}  # fmt: skip


@pytest.mark.parametrize("kind", ["file", "prefixed file", "checkpoint", "folder", "builtin"])
def test_load_text_encoder_gives_the_same_conditioning(builtin, clip_files, kind):
    import torch

    clip = loaders.load_text_encoder(context("LoadTextEncoder"), str(clip_files[kind]))
    assert same_weights(clip.text_encoder, builtin[1].text_encoder)
    prompt = "a photograph of an astronaut riding a horse"
    ours = text.text_encode(context("TextEncode"), clip, prompt)
    ref = text.text_encode(context("TextEncode"), builtin[1], prompt)
    assert torch.equal(ours.embeds, ref.embeds)


def test_text_encoder_of_the_wrong_architecture(clip_files):
    with pytest.raises(NodeInputError, match=r"node 'n1' \(LoadTextEncoder\) input 'source': .*"
                       r"width 32, but config 'sd15' describes width 768"):  # fmt: skip
        loaders.load_text_encoder(context("LoadTextEncoder"), str(clip_files["file"]), "sd15")


@pytest.mark.parametrize("kind", ["original", "diffusers"])
def test_a_vae_loaded_alone_prints_no_library_noise(vae_files, cache_dir, kind):
    """LoadVAE in a process where LoadModel did not run (its outputs cached): diffusers'
    "There are modules in AutoencoderKL that should be kept in float32: []" reached the
    terminal, as did its progress bars; the VAE's loading quiets the libraries as LoadModel's
    does (nodes/quiet.py)."""
    import subprocess
    import sys

    script = ("import sys\nfrom latentgraph.graph.context import CancelToken, Context, Settings\n"
              "from latentgraph.nodes import loaders\n"
              "loaders.load_vae(Context('v', 'LoadVAE', Settings(), CancelToken()), sys.argv[1])\n"
              "print('loaded')")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script, str(vae_files[kind])],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "loaded\n", done.stderr
    assert "kept in float32" not in done.stderr and done.stderr == ""
