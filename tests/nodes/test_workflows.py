"""The example workflows run end to end through the engine's scheduler."""

from __future__ import annotations

from pathlib import Path

from latentgraph.graph import Settings
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.workflow import load_workflow

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def test_txt2img_runs_and_a_seed_change_reruns_only_what_depends_on_it(tiny, tmp_path):
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(settings=settings)
    small = {"width": "32", "height": "32", "steps": "3"}
    wf = load_workflow(WORKFLOWS / "txt2img.yaml", overrides=small)
    first = sched.run(wf.graph)
    assert first.ok, first.failures
    files = first.ui["save"]["images"]
    assert files[0]["filename"] == "txt2img_00001_.png"
    assert (tmp_path / "out" / "txt2img_00001_.png").is_file()
    wf2 = load_workflow(WORKFLOWS / "txt2img.yaml", overrides={**small, "seed": "43"})
    second = sched.run(wf2.graph)
    assert second.ok, second.failures
    assert set(second.executed) == {"noise", "denoise", "decode", "save"}
    assert {"model", "positive", "negative", "sampler"} <= set(second.cached)


def test_scheduler_comparison_and_batch_workflows_validate_and_run(tiny, tmp_path):
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(settings=settings)
    wf = load_workflow(WORKFLOWS / "batch_seeds.yaml", overrides={"batch": "2"})
    result = sched.run(wf.graph)
    assert result.ok, result.failures
    assert len(result.ui["save"]["images"]) == 2
    assert result.ui["save"]["images"][0]["subfolder"] == "seeds"
    for name in ("scheduler_comparison", "img2img", "negative_prompt"):
        load_workflow(WORKFLOWS / f"{name}.yaml")  # parses and validates
