"""`cpu_offload`: every model a run placed for offload is back on the CPU after the run,
ControlNets and T2I-Adapters as well as the UNet, VAE and text encoder.

No GPU here: the run's device is "cpu:0" (as in test_cached_on_cpu.py), which
`runtime.offloads` takes for a GPU, and every `Module.to` is recorded, so a move to the
stand-in GPU can be told from a move home.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

from latentgraph.graph import Settings
from latentgraph.graph.cache import Cache
from latentgraph.graph.declare import default_registry
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.scheduler import Scheduler
from latentgraph.wiring import node_registry

COMPUTE = "cpu:0"  # the stand-in GPU


@pytest.fixture
def traced(monkeypatch, fresh_manager):
    """(the modules loaders.place was given, each module's move targets in order by id)."""
    from latentgraph.nodes import loaders, runtime

    monkeypatch.setattr(runtime, "device_name", lambda settings: COMPUTE)
    placed: list[torch.nn.Module] = []
    place = loaders.place

    def place_and_note(settings, module, device):
        placed.append(module)
        return place(settings, module, device)

    monkeypatch.setattr(loaders, "place", place_and_note)
    moves: dict[int, list[str]] = defaultdict(list)
    to = torch.nn.Module.to

    def traced_to(self, *args, **kwargs):
        target = torch._C._nn._parse_to(*args, **kwargs)[0]
        if target is not None:
            moves[id(self)].append(str(target))
        return to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", traced_to)
    return placed, moves


def controlled_graph(sampler: str) -> Graph:
    """Prompts steered by a ControlNet and a T2I-Adapter, sampled by `sampler`, decoded."""
    g = Graph()

    def add(node_id: str, node_type: str, **inputs) -> None:
        g.add(Node(node_id, node_type, inputs))

    add("m", "LoadModel", source="builtin:tiny-sd")
    add("pos", "TextEncode", clip=Link("m", 1), text="a cat")
    add("neg", "TextEncode", clip=Link("m", 1), text="blurry")
    add("img", "EmptyImage", width=64, height=64, color=0xFFFFFF)
    add("cn", "LoadControlNet", control_net="builtin:tiny-controlnet")
    add("ad", "LoadControlNet", control_net="builtin:tiny-t2i-adapter")
    add("c1", "ApplyControlNet", positive=Link("pos", 0), negative=Link("neg", 0),
        control_net=Link("cn", 0), image=Link("img", 0))  # fmt: skip
    add("c2", "ApplyControlNet", positive=Link("c1", 0), negative=Link("c1", 1),
        control_net=Link("ad", 0), image=Link("img", 0))  # fmt: skip
    add("noise", "LatentNoise", vae=Link("m", 2), width=64, height=64)
    conds = {"positive": Link("c2", 0), "negative": Link("c2", 1)}
    if sampler == "UNetDenoise":
        add("d", "UNetDenoise", unet=Link("m", 0), scheduler=Link("m", 3), **conds,
            latent=Link("noise", 0), steps=2)  # fmt: skip
    else:
        add("g", "CFGGuider", model=Link("m", 0), **conds)
        add("s", "KSamplerSelect", sampler_name="euler")
        add("sig", "BasicScheduler", model=Link("m", 0), steps=2)
        add("rn", "RandomNoise")
        add("d", "SamplerCustomAdvanced", noise=Link("rn", 0), guider=Link("g", 0),
            sampler=Link("s", 0), sigmas=Link("sig", 0), latent_image=Link("noise", 0))  # fmt: skip
    add("dec", "VAEDecode", samples=Link("d", 0), vae=Link("m", 2))
    return g


@pytest.mark.parametrize("sampler", ["UNetDenoise", "SamplerCustomAdvanced"])
def test_every_offloaded_model_is_back_on_the_cpu_after_a_run(sampler, tiny_folder, traced,
                                                              fresh_manager):  # fmt: skip
    placed, moves = traced
    node_registry()
    settings = Settings(device="cpu", options={"cpu_offload": True})
    result = Scheduler(default_registry, Cache(), settings).run(controlled_graph(sampler),
                                                                targets=["dec"])  # fmt: skip
    assert result.ok, result.failures
    kinds = sorted(type(m).__name__ for m in placed)
    assert kinds == ["AutoencoderKL", "CLIPTextModel", "ControlNetModel", "T2IAdapter",
                     "UNet2DConditionModel"]  # fmt: skip
    # each visited the stand-in GPU for its use, and went home after it
    where = {type(m).__name__: moves[id(m)] for m in placed}
    assert {name: COMPUTE in seen for name, seen in where.items()} == dict.fromkeys(where, True)
    assert {name: seen[-1] for name, seen in where.items()} == dict.fromkeys(where, "cpu")
    # and between uses they count against RAM, where they live
    entries = fresh_manager._entries
    assert len(entries) == 3  # the checkpoint, the ControlNet, the T2I-Adapter
    assert {key: e.device for key, e in entries.items() if e.device != "cpu"} == {}
