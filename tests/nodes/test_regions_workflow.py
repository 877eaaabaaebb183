"""workflows/regions.yaml: one prompt per region, through the engine's scheduler."""

from __future__ import annotations

from pathlib import Path

from latentgraph.graph import Settings
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.workflow import load_workflow

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "regions.yaml"
SMALL = {"width": "128", "height": "64"}


def test_regions_workflow_saves_an_image(tiny, tmp_path):
    from PIL import Image

    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    result = Scheduler(settings=settings).run(
        load_workflow(WORKFLOW, overrides={**SMALL, "steps": "3"}).graph)  # fmt: skip
    assert result.ok, result.failures
    record = result.ui["save"]["images"][0]
    with Image.open(tmp_path / "out" / record["subfolder"] / record["filename"]) as img:
        assert img.size == (128, 64)


def test_the_right_prompt_reaches_only_the_right_half_after_one_step(tiny, tmp_path):
    import torch

    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(settings=settings)

    def latent(**params):
        wf = load_workflow(WORKFLOW, overrides={**SMALL, "steps": "1", **params})
        result = sched.run(wf.graph, targets=["denoise"])
        assert result.ok, result.failures
        return result.output("denoise").samples

    base = latent()
    other = latent(right="a red desert at noon")
    assert base.shape[-2:] == (8, 16)
    assert torch.equal(base[..., :8], other[..., :8])  # the left half: cells 0..7
    assert not torch.equal(base[..., 8:], other[..., 8:])
    assert not torch.equal(latent(region_strength="3.0"), base)


def test_regions_is_an_editor_template_that_runs_as_the_yaml_does(tiny, tmp_path):
    import latentgraph.nodes  # noqa: F401 - registers the nodes, ComfyUI's included
    from latentgraph.graph import default_registry
    from latentgraph.graph.comfy_editor import graph_from_editor
    from latentgraph.server.api_templates import editor_workflow, index

    registry = default_registry
    assert "regions" in [t["name"] for t in index(WORKFLOW.parent, registry)[0]["templates"]]
    editor = editor_workflow(WORKFLOW, registry)
    assert {n["type"] for n in editor["nodes"]} >= {
        "ConditioningAreaFraction",
        "CombineConditioning",
    }
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(registry, settings=settings)
    from_editor = sched.run(graph_from_editor(editor, registry), targets=["denoise"])
    assert from_editor.ok, from_editor.failures
    from_yaml = sched.run(load_workflow(WORKFLOW).graph, targets=["denoise"])
    assert from_yaml.ok and from_yaml.executed == []  # the same cache keys: the same graph
