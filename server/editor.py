"""Serving ComfyUI's web editor (PyPI `comfyui-frontend-package`, pinned) at `/`.

The editor's built-in default graph (frontend 1.58.1: a Z-Image Turbo graph, `defaultGraph`
in its workflowStore bundle) is one no latentgraph install can run, and no setting or server
answer chooses another. What the frontend does offer is opening a template named in the page
address (`?template=NAME`, fetched from /templates/NAME.json). So a first visit is sent to
`?template=default`: ComfyUI's classic default graph on the built-in tiny model
(api_templates.CLASSIC_DEFAULT). First for the user (their settings do not yet hold
`Comfy.TutorialCompleted`, which the editor sets on its first load) or for the browser (it
lacks the `latentgraph_visited_PORT` cookie that redirect sets): the settings are the data
dir's, one for every browser, and a second browser with nothing to restore got the Z-Image
graph. Later visits restore what the user had open, as the editor does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .collector import in_thread
from .middleware import cookie_name

PACKAGE = "comfyui_frontend_package"
PINNED = "comfyui-frontend-package==1.58.1"
# Set by the first visit's redirect: this browser has been sent to the classic graph. Lax, not
# Strict: it grants nothing, and a link on another site's page must carry it too, or each such
# link opened the classic graph in one more tab.
VISITED = "latentgraph_visited"
_VISITED_MAX_AGE = 400 * 24 * 3600  # the longest a browser keeps a cookie (Chromium's cap)

# Our own editor extensions (server/web/, ui_text.js: a node's ui text shown on the node),
# served under the path ComfyUI gives a custom node pack's scripts and listed by GET
# /extensions, whose paths the editor imports at start-up (it skips `extensions/core`, its own).
WEB_DIR = Path(__file__).with_name("web")
EXTENSIONS_PATH = "/extensions/latentgraph"
_EXTENSIONS = ("ui_text.js",)

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


def extensions(enabled: bool = True) -> list[str]:
    """GET /extensions: the paths of our editor extensions, where the editor is served (none
    without it: nothing would load them)."""
    if not enabled or static_dir() is None:
        return []
    return [f"{EXTENSIONS_PATH}/{name}" for name in _EXTENSIONS]


async def _missing(request: Request) -> HTMLResponse:
    return HTMLResponse(_MISSING)


async def _user_css(request: Request) -> Response:
    """The page links `user.css` beside its own files: the default user's stylesheet, empty
    until they write one (never a 404 in the console)."""
    from .state import get_state

    path = get_state(request).config.user_dir / "user.css"
    return FileResponse(path) if path.is_file() else Response("", media_type="text/css")


async def first_visit(request: Request) -> bool:
    """The editor has never been opened for this user (their settings, none or the server's
    defaults, lack `Comfy.TutorialCompleted`, which the editor writes on its first load) or
    in this browser (it sends no `VISITED` cookie for this port). Only reading the settings
    file, when the cookie is there, runs on a worker thread."""
    from .api_user import load_settings
    from .state import get_state

    if cookie_name(request.scope, VISITED) not in request.cookies:
        return True
    settings = await in_thread(load_settings, get_state(request).config)
    return "Comfy.TutorialCompleted" not in settings


def _page(folder: Path):
    async def page(request: Request) -> Response:
        """The editor's page; a first visit asking for nothing else in the address (a
        `?token=` is read by the middleware, which sets its cookie on this answer too; a
        browser's was already taken out of the address by its redirect) is sent to the
        classic default graph (relative, so a proxy's path prefix is kept)."""
        from .api_templates import DEFAULT_TEMPLATE

        if set(request.query_params) <= {"token"} and await first_visit(request):
            response = RedirectResponse(f"?template={DEFAULT_TEMPLATE}", status_code=307)
            response.set_cookie(cookie_name(request.scope, VISITED), "1", path="/",
                                max_age=_VISITED_MAX_AGE, httponly=True, samesite="lax")  # fmt: skip
            return response
        return FileResponse(folder / "index.html")

    return page


def routes(enabled: bool = True) -> list[BaseRoute]:
    folder = static_dir() if enabled else None
    if folder is None:
        return [Route("/", _missing, methods=["GET"])]
    return [Route("/", _page(folder), methods=["GET", "HEAD"]),
            Route("/user.css", _user_css, methods=["GET"]),
            # as the editor's own files are served (the guards cover both alike)
            Mount(EXTENSIONS_PATH, app=StaticFiles(directory=WEB_DIR), name="extensions"),
            Mount("/", app=StaticFiles(directory=folder, html=True), name="editor")]  # fmt: skip
