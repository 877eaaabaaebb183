"""Driving ComfyUI's editor in headless Chromium: shared by the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1400, 900)  # the page's viewport: a laptop's browser window, the canvas filling it
# Below this scale the editor draws nodes as untitled boxes without widgets: its threshold is
# LiteGraph.Canvas.MinFontSizeForLOD (8 px) / NODE_TEXT_SIZE (14 px) = 0.57 at one device
# pixel per CSS pixel, which replaced the LowQualityRenderingZoomThreshold of 0.6.
LOW_QUALITY_SCALE = 0.6
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip

# Headless Chromium repaints the canvas only when it is marked dirty, and the image of a Save
# Image node is requested from /api/view when the node is drawn. A run that ends before its
# output reaches a repaint would never show the image, so each poll marks the canvas dirty.
_IMAGE_SHOWN = """prefix => {
    window.app.canvas.setDirty(true, true);
    return Array.from(document.querySelectorAll('img')).find(
        i => i.src.includes('/api/view?filename=' + prefix) && i.naturalWidth > 0);
}"""


def require_browser() -> None:
    """Skip when Debian's chromium or the editor package is missing, naming what to install;
    under CI (`CI=true`, set by .ci/run, which installs chromium) fail instead: there the
    browser tests are required, never silently skipped (`preparation.unprepared`)."""
    from pathlib import Path

    from latentgraph.server.editor import PINNED, static_dir

    from .preparation import unprepared

    missing = [what for what, ok in (("Debian's chromium (apt-get install chromium)",
                                      Path(CHROMIUM).exists()),
                                     (f"the editor ({PINNED})", static_dir() is not None))
               if not ok]  # fmt: skip
    if not missing:
        return
    unprepared(f"browser test needs {' and '.join(missing)}")


def start_editor_server(data_dir, *, first_visit: bool = False, auth_token: str | None = None):
    """The real server with the built-in nodes and the pinned editor, on a free port, with
    the editor's first-visit tour marked done (it would cover the canvas), unless
    `first_visit`: the user's settings empty, as before the editor was ever opened. With
    `auth_token`, its `http` client sends it."""
    from latentgraph.server.config import ServerConfig
    from latentgraph.wiring import prepare_server, worker_setup

    from .server.conftest import RunningServer, free_port

    require_browser()
    config = ServerConfig(data_dir=data_dir, port=free_port(), disk_cache=False,
                          auth_token=auth_token)  # fmt: skip
    prepare_server(config)  # example.png in the input folder
    running = RunningServer(config, worker_setup()).start()
    if auth_token is not None:
        running.http.headers["authorization"] = f"Bearer {auth_token}"
    if not first_visit:
        running.http.post("/api/settings", json={"Comfy.TutorialCompleted": True})
    return running


@contextmanager
def editor(url: str, errors: list[str], *, new_browser: bool = False,
           requests: list[str] | None = None) -> Iterator:  # fmt: skip
    """Open the editor at `url` in headless Chromium and wait until its app is up: in a
    browser that has opened it before (its `latentgraph_visited_PORT` cookie set), unless
    `new_browser`, which is sent to the classic default graph as a first visit is. Page
    errors and console errors are appended to `errors`, except failed requests to other
    hosts (the editor asks huggingface.co for the sizes of the models its own default graph
    names; this machine blocks it). The URL of every request the page makes, from its first,
    is appended to `requests` when given. Yields the page."""
    from urllib.parse import urlsplit

    from playwright.sync_api import sync_playwright

    from latentgraph.server.editor import VISITED

    def console(message) -> None:
        where = (message.location or {}).get("url") or ""
        if message.type == "error" and (where.startswith(url) or not where):
            errors.append(f"{message.text} ({where})")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": WINDOW[0], "height": WINDOW[1]})
            if not new_browser:
                page.context.add_cookies([{"name": f"{VISITED}_{urlsplit(url).port}",
                                           "value": "1", "url": url + "/"}])  # fmt: skip
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", console)
            if requests is not None:
                page.on("request", lambda request: requests.append(request.url))
            page.goto(url + "/", wait_until="domcontentloaded")
            page.wait_for_function("window.app && window.app.graph && window.app.canvas",
                                   timeout=60_000)  # fmt: skip
            yield page
        finally:
            browser.close()


@contextmanager
def editor_with_graph(url: str, graph: dict, errors: list[str]) -> Iterator:
    """`editor`, then load `graph` (editor format) with `app.loadGraphData`."""
    with editor(url, errors) as page:
        page.evaluate("g => window.app.loadGraphData(g)", graph)
        yield page


def queue_and_wait_for_image(page, prefix: str, timeout_ms: int = 120_000) -> dict:
    """Press Run (app.queuePrompt) and wait until the page shows an image whose file name
    starts with `prefix`; returns its {"src", "width"}."""
    page.evaluate("() => window.app.queuePrompt(0, 1)")
    return wait_for_image(page, prefix, timeout_ms)


def wait_for_image(page, prefix: str, timeout_ms: int = 120_000) -> dict:
    """Wait until the page shows an image whose file name starts with `prefix`; returns its
    {"src", "width"}."""
    handle = page.wait_for_function(_IMAGE_SHOWN, arg=prefix, polling=250, timeout=timeout_ms)
    return handle.evaluate("img => ({src: img.src, width: img.naturalWidth})")


def screenshot_fitted(page, path) -> None:
    """Fit the graph in view, repaint, and save a screenshot."""
    import time

    page.keyboard.press("Escape")
    page.mouse.click(700, 800)  # focus the canvas, then "." fits the graph in view
    page.keyboard.press(".")
    page.mouse.move(700, 450)
    page.evaluate("() => window.app.canvas.setDirty(true, true)")
    time.sleep(0.5)
    page.screenshot(path=str(path))
