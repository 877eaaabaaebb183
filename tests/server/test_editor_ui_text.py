"""Our editor extension (server/web/ui_text.js): listed by GET /extensions and served beside
the editor's own files, it shows a node's ui text (`ui={"text": [...]}`) on the node, in the
real editor in headless Chromium, over toy nodes (a plugin's ShoutText; PreviewAny, which the
editor shows itself)."""

from __future__ import annotations

import pytest

from latentgraph.server import editor as editor_files

from ..editor_page import editor, require_browser
from .conftest import RunningServer, free_port
from .plugin.text_nodes import text_registry

SCRIPT = "/extensions/latentgraph/ui_text.js"
# ShoutText, then PreviewAny fed its output, on an empty canvas; their ids
_GRAPH = """text => {
    const graph = window.app.graph;
    graph.clear();
    const shout = LiteGraph.createNode('ShoutText');
    shout.pos = [100, 100];
    graph.add(shout);
    shout.widgets.find(w => w.name === 'text').value = text;
    const preview = LiteGraph.createNode('PreviewAny');
    preview.pos = [500, 100];
    graph.add(preview);
    shout.connect(0, preview, 0);
    return [shout.id, preview.id];
}"""
# Whether node `id` shows `text` in our read-only box on the canvas, on top at its middle (the
# canvas is redrawn at each poll: headless Chromium draws it, placing the boxes, only when
# marked dirty)
_BOX_SHOWN = """([id, text]) => {
    window.app.canvas.setDirty(true, true);
    const node = window.app.graph.getNodeById(id);
    const box = node.widgets?.find(w => w.name === 'latentgraph_ui_text')?.element;
    if (!box || box.value !== text || !box.readOnly || !box.checkVisibility()) return false;
    const at = box.getBoundingClientRect();
    const middle = document.elementFromPoint(at.x + at.width / 2, at.y + at.height / 2);
    return at.width > 0 && at.height > 0 && middle === box;
}"""
# Each node's widgets by name and value, the prompt the editor queues, the saved workflow's
# widget values by node id
_STATE = """async () => {
    const app = window.app;
    const nodes = Object.fromEntries(app.graph._nodes.map(n => [n.id,
        (n.widgets || []).map(w => [w.name, w.value])]));
    const prompt = (await app.graphToPrompt()).output;
    const saved = Object.fromEntries(app.graph.serialize().nodes.map(n =>
        [n.id, n.widgets_values]));
    return {nodes, prompt, saved};
}"""
BOX = "latentgraph_ui_text"


@pytest.fixture(scope="module")
def text_server(tmp_path_factory):
    """The real server with the editor, over the toy and text nodes (no torch)."""
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    if editor_files.static_dir() is None:
        pytest.skip(f"needs the editor ({editor_files.PINNED})")
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("ui-text"), port=free_port(),
                          disk_cache=False, load_nodes=False)  # fmt: skip
    running = RunningServer(config, WorkerSetup(registry=text_registry)).start()
    running.http.post("/api/settings", json={"Comfy.TutorialCompleted": True})  # no tour
    yield running
    running.stop()


def test_the_editor_is_given_our_extension_served_as_its_own_files_are(text_server):
    """GET /extensions names the script (the editor imports what it lists; it answered [], so
    nothing showed a plugin node's text), served as the editor's own scripts are, behind the
    same guards: one that is not there is a 404, and nothing outside its folder is reached."""
    http = text_server.http
    for path in ("/extensions", "/api/extensions"):
        assert http.get(path).json() == [SCRIPT], path
    script, theirs = http.get(SCRIPT), http.get("/scripts/app.js")
    assert script.status_code == 200 and "registerExtension" in script.text
    assert script.headers["content-type"] == theirs.headers["content-type"]  # a JS module
    for header in ("x-frame-options", "content-security-policy"):
        assert script.headers[header] == theirs.headers[header], header
    for path in ("/extensions/latentgraph/nope.js", "/extensions/latentgraph/../editor.py",
                 "/extensions/latentgraph/%2e%2e/editor.py"):  # fmt: skip
        assert http.get(path).status_code == 404, path


@pytest.mark.browser
@pytest.mark.parametrize("vue_nodes", [False, True], ids=["canvas-nodes", "vue-nodes"])
def test_a_plugin_nodes_ui_text_shows_on_the_node_after_run(text_server, vue_nodes):
    """Run: ShoutText (a plugin's node returning `ui={"text": [...]}`) shows its text in a
    read-only box on the canvas; it showed nothing, as ComfyUI's editor shows text only on
    PreviewAny. PreviewAny, which shows it itself, gets no second box. The box is neither a
    prompt input nor a saved widget value, and a second run fills the same box. The same with
    the editor's Vue node view (`Comfy.VueNodes.Enabled`), where the box first stayed empty."""
    require_browser()
    text_server.http.post("/api/settings", json={"Comfy.VueNodes.Enabled": vue_nodes})
    errors: list[str] = []
    with editor(text_server.url, errors) as page:
        assert page.evaluate("() => window.app.extensionManager.setting.get("
                             "'Comfy.VueNodes.Enabled')") is vue_nodes  # fmt: skip
        shout, preview = page.evaluate(_GRAPH, "quiet words")
        page.evaluate("() => window.app.queuePrompt(0, 1)")
        page.wait_for_function(_BOX_SHOWN, arg=[shout, "QUIET WORDS!"], polling=250,
                               timeout=60_000)  # fmt: skip
        state = page.evaluate(_STATE)
        shout_widgets = dict(state["nodes"][str(shout)])
        assert shout_widgets[BOX] == "QUIET WORDS!"
        assert BOX not in dict(state["nodes"][str(preview)])  # the editor's own box shows it
        assert state["prompt"][str(shout)]["inputs"] == {"text": "quiet words"}
        assert state["saved"][str(shout)] == ["quiet words"]

        page.evaluate("""id => window.app.graph.getNodeById(id).widgets
                         .find(w => w.name === 'text').value = 'again'""", shout)  # fmt: skip
        page.evaluate("() => window.app.queuePrompt(0, 1)")
        page.wait_for_function(_BOX_SHOWN, arg=[shout, "AGAIN!"], polling=250, timeout=60_000)
        names = [name for name, _ in page.evaluate(_STATE)["nodes"][str(shout)]]
        assert names.count(BOX) == 1
    assert errors == []
