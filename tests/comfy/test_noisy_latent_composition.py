"""ComfyUI's *noisy* latent composition example: KSamplerAdvanced passes stop early with their
leftover noise, LatentComposite pastes one into the other, and a last KSamplerAdvanced
continues from that step adding no noise. It validates with no warning and runs; a paste
covering the whole latent continues exactly as the pasted chain run uninterrupted would."""

from __future__ import annotations

import numpy as np

from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.validate import validate

from .test_comfy_sd_tools import _base, _decode, _pixels, _run, _save, registry, settings

__all__ = ["registry", "settings"]  # the fixtures, shared


def _advanced(latent: list, seed: int, start: int, end: int, add_noise: str, leftover: str,
              steps: int = 6) -> dict:  # fmt: skip
    return {"class_type": "KSamplerAdvanced",
            "inputs": {"model": ["1", 0], "add_noise": add_noise, "noise_seed": seed,
                       "steps": steps, "cfg": 7.0, "sampler_name": "euler",
                       "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0],
                       "latent_image": latent, "start_at_step": start, "end_at_step": end,
                       "return_with_leftover_noise": leftover}}  # fmt: skip


def _noisy_composition(x: int) -> dict:
    prompt = _base()
    prompt |= {
        "10": _advanced(["4", 0], 11, 0, 3, "enable", "enable"),  # background, stops at step 3
        "11": _advanced(["4", 0], 12, 0, 3, "enable", "enable"),  # subject, same schedule
        "12": {"class_type": "LatentComposite",
               "inputs": {"samples_to": ["10", 0], "samples_from": ["11", 0], "x": x, "y": 0,
                          "feather": 0}},
        "13": _advanced(["12", 0], 13, 3, 10000, "disable", "disable"),  # continues, no noise
        "14": _decode("13"), "15": _save("14", "composed"),
        "20": _advanced(["4", 0], 12, 0, 10000, "enable", "disable"),  # the subject's chain whole
        "21": _decode("20"), "22": _save("21", "uninterrupted"),
    }  # fmt: skip
    del prompt["5"]
    return prompt


def test_the_noisy_composition_validates_without_a_warning(registry):
    assert validate(graph_from_prompt(_noisy_composition(32), registry), registry) == []


def test_a_leftover_noise_latent_pasted_whole_continues_as_its_uninterrupted_run(
    registry, settings
):
    result = _run(_noisy_composition(0), registry, settings)  # x 0, same size: all of 11
    composed, whole = _pixels(settings, result, "15"), _pixels(settings, result, "22")
    assert np.array_equal(composed, whole)
