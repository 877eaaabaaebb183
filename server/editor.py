"""Serving ComfyUI's web editor (PyPI `comfyui-frontend-package`, pinned) at `/`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

PACKAGE = "comfyui_frontend_package"
PINNED = "comfyui-frontend-package==1.58.1"

_MISSING = f"""<!doctype html><html><head><title>latentgraph</title></head><body>
<h1>latentgraph server</h1>
<p>The API is running. The node editor is not installed; install it with</p>
<pre>pip install "{PINNED}"</pre>
<p>(or <code>pip install "latentgraph[editor]"</code>) and restart <code>latentgraph serve</code>.</p>
</body></html>"""


def static_dir() -> Path | None:
    """The frontend package's static folder, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "static"
        if (candidate / "index.html").is_file():
            return candidate
    return None


async def _missing(request: Request) -> HTMLResponse:
    return HTMLResponse(_MISSING)


async def _user_css(request: Request) -> Response:
    """The page links `user.css` beside its own files: the default user's stylesheet, empty
    until they write one (never a 404 in the console)."""
    from .state import get_state

    path = get_state(request).config.user_dir / "user.css"
    return FileResponse(path) if path.is_file() else Response("", media_type="text/css")


def routes(enabled: bool = True) -> list[BaseRoute]:
    folder = static_dir() if enabled else None
    if folder is None:
        return [Route("/", _missing, methods=["GET"])]
    return [Route("/user.css", _user_css, methods=["GET"]),
            Mount("/", app=StaticFiles(directory=folder, html=True), name="editor")]  # fmt: skip
