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


def _image_bytes(result, settings, node_id):
    from PIL import Image

    record = result.ui[node_id]["images"][0]
    with Image.open(settings.output_dir / record["subfolder"] / record["filename"]) as img:
        return img.tobytes()


def test_lora_workflow_reruns_only_what_a_strength_change_reaches(tiny, tmp_path):
    from latentgraph.nodes.model_manager import manager

    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(settings=settings)
    small = {"width": "32", "height": "32", "steps": "3"}
    first = sched.run(load_workflow(WORKFLOWS / "lora.yaml", overrides=small).graph)
    assert first.ok, first.failures
    loads = manager().loads
    wf = load_workflow(WORKFLOWS / "lora.yaml", overrides={**small, "lora2_strength": "0.25"})
    second = sched.run(wf.graph)
    assert second.ok, second.failures
    assert {"model", "style", "noise", "sampler"} <= set(second.cached)
    assert {"detail", "denoise", "decode", "save"} <= set(second.executed)
    assert manager().loads == loads + 2  # one new UNet copy and one text encoder copy
    assert _image_bytes(first, settings, "save") != _image_bytes(second, settings, "save")


def test_lora_workflow_at_strength_zero_is_the_plain_model_bit_for_bit(tiny, tmp_path):
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(settings=settings)
    common = {"width": "32", "height": "32", "steps": "3", "prompt": "a red horse"}
    off = {**common, "lora_strength": "0", "lora2_strength": "0"}
    with_lora = sched.run(load_workflow(WORKFLOWS / "lora.yaml", overrides=off).graph)
    plain = sched.run(load_workflow(WORKFLOWS / "txt2img.yaml", overrides=common).graph)
    assert with_lora.ok and plain.ok
    assert _image_bytes(with_lora, settings, "save") == _image_bytes(plain, settings, "save")


def test_merge_workflow_saves_a_checkpoint_and_reuses_the_merge(tiny, tmp_path):
    from latentgraph.nodes.model_manager import manager

    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    small = {"width": "32", "height": "32", "steps": "3"}
    first = Scheduler(settings=settings).run(
        load_workflow(WORKFLOWS / "merge.yaml", overrides=small).graph
    )
    assert first.ok, first.failures
    saved = tmp_path / "out" / "checkpoints" / "merged_00001_.safetensors"
    assert saved.is_file()
    assert first.ui["checkpoint"]["checkpoints"][0]["filename"] == saved.name
    loads = manager().loads
    # A new scheduler (empty output cache): the merge itself comes from the model manager.
    again = Scheduler(settings=settings).run(
        load_workflow(WORKFLOWS / "merge.yaml", overrides={**small, "seed": "7"}).graph
    )
    assert again.ok, again.failures
    assert manager().loads == loads
