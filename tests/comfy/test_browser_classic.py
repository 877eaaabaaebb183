"""ComfyUI's classic default graph in the served editor (headless Chromium): loaded as saved
by ComfyUI, queued with Run, its image shown on the Save Image node. Screenshot in
artifacts/comfy-classic.png."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from latentgraph.graph.editor_layout import fitted_view

from ..editor_page import (
    LOW_QUALITY_SCALE,
    WINDOW,
    editor,
    editor_with_graph,
    queue_and_wait_for_image,
    screenshot_fitted,
    start_editor_server,
    wait_for_image,
)
from .conftest import DATA

pytestmark = pytest.mark.browser
CLASSIC_TYPES = ["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage",
                 "KSampler", "VAEDecode", "SaveImage"]  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]
# Records, every few ms, the nodes the editor draws a progress bar on (node.progress is set
# from the running states of `progress_state`).
_RECORD_PROGRESS = """() => {
    window.__progressSeen = {};
    setInterval(() => {
        for (const n of window.app.graph._nodes)
            if (n.progress !== undefined && n.progress !== null)
                window.__progressSeen[n.id] = Math.max(window.__progressSeen[n.id] ?? 0, n.progress);
    }, 5);
}"""

# The canvas's scale, whether it draws nodes in low quality, and each node's rectangle (title
# bar included) at the size the editor gave it.
_VIEW = """() => ({scale: window.app.canvas.ds.scale, lowQuality: window.app.canvas.low_quality,
                 rects: window.app.graph._nodes.map(n => Array.from(n.boundingRect))})"""


def _overlap(a: list[float], b: list[float]) -> bool:
    """Whether two rectangles [x, y, width, height] overlap (sharing an edge is not)."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.fixture(scope="module")
def editor_server(tmp_path_factory, cache_dir, one_thread):
    running = start_editor_server(tmp_path_factory.mktemp("comfy-editor"))
    yield running
    running.stop()


def test_classic_graph_runs_in_the_editor_and_shows_its_image(editor_server):
    graph = json.loads((DATA / "classic_editor.json").read_text())
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "comfy-classic.png"
    errors: list[str] = []
    with editor_with_graph(editor_server.url, graph, errors) as page:
        types = page.evaluate("() => window.app.graph._nodes.map(n => n.type).sort()")
        assert types == sorted(n["type"] for n in graph["nodes"])
        # every node is known to the editor (an unknown type would be drawn as missing)
        assert page.evaluate("() => window.app.graph._nodes.every(n => !n.has_errors)")
        page.evaluate(_RECORD_PROGRESS)
        try:
            shown = queue_and_wait_for_image(page, "classic_")
        except Exception:
            history = editor_server.http.get("/history").json()
            runs = {k: (v["status"], v["outputs"]) for k, v in history.items()}
            raise AssertionError(f"no image shown; page errors: {errors}; runs: {runs}") from None
        assert shown["width"] == 64  # the saved image: the graph's 64x64
        # per-node progress (from `progress_state`) was drawn on the graph's nodes
        seen = page.evaluate("() => window.__progressSeen")
        assert seen and set(seen) <= {str(n["id"]) for n in graph["nodes"]}, seen
        screenshot_fitted(page, shot)
    history = editor_server.http.get("/history").json()
    [entry] = history.values()
    assert entry["status"]["status_str"] == "success"
    [record] = entry["outputs"]["9"]["images"]
    assert record["filename"].startswith("classic_")
    assert shot.stat().st_size > 10_000
    assert not [e for e in errors if "latentgraph" in e.lower()], errors


def test_the_editor_applies_dynamic_prompts_to_clip_text_encode(editor_server):
    """CLIPTextEncode's text declares dynamicPrompts (/object_info), so the editor itself
    strips // and /* */ comments and picks one option of each {a|b} when it builds the prompt
    it queues, as it does against ComfyUI."""
    graph = json.loads((DATA / "classic_editor.json").read_text())
    text = "a cat // a dog later\n/* style notes */ in {red|red} light"
    next(n for n in graph["nodes"] if n["id"] == 6)["widgets_values"] = [text]
    errors: list[str] = []
    with editor_with_graph(editor_server.url, graph, errors) as page:
        prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    sent = prompt["6"]["inputs"]["text"]
    assert "//" not in sent and "/*" not in sent and "{" not in sent, sent
    assert sent.split() == ["a", "cat", "in", "red", "light"], sent
    assert prompt["7"]["inputs"]["text"] == "blurry, watermark"  # nothing to change there
    assert errors == []


def test_a_comfyui_group_node_converted_by_the_editor_queues_comfyuis_values(editor_server):
    """The editor turns a ComfyUI group node into a subgraph with our /object_info: VAEDecode's
    `tiled`/`sliced` were widgets there, took SaveImage's prefix, and POST /prompt refused
    `"tiled": "my_prefix"`. As sockets (`forceInput`) they take none of the group's values."""
    from .test_comfy_groups import DECODE_SAVE_GROUP

    graph = copy.deepcopy(DECODE_SAVE_GROUP)
    for n, node in enumerate(graph["nodes"] + graph["extra"]["groupNodes"]["DecodeSave"]["nodes"]):
        node.update(pos=[100 + 300 * n, 100], size=[250, 100])  # the editor places them
    errors: list[str] = []
    with editor_with_graph(editor_server.url, graph, errors) as page:
        prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    by_type = {node["class_type"]: node["inputs"] for node in prompt.values()}
    assert by_type["SaveImage"]["filename_prefix"] == "my_prefix", prompt
    assert set(by_type["VAEDecode"]) == {"samples", "vae"}, prompt
    answer = editor_server.http.post("/prompt", json={"prompt": prompt})
    assert answer.status_code == 200, answer.text
    assert not [e for e in errors if "latentgraph" in e.lower()], errors


def test_a_first_visit_shows_comfyuis_classic_graph_and_run_makes_its_image(
    tmp_path_factory, cache_dir, one_thread
):
    """A fresh browser profile and empty user settings: the editor's first screen is ComfyUI's
    classic default graph on the built-in tiny model (not the frontend's built-in Z-Image
    graph, whose nodes latentgraph lacks), and clicking Run saves its image."""
    running = start_editor_server(tmp_path_factory.mktemp("first-visit"), first_visit=True)
    errors: list[str] = []
    try:
        with editor(running.url, errors, new_browser=True) as page:
            page.wait_for_function("window.app.graph._nodes.length > 0", timeout=60_000)
            types = page.evaluate("() => window.app.graph._nodes.map(n => n.type).sort()")
            assert types == sorted(CLASSIC_TYPES)
            assert set(types) <= set(running.http.get("/object_info").json())
            assert page.evaluate("() => window.app.graph._nodes.every(n => !n.has_errors)")
            # the editor fits the template into its 1400x900 window once it is drawn (its
            # pending camera): above the scale it draws untitled grey boxes at (it was 56%),
            # no node over another at the sizes the editor gave them
            page.wait_for_function("() => window.app.pendingCamera === undefined",
                                   timeout=60_000)  # fmt: skip
            view = page.evaluate(_VIEW)
            assert view["scale"] >= LOW_QUALITY_SCALE and not view["lowQuality"], view
            rects = view["rects"]
            assert not [(a, b) for k, a in enumerate(rects) for b in rects[k + 1 :]
                        if _overlap(a, b)], rects  # fmt: skip
            page.get_by_role("button", name="Run", exact=True).click()
            shown = wait_for_image(page, "ComfyUI_", timeout_ms=300_000)
            assert shown["width"] == 512  # ComfyUI's classic 512x512
        [entry] = running.http.get("/history").json().values()
        assert entry["status"]["status_str"] == "success"
        [record] = entry["outputs"]["9"]["images"]
        assert (running.config.output_dir / record["filename"]).is_file()
        # the editor recorded the visit: the next one restores what the user had open
        assert running.http.get("/api/settings").json()["Comfy.TutorialCompleted"] is True
    finally:
        running.stop()
    assert not [e for e in errors if "latentgraph" in e.lower()], errors


# The editor shows template `name` (its tab active, every node of it loaded: `want`, each
# node's id and type) at the view it fitted it to.
_TEMPLATE_SHOWN = """([name, want]) => window.app?.extensionManager?.workflow?.activeWorkflow
    ?.filename === name && window.app.pendingCamera === undefined && JSON.stringify(
    window.app.graph._nodes.map(n => n.id + ':' + n.type).sort()) === JSON.stringify(want)"""


def test_the_hardest_templates_open_readable_without_overlaps(editor_server):
    """The editor fits a template into its window, whatever view the file carries. Laid out
    one column per depth, the examples opened at 27-56% in a 1400x900 window, every node an
    untitled grey box without widgets. The templates our fit rule (`fitted_view`, which
    tests/server/test_editor_first_visit.py checks for every one) puts at the smallest scale,
    opened as their address opens them (`/?template=NAME`, one browser for all), are drawn at
    60% or more now by the editor itself, no node over another at the sizes it gave them.
    Four, not all 18: a page load each costs ~4 s of the CI's budget."""
    [category] = editor_server.http.get("/templates/index.json").json()
    every = [template["name"] for template in category["templates"]]
    assert len(every) > 10  # the examples, not only the classic graph
    scale = {name: fitted_view(editor_server.http.get(f"/templates/{name}.json").json()["nodes"],
                               WINDOW)["scale"] for name in every}  # fmt: skip
    names = sorted(every, key=scale.__getitem__)[:4]
    views: dict[str, dict] = {}
    errors: list[str] = []
    with editor(editor_server.url, errors) as page:
        for name in names:
            nodes = editor_server.http.get(f"/templates/{name}.json").json()["nodes"]
            page.goto(f"{editor_server.url}/?template={name}", wait_until="domcontentloaded")
            page.wait_for_function(_TEMPLATE_SHOWN, arg=[name, sorted(
                f"{n['id']}:{n['type']}" for n in nodes)], timeout=60_000)  # fmt: skip
            views[name] = page.evaluate(_VIEW)
    unreadable = {name: round(view["scale"], 3) for name, view in views.items()
                  if view["scale"] < LOW_QUALITY_SCALE or view["lowQuality"]}  # fmt: skip
    assert not unreadable, unreadable
    for name, view in views.items():
        rects = view["rects"]
        assert not [(a, b) for k, a in enumerate(rects) for b in rects[k + 1 :]
                    if _overlap(a, b)], name  # fmt: skip
    assert not [e for e in errors if "latentgraph" in e.lower()], errors


def test_each_new_browser_first_sees_the_classic_graph(editor_server):
    """The settings `Comfy.TutorialCompleted` is in are the data dir's, one for every browser:
    a second browser (a colleague's, a private window, cleared site data) with nothing to
    restore got the frontend's Z-Image graph, which cannot run. Each new browser is sent to
    the classic graph once (its `latentgraph_visited_PORT` cookie), then restores its own."""
    settings = editor_server.http.get("/api/settings").json()
    assert settings["Comfy.TutorialCompleted"] is True  # the user has opened the editor
    for _ in range(2):  # two new browsers
        errors: list[str] = []
        with editor(editor_server.url, errors, new_browser=True) as page:
            chain: list[tuple[int, str]] = []
            page.on("response", lambda r, chain=chain: chain.append(
                (r.status, r.url[len(editor_server.url):]))
                if r.request.is_navigation_request() else None)  # fmt: skip
            # (the editor opens its own default first, then the template in a tab of its own)
            page.wait_for_function("types => JSON.stringify(window.app.graph._nodes.map("
                                   "n => n.type).sort()) === JSON.stringify(types)",
                                   arg=sorted(CLASSIC_TYPES), timeout=60_000)  # fmt: skip
            page.goto(editor_server.url + "/", wait_until="domcontentloaded")  # a later visit
            page.wait_for_function("window.app && window.app.graph", timeout=60_000)
            assert chain == [(200, "/")]  # not sent to the template again
        assert not [e for e in errors if "latentgraph" in e.lower()], errors
