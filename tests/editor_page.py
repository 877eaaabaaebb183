"""Driving ComfyUI's editor in headless Chromium: shared by the browser tests."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
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


def queue_and_wait_for_image(page, prefix: str, timeout_ms: int = 120_000) -> dict:
    """Press Run (app.queuePrompt) and wait until the page shows an image whose file name
    starts with `prefix`; returns its {"src", "width"}."""
    page.evaluate("() => window.app.queuePrompt(0, 1)")
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
