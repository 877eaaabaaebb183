"""Acceptance: API prompts shaped like ComfyUI's published hires-fix, latent-composition and
outpainting-preparation examples (our own graphs, on the tiny model) run unchanged.

Sizes are compared with the first pass's, so the tests hold for any VAE scale factor."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.comfy_editor import editor_from_graph, graph_from_editor
from latentgraph.graph.scheduler import Scheduler


@pytest.fixture(scope="module")
def registry(one_thread):
    import latentgraph.nodes  # noqa: F401 - registers the built-in and ComfyUI nodes

    return default_registry


@pytest.fixture
def settings(tmp_path):
    return Settings(output_dir=tmp_path / "out", input_dir=tmp_path / "in",
                    temp_dir=tmp_path / "tmp", device="cpu")  # fmt: skip


def _base(width=64, height=64, seed=5) -> dict:
    """Checkpoint, prompts, an empty latent and a full KSampler pass: nodes 1-5."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
        "2": {"class_type": "CLIPTextEncode",
              "inputs": {"text": "a castle on a hill, detailed", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": width, "height": height, "batch_size": 1}},
        "5": _ksampler(["4", 0], seed, 1.0),
    }  # fmt: skip


def _ksampler(latent: list, seed: int, denoise: float, steps: int = 3) -> dict:
    return {"class_type": "KSampler",
            "inputs": {"model": ["1", 0], "seed": seed, "steps": steps, "cfg": 7.0,
                       "sampler_name": "euler", "scheduler": "normal", "denoise": denoise,
                       "positive": ["2", 0], "negative": ["3", 0], "latent_image": latent}}  # fmt: skip


def _save(node: str, prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": [node, 0], "filename_prefix": prefix}}


def _decode(latent: str) -> dict:
    return {"class_type": "VAEDecode", "inputs": {"samples": [latent, 0], "vae": ["1", 2]}}


def _run(prompt: dict, registry, settings):
    result = Scheduler(registry, settings=settings).run(graph_from_prompt(prompt, registry))
    assert result.ok, result.failures
    return result


def _pixels(settings, result, node: str) -> np.ndarray:
    record = result.ui[node]["images"][0]
    with Image.open(settings.output_dir / record["subfolder"] / record["filename"]) as img:
        return np.asarray(img.convert("RGBA" if img.mode == "RGBA" else "RGB"))


def test_hires_fix_latent_upscale_then_second_pass(registry, settings):
    prompt = _base()
    prompt |= {
        "6": _decode("5"), "7": _save("6", "first"),
        "10": {"class_type": "LatentUpscale",
               "inputs": {"samples": ["5", 0], "upscale_method": "nearest-exact", "width": 96,
                          "height": 96, "crop": "disabled"}},
        "11": _ksampler(["10", 0], 6, 0.5, steps=8),
        "12": _decode("11"), "13": _save("12", "hires"),
        "20": _decode("10"), "21": _save("20", "upscaled_only"),
    }  # fmt: skip
    result = _run(prompt, registry, settings)
    first, hires = _pixels(settings, result, "7"), _pixels(settings, result, "13")
    plain = _pixels(settings, result, "21")
    assert hires.shape[0] == first.shape[0] * 3 // 2 and hires.shape[1] == first.shape[1] * 3 // 2
    assert hires.shape == plain.shape
    assert np.abs(hires.astype(int) - plain.astype(int)).mean() > 1  # the second pass ran


def test_hires_fix_in_pixels_with_upscale_by_and_vae_encode(registry, settings):
    prompt = _base()
    prompt |= {
        "6": _decode("5"), "7": _save("6", "first"),
        "10": {"class_type": "ImageScaleBy",
               "inputs": {"image": ["6", 0], "upscale_method": "bicubic", "scale_by": 2.0}},
        "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["1", 2]}},
        "12": _ksampler(["11", 0], 6, 0.5, steps=8),
        "13": _decode("12"), "14": _save("13", "hires"),
    }  # fmt: skip
    result = _run(prompt, registry, settings)
    first, hires = _pixels(settings, result, "7"), _pixels(settings, result, "14")
    assert hires.shape == (first.shape[0] * 2, first.shape[1] * 2, 3)


def test_latent_composition_pastes_a_subject_then_denoises_together(registry, settings):
    prompt = _base(width=128, height=64)
    prompt |= {
        "30": {"class_type": "EmptyLatentImage",
               "inputs": {"width": 32, "height": 64, "batch_size": 1}},
        "31": {"class_type": "CLIPTextEncode", "inputs": {"text": "a knight", "clip": ["1", 1]}},
        "32": {"class_type": "KSampler",
               "inputs": {**_ksampler(["30", 0], 9, 1.0)["inputs"], "positive": ["31", 0]}},
        "33": {"class_type": "LatentComposite",
               "inputs": {"samples_to": ["5", 0], "samples_from": ["32", 0], "x": 48, "y": 0,
                          "feather": 8}},
        "34": _ksampler(["33", 0], 10, 0.6, steps=8),
        "35": _decode("34"), "36": _save("35", "composed"),
        "37": _decode("33"), "38": _save("37", "pasted"),
        "39": _decode("5"), "40": _save("39", "background"),
    }  # fmt: skip
    result = _run(prompt, registry, settings)
    background, pasted = _pixels(settings, result, "40"), _pixels(settings, result, "38")
    composed = _pixels(settings, result, "36")
    assert composed.shape == pasted.shape == background.shape
    px = background.shape[1] // 16  # pixels per 8 ComfyUI pixels, for this VAE
    left = pasted[:, : 4 * px].astype(int) - background[:, : 4 * px].astype(int)
    middle = pasted[:, 7 * px : 9 * px].astype(int) - background[:, 7 * px : 9 * px].astype(int)
    # the subject's area changed; far from it, only the decoder's reach shows
    assert np.abs(middle).mean() > 5 * np.abs(left).mean()
    assert np.abs(composed.astype(int) - pasted.astype(int)).mean() > 1  # the last pass ran


def test_outpaint_preparation_masks_run_as_a_graph(registry, settings):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "ImagePadForOutpaint",
              "inputs": {"image": ["1", 0], "left": 32, "top": 0, "right": 0, "bottom": 16,
                         "feathering": 8}},
        "3": {"class_type": "GrowMask",
              "inputs": {"mask": ["2", 1], "expand": 2, "tapered_corners": True}},
        "4": {"class_type": "InvertMask", "inputs": {"mask": ["3", 0]}},
        "5": {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["2", 0], "alpha": ["4", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "pad"}},
        "7": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 1]}},
        "8": _save("7", "mask"),
    }  # fmt: skip
    result = _run(prompt, registry, settings)
    mask = _pixels(settings, result, "8")
    assert mask.shape == (128 + 16, 128 + 32, 3)
    assert (mask[:, :32] == 255).all() and (mask[-16:] == 255).all()
    assert (mask[:100, 60:100] == 0).all()  # the picture, away from the seams, is kept
    padded = _pixels(settings, result, "6")
    assert padded.shape[:2] == mask.shape[:2]


@pytest.mark.parametrize(
    "values, expected",
    [(["hole.png", "red", "image"], "red"),  # as ComfyUI's editor saves it
     (["hole.png", "green"], "green"),  # older files, no upload value
     (["hole.png"], None)],
)  # fmt: skip
def test_editor_upload_value_follows_the_required_widgets(registry, values, expected):
    editor = {"nodes": [{"id": 1, "type": "LoadImageMask", "mode": 0, "inputs": [],
                         "outputs": [{"name": "MASK", "type": "MASK", "links": []}],
                         "widgets_values": values}], "links": []}  # fmt: skip
    node = graph_from_editor(editor, registry).nodes["1"]
    assert node.inputs["image"] == "hole.png"
    assert node.inputs.get("channel") == expected
    back = editor_from_graph(graph_from_editor(editor, registry), registry)
    saved = back["nodes"][0]["widgets_values"]
    assert saved == ["hole.png", expected or "alpha", "image"]
    assert graph_from_editor(back, registry).nodes["1"].inputs["channel"] == (expected or "alpha")
