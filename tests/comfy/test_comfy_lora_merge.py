"""ComfyUI API graphs with LoraLoader chains, model merging and CheckpointSave (written after
what ComfyUI's published lora and model_merging examples show) run on the tiny model."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler

from .conftest import DATA


@pytest.fixture
def env(tmp_path, monkeypatch, one_thread):
    """A models root holding the tiny LoRAs and embeddings; the output folder is a root too,
    so a saved checkpoint shows up in CheckpointLoaderSimple's list."""
    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.nodes.tiny_addons import write_models_folder

    write_models_folder(tmp_path / "models")
    out = tmp_path / "out"
    monkeypatch.setenv("LATENTGRAPH_MODELS_DIRS", f"{tmp_path / 'models'}:{out}")
    return Settings(output_dir=out, input_dir=tmp_path / "in", temp_dir=tmp_path / "tmp",
                    device="cpu")  # fmt: skip


def api(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def run(prompt: dict, settings: Settings):
    result = Scheduler(default_registry, settings=settings).run(
        graph_from_prompt(prompt, default_registry), extra={"prompt": prompt}
    )
    assert result.ok, result.failures
    return result


def image(result, settings, node_id="9") -> bytes:
    record = result.ui[node_id]["images"][-1]
    with Image.open(settings.output_dir / record["subfolder"] / record["filename"]) as img:
        return img.tobytes()


def test_chained_lora_loaders_run_and_strength_zero_is_the_plain_checkpoint(env):
    prompt = api("lora_api.json")
    with_loras = image(run(prompt, env), env)
    builtin = json.loads(json.dumps(prompt))
    builtin["10"]["inputs"]["lora_name"] = "builtin:tiny-lora"  # the same tensors, built in
    assert image(run(builtin, env), env) == with_loras
    for node in ("10", "11"):
        prompt[node]["inputs"]["strength_model"] = prompt[node]["inputs"]["strength_clip"] = 0.0
    without = image(run(prompt, env), env)
    assert without != with_loras
    plain = json.loads(json.dumps(prompt))
    for node in ("3",):
        plain[node]["inputs"]["model"] = ["4", 0]
    for node in ("6", "7"):
        plain[node]["inputs"]["clip"] = ["4", 1]
    del plain["10"], plain["11"]
    assert image(run(plain, env), env) == without


def test_merges_and_checkpoint_save_round_trip(env):
    prompt = api("merge_api.json")
    result = run(prompt, env)
    saved = env.output_dir / "checkpoints" / "ComfyUI_00001_.safetensors"
    assert saved.is_file()
    from safetensors import safe_open

    with safe_open(str(saved), framework="pt") as fh:
        assert json.loads(fh.metadata()["prompt"])["17"]["class_type"] == "CheckpointSave"
    merged = image(result, env)
    # The saved checkpoint, loaded the classic way, renders the merge's image bit for bit.
    reload = api("merge_api.json")
    reload["4"]["inputs"]["ckpt_name"] = "ComfyUI_00001_.safetensors"
    for node in ("10", "11", "12", "13", "14", "15", "16", "17"):
        del reload[node]
    reload["3"]["inputs"]["model"] = ["4", 0]
    reload["6"]["inputs"]["clip"] = reload["7"]["inputs"]["clip"] = ["4", 1]
    assert image(run(reload, env), env) == merged


def test_missing_lora_file_is_refused_at_validation(env):
    from latentgraph.graph import WorkflowError

    prompt = api("lora_api.json")
    prompt["10"]["inputs"]["lora_name"] = "not-there.safetensors"
    with pytest.raises(WorkflowError) as err:
        run(prompt, env)
    assert [(p.node_id, p.input_name) for p in err.value.problems] == [("10", "lora_name")]


def test_object_info_offers_the_lora_files_and_comfy_widget_order(env):
    from latentgraph.graph.object_info import object_info

    info = object_info(default_registry)
    lora = info["LoraLoader"]
    names = lora["input"]["required"]["lora_name"][0]
    assert names[:2] == ["builtin:tiny-lora", "builtin:tiny-lora-diffusers"]
    assert {"tiny-lora-kohya.safetensors", "tiny-lora-diffusers.safetensors"} <= set(names)
    assert list(lora["input"]["required"]) == ["model", "clip", "lora_name", "strength_model",
                                               "strength_clip"]  # fmt: skip
    assert lora["output"] == ["MODEL", "CLIP"]
    assert list(info["ModelMergeBlocks"]["input"]["required"]) == ["model1", "model2", "input",
                                                                   "middle", "out"]  # fmt: skip
    assert info["CheckpointSave"]["output_node"] is True


@pytest.mark.parametrize("name", ["lora_api.json", "merge_api.json"])
def test_editor_format_round_trip_keeps_widget_values(env, name):
    """The editor's widgets_values for LoraLoader, ModelMerge* and CheckpointSave map back to
    the same inputs (ComfyUI's widget order)."""
    from latentgraph.graph.comfy_editor import editor_from_graph, graph_from_editor

    graph = graph_from_prompt(api(name), default_registry)
    editor = editor_from_graph(graph, default_registry)
    widgets = {str(n["id"]): n["widgets_values"] for n in editor["nodes"]}
    if name == "lora_api.json":
        assert widgets["10"] == ["tiny-lora-kohya.safetensors", 0.9, 0.7]
    else:
        assert widgets["14"] == [0.3, 0.6, 1.0] and widgets["17"] == ["checkpoints/ComfyUI"]
    back = graph_from_editor(editor, default_registry)
    ours = [i for i in graph.nodes if int(i) >= 10 or graph.nodes[i].type == "CLIPTextEncode"]
    assert ours and all(
        (back.nodes[i].type, back.nodes[i].inputs) == (graph.nodes[i].type, graph.nodes[i].inputs)
        for i in ours
    )


# Nodes that derive a MODEL from CheckpointLoaderSimple's ("1"), ComfyUI's and ours: each
# must keep the checkpoint's scheduler config for KSampler, whoever declared the node.
DERIVED_MODEL = {
    "ModelSamplingDiscrete": {"model": ["1", 0], "sampling": "eps", "zsnr": False},
    "SetModelSampling": {"unet": ["1", 0], "sampling": "eps", "zsnr": False},
    "LoraLoader": {"model": ["1", 0], "clip": ["1", 1], "lora_name": "builtin:tiny-sdxl-lora",
                   "strength_model": 0.5, "strength_clip": 0.5},
    "LoadLoRA": {"unet": ["1", 0], "clip": ["1", 1], "lora": "builtin:tiny-sdxl-lora",
                 "strength_model": 0.5, "strength_clip": 0.5},
    "ModelMergeSimple": {"model1": ["1", 0], "model2": ["1", 0], "ratio": 0.5},
    "MergeModels": {"unet_a": ["1", 0], "unet_b": ["1", 0], "ratio": 0.5},
}  # fmt: skip


def _sdxl_ksampler_prompt(model: list) -> dict:
    """builtin:tiny-sdxl through CheckpointLoaderSimple, sampled by KSampler from `model`."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sdxl"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a fox"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "6": {"class_type": "KSampler",
              "inputs": {"model": model, "seed": 1, "steps": 2, "cfg": 5.0,
                         "sampler_name": "euler", "scheduler": "normal", "positive": ["3", 0],
                         "negative": ["4", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    }  # fmt: skip


@pytest.mark.parametrize("derived", list(DERIVED_MODEL))
def test_a_derived_model_is_sampled_with_the_checkpoints_scheduler_config(env, monkeypatch,
                                                                          derived):  # fmt: skip
    """tiny-sdxl's scheduler config (Euler, leading timesteps) is not the tiny SD one that a
    MODEL without a config falls back to: KSampler after any node deriving a MODEL builds its
    scheduler from the checkpoint's config, as it does from the loader's MODEL itself."""
    from latentgraph.nodes import denoise
    from latentgraph.nodes.tiny_model import SCHEDULER_CONFIG

    used: list[dict] = []
    build = denoise.build_scheduler
    monkeypatch.setattr(denoise, "build_scheduler",
                        lambda spec, seed=None: used.append(spec.config) or build(spec, seed))  # fmt: skip
    run(_sdxl_ksampler_prompt(["1", 0]), env)
    prompt = _sdxl_ksampler_prompt(["2", 0])
    prompt["2"] = {"class_type": derived, "inputs": DERIVED_MODEL[derived]}
    run(prompt, env)
    own, after = used[0], used[-1]
    assert own["timestep_spacing"] == "leading" and "timestep_spacing" not in SCHEDULER_CONFIG
    assert after == own
