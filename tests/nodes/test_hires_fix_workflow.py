"""workflows/hires_fix.yaml: two passes, the second at the upscaled size and part denoise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from latentgraph.graph import Settings
from latentgraph.graph.scheduler import Scheduler
from latentgraph.graph.workflow import load_workflow

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "hires_fix.yaml"
SMALL = {"width": "32", "height": "32", "steps": "3", "hires_steps": "6"}


def _image(tmp_path, result) -> np.ndarray:
    record = result.ui["save"]["images"][0]
    with Image.open(tmp_path / "out" / record["subfolder"] / record["filename"]) as img:
        return np.asarray(img.convert("RGB"))


def test_hires_fix_upscales_and_runs_the_second_pass(tiny, tmp_path):
    settings = Settings(output_dir=tmp_path / "out", input_dir=tmp_path, temp_dir=tmp_path)
    sched = Scheduler(settings=settings)
    result = sched.run(load_workflow(WORKFLOW, overrides=SMALL).graph)
    assert result.ok, result.failures
    assert result.ui["save"]["images"][0]["filename"] == "hires_fix_00001_.png"
    hires = _image(tmp_path, result)
    first = sched.run(load_workflow(WORKFLOW, overrides={**SMALL, "upscale": "1.0",
                                                          "hires_denoise": "0.0"}).graph)  # fmt: skip
    assert first.ok, first.failures
    plain = _image(tmp_path, first)  # denoise 0: the first pass, decoded
    assert hires.shape[0] == plain.shape[0] * 3 // 2 and hires.shape[1] == plain.shape[1] * 3 // 2
    assert "first_pass" in first.cached  # only the upscale and what follows ran again

    again = sched.run(load_workflow(WORKFLOW, overrides={**SMALL, "hires_denoise": "0.0"}).graph)
    assert again.ok, again.failures
    upscaled_only = _image(tmp_path, again)
    assert np.abs(hires.astype(int) - upscaled_only.astype(int)).mean() > 1  # pass 2 changed it
