"""The error types POST /prompt sends are ComfyUI's (server/prompts.py COMFY_ERROR_TYPES): the
editor shows any other as "an unrecognized validation error", the message only in a
tooltip. Our precise code stays in extra_info["latentgraph_type"]."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from latentgraph.graph import Settings
from latentgraph.graph.context import LIMIT_FLAGS
from latentgraph.graph.object_info import object_info
from latentgraph.server.prompts import COMFY_ERROR_TYPES, PromptRejected, check_prompt
from latentgraph.wiring import node_registry

from ..editor_page import editor_with_graph, start_editor_server
from .conftest import DATA

ROOT = Path(__file__).resolve().parents[2]
# The per-node validation errors ComfyUI's editor (frontend 1.58.1) has copy for.
EDITOR_KNOWS = {
    "required_input_missing", "bad_linked_input", "return_type_mismatch", "invalid_input_type",
    "value_smaller_than_min", "value_bigger_than_max", "value_not_in_list",
    "custom_validation_failed", "exception_during_inner_validation",
    "exception_during_validation", "dependency_cycle",
}  # fmt: skip


def _codes_in_source() -> set[str]:
    """Every problem code the package's code gives: the code argument of each Problem(...),
    validate's _problem(...)/report(...) and formats' _error(...) call. Not the terminal
    renderer's (graph/console.py): its problems are a run's failures and warnings as lines,
    which a server sends as execution_error and node_warning messages, never as node_errors."""
    codes = {"value_too_long"}  # server/prompts.py's own, for an over-long string
    renderer = ROOT / "graph" / "console.py"
    for folder in ("app", "graph", "nodes", "server"):
        for path in set((ROOT / folder).rglob("*.py")) - {renderer}:
            for call in ast.walk(ast.parse(path.read_text())):
                if not isinstance(call, ast.Call):
                    continue
                name = getattr(call.func, "id", None) or getattr(call.func, "attr", None)
                if name not in ("Problem", "_problem", "report", "_error"):
                    continue
                given = [k.value for k in call.keywords if k.arg == "code"]
                given += [a for a in call.args if isinstance(a, ast.Constant)][:1]
                codes |= {c.value for c in given[:1] if isinstance(getattr(c, "value", None), str)}
    return codes


def test_every_code_the_validators_give_has_a_comfyui_type_the_editor_knows():
    codes = _codes_in_source()
    assert {"invalid_value", "limit_exceeded", "unknown_node_type", "syntax"} <= codes
    assert sorted(codes - set(COMFY_ERROR_TYPES)) == []
    assert set(COMFY_ERROR_TYPES.values()) <= EDITOR_KNOWS


@pytest.fixture
def t2i() -> dict:
    return json.loads((DATA / "classic_api.json").read_text())


def test_a_node_refusing_a_value_and_a_server_limit_are_custom_validation_failed(t2i):
    t2i["9"]["inputs"]["filename_prefix"] = "a:b"
    t2i["3"]["inputs"]["steps"] = 5000
    registry, settings = node_registry(), Settings(limit_labels=LIMIT_FLAGS)  # as the server's
    with pytest.raises(PromptRejected) as caught:
        check_prompt(t2i, registry, settings)
    errors = caught.value.body["node_errors"]
    [prefix], [steps] = errors["9"]["errors"], errors["3"]["errors"]
    assert prefix["type"] == steps["type"] == "custom_validation_failed"
    declared = object_info(registry, settings)["SaveImage"]["input"]["required"]
    assert prefix["extra_info"] == {"input_name": "filename_prefix",
                                    "input_config": declared["filename_prefix"],
                                    "received_value": "a:b",
                                    "latentgraph_type": "invalid_value"}  # fmt: skip
    assert steps["extra_info"]["latentgraph_type"] == "limit_exceeded"
    assert steps["details"].endswith("steps 5000 is over the limit of 1000 (--max-steps)")


def test_an_unknown_node_type_is_comfyuis_missing_node_type(t2i):
    t2i["8"]["class_type"] = "VAEDecodeTiledFancy"
    with pytest.raises(PromptRejected) as caught:
        check_prompt(t2i, node_registry(), Settings())
    body = caught.value.body
    assert body["error"]["type"] == "missing_node_type"  # the editor lists the missing nodes
    assert body["error"]["extra_info"] == {"node_id": "8", "class_type": "VAEDecodeTiledFancy",
                                           "node_title": "VAE Decode"}  # fmt: skip
    [error] = body["node_errors"]["8"]["errors"]
    assert error["type"] == "exception_during_validation"
    assert error["extra_info"] == {"latentgraph_type": "unknown_node_type"}
    assert "unknown node type 'VAEDecodeTiledFancy'" in error["details"]


@pytest.mark.browser
def test_the_editor_names_our_refusals_as_its_own(tmp_path, cache_dir, one_thread):
    """In ComfyUI's editor a refused value and a server limit are listed as "Invalid input"
    on the node and input, not as errors it does not recognize."""
    graph = json.loads((DATA / "classic_editor.json").read_text())
    for node in graph["nodes"]:
        if node["type"] == "SaveImage":
            node["widgets_values"] = ["a:b"]
        if node["type"] == "KSampler":
            node["widgets_values"][2] = 5000
    running = start_editor_server(tmp_path)
    errors: list[str] = []
    try:
        with editor_with_graph(running.url, graph, errors) as page:
            page.evaluate("() => window.app.queuePrompt(0, 1)")
            page.get_by_text("View details").click(timeout=30_000)
            page.get_by_text("KSampler - steps").wait_for(timeout=10_000)
            text = page.evaluate("() => document.body.innerText")
    finally:
        running.stop()
    assert "A node rejected one or more input values." in text
    assert "Save Image - filename_prefix" in text
    assert "recognize" not in text, text
