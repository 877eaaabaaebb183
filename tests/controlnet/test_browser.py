"""The controlnet example in the real editor (headless Chromium): opened from the Templates
dialog (served from workflows/controlnet.yaml), queued with Run, its image shown."""

from __future__ import annotations

import pytest

from ..editor_page import editor, queue_and_wait_for_image, start_editor_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def editor_server(tmp_path_factory, cache_dir):
    running = start_editor_server(tmp_path_factory.mktemp("controlnet-editor"))
    yield running
    running.stop()


def test_controlnet_template_runs_in_the_editor(editor_server):
    templates = editor_server.http.get("/templates/index.json").json()
    names = [t["name"] for category in templates for t in category["templates"]]
    assert "controlnet" in names
    errors: list[str] = []
    with editor(editor_server.url, errors) as page:
        page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        page.wait_for_selector('[data-testid="template-workflow-controlnet"]', timeout=30_000)
        page.click('[data-testid="template-workflow-controlnet"]')
        page.wait_for_function("window.app.graph._nodes.filter(n => n.type === 'ApplyControlNet')"
                               ".length === 2", timeout=30_000)  # fmt: skip
        types = page.evaluate("() => window.app.graph._nodes.map(n => n.type)")
        assert {"LoadControlNet", "Canny", "UNetDenoise", "SaveImage"} <= set(types)
        shown = queue_and_wait_for_image(page, "controlnet", timeout_ms=240_000)
        assert shown["width"] == 128  # the template's own size
    history = editor_server.http.get("/api/jobs", params={"status": "completed"}).json()["jobs"]
    assert history and history[0]["preview_output"]["filename"].startswith("controlnet")
    assert errors == []
