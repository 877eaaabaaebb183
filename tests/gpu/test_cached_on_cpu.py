"""Cached latents and conditioning live on the CPU; their consumers move them to the device.

No GPU here, and on the CPU a tensor moved to the compute device looks like one that never left.
So the run's compute device is "cpu:0": torch runs it on the CPU, but a move to it can be told
from a move home (`.cpu()`, `.to("cpu")`). A torch function mode tags each tensor moved to (or made on)
the compute device, the weights `loaders.place` puts there are tagged too (so everything a model
computes is: a tensor subclass survives the ops); a move home drops the tag. A LATENT or
CONDITIONING output still tagged would stay on the GPU, in the cache, on a real run.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.overrides import TorchFunctionMode

from latentgraph.graph import Settings
from latentgraph.graph.cache import Cache
from latentgraph.graph.declare import default_registry
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.scheduler import Scheduler
from latentgraph.wiring import node_registry

COMPUTE = torch.device("cpu", 0)  # the stand-in GPU
HOME = torch.device("cpu")


class OnDevice(torch.Tensor):
    """A tensor on the compute device (ops on it return OnDevice too); it says so, so that
    `x.to(model.device)` is a move to the compute device, as on a GPU."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func == torch.Tensor.device.__get__:  # (a new method-wrapper each time)
            return COMPUTE
        return super().__torch_function__(func, types, args, kwargs or {})


class TagDeviceMoves(TorchFunctionMode):
    """Tags tensors moved to (or made on) COMPUTE, untags tensors moved HOME; records what
    was moved."""

    def __init__(self) -> None:
        super().__init__()
        self.moved: list[torch.Tensor] = []  # the tensors given to a move to the device

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is torch.Tensor.cpu:
            return out.as_subclass(torch.Tensor)
        if func is torch.Tensor.to:
            target = torch._C._nn._parse_to(*args[1:], **kwargs)[0]
            if target == COMPUTE:
                self.moved.append(args[0])
                return out.as_subclass(OnDevice)
            if target == HOME:
                return out.as_subclass(torch.Tensor)
        made_there = kwargs.get("device") is not None and torch.device(kwargs["device"]) == COMPUTE
        if made_there and isinstance(out, torch.Tensor):  # torch.randn(..., device=device)
            return out.as_subclass(OnDevice)
        return out


def tensors_in(value) -> list[torch.Tensor]:
    """The tensors inside a node output (dataclass fields, lists, tuples)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if dataclasses.is_dataclass(value):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in tensors_in(v)]
    return []


def run_tagged(graph: Graph) -> tuple[dict, TagDeviceMoves]:
    """Run `graph` with COMPUTE as the device (use the `compute_device` fixture)."""
    node_registry()
    scheduler = Scheduler(default_registry, Cache(), Settings(device="cpu"))
    with TagDeviceMoves() as mode:
        result = scheduler.run(graph, targets=list(graph.nodes))
    assert result.ok, result.failures
    # The values the cache holds, which later runs are served: `outputs` hands out copies.
    return dict(result.outputs._held), mode


@pytest.fixture
def compute_device(monkeypatch, fresh_manager):
    """The runtime's device is COMPUTE (Settings accept no such name), with a model manager of
    its own: the models loaded (and tagged) here are not the ones other tests share."""
    from latentgraph.nodes import loaders, runtime

    monkeypatch.setattr(runtime, "device_name", lambda settings: str(COMPUTE))
    place = loaders.place

    def place_and_tag(settings, module, device):
        module = place(settings, module, device)
        if torch.device(device) == COMPUTE:  # the weights are on the compute device now
            for sub in module.modules():
                for name, p in sub.named_parameters(recurse=False):
                    sub._parameters[name] = torch.nn.Parameter(p.detach().as_subclass(OnDevice),
                                                               requires_grad=False)  # fmt: skip
                for name, b in sub.named_buffers(recurse=False):
                    sub._buffers[name] = b.as_subclass(OnDevice)
        return module

    monkeypatch.setattr(loaders, "place", place_and_tag)


def on_device(outputs: dict, graph: Graph) -> list[str]:
    """'node.output' for each LATENT or CONDITIONING output holding a compute-device tensor."""
    found = []
    for node_id, values in outputs.items():
        node_type = default_registry[graph[node_id].type]
        for out, value in zip(node_type.outputs, values, strict=True):
            if out.type in ("LATENT", "CONDITIONING"):
                tensors = tensors_in(value)
                assert tensors, f"{node_id}.{out.name} holds no tensor"
                if any(type(t) is not torch.Tensor or t.device != HOME for t in tensors):
                    found.append(f"{node_id}.{out.name}")
    return found


def sd_graph(source: str) -> Graph:
    """Encode both prompts, denoise two steps, decode, and encode the image again."""
    g = Graph()
    g.add(Node("m", "LoadModel", {"source": source}))
    g.add(Node("pos", "TextEncode", {"clip": Link("m", 1), "text": "a (red:1.2) cat"}))
    g.add(Node("neg", "TextEncode", {"clip": Link("m", 1), "text": "blurry"}))
    g.add(Node("noise", "LatentNoise", {"vae": Link("m", 2), "width": 64, "height": 64}))
    g.add(Node("d", "UNetDenoise", {"unet": Link("m", 0), "scheduler": Link("m", 3),
                                    "positive": Link("pos", 0), "negative": Link("neg", 0),
                                    "latent": Link("noise", 0), "steps": 2}))  # fmt: skip
    g.add(Node("img", "VAEDecode", {"samples": Link("d", 0), "vae": Link("m", 2)}))
    g.add(Node("enc", "VAEEncode", {"pixels": Link("img", 0), "vae": Link("m", 2)}))
    return g


def comfy_graph() -> Graph:
    """The same through ComfyUI's nodes: CLIPTextEncode, KSampler, KSamplerAdvanced."""
    g = Graph()
    g.add(Node("m", "CheckpointLoaderSimple", {"ckpt_name": "builtin:tiny-sd"}))
    g.add(Node("pos", "CLIPTextEncode", {"clip": Link("m", 1), "text": "a cat"}))
    g.add(Node("neg", "CLIPTextEncode", {"clip": Link("m", 1), "text": "blurry"}))
    g.add(Node("empty", "EmptyLatentImage", {"width": 64, "height": 64}))
    sampling = {"model": Link("m", 0), "positive": Link("pos", 0), "negative": Link("neg", 0),
                "steps": 2, "sampler_name": "euler", "scheduler": "normal"}  # fmt: skip
    g.add(Node("k", "KSampler", {**sampling, "latent_image": Link("empty", 0)}))
    g.add(Node("adv", "KSamplerAdvanced", {**sampling, "latent_image": Link("k", 0),
                                           "add_noise": "enable"}))  # fmt: skip
    return g


@pytest.mark.parametrize("source", ["builtin:tiny-sd", "builtin:tiny-sdxl"])
def test_latents_and_conditioning_come_back_to_the_cpu(source, tiny_folder, compute_device):
    if source == "builtin:tiny-sdxl":
        from latentgraph.nodes.tiny_sdxl import ensure_tiny_sdxl

        ensure_tiny_sdxl()
    graph = sd_graph(source)
    outputs, mode = run_tagged(graph)
    # The tagging is live: the models ran on the compute device.
    assert isinstance(outputs["m"][0].unet.conv_in.weight, OnDevice)
    assert on_device(outputs, graph) == []
    if source == "builtin:tiny-sdxl":
        assert outputs["pos"][0].pooled is not None  # SDXL's pooled embedding was checked too


def test_comfy_nodes_return_cpu_values_too(tiny_folder, compute_device):
    graph = comfy_graph()
    outputs, mode = run_tagged(graph)
    assert isinstance(outputs["m"][0].unet.conv_in.weight, OnDevice)
    assert on_device(outputs, graph) == []


def test_consumers_move_cpu_values_to_the_device(tiny_folder, compute_device):
    graph = sd_graph("builtin:tiny-sd")
    outputs, mode = run_tagged(graph)
    storages = {t.untyped_storage().data_ptr() for t in mode.moved}
    given = {"pos": outputs["pos"][0].embeds, "neg": outputs["neg"][0].embeds,
             "noise": outputs["noise"][0].samples, "d": outputs["d"][0].samples,
             "img": outputs["img"][0]}  # fmt: skip
    # UNetDenoise took both conditionings and the noise to the device, VAEDecode the
    # latents, VAEEncode the image: each moved (a view of) the CPU value it was given.
    assert [k for k, t in given.items() if t.untyped_storage().data_ptr() not in storages] == []
