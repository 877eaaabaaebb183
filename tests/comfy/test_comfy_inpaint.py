"""ComfyUI API graphs written after ComfyUI's published inpainting and outpainting examples
(LoadImage's MASK from a transparent hole, VAEEncodeForInpaint, InpaintModelConditioning,
ImagePadForOutpaint, KSampler) run unchanged on builtin:tiny-sd-inpaint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler

from .conftest import DATA


def untouched(mask):
    """Latent cells (8x8 pixel blocks) where the mask is 0 on every pixel."""
    h, w = mask.shape[-2] // 8, mask.shape[-1] // 8
    return mask[0].reshape(h, 8, w, 8).amax(dim=(1, 3)) == 0


@pytest.fixture
def settings(tmp_path, one_thread):
    """An input folder holding a 64x64 picture with a transparent hole (alpha 0) over pixels
    16..40 down, 24..40 across: whole 8x8 blocks, latent rows 2..4, columns 3..4."""
    import latentgraph.nodes  # noqa: F401 - registers the nodes, ComfyUI's included

    rng = np.random.default_rng(0)
    rgba = np.concatenate([rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                           np.full((64, 64, 1), 255, dtype=np.uint8)], axis=-1)  # fmt: skip
    rgba[16:40, 24:40, 3] = 0
    (tmp_path / "in").mkdir()
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in" / "cabin_with_hole.png")
    return Settings(output_dir=tmp_path / "out", input_dir=tmp_path / "in",
                    temp_dir=tmp_path / "tmp", device="cpu")  # fmt: skip


def run(name: str, settings: Settings, keep: list[str], change=None):
    prompt = json.loads((DATA / name).read_text())
    if change:
        change(prompt)
    result = Scheduler(default_registry, settings=settings).run(
        graph_from_prompt(prompt, default_registry), extra={"prompt": prompt}, keep=keep
    )
    assert result.ok, result.failures
    return result


def size(result, settings, node_id):
    record = result.ui[node_id]["images"][0]
    with Image.open(settings.output_dir / record["subfolder"] / record["filename"]) as img:
        return img.size


HOLE = torch.zeros(8, 8, dtype=torch.bool)
HOLE[2:5, 3:5] = True


def test_vae_encode_for_inpaint_example(settings):
    result = run("inpaint_api.json", settings, keep=["5", "6"])
    assert size(result, settings, "8") == (64, 64)
    encoded, out = result.output("5"), result.output("6").samples
    assert encoded.noise_mask.shape == (1, 64, 64)
    assert encoded.noise_mask.sum() == (24 + 5) * (16 + 5)  # the hole grown by 6
    grown = ~untouched(encoded.noise_mask)  # cells the grown mask touches
    assert torch.equal(out[..., ~grown], encoded.samples[..., ~grown])
    assert (out - encoded.samples)[..., HOLE].abs().mean() > 0.1


def test_inpaint_model_conditioning_example(settings):
    result = run("inpaint_model_conditioning_api.json", settings, keep=["5", "6"])
    assert size(result, settings, "8") == (64, 64)
    positive, negative, latent = result.outputs["5"]
    for cond in (positive, negative):
        assert cond.entries[0].inpaint.latents.shape == (1, 4, 8, 8)
    out = result.output("6").samples
    kept = untouched(latent.noise_mask)
    assert kept.any() and torch.equal(out[..., kept], latent.samples[..., kept])

    def no_noise_mask(prompt):
        prompt["5"]["inputs"]["noise_mask"] = False

    free = run("inpaint_model_conditioning_api.json", settings, keep=["6"], change=no_noise_mask)
    assert not torch.equal(free.output("6").samples[..., kept], latent.samples[..., kept])


def test_outpaint_example(settings):
    result = run("outpaint_api.json", settings, keep=["3", "6", "7"])
    assert size(result, settings, "9") == (128 + 64, 128 + 32)  # example.png, padded
    image, mask = result.outputs["3"]
    assert image.shape == (1, 160, 192, 3) and mask.shape == (1, 160, 192)
    assert mask[0, :32].eq(1).all() and mask[0, :, 128:].eq(1).all()
    encoded, out = result.output("6"), result.output("7").samples
    kept = untouched(encoded.noise_mask)
    assert kept.sum() > 100
    assert torch.equal(out[..., kept], encoded.samples[..., kept])


def test_set_latent_noise_mask_with_an_ordinary_model(settings):
    """Inpainting with a 4-channel model: VAEEncode, SetLatentNoiseMask, KSampler at part
    denoise; only the hole (LoadImage's MASK from alpha) changes."""
    result = run("latent_noise_mask_api.json", settings, keep=["3", "7"])
    assert size(result, settings, "9") == (64, 64)
    original, out = result.output("3").samples, result.output("7").samples
    assert torch.equal(out[..., ~HOLE], original[..., ~HOLE])
    assert (out - original)[..., HOLE].abs().mean() > 0.05
