"""The controlnet example workflow, and a ComfyUI API graph written after ComfyUI's published
ControlNet / T2I-Adapter examples (scribble ControlNet, depth T2I-Adapter through
ControlNetLoader, a diff ControlNet through DiffControlNetLoader, mixing by chaining), run
unchanged on the tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from latentgraph.graph import Settings, default_registry
from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.workflow import load_workflow

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"


@pytest.fixture
def settings(tmp_path, control_root, torch_1thread):
    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.nodes import write_example

    write_example(tmp_path / "in")
    return Settings(output_dir=tmp_path / "out", input_dir=tmp_path / "in",
                    temp_dir=tmp_path / "tmp", models_dirs=[control_root], device="cpu")  # fmt: skip


def _run(graph, settings: Settings, extra=None):
    result = Scheduler(default_registry, settings=settings).run(graph, extra=extra)
    assert result.ok, result.failures
    return result


def _pixels(result, settings: Settings, node_id: str) -> bytes:
    record = result.ui[node_id]["images"][-1]
    with Image.open(settings.output_dir / record["subfolder"] / record["filename"]) as img:
        return img.tobytes()


def test_comfy_api_controlnet_graph_runs_and_zero_strengths_give_the_plain_image(settings):
    prompt = json.loads((DATA / "controlnet_api.json").read_text())
    controlled = _pixels(_run(graph_from_prompt(prompt, default_registry), settings,
                              {"prompt": prompt}), settings, "9")  # fmt: skip
    for node in ("14", "16", "18"):
        prompt[node]["inputs"]["strength"] = 0.0
    zero = _pixels(_run(graph_from_prompt(prompt, default_registry), settings), settings, "9")
    plain = json.loads(json.dumps(prompt))
    for node in ("11", "12", "13", "14", "15", "16", "17", "18"):
        del plain[node]
    plain["3"]["inputs"]["positive"], plain["3"]["inputs"]["negative"] = ["6", 0], ["7", 0]
    without = _pixels(_run(graph_from_prompt(plain, default_registry), settings), settings, "9")
    assert zero == without
    assert controlled != without


def test_controlnet_workflow_runs_and_a_strength_change_reruns_only_what_it_reaches(settings):
    small = {"width": "64", "height": "64", "steps": "3"}
    sched = Scheduler(default_registry, settings=settings)
    first = sched.run(load_workflow(ROOT / "workflows" / "controlnet.yaml", overrides=small).graph)
    assert first.ok, first.failures
    assert first.ui["save"]["images"][0]["filename"].startswith("controlnet")
    again = sched.run(load_workflow(ROOT / "workflows" / "controlnet.yaml",
                                    overrides={**small, "adapter_strength": "0.2"}).graph)  # fmt: skip
    assert again.ok, again.failures
    assert set(again.executed) == {"steer", "denoise", "decode", "save"}
    assert _pixels(again, settings, "save") != _pixels(first, settings, "save")
