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
