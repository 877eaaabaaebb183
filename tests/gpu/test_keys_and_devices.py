"""Cache keys follow device, dtype and model options; device strings are checked up front."""

from __future__ import annotations

import pytest

from latentgraph.graph import Settings
from latentgraph.graph.cache import Cache
from latentgraph.graph.scheduler import Scheduler

WORKFLOW = "workflows/txt2img.yaml"
SMALL = {"width": 32, "height": 32, "steps": 2}


def _run(settings: Settings, cache: Cache):
    from latentgraph import api

    wf = api.load(WORKFLOW, params=SMALL)
    return api.run(wf, settings=settings, cache=cache, keep=["model"])


def test_dtype_and_options_are_part_of_the_loader_keys(tiny_folder, fresh_manager, tmp_path):
    import torch

    cache = Cache()  # memory only, shared by the runs, as the Python API shares one
    out = tmp_path / "out"
    first = _run(Settings(device="cpu", dtype="fp32", output_dir=out), cache)
    assert first.ok and "model" in first.executed
    again = _run(Settings(device="cpu", dtype="fp32", output_dir=out), cache)
    assert {"model", "save"} <= set(again.cached) and not again.executed

    bf16 = _run(Settings(device="cpu", dtype="bf16", output_dir=out), cache)
    assert bf16.ok and {"model", "denoise", "decode"} <= set(bf16.executed)
    assert bf16.outputs["model"][0].unet.dtype == torch.bfloat16  # not the fp32 model again

    no_sdpa = _run(Settings(device="cpu", dtype="fp32", output_dir=out,
                            options={"sdpa": False}), cache)  # fmt: skip
    assert {"model", "denoise"} <= set(no_sdpa.executed)
    # options that do not change a model keep the keys (and the cache hits)
    tiled = _run(Settings(device="cpu", dtype="fp32", output_dir=out,
                          options={"vae_tiling": True}), cache)  # fmt: skip
    assert "model" in tiled.cached


@pytest.mark.parametrize("node_type, literals", [("LoadModel", {"source": "builtin:tiny-sd"}),
                                                 ("LoadVAE", {"source": "builtin:tiny-sd"}),
                                                 ("LoadTextEncoder", {"source": "builtin:tiny-sd"}),
                                                 ("CheckpointLoaderSimple",
                                                  {"ckpt_name": "builtin:tiny-sd"}),
                                                 ("VAELoader", {"vae_name": "x.safetensors"})])  # fmt: skip
def test_every_loader_key_follows_device_dtype_and_model_options(node_type, literals):
    from latentgraph.graph.cache import node_key
    from latentgraph.graph.declare import default_registry
    from latentgraph.wiring import node_registry

    node_registry()
    nt = default_registry.get(node_type)
    nt = nt if nt is not None else _comfy(node_type)

    def key(**settings) -> str:
        return node_key(nt, literals, {}, Settings(**settings))

    base = key(device="cpu")
    assert base == key(device="cpu", options={"vae_tiling": True})  # not a model option
    assert base != key(device="cpu", dtype="bf16")
    assert base != key(device="cpu", options={"sdpa": False})
    assert base != key(device="cpu", options={"cpu_offload": True})
    assert base != key(device="mps")


def _comfy(name: str):
    from latentgraph.nodes.comfy import comfy_registry

    return comfy_registry.get(name)


@pytest.mark.parametrize("bad", ["gpu", "cuda0", "cuda:x", "tpu", ""])
def test_bad_device_refused_when_settings_are_made(bad):
    with pytest.raises(ValueError, match=r"is not one of auto, cpu, cuda, cuda:N"):
        Settings(device=bad)


def test_device_is_normalized():
    assert Settings(device=" CUDA:1 ").device == "cuda:1"
    assert Settings(device="CPU").device == "cpu"


@pytest.mark.parametrize("command", ["run", "serve"])
def test_cli_names_the_option_and_the_accepted_values(command, capsys, monkeypatch):
    from latentgraph.cli import main
    from latentgraph.server import run as server_run

    monkeypatch.setattr(server_run, "serve", lambda config, **kw: None)  # never start one

    argv = [command, WORKFLOW, "--device", "gpu"] if command == "run" else [command, "--device",
                                                                             "gpu"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "latentgraph: error: --device: " in err and "'gpu'" in err and "cuda:N" in err
    assert "Traceback" not in err


def test_cuda_and_cuda0_share_one_model_key(fake_cuda):
    from latentgraph.nodes import runtime

    assert runtime.device_name(Settings(device="cuda")) == "cuda:0"
    assert runtime.model_identity(Settings(device="cuda")) == runtime.model_identity(
        Settings(device="cuda:0")
    )
    assert runtime.model_identity(Settings(device="cuda:1")) != runtime.model_identity(
        Settings(device="cuda:0")
    )
    assert runtime.device_name(Settings(device="auto")) == "cuda:0"
    with pytest.raises(RuntimeError, match="2 CUDA device"):
        runtime.device_name(Settings(device="cuda:5"))


def test_cuda_on_a_machine_without_one_is_a_clear_node_error(tiny_folder, fresh_manager):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from latentgraph.graph.model import Graph, Node
    from latentgraph.wiring import node_registry

    registry = node_registry()
    g = Graph()
    g.add(Node("m", "LoadModel", {"source": "builtin:tiny-sd"}))
    result = Scheduler(registry, Cache(), Settings(device="cuda")).run(g, targets=["m"])
    (failure,) = result.failures
    assert "device 'cuda'" in failure.message and "no CUDA" in failure.message
    assert "source" not in failure.message
