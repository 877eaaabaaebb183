"""Conditioning from another model family's text encoder is refused before the UNet runs, by
every sampler node, naming the input and both widths (nodes/sdxl.py `check_fits`); it was a raw
torch error ("mat1 and mat2 shapes cannot be multiplied") and exit 1 for an SD UNet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler

COMFY_DATA = Path(__file__).resolve().parents[1] / "comfy" / "data"
SD_GETS_SDXL = ("the conditioning's text embeddings are 96 wide but this UNet takes 32 (its "
                "cross_attention_dim): it likely comes from an SDXL text encoder; encode the "
                "prompt with the clip loaded with this model")  # fmt: skip

MIXED = """\
version: 1
nodes:
  sd: {type: LoadModel, source: builtin:tiny-sd}
  xl: {type: LoadModel, source: builtin:tiny-sdxl}
  pos: {type: TextEncode, clip: xl.clip, text: a cat}
  neg: {type: TextEncode, clip: xl.clip, text: ""}
  noise: {type: LatentNoise, width: 64, height: 64}
  sched: {type: SchedulerSelect, scheduler: sd.scheduler, name: ddim}
  dn:
    type: UNetDenoise
    unet: sd.unet
    scheduler: sched.scheduler
    positive: pos.conditioning
    negative: neg.conditioning
    latent: noise
    steps: 2
  dec: {type: VAEDecode, samples: dn.latent, vae: sd.vae}
  save: {type: SaveImage, images: dec, filename_prefix: mix}
"""


def test_an_sd_unet_given_sdxl_conditioning_exits_2_naming_the_input_and_both_widths(
    sdxl, tiny, tmp_path, monkeypatch, capsys
):
    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mix.yaml").write_text(MIXED)
    code = main(["run", "mix.yaml", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"node 'dn' (UNetDenoise) input 'negative': {SD_GETS_SDXL}" in err
    assert "Traceback" not in err and "mat1 and mat2" not in err


def _mixed_prompt(sampler: str) -> dict:
    """ComfyUI's classic graph on tiny-sd, its prompts encoded by tiny-sdxl's clip, sampled by
    `sampler`."""
    if sampler == "SamplerCustom":
        prompt = json.loads((COMFY_DATA / "sdturbo_api.json").read_text())
        prompt["13"]["inputs"]["cfg"] = 5.0
        loader, node = "20", "13"
    else:
        prompt = json.loads((COMFY_DATA / "classic_api.json").read_text())
        loader, node = "4", "3"
        if sampler == "KSamplerAdvanced":
            inputs = prompt[node]["inputs"]
            prompt[node] = {"class_type": sampler, "inputs": {
                "add_noise": "enable", "noise_seed": 1, "steps": 3, "cfg": 7.5,
                "sampler_name": "euler", "scheduler": "normal", "start_at_step": 0,
                "end_at_step": 10000, "return_with_leftover_noise": "disable",
                **{k: inputs[k] for k in ("model", "positive", "negative", "latent_image")}}}  # fmt: skip
    prompt[loader]["inputs"]["ckpt_name"] = "builtin:tiny-sd"
    prompt["xl"] = {"class_type": "CheckpointLoaderSimple",
                    "inputs": {"ckpt_name": "builtin:tiny-sdxl"}}  # fmt: skip
    for key in ("6", "7"):
        prompt[key]["inputs"]["clip"] = ["xl", 1]
    return prompt, node


@pytest.mark.parametrize("sampler", ["KSampler", "KSamplerAdvanced", "SamplerCustom"])
def test_every_comfy_sampler_refuses_sdxl_conditioning_for_an_sd_unet(sdxl, tiny, tmp_path,
                                                                      sampler):  # fmt: skip
    import latentgraph.nodes  # noqa: F401 - registers the nodes

    prompt, node = _mixed_prompt(sampler)
    settings = Settings(output_dir=tmp_path, input_dir=tmp_path, temp_dir=tmp_path)
    graph = graph_from_prompt(prompt, default_registry)
    result = Scheduler(default_registry, settings=settings).run(graph, targets=[node])
    [failure] = result.failures
    assert failure.user_error and failure.node_id == node
    assert failure.input_name == "negative"
    assert failure.message.endswith(f"input 'negative': {SD_GETS_SDXL}")


def test_an_sdxl_refiner_given_base_conditioning_names_both_widths(make_ctx, sdxl, refiner):
    import torch

    from latentgraph.nodes import text
    from latentgraph.nodes.guidance import Guidance
    from latentgraph.nodes.values import NodeInputError

    base = text.text_encode(make_ctx("TextEncode"), sdxl[1], "a cat")
    width = base.single.embeds.shape[-1]
    expected = refiner[0].unet.config.cross_attention_dim
    with pytest.raises(NodeInputError, match=f"input 'positive': the conditioning's text "
                       f"embeddings are {width} wide but this UNet takes {expected} .*another "
                       f"model"):  # fmt: skip
        Guidance(make_ctx("UNetDenoise"), refiner[0].unet, torch.device("cpu"), base, base, 1.0,
                 (1, 4, 16, 16))  # fmt: skip
