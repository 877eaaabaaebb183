"""Previews only when sent, step noise on the device, TF32, compile warm-up, SDPA kept,
`serve --option`, and the bench's GPU rows."""

from __future__ import annotations

import pytest

from latentgraph.graph import CancelToken, Context, Settings
from latentgraph.graph.cache import Cache
from latentgraph.graph.declare import default_registry
from latentgraph.graph.events import NodeProgress
from latentgraph.graph.scheduler import Scheduler
from latentgraph.wiring import node_registry

WORKFLOW = "workflows/txt2img.yaml"


def _denoise_graph(steps: int):
    from latentgraph import api

    return api.load(WORKFLOW, params={"width": 16, "height": 16, "steps": steps}).graph


@pytest.fixture
def counted_previews(monkeypatch):
    from latentgraph.nodes import denoise

    built: list[int] = []
    real = denoise.preview_image

    def counting(latents):
        built.append(1)
        return real(latents)

    monkeypatch.setattr(denoise, "preview_image", counting)
    return built


def test_no_preview_is_built_when_none_will_be_sent(tiny_folder, counted_previews, tmp_path):
    """The CLI's case: progress is reported, but nobody sends previews (even with the old
    `previews` option set)."""
    node_registry()
    settings = Settings(device="cpu", output_dir=tmp_path, options={"previews": True})
    events = []
    result = Scheduler(default_registry, Cache(), settings).run(_denoise_graph(6),
                                                                on_event=events.append)  # fmt: skip
    assert result.ok and any(isinstance(e, NodeProgress) for e in events)
    assert counted_previews == []


def test_previews_are_built_only_for_the_progress_that_is_sent(tiny_folder, counted_previews,
                                                               tmp_path, monkeypatch):  # fmt: skip
    from latentgraph.graph import scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "PROGRESS_INTERVAL", 3600.0)  # first and last only
    node_registry()
    events = []
    result = Scheduler(default_registry, Cache(), Settings(device="cpu", output_dir=tmp_path)).run(
        _denoise_graph(8), on_event=events.append, extra={"previews": True}, keep=["denoise"])  # fmt: skip
    assert result.ok
    sent = [e for e in events if isinstance(e, NodeProgress) and e.node_id == "denoise"]
    assert len(sent) == 2 and all(e.preview is not None for e in sent)
    assert len(counted_previews) == 2  # not one per step (8)
    h, w = result.outputs["denoise"][0].samples.shape[-2:]
    assert sent[0].preview.size == (w, h)  # small: latent-sized, the first image only


@pytest.mark.parametrize("kind", ["cuda", "mps"])
def test_a_preview_is_read_only_once_its_copy_to_the_host_arrived(kind, monkeypatch):
    """A non-blocking device-to-host copy must be waited for before PIL reads it: on CUDA
    the stream is synchronized; on MPS, whose copies are queued too, the copy blocks (or its
    device kind is synchronized). The latents pose as a `kind` tensor (no GPU here)."""
    import torch
    from torch.overrides import TorchFunctionMode

    from latentgraph.nodes import denoise

    class OnKind(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func == torch.Tensor.device.__get__:
                return torch.device(kind, 0)
            if func == torch.Tensor.is_cuda.__get__:
                return kind == "cuda"
            return super().__torch_function__(func, types, args, kwargs or {})

    steps: list[tuple[str, bool]] = []  # ("copy", non_blocking) and ("sync", device kind)

    class RecordCopies(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            home = func is torch.Tensor.to and torch._C._nn._parse_to(*args[1:], **kwargs)[0] \
                == torch.device("cpu")  # fmt: skip
            if func is torch.Tensor.cpu or home:
                steps.append(("copy", bool(kwargs.get("non_blocking"))))
                return out.as_subclass(torch.Tensor)
            return out

    class Stream:
        def synchronize(self) -> None:
            steps.append(("sync", "cuda"))

    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.mps, "synchronize", lambda: steps.append(("sync", "mps")))
    latents = torch.randn(1, 4, 8, 8).as_subclass(OnKind)
    with RecordCopies():
        image = denoise.preview_image(latents)
    assert image.size == (8, 8)
    copies = [(what, how) for what, how in steps if what == "copy"]
    assert len(copies) == 1  # only the small uint8 image
    if copies == [("copy", True)]:
        assert steps[-1] == ("sync", kind)  # waited for, on the device that copies


def test_stochastic_step_noise_is_drawn_on_the_run_device(monkeypatch):
    import torch

    from latentgraph.nodes import seeds

    made = []

    class Recorder:
        def __init__(self, device="cpu") -> None:
            made.append(str(device))

        def manual_seed(self, seed: int):
            made.append(seed)
            return self

    monkeypatch.setattr(torch, "Generator", Recorder)
    seeds.device_generator(torch.device("cuda:1"), 2**64 + 5)
    assert made == ["cuda:1", 5]


@pytest.fixture
def tf32_flags():
    """torch's global TF32 switches, restored after the test."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield torch.backends
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_option_for_fp32_on_cuda(fake_cuda, tf32_flags):
    from latentgraph.nodes import runtime

    runtime.apply_tf32(Settings(device="cuda", dtype="fp32", options={"tf32": True}), "cuda:0")
    assert tf32_flags.cuda.matmul.allow_tf32 and tf32_flags.cudnn.allow_tf32
    runtime.apply_tf32(Settings(device="cuda", dtype="fp32"), "cuda:0")  # off by default
    assert not tf32_flags.cuda.matmul.allow_tf32 and not tf32_flags.cudnn.allow_tf32
    runtime.apply_tf32(Settings(device="cuda", dtype="fp16", options={"tf32": True}), "cuda:0")
    assert not tf32_flags.cuda.matmul.allow_tf32  # only fp32 runs use TF32


@pytest.mark.parametrize("tf32", [False, True])
def test_the_tf32_policy_is_in_force_before_the_first_node_runs(tf32, fake_cuda, tf32_flags,
                                                                fresh_manager, tiny_folder,
                                                                monkeypatch):  # fmt: skip
    """A fresh CUDA worker whose first run only encodes an image (img2img's VAEEncode) runs it
    under the run's policy, as later runs after a denoise do: torch's default (cuDNN in TF32)
    would otherwise hold until a sampler set it, and the first result is the one cached."""
    from latentgraph.graph.events import NodeStarted
    from latentgraph.graph.model import Graph, Link, Node
    from latentgraph.nodes import loaders

    place = loaders.place  # the weights stay on the CPU: "cuda:0" is fake_cuda's
    monkeypatch.setattr(loaders, "place", lambda settings, module, device:
                        place(settings, module, "cpu"))  # fmt: skip
    tf32_flags.cuda.matmul.allow_tf32, tf32_flags.cudnn.allow_tf32 = False, True  # a fresh torch
    g = Graph()
    g.add(Node("m", "LoadModel", {"source": "builtin:tiny-sd"}))
    g.add(Node("img", "EmptyImage", {"width": 64, "height": 64}))
    g.add(Node("enc", "VAEEncode", {"pixels": Link("img", 0), "vae": Link("m", 2)}))
    seen: dict[str, tuple[bool, bool]] = {}

    def flags_at_start(event) -> None:
        if isinstance(event, NodeStarted):
            seen[event.node_id] = (tf32_flags.cuda.matmul.allow_tf32,
                                   tf32_flags.cudnn.allow_tf32)  # fmt: skip

    node_registry()
    settings = Settings(device="cuda", dtype="fp32", options={"tf32": tf32})
    scheduler = Scheduler(default_registry, Cache(), settings)
    result = scheduler.run(g, targets=["enc"], on_event=flags_at_start)
    assert result.ok, result.failures
    assert seen == dict.fromkeys(["m", "img", "enc"], (tf32, tf32))


def test_compile_warms_up_once_per_shape_before_the_first_step(tiny_folder, fresh_manager):
    from latentgraph.nodes import denoise, latents, loaders, text

    ctx = Context("m", "LoadModel", Settings(device="cpu"), CancelToken())
    unet, clip, vae, spec = loaders.load_model(ctx, "builtin:tiny-sd")
    calls = []
    hook = unet.unet.register_forward_hook(lambda m, a, k: calls.append(tuple(a[0].shape)))
    compiled = Context("d", "UNetDenoise", Settings(device="cpu", options={"compile": True}),
                       CancelToken())  # fmt: skip
    cond = text.text_encode(ctx, clip, "x")
    counts = []
    try:
        for size, steps in ((16, 2), (16, 2), (24, 2), (32, 1)):
            noise = latents.latent_noise(ctx, size, size, 1, 0, vae=vae)
            calls.clear()
            denoise.unet_denoise(compiled, unet, spec, cond, cond, noise, steps=steps)
            counts.append(len(calls))
    finally:
        hook.remove()
    # the steps, plus one warm-up call per new shape (on the first timestep: a one-step run has
    # no other)
    assert counts == [3, 2, 3, 2]


def test_attention_slicing_keeps_sdpa(tiny_folder, fresh_manager):
    from diffusers.models.attention_processor import AttnProcessor2_0, SlicedAttnProcessor

    from latentgraph.nodes import loaders

    def processors(options: dict) -> set[type]:
        ctx = Context("m", "LoadModel", Settings(device="cpu", options=options), CancelToken())
        unet = loaders.load_model(ctx, "builtin:tiny-sd")[0].unet
        return {type(p) for p in unet.attn_processors.values()}

    assert processors({"attention_slicing": True}) == {AttnProcessor2_0}
    assert processors({"attention_slicing": True, "sdpa": False}) == {SlicedAttnProcessor}


def test_serve_takes_the_same_options_as_run(monkeypatch, tmp_path):
    from latentgraph import cli, preflight
    from latentgraph.server import run as server_run

    seen = []
    monkeypatch.setattr(server_run, "serve", lambda config, **kw: seen.append(config))
    monkeypatch.setattr(preflight, "device_problems", lambda devices, **kw: {})  # a GPU here
    code = cli.main(["serve", "--data-dir", str(tmp_path), "--device", "cuda:0", "--dtype",
                     "fp16", "--option", "cpu_offload=true", "--option", "previews=true"])  # fmt: skip
    assert code == 0
    (config,) = seen
    assert config.device == "cuda:0" and config.options == {"cpu_offload": True, "previews": True}


def test_server_settings_carry_the_options_and_previews(tmp_path):
    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path, load_nodes=False, editor=False, preload=False,
                          options={"vae_tiling": True, "previews": True})  # fmt: skip
    app = create_app(config, registry=default_registry)
    state = app.state.lg
    assert state.settings.options == {"vae_tiling": True, "previews": True}
    assert state.dispatcher.previews is True
    state.store.close()


def test_bench_gpu_rows_say_they_were_skipped_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the rows are measured")
    from bench import gpu

    rows = gpu.run(quick=True)
    assert [r["name"] for r in rows] == list(gpu.ROWS)
    assert all(r["value"] is None and r["note"].startswith("skipped: needs CUDA") for r in rows)
    assert {"fp16 weights", "TF32 (fp32)"} <= set(gpu.ROWS) and len(gpu.ROWS) == 4


def test_a_prompt_may_ask_the_server_for_previews(tmp_path):
    """The worker tells node code whether previews will be sent (ctx.extra["previews"]): when
    the prompt asks (ComfyUI's preview_method), and only then, unless the server always sends."""
    import time

    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    from ..server.conftest import RunningServer, free_port

    asked: list[str] = []
    config = ServerConfig(data_dir=tmp_path, port=free_port(), disk_cache=False, load_nodes=False,
                          editor=False, preload=False)  # fmt: skip
    server = RunningServer(config, WorkerSetup(registry=probe_registry)).start()
    try:
        for extra in ({"extra_data": {"preview_method": "auto"}}, {}):
            pid = server.post_prompt({"1": {"class_type": "Probe", "inputs": {}}}, **extra)
            pid = pid.json()["prompt_id"]
            deadline = time.monotonic() + 20
            while pid not in (history := server.http.get("/history").json()):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            asked += history[pid]["outputs"]["1"]["text"]
    finally:
        server.stop()
    assert asked == ["True", "False"]


def probe_registry():
    """A node reporting what the worker told it about previews (built in the worker process)."""
    from latentgraph.graph import NodeResult, Registry, node

    reg = Registry()

    @node("Probe", output_node=True, registry=reg, deterministic=False)
    def probe(ctx):
        return NodeResult((), ui={"text": [str(ctx.extra.get("previews"))]})

    return reg
