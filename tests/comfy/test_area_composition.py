"""Acceptance: an area composition graph (one prompt per strip of the image, combined, sampled,
upscaled and sampled again), written after ComfyUI's published example, runs unchanged in
editor and API format through the ComfyUI adapters."""

import json

from PIL import Image

from latentgraph.graph.comfy_api import graph_from_prompt
from latentgraph.graph.comfy_editor import graph_from_editor

from .conftest import DATA
from .test_comfy_classic_run import comfy_reg, run, settings  # noqa: F401 - fixtures


def saved(result, where, node="9"):
    files = result.ui[node]["images"]
    assert len(files) == 1
    with Image.open(where.output_dir / files[0]["subfolder"] / files[0]["filename"]) as img:
        return img.size, img.tobytes()


def test_area_composition_runs_in_both_formats_and_the_areas_count(comfy_reg, settings):  # noqa: F811
    api = json.loads((DATA / "area_composition_api.json").read_text())
    editor = json.loads((DATA / "area_composition_editor.json").read_text())
    from_api = saved(run(graph_from_prompt(api, comfy_reg, source="api"), comfy_reg, settings),
                     settings)  # fmt: skip
    graph = graph_from_editor(editor, comfy_reg, source="editor")
    from_editor = saved(run(graph, comfy_reg, settings, {"workflow": editor}), settings)
    assert from_api[0] == (384, 192)  # the second pass's size
    assert from_editor == from_api
    api["3"]["inputs"]["positive"] = api["23"]["inputs"]["positive"] = ["6", 0]  # no areas
    plain = saved(run(graph_from_prompt(api, comfy_reg, source="api"), comfy_reg, settings),
                  settings)  # fmt: skip
    assert plain[1] != from_api[1]
