"""The real editor (comfyui-frontend-package) in headless Chromium against the real server.

Loads a txt2img graph of latentgraph nodes with `app.loadGraphData`, queues it with
`app.queuePrompt(0, 1)`, waits until the editor fetches the saved image, and keeps a
screenshot in artifacts/editor.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..editor_page import CHROMIUM, editor_with_graph, queue_and_wait_for_image, screenshot_fitted
from .conftest import RunningServer, free_port

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def editor_server(tmp_path_factory):
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.editor import static_dir

    if static_dir() is None or not Path(CHROMIUM).exists():
        pytest.fail("needs comfyui-frontend-package==1.58.1 and /usr/bin/chromium (see README)")
    data = tmp_path_factory.mktemp("editor")
    os.environ.setdefault("LATENTGRAPH_CACHE_DIR", str(data / "cache"))
    config = ServerConfig(data_dir=data, port=free_port(), disk_cache=False)
    from latentgraph.graph import default_registry

    running = RunningServer(config, default_registry).start()
    # A first visit opens the templates browser over the canvas; mark the tour as done.
    running.http.post("/api/settings", json={"Comfy.TutorialCompleted": True})
    yield running
    running.stop()


def _editor_graph() -> dict:
    from latentgraph.graph.comfy_editor import editor_from_graph
    from latentgraph.graph.workflow import load_workflow

    wf = load_workflow(ROOT / "workflows" / "txt2img.yaml",
                       overrides={"width": 64, "height": 64, "steps": 4})  # fmt: skip
    return editor_from_graph(wf.graph)


def test_editor_runs_a_graph_and_shows_the_image(editor_server):
    graph = _editor_graph()
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    errors: list[str] = []
    with editor_with_graph(editor_server.url, graph, errors) as page:
        types = page.evaluate("() => window.app.graph._nodes.map(n => n.type)")
        assert "UNetDenoise" in types and "SaveImage" in types
        shown = queue_and_wait_for_image(page, "txt2img")
        assert shown["width"] == 64
        screenshot_fitted(page, artifacts / "editor.png")
    jobs = editor_server.http.get("/api/jobs", params={"status": "completed"}).json()["jobs"]
    assert jobs and jobs[0]["preview_output"]["filename"].endswith(".png")
    assert (artifacts / "editor.png").stat().st_size > 10_000
    assert not [e for e in errors if "latentgraph" in e.lower()], errors
