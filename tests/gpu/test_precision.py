"""NaN/inf results are reported and never cached; fp32 VAE upcast; SD 2 upcast_attention."""

from __future__ import annotations

import copy
import json

import pytest

from latentgraph.graph import CancelToken, Context, Output, Registry, Settings, Socket, node
from latentgraph.graph.cache import Cache
from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.scheduler import Scheduler


def _ctx(node_type: str, **settings) -> Context:
    warnings: list[str] = []
    ctx = Context("n", node_type, Settings(**settings), CancelToken(),
                  emit_warning=warnings.append)  # fmt: skip
    ctx.warnings = warnings
    return ctx


@pytest.fixture(scope="module")
def tiny_model(tiny_folder):
    from latentgraph.nodes import loaders

    return loaders.load_model(_ctx("LoadModel", device="cpu"), "builtin:tiny-sd")


def test_nan_after_decode_warns_with_the_remedy_and_is_not_cacheable(tiny_model):
    import torch

    from latentgraph.nodes import vae as vae_nodes
    from latentgraph.nodes.values import Latent, VAEModel

    broken = copy.deepcopy(tiny_model[2].vae)
    with torch.no_grad():
        broken.decoder.conv_out.weight.fill_(float("nan"))
    handle = VAEModel(broken, "broken", "cpu")
    ctx = _ctx("VAEDecode")
    image = vae_nodes.vae_decode(ctx, Latent(torch.zeros(1, 4, 8, 8)), handle)
    assert image.shape[0] == 1  # the run goes on: the image is passed on
    (warning,) = ctx.warnings
    # an fp32 VAE: no overflow to blame, no --dtype or vae_fp32 advice the run already follows
    assert "NaN" in warning and "the run is in fp32" in warning and "not cached" in warning
    assert "the VAE made them from finite latents" in warning and "--dtype" not in warning
    assert ctx.cacheable is False
    half = _ctx("VAEDecode")
    vae_nodes.vae_decode(half, Latent(torch.zeros(1, 4, 8, 8)),
                         VAEModel(broken.to(torch.float16), "broken16", "cpu"))  # fmt: skip
    (warning,) = half.warnings
    assert "fp16 overflow?" in warning and "--dtype fp32 or bf16" in warning
    assert "--option vae_fp32=true" in warning and "not cached" in warning
    nan_in = _ctx("VAEDecode")
    vae_nodes.vae_decode(nan_in, Latent(torch.full((1, 4, 8, 8), float("nan"))), tiny_model[2])
    assert "the latents decoded already contain them" in nan_in.warnings[0]

    fine = _ctx("VAEDecode")
    vae_nodes.vae_decode(fine, Latent(torch.zeros(1, 4, 8, 8)), tiny_model[2])
    assert fine.warnings == [] and fine.cacheable is True


def test_nan_latents_after_denoise_are_reported(tiny_model):
    import torch

    from latentgraph.nodes import denoise, text
    from latentgraph.nodes.values import Latent, UNetModel

    broken = copy.deepcopy(tiny_model[0].unet)
    with torch.no_grad():
        broken.conv_out.bias.fill_(float("inf"))
    cond = text.text_encode(_ctx("TextEncode"), tiny_model[1], "x")
    ctx = _ctx("UNetDenoise", device="cpu")
    denoise.unet_denoise(ctx, UNetModel(broken, "b", "cpu", "fp32"), tiny_model[3], cond, cond,
                         Latent(torch.randn(1, 4, 8, 8), [0], is_noise=True), steps=1)  # fmt: skip
    (warning,) = [w for w in ctx.warnings if "denoised latents" in w]
    assert "the run is in fp32, so this is no half-precision overflow" in warning
    assert "the model's own scheduler (diffusers " in warning and "try another sampler" in warning
    assert "--dtype" not in warning
    assert ctx.cacheable is False


def _registry(calls: list[str]) -> Registry:
    reg = Registry()

    @node("Source", outputs=[Output("x", "X")], registry=reg)
    def source(ctx):
        calls.append("source")
        ctx.do_not_cache()  # as a NaN decode does
        return 1

    @node("Use", inputs=[Socket("x", "X")], outputs=[Output("y", "X")], registry=reg)
    def use(ctx, x):
        calls.append("use")
        return x + 1

    @node("Clean", outputs=[Output("x", "X")], registry=reg)
    def clean(ctx):
        calls.append("clean")
        return 5

    return reg


def test_uncacheable_result_and_its_dependants_run_again():
    calls: list[str] = []
    g = Graph()
    g.add(Node("s", "Source", {}))
    g.add(Node("u", "Use", {"x": Link("s", 0)}))
    g.add(Node("c", "Clean", {}))
    scheduler = Scheduler(_registry(calls), Cache())
    assert scheduler.run(g, targets=["u", "c"]).ok
    again = scheduler.run(g, targets=["u", "c"])
    assert again.cached == ["c"] and sorted(again.executed) == ["s", "u"]
    assert calls == ["source", "use", "clean", "source", "use"]


def test_fp16_runs_keep_an_fp32_vae_where_the_model_needs_it(tiny_folder, fresh_manager):
    import torch

    from latentgraph.nodes import loaders

    unet, clip, vae, _ = loaders.load_model(_ctx("LoadModel", device="cpu", dtype="fp16"),
                                            "builtin:tiny-sd")  # fmt: skip
    assert unet.unet.dtype == torch.float16 and vae.vae.dtype == torch.float32
    off = _ctx("LoadModel", device="cpu", dtype="fp16", options={"vae_fp32": False})
    assert loaders.load_model(off, "builtin:tiny-sd")[2].vae.dtype == torch.float16
    alone = loaders.load_vae(_ctx("LoadVAE", device="cpu", dtype="fp16"), str(tiny_folder))
    assert alone.vae.dtype == torch.float32
    bf16 = loaders.load_model(_ctx("LoadModel", device="cpu", dtype="bf16"), "builtin:tiny-sd")
    assert bf16[2].vae.dtype == torch.bfloat16  # bf16 has fp32's range: no upcast needed


def test_sd2_768_preset_upcasts_attention(cache_dir):
    from latentgraph.nodes.model_presets import config_folder

    def unet_config(preset: str) -> dict:
        return json.loads((config_folder(preset) / "unet" / "config.json").read_text())

    assert unet_config("sd2")["upcast_attention"] is True
    assert unet_config("sd2-base").get("upcast_attention", False) is False  # as published
    assert unet_config("sd15").get("upcast_attention", False) is False
