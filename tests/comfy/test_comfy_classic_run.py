"""Acceptance: ComfyUI's classic text-to-image graph, in editor and API format, runs."""

import json

import pytest
import torch
from PIL import Image

from latentgraph.graph import Settings, WorkflowError, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.comfy_editor import graph_from_editor
from latentgraph.graph.scheduler import Scheduler


@pytest.fixture(scope="session")
def comfy_reg():
    """The default registry: importing latentgraph.nodes installs ComfyUI's nodes into it."""
    import latentgraph.nodes  # noqa: F401

    torch.set_num_threads(1)
    return default_registry


@pytest.fixture
def settings(tmp_path):
    return Settings(
        output_dir=tmp_path / "out",
        input_dir=tmp_path / "in",
        temp_dir=tmp_path / "tmp",
        device="cpu",
    )


def run(graph, reg, settings, extra=None):
    result = Scheduler(reg, settings=settings).run(graph, extra=extra or {})
    assert result.ok, result.failures
    return result


def test_editor_and_api_formats_give_the_same_image(
    comfy_reg, settings, classic_editor, classic_api
):
    g_editor = graph_from_editor(classic_editor, comfy_reg, source="classic_editor.json")
    g_api = graph_from_prompt(classic_api, comfy_reg, source="classic_api.json")
    r1 = run(g_editor, comfy_reg, settings, {"workflow": classic_editor})
    files = r1.ui["9"]["images"]
    assert len(files) == 1 and files[0]["type"] == "output"
    path = settings.output_dir / files[0]["subfolder"] / files[0]["filename"]
    with Image.open(path) as img:
        assert img.size == (64, 64)  # what the graph asks for: the tiny VAE scales by 8, as SD
        first = img.tobytes()
        assert json.loads(img.text["workflow"])["nodes"]
    r2 = run(g_api, comfy_reg, settings)
    path2 = settings.output_dir / r2.ui["9"]["images"][0]["filename"]
    with Image.open(path2) as img:
        assert img.tobytes() == first
    assert path2 != path


def test_seed_changes_the_image(comfy_reg, settings, classic_api):
    images = []
    for seed in (1, 2):
        classic_api["3"]["inputs"]["seed"] = seed
        r = run(graph_from_prompt(classic_api, comfy_reg), comfy_reg, settings)
        with Image.open(settings.output_dir / r.ui["9"]["images"][0]["filename"]) as img:
            images.append(img.tobytes())
    assert images[0] != images[1]


def test_unknown_node_types_fail_validation_by_name(comfy_reg, settings, classic_editor):
    classic_editor["nodes"][-1]["type"] = "UltimateSDUpscale"
    classic_editor["nodes"][0]["type"] = "CheckpointLoaderGGUF"
    g = graph_from_editor(classic_editor, comfy_reg)
    with pytest.raises(WorkflowError) as err:
        Scheduler(comfy_reg, settings=settings).run(g)
    codes = {(p.code, p.node_id) for p in err.value.problems}
    assert ("unknown_node_type", "9") in codes and ("unknown_node_type", "4") in codes
    assert "UltimateSDUpscale" in str(err.value) and "CheckpointLoaderGGUF" in str(err.value)


def test_unsupported_sampler_is_refused_listing_supported(comfy_reg, settings, classic_api):
    classic_api["3"]["inputs"]["sampler_name"] = "dpm_adaptive"
    with pytest.raises(WorkflowError) as err:
        Scheduler(comfy_reg, settings=settings).run(graph_from_prompt(classic_api, comfy_reg))
    assert "dpm_adaptive" in str(err.value) and "'euler'" in str(err.value)
    classic_api["3"]["inputs"]["sampler_name"] = "ddim"
    classic_api["3"]["inputs"]["scheduler"] = "karras"
    with pytest.raises(WorkflowError) as err:
        Scheduler(comfy_reg, settings=settings).run(graph_from_prompt(classic_api, comfy_reg))
    assert "karras" in str(err.value) and "normal" in str(err.value)


def test_saved_png_re_runs(comfy_reg, settings, tmp_path, classic_editor):
    from latentgraph.graph.formats import load_file

    src = tmp_path / "classic.json"
    src.write_text(json.dumps(classic_editor))
    loaded = load_file(src, registry=comfy_reg)
    graph, extra = loaded.graph, loaded.extra
    first = run(graph, comfy_reg, settings, extra).ui["9"]["images"][0]
    png = settings.output_dir / first["filename"]
    with Image.open(png) as img:
        assert json.loads(img.text["prompt"])["3"]["class_type"] == "KSampler"
        pixels = img.tobytes()
    loaded = load_file(png, registry=comfy_reg)
    again, extra2 = loaded.graph, loaded.extra
    assert extra2["workflow"] == classic_editor
    second = run(again, comfy_reg, settings, extra2).ui["9"]["images"][0]
    assert second["filename"] != first["filename"]
    with Image.open(settings.output_dir / second["filename"]) as img:
        assert img.tobytes() == pixels
