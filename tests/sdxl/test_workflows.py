"""The SDXL example workflows and a ComfyUI-style SDXL API prompt run on the tiny SDXL models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.comfy_editor import graph_from_editor
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.workflow import load_workflow

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
DATA = Path(__file__).parent / "data"


@pytest.fixture
def settings(tmp_path):
    return Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)


@pytest.fixture
def registry(sdxl, refiner):
    import latentgraph.nodes  # noqa: F401 - registers the nodes, ComfyUI's included

    return default_registry


def test_sdxl_workflow_runs_and_a_crop_change_reruns_only_what_depends_on_it(registry,
                                                                              settings):  # fmt: skip
    sched = Scheduler(registry, settings=settings)
    small = {"width": "32", "height": "32", "steps": "3"}
    first = sched.run(load_workflow(WORKFLOWS / "sdxl.yaml", overrides=small).graph)
    assert first.ok, first.failures
    assert (settings.output_dir / first.ui["save"]["images"][0]["filename"]).is_file()
    graph = load_workflow(WORKFLOWS / "sdxl.yaml", overrides=small).graph
    graph.nodes["positive"].inputs["crop_w"] = 64
    second = sched.run(graph)
    assert second.ok, second.failures
    assert set(second.executed) == {"positive", "denoise", "decode", "save"}
    assert {"model", "prompt", "negative", "noise"} <= set(second.cached)


def test_sdxl_refiner_workflow_runs_base_then_refiner(registry, settings):
    wf = load_workflow(WORKFLOWS / "sdxl_refiner.yaml",
                       overrides={"width": "32", "height": "32", "steps": "4", "switch": "3"})  # fmt: skip
    result = Scheduler(registry, settings=settings).run(wf.graph)
    assert result.ok, result.failures
    assert {"base_denoise", "refine"} <= set(result.executed)
    assert wf.graph.nodes["refine"].inputs["add_noise"] is False


@pytest.mark.parametrize("name", ["sdxl", "sdxl_refiner"])
def test_sdxl_workflows_are_editor_templates(registry, name):
    from latentgraph.server.api_templates import editor_workflow, index

    names = [t["name"] for t in index(WORKFLOWS, registry)[0]["templates"]]
    assert name in names
    graph = graph_from_editor(editor_workflow(WORKFLOWS / f"{name}.yaml", registry), registry)
    ours = load_workflow(WORKFLOWS / f"{name}.yaml").graph
    assert {n.id: n.type for n in graph} == {n.id: n.type for n in ours}


def test_comfyui_style_sdxl_base_and_refiner_api_prompt_runs(registry, settings):
    """Modelled on ComfyUI's published SDXL example (two checkpoints, CLIPTextEncode on each,
    KSamplerAdvanced base stopping at step k with leftover noise, refiner from k without noise),
    at the tiny models' size and fewer steps."""
    from PIL import Image

    prompt = json.loads((DATA / "sdxl_refiner_api.json").read_text())
    result = Scheduler(registry, settings=settings).run(graph_from_prompt(prompt, registry))
    assert result.ok, result.failures
    [image] = result.ui["19"]["images"]
    with Image.open(settings.output_dir / image["subfolder"] / image["filename"]) as img:
        assert img.size == (64, 64)
