"""ComfyUI's VAEDecodeTiled and VAEEncodeTiled (nodes/comfy_vae.py): an API prompt using them
runs as one using VAEDecode and VAEEncode does, tiled by the one tiler VAEDecode's `tiled`
uses at the tile size asked; values outside ComfyUI's ranges are refused naming the input."""

from __future__ import annotations

import json

import pytest
import torch

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.object_info import node_info
from latentgraph.graph.scheduler import Scheduler
from latentgraph.server.prompts import PromptRejected, check_prompt

from .conftest import DATA


def tiled_decode(samples: list, tile_size: int = 64, overlap: int = 16) -> dict:
    return {"class_type": "VAEDecodeTiled",
            "inputs": {"samples": samples, "vae": ["4", 2], "tile_size": tile_size,
                       "overlap": overlap, "temporal_size": 64, "temporal_overlap": 8}}  # fmt: skip


def tiled_encode(pixels: list, tile_size: int = 64, overlap: int = 16) -> dict:
    node = tiled_decode([], tile_size, overlap)
    del node["inputs"]["samples"]
    return {"class_type": "VAEEncodeTiled", "inputs": {"pixels": pixels, **node["inputs"]}}


def preview(images: list) -> dict:
    return {"class_type": "PreviewImage", "inputs": {"images": images}}


@pytest.fixture
def t2i() -> dict:
    """ComfyUI's text-to-image prompt at 128x96 pixels: larger than a 64-pixel tile."""
    prompt = json.loads((DATA / "classic_api.json").read_text())
    prompt["3"]["inputs"]["steps"] = 2
    prompt["5"]["inputs"].update(width=128, height=96)
    return prompt


def run(prompt: dict, settings: Settings, keep: list[str]):
    result = Scheduler(default_registry, settings=settings).run(
        graph_from_prompt(prompt, default_registry), extra={"prompt": prompt}, keep=keep
    )
    assert result.ok, result.failures
    return result


def test_a_tiled_decode_gives_vaedecodes_size_and_a_close_image(t2i, settings):
    """VAEDecodeTiled in place of VAEDecode: the same size; an image close to the untiled one
    (the tiny VAE's attention sees one tile at a time, so not the same); smaller tiles, further
    from it; a tile as large as the image, the untiled image itself."""
    t2i["10"], t2i["11"] = tiled_decode(["3", 0], 64, 16), preview(["10", 0])
    t2i["12"], t2i["13"] = tiled_decode(["3", 0], 96, 32), preview(["12", 0])
    t2i["14"], t2i["15"] = tiled_decode(["3", 0], 128, 64), preview(["14", 0])
    result = run(t2i, settings, keep=["8", "10", "12", "14"])
    untiled = result.output("8")
    small, larger, whole = (result.output(n) for n in ("10", "12", "14"))
    assert untiled.shape == small.shape == larger.shape == whole.shape == (1, 96, 128, 3)
    assert torch.equal(whole, untiled)
    off = [(image - untiled).abs().mean().item() for image in (small, larger)]
    assert 0 < off[1] < off[0] < 0.05, off


def test_tiles_of_any_size_meet_whatever_the_overlap(t2i, settings):
    """A 33-cell tile (264 pixels) overlapping 6 cells (48): diffusers' tiler, given 6/33 as a
    float, rounded a product down a cell short and decoded 576 pixels for 560 (encoded 72
    cells for 70); the overlap it is given keeps every product whole."""
    t2i["5"]["inputs"].update(width=560, height=192)
    t2i["8"] = tiled_decode(["5", 0], 264, 48)
    t2i["10"], t2i["11"] = tiled_encode(["8", 0], 264, 48), tiled_decode(["10", 0], 280, 48)
    t2i["9"] = preview(["11", 0])
    result = run(t2i, settings, keep=["8", "10", "11"])
    assert result.output("8").shape == result.output("11").shape == (1, 192, 560, 3)
    assert result.output("10").samples.shape == (1, 4, 24, 70)


def test_a_tiled_encode_round_trip(settings):
    """LoadImage → VAEEncodeTiled → VAEDecodeTiled: latents of VAEEncode's shape and near
    VAEEncode's (the tiny VAE is random: alike in direction, nearer with larger tiles, equal
    with a tile the image's size), decoded back to the image's size."""
    prompt = {"4": {"class_type": "CheckpointLoaderSimple",
                    "inputs": {"ckpt_name": "builtin:tiny-sd"}},
              "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
              "2": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["4", 2]}},
              "3": tiled_encode(["1", 0], 64, 16), "5": tiled_encode(["1", 0], 96, 32),
              "6": tiled_encode(["1", 0], 128, 16)}  # fmt: skip
    for n, latent in enumerate(("2", "3", "5", "6")):
        prompt[f"2{n}"], prompt[f"3{n}"] = tiled_decode([latent, 0]), preview([f"2{n}", 0])
    result = run(prompt, settings, keep=["1", "2", "3", "5", "6", "21"])
    untiled, small, larger, whole = (result.output(n).samples for n in ("2", "3", "5", "6"))
    assert untiled.shape == small.shape == larger.shape == (1, 4, 16, 16)
    assert torch.equal(whole, untiled)
    like = [torch.cosine_similarity(t.flatten(), untiled.flatten(), dim=0) for t in (small, larger)]
    assert 0.5 < like[0] < like[1] < 1, like
    assert result.output("21").shape == result.outputs["1"][0].shape == (1, 128, 128, 3)


def test_values_outside_comfyuis_ranges_are_refused_naming_the_input(t2i):
    t2i["8"] = tiled_decode(["3", 0], 32, -32)
    t2i["8"]["inputs"]["temporal_overlap"] = 2
    t2i["10"], t2i["11"] = tiled_encode(["8", 0], 8192, 0), tiled_decode(["10", 0])
    t2i["12"] = preview(["11", 0])
    with pytest.raises(PromptRejected) as caught:
        check_prompt(t2i, default_registry, Settings())
    errors = caught.value.body["node_errors"]
    said = {(nid, e["type"], e["extra_info"]["input_name"])
            for nid in errors for e in errors[nid]["errors"]}  # fmt: skip
    assert said == {("8", "value_smaller_than_min", "tile_size"),
                    ("8", "value_smaller_than_min", "overlap"),
                    ("8", "value_smaller_than_min", "temporal_overlap"),
                    ("10", "value_bigger_than_max", "tile_size")}  # fmt: skip


def test_their_inputs_are_comfyuis():
    """ComfyUI's current nodes (nodes.py): four widgets after the two sockets, their defaults,
    ranges and steps; the encoder's tile_size steps by 64."""
    for name, first, step in (("VAEDecodeTiled", "samples", 32), ("VAEEncodeTiled", "pixels", 64)):
        info = node_info(default_registry[name])
        assert info["input_order"]["required"] == [
            first, "vae", "tile_size", "overlap", "temporal_size", "temporal_overlap"]  # fmt: skip
        widgets = {k: (v[0], {o: v[1][o] for o in ("default", "min", "max", "step")})
                   for k, v in info["input"]["required"].items() if k not in (first, "vae")}  # fmt: skip
        assert widgets == {
            "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": step}),
            "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
            "temporal_size": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 4}),
            "temporal_overlap": ("INT", {"default": 8, "min": 4, "max": 4096, "step": 4}),
        }
        assert info["output"] == ["IMAGE" if first == "samples" else "LATENT"]
