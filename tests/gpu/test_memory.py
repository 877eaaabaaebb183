"""Unloading really frees the weights; per-device VRAM budgets; evict before load; offload."""

from __future__ import annotations

import gc
import json
import shutil
import time
import weakref

import pytest

from latentgraph.graph import Settings
from latentgraph.graph.cache import Cache
from latentgraph.graph.declare import default_registry
from latentgraph.graph.model import Graph, Node
from latentgraph.graph.scheduler import Scheduler
from latentgraph.wiring import node_registry, worker_setup

from .conftest import GIB


def _load(scheduler: Scheduler, source: str):
    """Run one LoadModel node; the run's cache keeps its outputs (the model handles)."""
    g = Graph()
    g.add(Node("m", "LoadModel", {"source": source}))
    result = scheduler.run(g, targets=["m"])
    assert result.ok, result.failures
    return weakref.ref(result.outputs["m"][0].unet), result.outputs["m"][0].key


def _scheduler() -> Scheduler:
    node_registry()
    return Scheduler(default_registry, Cache(), Settings(device="cpu"))


def _collected(ref: weakref.ref) -> bool:
    gc.collect()
    return ref() is None


def test_free_releases_the_weights_a_cache_holds(tiny_folder, fresh_manager):
    scheduler = _scheduler()
    ref, key = _load(scheduler, "builtin:tiny-sd")
    assert len(scheduler.cache.memory) == 1 and not _collected(ref)
    fresh_manager.free(key)
    assert _collected(ref)
    assert len(scheduler.cache.memory) == 0  # the next run loads again, not a dead handle
    again, _ = _load(scheduler, "builtin:tiny-sd")
    assert again() is not None and fresh_manager.loads == 2


def test_eviction_releases_the_old_model(tiny_folder, fresh_manager, tmp_path):
    other = tmp_path / "tiny-copy"
    shutil.copytree(tiny_folder, other)
    scheduler = _scheduler()
    first, _ = _load(scheduler, "builtin:tiny-sd")
    fresh_manager.ram_budget = fresh_manager.used("ram") + 1  # room for one model only
    second, _ = _load(scheduler, str(other))
    assert _collected(first) and not _collected(second)


def test_post_free_unload_models_releases_the_weights(tiny_folder, fresh_manager, tmp_path):
    """What POST /free makes a server worker do (`JobRunner.free`, the command the dispatcher
    sends every worker), here in this process so the weights can be watched."""
    import multiprocessing

    from latentgraph.server.worker_process import JobRunner, WorkerSpec
    from latentgraph.server.workers import Job

    ours, theirs = multiprocessing.Pipe()
    spec = WorkerSpec(0, Settings(output_dir=tmp_path / "out"), preload=False)
    runner = JobRunner(worker_setup(), spec, theirs)
    prompt = {"1": {"class_type": "LoadModel", "inputs": {"source": "builtin:tiny-sd"}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}  # fmt: skip
    runner.run(Job("p", json.dumps(prompt), {}, None, previews=False))
    (entry,) = fresh_manager._entries.values()
    ref = weakref.ref(entry.value.unet)
    del entry
    runner.free(unload_models=True, free_memory=False)
    deadline = time.monotonic() + 20
    while not _collected(ref):
        assert time.monotonic() < deadline, "the UNet is still alive after /free"
        time.sleep(0.1)
    ours.close()


def test_vram_budget_per_device_and_eviction_before_loading(fake_cuda):
    from latentgraph.nodes.model_manager import ModelManager

    m = ModelManager(vram_headroom=1 * GIB)
    assert m.budget("cuda:0") == 9 * GIB and m.budget("cuda:1") == 3 * GIB
    m.get("a", lambda: "A", device="cuda:0", size=lambda v: 4 * GIB)
    m.get("b", lambda: "B", device="cuda:0", size=lambda v: 4 * GIB)
    m.get("x", lambda: "X", device="cuda:1", size=lambda v: 2 * GIB)  # its own budget
    m.get("r", lambda: "R", device="cpu", size=lambda v: 5 * GIB)  # RAM: not a GPU's
    m.get("a", lambda: "A2", device="cuda:0")  # touch a: b is the oldest on cuda:0
    resident_at_load = []

    def load_c() -> str:
        resident_at_load.append(m.keys())
        return "C"

    m.get("c", load_c, device="cuda:0", size=lambda v: 4 * GIB, expect=4 * GIB)
    assert resident_at_load == [["x", "r", "a"]]  # b went BEFORE c loaded; other pools stay
    assert m.keys() == ["x", "r", "a", "c"] and m.used("cuda:0") == 8 * GIB
    assert fake_cuda.emptied >= 1

    # Another process holds most of cuda:1: what is really free counts, not only our sum.
    fake_cuda.free[1] = int(1.5 * GIB)  # 1 GiB more would eat into the headroom
    m.get("y", lambda: "Y", device="cuda:1", size=lambda v: 1 * GIB, expect=1 * GIB)
    assert "x" not in m.keys() and "y" in m.keys()


def test_headroom_is_an_option(fake_cuda, fresh_manager, tiny_folder):
    from latentgraph.graph import CancelToken, Context
    from latentgraph.nodes import loaders

    settings = Settings(device="cuda", options={"cpu_offload": True, "vram_headroom_gb": 2.5})
    loaders.load_model(Context("m", "LoadModel", settings, CancelToken()), "builtin:tiny-sd")
    assert fresh_manager.vram_headroom == int(2.5 * GIB)
    assert fresh_manager.budget("cuda:0") == int(7.5 * GIB)


def test_the_ram_budget_follows_the_machines_ram(monkeypatch):
    """Three quarters of the RAM (on a Mac the GPU's too): an 8 GB Mac keeps one 4.3 GB fp32
    SD 1.5 bundle, not two (it would swap); where the system does not say (Windows), 16 GB."""
    import os

    from latentgraph.nodes.model_manager import ModelManager

    pages = {"SC_PAGE_SIZE": 16384, "SC_PHYS_PAGES": 8 * GIB // 16384}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    m = ModelManager()
    assert m.ram_budget == 6 * GIB
    bundle = int(4.3 * GIB)
    m.get("sd15", lambda: "A", device="mps", size=lambda v: bundle, expect=bundle)
    m.get("other", lambda: "B", device="mps", size=lambda v: bundle, expect=bundle)
    assert m.keys() == ["other"]
    monkeypatch.delattr(os, "sysconf")
    assert ModelManager().ram_budget == 16 * GIB


def test_the_ram_budget_is_an_option(fresh_manager, tiny_folder):
    from latentgraph.graph import CancelToken, Context
    from latentgraph.nodes import control_loading, loaders

    settings = Settings(device="cpu", options={"ram_budget_gb": "3.5"})
    loaders.load_model(Context("m", "LoadModel", settings, CancelToken()), "builtin:tiny-sd")
    assert fresh_manager.ram_budget == int(3.5 * GIB) == fresh_manager.budget("ram")
    control_loading.load_control(Settings(device="cpu", options={"ram_budget_gb": 2}),
                                 "builtin:tiny-controlnet")  # fmt: skip
    assert fresh_manager.ram_budget == 2 * GIB


def test_cpu_offload_places_every_module_on_the_cpu_with_a_gpu_hook(fake_cuda, fresh_manager,
                                                                    tiny_folder):  # fmt: skip
    import torch

    from latentgraph.graph import CancelToken, Context
    from latentgraph.nodes import loaders

    settings = Settings(device="cuda", dtype="fp16", options={"cpu_offload": True})

    def ctx(node_type: str) -> Context:
        return Context("n", node_type, settings, CancelToken())

    unet, clip, vae, _ = loaders.load_model(ctx("LoadModel"), "builtin:tiny-sd")
    vae2 = loaders.load_vae(ctx("LoadVAE"), str(tiny_folder))
    clip2 = loaders.load_text_encoder(ctx("LoadTextEncoder"), str(tiny_folder))
    modules = {"unet": unet.unet, "text encoder": clip.text_encoder, "vae": vae.vae,
               "LoadVAE": vae2.vae, "LoadTextEncoder": clip2.text_encoder}  # fmt: skip
    for name, module in modules.items():
        assert {p.device.type for p in module.parameters()} == {"cpu"}, name
        hook = module._hf_hook  # accelerate's: moves the module to the GPU for each call
        assert str(hook.execution_device) == "cuda:0", name
    assert unet.unet.dtype == torch.float16 and clip.text_encoder.dtype == torch.float16
    assert vae.vae.dtype == torch.float32  # fp32 VAE: the tiny VAE's config asks for upcast
    # offloaded models count against RAM, not the GPU
    assert fresh_manager.used("ram") > 0 and fresh_manager.used("cuda:0") == 0


@pytest.mark.parametrize("kind", ["cuda", "mps", "cpu"])
def test_unloading_empties_the_cache_of_the_gpu_this_torch_has(kind, monkeypatch, fresh_manager):
    """On a Mac the freed weights go back to the system (MPS's cache), as on CUDA; a CPU-only
    torch empties nothing (and does not fail)."""
    import torch

    emptied: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: kind == "cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: kind == "mps")
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append("cuda"))
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: emptied.append("mps"))
    fresh_manager.get("m", lambda: "M", device="mps" if kind == "mps" else "cpu")
    fresh_manager.free()
    assert emptied == ([] if kind == "cpu" else [kind])


def test_in_use_moves_offloaded_modules_for_the_use_only(fake_cuda, monkeypatch):
    from latentgraph.nodes import runtime

    class Module:
        def __init__(self) -> None:
            self.moves: list[str] = []

        def to(self, device: str) -> Module:
            self.moves.append(str(device))
            return self

    te, vae = Module(), Module()
    offload = Settings(device="cuda", options={"cpu_offload": True})
    with runtime.in_use(offload, "cuda:0", te):
        assert te.moves == ["cuda:0"]
    assert te.moves == ["cuda:0", "cpu"]
    with pytest.raises(KeyError), runtime.in_use(offload, "cuda:0", vae):
        raise KeyError("a failing use still moves it back")
    assert vae.moves == ["cuda:0", "cpu"]
    plain = Module()
    with runtime.in_use(Settings(device="cuda"), "cuda:0", plain):
        pass
    assert plain.moves == []
