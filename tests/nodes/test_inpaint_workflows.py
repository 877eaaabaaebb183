"""workflows/inpaint.yaml and workflows/outpaint.yaml run on builtin:tiny-sd-inpaint, keep the
latents outside their masks, and are offered as editor templates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_editor import graph_from_editor
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.workflow import load_workflow

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def untouched(mask):
    """Latent cells (8x8 pixel blocks) where the mask is 0 on every pixel."""
    h, w = mask.shape[-2] // 8, mask.shape[-1] // 8
    return mask[0].reshape(h, 8, w, 8).amax(dim=(1, 3)) == 0


@pytest.fixture
def settings(tmp_path):
    return Settings(output_dir=tmp_path / "out", input_dir=tmp_path / "in", temp_dir=tmp_path)


def saved(result, settings, node_id="save"):
    record = result.ui[node_id]["images"][0]
    with Image.open(settings.output_dir / record["subfolder"] / record["filename"]) as img:
        return img.size


def test_inpaint_workflow_changes_only_the_rectangle(tiny_inpaint, settings):
    wf = load_workflow(WORKFLOWS / "inpaint.yaml", overrides={"steps": "3"})
    result = Scheduler(settings=settings).run(wf.graph, keep=["inpaint", "denoise"])
    assert result.ok, result.failures
    assert saved(result, settings) == (128, 128)  # example.png's size
    original = result.output("inpaint", 2).samples
    out = result.output("denoise").samples
    inside = torch.zeros(16, 16, dtype=torch.bool)  # x 16..80, y 80..120 in pixels, / 8
    inside[10:15, 2:10] = True
    assert torch.equal(out[..., ~inside], original[..., ~inside])
    assert (out - original)[..., inside].abs().mean() > 0.1


def test_outpaint_workflow_paints_the_new_area(tiny_inpaint, settings):
    wf = load_workflow(WORKFLOWS / "outpaint.yaml", overrides={"steps": "3"})
    result = Scheduler(settings=settings).run(wf.graph, keep=["encode", "denoise"])
    assert result.ok, result.failures
    assert saved(result, settings) == (128 + 64, 128 + 32)
    encoded = result.output("encode")
    out = result.output("denoise").samples
    kept = untouched(encoded.noise_mask)  # cells the grown mask leaves alone
    assert kept.sum() > 100 and not kept[:, -8:].any() and not kept[-4:].any()
    assert torch.equal(out[..., kept], encoded.samples[..., kept])
    assert (out - encoded.samples)[..., ~kept].abs().mean() > 0.1


@pytest.mark.parametrize("name", ["inpaint", "outpaint"])
def test_inpaint_workflows_are_editor_templates(name):
    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.server.api_templates import editor_workflow, index

    names = [t["name"] for t in index(WORKFLOWS, default_registry)[0]["templates"]]
    assert name in names
    editor = editor_workflow(WORKFLOWS / f"{name}.yaml", default_registry)
    graph = graph_from_editor(editor, default_registry)
    ours = load_workflow(WORKFLOWS / f"{name}.yaml").graph
    assert {n.id: n.type for n in graph} == {n.id: n.type for n in ours}
