"""The real editor (comfyui-frontend-package) in headless Chromium against the real server.

Loads a txt2img graph of latentgraph nodes with `app.loadGraphData`, queues it with
`app.queuePrompt(0, 1)`, waits until the editor fetches the saved image, and keeps a
screenshot in artifacts/editor.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ..editor_page import (
    editor,
    editor_with_graph,
    queue_and_wait_for_image,
    screenshot_fitted,
    start_editor_server,
)

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def editor_server(tmp_path_factory, cache_dir):
    running = start_editor_server(tmp_path_factory.mktemp("editor"))
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


def test_the_editor_opened_with_its_token_shows_no_token_and_drops_the_old_cookie(
    tmp_path_factory, cache_dir
):
    """`/?token=` once: the editor loads in Chromium, its address without the token (the
    guard's redirect, then a first visit's to the classic default graph, in turn: no loop,
    neither lost), the
    port's cookie set and the cookie an earlier latentgraph set (the token itself) expired.
    A returning user's `/?token=` ends at `/`."""
    from playwright.sync_api import sync_playwright

    from ..editor_page import ARGS, CHROMIUM

    token = "a-browser-test-token"
    running = start_editor_server(tmp_path_factory.mktemp("token"), first_visit=True,
                                  auth_token=token)  # fmt: skip
    port = running.config.port
    errors: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                context = browser.new_context()
                context.add_cookies([{"name": "latentgraph_token", "value": token,
                                      "url": running.url + "/"}])  # fmt: skip
                page = context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                chain: list[tuple[int, str]] = []  # the navigation's answers, in turn
                page.on("response", lambda r: chain.append((r.status, r.url[len(running.url):]))
                        if r.request.is_navigation_request() else None)  # fmt: skip
                page.goto(f"{running.url}/?token={token}", wait_until="domcontentloaded")
                page.wait_for_function("window.app && window.app.graph && "
                                       "window.app.graph._nodes.length > 0",
                                       timeout=60_000)  # fmt: skip
                assert chain == [(303, f"/?token={token}"), (307, "/"),
                                 (200, "/?template=default")]  # fmt: skip
                assert token not in page.url  # (the editor then drops ?template= itself)
                types = page.evaluate("() => window.app.graph._nodes.map(n => n.type)")
                assert "KSampler" in types and "SaveImage" in types  # the classic graph
                assert {c["name"] for c in context.cookies()} == {f"latentgraph_auth_{port}",
                                                                  f"latentgraph_visited_{port}"}  # fmt: skip
                running.http.post("/api/settings", json={"Comfy.TutorialCompleted": True})
                chain.clear()
                page.goto(f"{running.url}/?token={token}", wait_until="domcontentloaded")
                page.wait_for_function("window.app && window.app.graph", timeout=60_000)
                assert chain == [(303, f"/?token={token}"), (200, "/")]
                assert page.url == f"{running.url}/"
            finally:
                browser.close()
    finally:
        running.stop()
    assert not [e for e in errors if "latentgraph" in e.lower()], errors


def test_fresh_editor_has_no_console_errors_and_runs_a_template(editor_server):
    """A new user's first visit: nothing fails on load (the run button's template code broke
    on a 404 body from /api/workflow_templates), the Templates dialog lists workflows/ and
    ComfyUI's classic default graph, and one opens and runs."""
    errors: list[str] = []
    with editor(editor_server.url, errors) as page:
        page.wait_for_timeout(3000)  # requests the editor sends after its first paint
        page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        cards = '[data-testid^="template-workflow-"]'
        page.wait_for_selector(cards, timeout=30_000)
        names = page.evaluate(f"() => Array.from(document.querySelectorAll('{cards}'))"
                              ".map(e => e.dataset.testid)")  # fmt: skip
        examples = [p.stem for p in (ROOT / "workflows").glob("*.yaml")]
        listed = sorted(n.removeprefix("template-workflow-") for n in names)
        assert listed == sorted(["default", *examples])  # default: ComfyUI's classic graph
        page.click('[data-testid="template-workflow-txt2img"]')
        page.wait_for_function("window.app.graph._nodes.some(n => n.type === 'UNetDenoise')",
                               timeout=30_000)  # fmt: skip
        shown = queue_and_wait_for_image(page, "txt2img")
        assert shown["width"] == 128  # the template's own size
    assert errors == []


_ELSEWHERE = """<!doctype html><html><body>
<iframe id="framed" src="{url}/" width="800" height="600"></iframe>
<img id="output" src="{url}/view?filename=example.png&type=input&preview=webp;90">
<a id="link" href="{url}/">the editor</a></body></html>"""


@contextmanager
def page_elsewhere(html: str) -> Iterator[int]:
    """An HTTP server on another port of this host answering every GET with `html`; its port."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])  # cross-site; same-site
def test_another_site_can_neither_frame_the_editor_nor_load_its_files(editor_server, name):
    """A page on another port of this host, in real Chromium, by another name (localhost:
    cross-site) or the editor's (127.0.0.1: same-site, not same-origin): the editor it frames
    is not shown (clickjacking: the framed editor's own requests are same-origin), its <img>
    of /view does not load (which files exist, their sizes, previews encoded at will), and
    its link to the editor opens the editor."""
    from playwright.sync_api import sync_playwright

    from ..editor_page import ARGS, CHROMIUM

    with (
        page_elsewhere(_ELSEWHERE.format(url=editor_server.url)) as port,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"http://{name}:{port}/", wait_until="load")  # the frame and image too
            framed = next(f for f in page.frames if f is not page.main_frame)
            assert not framed.url.startswith(editor_server.url), framed.url  # blocked
            assert page.evaluate("() => document.getElementById('output').naturalWidth") == 0
            page.click("#link")
            page.wait_for_function("window.app && window.app.graph", timeout=60_000)
            assert page.url.startswith(editor_server.url)
        finally:
            browser.close()


def test_a_link_on_another_site_opens_the_editor_of_a_server_with_a_token(tmp_path_factory,
                                                                          cache_dir):  # fmt: skip
    """The cookie `?token=` sets is SameSite=Strict, so a link on another site's page (here
    localhost, another port) arrives without it: the guard answers a page, not JSON, which
    reloads itself once; that reload is our own page's, the cookie goes with it, and a user
    who opened the editor with its token lands in it. A browser without the cookie sees the
    page, and its reload's answer reloads no more."""
    from playwright.sync_api import sync_playwright

    from ..editor_page import ARGS, CHROMIUM

    token = "a-link-test-token"
    running = start_editor_server(tmp_path_factory.mktemp("link"), auth_token=token)
    try:
        with (
            page_elsewhere(f'<a id="link" href="{running.url}/">the editor</a>') as port,
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                for logged_in in (True, False):
                    page = browser.new_context().new_page()
                    if logged_in:
                        page.goto(f"{running.url}/?token={token}", wait_until="domcontentloaded")
                    chain: list[tuple[int, str]] = []  # the link's navigations' answers
                    page.on("response", lambda r, chain=chain: chain.append(
                        (r.status, r.url[len(running.url):]))
                        if r.request.is_navigation_request() and r.url.startswith(running.url)
                        else None)  # fmt: skip
                    page.goto(f"http://localhost:{port}/", wait_until="load")
                    page.click("#link")
                    if logged_in:
                        page.wait_for_function("window.app && window.app.graph", timeout=60_000)
                        assert chain == [(401, "/"), (200, "/")]
                    else:
                        page.wait_for_function("document.title.includes('token required') && "
                                               "!document.querySelector('meta[http-equiv]')",
                                               timeout=60_000)  # fmt: skip
                        assert chain == [(401, "/"), (401, "/")]
                        assert "?token=TOKEN" in page.inner_text("body")
                    page.context.close()
            finally:
                browser.close()
    finally:
        running.stop()


# What the editor asks for once it is idle after start-up (its model folders), which it reaches
# only after its release check has sent its request, if it sends one.
_AFTER_START_UP = "/api/experiment/models"


def test_the_editor_asks_comfy_org_nothing_on_load(editor_server):
    """The editor's release check (`Comfy.Notification.ShowVersionUpdates`, on by its own
    default) sent GET https://api.comfy.org/releases?current_version=0.38.1 on every page
    load: the server answers that setting off for a user who has not set it, so no request
    leaves for comfy.org (test_user_settings.py: a user's choice wins)."""
    requests: list[str] = []
    errors: list[str] = []
    with editor(editor_server.url, errors, requests=requests) as page:
        if not any(_AFTER_START_UP in url for url in requests):
            page.wait_for_event("request", lambda r: _AFTER_START_UP in r.url, timeout=60_000)
        setting = page.evaluate("() => window.app.extensionManager.setting.get("
                                "'Comfy.Notification.ShowVersionUpdates')")  # fmt: skip
    assert not [url for url in requests if urlsplit(url).hostname == "api.comfy.org"], requests
    assert setting is False  # the editor read the server's answer for it
