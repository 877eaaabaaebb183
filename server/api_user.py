"""The editor's per-user storage: /users, /settings and /userdata (saved workflows).

One local user ("default"); files live in `ServerConfig.user_dir`, `<users dir>/default/` (the
users folder `<data dir>/users`, or `serve --user-dir`: a ComfyUI user/ folder, read and written
in place; a ComfyUI --multi-user user's folder beside it is not served), and no path may leave
that folder; listings leave out hidden and non-UTF-8 names (`paths.listed_names`). The server reads only the
settings file there (`comfy.settings.json`); the other files (saved workflows, user.css) are
the editor's, stored and served as they are.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from latentgraph.graph.files import os_error_words, write_atomic
from latentgraph.graph.paths import inside, listed_names
from latentgraph.graph.problems import quoted

from .collector import in_thread
from .config import ServerConfig
from .errors import ApiError, read_json
from .filetypes import served_as
from .jsontext import load_stored
from .safepath import safe_user_path, shown_name
from .state import get_state
from .store import corrupt_copy_path

SETTINGS_FILE = "comfy.settings.json"

log = logging.getLogger("latentgraph.server")


async def get_users(request: Request) -> JSONResponse:
    return JSONResponse({"storage": "server", "migrated": True})


async def post_users(request: Request) -> JSONResponse:
    raise ApiError(400, "this server has a single local user", "single_user")


def _settings_path(config: ServerConfig) -> Path:
    return config.user_dir / SETTINGS_FILE


# Held around each read and write of the settings file: they run on worker threads (`in_thread`;
# on the event loop, a large file stalled every other request), and two saves at once must not
# each write the settings as they read them, one save's setting lost. Reentrant: a save reads
# the file under it first.
_SETTINGS_LOCK = threading.RLock()


def load_settings(config: ServerConfig) -> dict[str, Any]:
    """The user's settings, {} when there are none. A file that is no JSON object (truncated,
    junk, a list) or larger than `max_settings_bytes` (an older version took any size, and
    every read parsed it all) is moved aside first: the next save would otherwise replace the
    only copy. One that is there but cannot be read (no permission to, a folder in its place)
    is refused (`_unreadable`): read as {}, the next save replaced the settings it holds. Reads
    the disk: call it on a worker thread."""
    path = _settings_path(config)
    with _SETTINGS_LOCK:
        try:
            size = path.stat().st_size
            raw = path.read_bytes() if size <= config.max_settings_bytes else None
        except FileNotFoundError:  # none saved yet
            return {}
        except OSError as exc:
            raise _unreadable(config, path, exc) from None
        if raw is None:
            _set_aside(path, f"it is {_over_limit(size, config)}")
            return {}
        try:  # load_stored: lone surrogates an older version stored become "?"
            data = load_stored(raw.decode("utf-8-sig"))  # a BOM an editor added is no damage
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
            _set_aside(path, str(exc))
            return {}
        if not isinstance(data, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
            _set_aside(path, f"it holds {kind.get(type(data), 'a number')}, not an object")
            return {}
        return data


def _over_limit(size: int, config: ServerConfig) -> str:
    """How a refusal names the settings limit: "5,000,000 bytes, more than ..."."""
    return (f"{size:,} bytes, more than the server's settings limit of "
            f"{config.max_settings_bytes:,} (ServerConfig.max_settings_bytes)")  # fmt: skip


def _unreadable(config: ServerConfig, path: Path, exc: OSError) -> ApiError:
    """A 500 naming the settings file the OS would not let us read, by its place in the data
    folder or the --user-dir folder (the log has its full path), and why. Every settings route
    reads the file first, so no save replaces it until it can be read: the user's settings are
    never lost."""
    why = os_error_words(exc, reading=True)
    log.error("the editor's settings file %s cannot be read: %s; no setting is saved until it "
              "can be", path, why)  # fmt: skip
    base, place = ((config.data_dir, "data folder") if path.is_relative_to(config.data_dir)
                   else (config.users_dir, "--user-dir folder"))  # fmt: skip
    shown = path.relative_to(base).as_posix()
    return ApiError(500, f"the settings file {shown} in the server's {place} cannot be "
                         f"read: {why}; no setting is saved until it can be, so the settings "
                         "it holds are kept", "settings_unreadable")  # fmt: skip


def _set_aside(path: Path, why: str) -> None:
    """Keep a settings file that cannot be read beside it, as the store keeps its database."""
    copy = corrupt_copy_path(path)
    try:
        os.replace(path, copy)
    except OSError as exc:  # the save that follows fails the same way: the file stays
        log.warning("the editor's settings file %s cannot be read (%s) nor moved aside (%s); "
                    "the editor starts from its default settings", path, why, exc)  # fmt: skip
        return
    log.warning("the editor's settings file %s cannot be read (%s); it was moved to %s and "
                "the editor starts from its default settings", path, why, copy)  # fmt: skip


def _save_settings(config: ServerConfig, changes: dict[str, Any]) -> None:
    """Store the user's settings with `changes` (setting id -> value) made, or refuse (413,
    nothing written) settings whose file would be larger than `max_settings_bytes`: each POST
    under the body limit added a value, and a 300 MB file made every page load of the editor
    wait seconds. On a worker thread: reads and writes the disk."""
    with _SETTINGS_LOCK:
        settings = load_settings(config)
        settings.update(changes)
        data = json.dumps(settings, indent=2).encode()
        if len(data) > config.max_settings_bytes:
            raise ApiError(413, f"the editor's settings would be {_over_limit(len(data), config)}"
                                "; nothing was saved", "too_large")  # fmt: skip
        write_atomic(_settings_path(config), data)


# What the editor reads for a setting the user has not set, where its own default does not
# suit latentgraph. Its release check (`Comfy.Notification.ShowVersionUpdates`, on in the
# editor) asked api.comfy.org on every page load, sending the ComfyUI version /system_stats
# reports (`api_info.COMFYUI_VERSION`): a request to a third party the user never asked for
# (a console error offline), for notices of ComfyUI releases that do not apply to
# latentgraph. Only the answers carry these: a user who turns the check on in the editor's
# settings saves that choice, which wins, and the settings file holds only what was saved.
SETTING_DEFAULTS: dict[str, Any] = {"Comfy.Notification.ShowVersionUpdates": False}


def editor_settings(config: ServerConfig) -> dict[str, Any]:
    """The settings the editor reads: the user's, over `SETTING_DEFAULTS`."""
    return {**SETTING_DEFAULTS, **load_settings(config)}


async def get_settings(request: Request) -> JSONResponse:
    return JSONResponse(await in_thread(editor_settings, get_state(request).config))


async def get_setting(request: Request) -> JSONResponse:
    settings = await in_thread(editor_settings, get_state(request).config)
    return JSONResponse(settings.get(request.path_params["id"]))


async def post_settings(request: Request) -> JSONResponse:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "expected an object of setting id -> value")
    await in_thread(_save_settings, get_state(request).config, body)
    return JSONResponse({})


async def post_setting(request: Request) -> JSONResponse:
    value = await read_json(request, default=None)
    changes = {request.path_params["id"]: value}
    await in_thread(_save_settings, get_state(request).config, changes)
    return JSONResponse({})


# --- /userdata ----------------------------------------------------------------------------


def _info(path: Path, root: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": path.relative_to(root).as_posix(), "size": st.st_size,
            "modified": int(st.st_mtime * 1000)}  # fmt: skip


async def list_userdata(request: Request) -> JSONResponse:
    root = get_state(request).config.user_dir
    q = request.query_params
    folder = safe_user_path(root, q.get("dir", ""), what="dir")
    if not folder.is_dir():
        return JSONResponse([])
    recurse = q.get("recurse", "").lower() == "true"
    full = q.get("full_info", "").lower() == "true"
    split = q.get("split", "").lower() == "true"
    listed = await in_thread(_listed, folder, root, recurse, full)
    if full:
        return JSONResponse(listed)
    rel = [p.relative_to(folder).as_posix() for p in listed]
    if split:
        return JSONResponse([[r, *r.split("/")] for r in rel])
    return JSONResponse(rel)


def _listed(folder: Path, root: Path, recurse: bool, full: bool) -> list[Any]:
    """`_listing` sorted, or with `full` each file's `_info`: stat-ing every file is disk work
    too, so it runs on the same worker thread as the listing, off the event loop."""
    files = sorted(_listing(folder, root, recurse))
    return [_info(p, folder) for p in files] if full else files


def _listing(folder: Path, root: Path, recurse: bool) -> list[Path]:
    """Files in `folder` (and below, if `recurse`) that stay inside `root`: symbolic links are
    listed only when they point inside it, and linked folders are not entered. Hidden names
    are left out, folders not entered (`paths.listed_names`, as ComfyUI's listing skips them):
    a save's partial file, a ComfyUI workflows folder's `.git/` or `.DS_Store`; so are names
    that are not UTF-8, which no JSON answer can hold."""
    found: list[Path] = []
    for top, dirs, names in os.walk(folder):  # followlinks=False: linked folders not entered
        shown = set(listed_names(top, [*dirs, *names] if recurse else names))
        dirs[:] = [d for d in dirs if recurse and d in shown]
        for name in (n for n in names if n in shown):
            path = Path(top) / name
            if path.is_symlink() and inside(root, path) is None:
                continue
            if path.is_file():
                found.append(path)
    return found


def _userdata_target(request: Request) -> tuple[Path, list[str]]:
    """Parse the raw (still url-encoded) path so encoded slashes stay inside one segment."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    raw_path = raw.decode("latin-1").split("?", 1)[0]
    marker = "/userdata/"
    rest = raw_path[raw_path.index(marker) + len(marker) :]
    return get_state(request).config.user_dir, [unquote(seg) for seg in rest.split("/")]


def _one_path(root: Path, segments: list[str]) -> Path:
    rel = "/".join(segments)
    if not rel:
        raise ApiError(400, "a file path is required after /userdata/", "invalid_path")
    return safe_user_path(root, rel, what="userdata path")


# The folders the editor keeps its user files in (its saved workflows, subgraph blueprints,
# keybinding presets), made by the first save into them; no file may take one of these names
# (a move to `workflows`), or every later save into that folder would be refused.
EDITOR_FOLDERS = ("workflows", "subgraphs", "keybindings")


def _new_path(root: Path, rel: str) -> Path:
    """Where a user file saved or moved to `rel` goes (`_one_path`), its names shown as they
    are (`shown_name`: no tab, newline or bidi override), as an upload's are: the editor's
    sidebar and `ls` show them. It must name a file: not the user folder, a folder there or
    one of the editor's folders (`EDITOR_FOLDERS`), made or not (a 400 naming it)."""
    path = _one_path(root, [rel])
    shown_name(rel, "userdata path", "invalid_path")
    place = path.relative_to(root.resolve()).as_posix()
    if place in EDITOR_FOLDERS:
        folder = f"the editor's folder {place!r}"
    elif path.is_dir():
        folder = "the user folder itself" if place == "." else "a folder"
    else:
        return path
    raise ApiError(400, f"userdata path {quoted(rel)} names {folder}; a file path is expected",
                   "invalid_path")  # fmt: skip


# Files the editor asks for on every page load (or sidebar load), answered with their empty form
# until the user saves one, so a fresh install's console shows no failed requests: the user's
# stylesheet, the user's node templates and the workflows sidebar's bookmarks (the editor's own
# fallback when they are missing is the same).
EDITOR_DEFAULTS = {
    "user.css": ("", "text/css"),
    "comfy.templates.json": ("[]", "application/json"),
    "workflows/.index.json": ('{"favorites": []}', "application/json"),
}


async def get_userdata(request: Request) -> Response:
    root, segments = _userdata_target(request)
    path = _one_path(root, segments)
    default = EDITOR_DEFAULTS.get("/".join(segments))
    if not path.is_file() and default is not None:
        return Response(default[0], media_type=default[1])
    if not path.is_file():
        raise ApiError(404, f"no user file {'/'.join(segments)!r}", "not_found")
    mime, headers = served_as(path.name)
    return FileResponse(path, media_type=mime, headers=headers)


async def post_userdata(request: Request) -> Response:
    root, segments = _userdata_target(request)
    q = request.query_params
    if len(segments) == 3 and segments[1] == "move":
        return await _move(request, root, segments[0], segments[2])
    path = _new_path(root, "/".join(segments))
    if path.exists() and q.get("overwrite", "true").lower() == "false":
        raise ApiError(409, f"user file {'/'.join(segments)!r} already exists", "exists")
    data = await request.body()
    await in_thread(write_atomic, path, data)  # up to --max-body-mb: off the event loop
    if q.get("full_info", "").lower() == "true":
        return JSONResponse(_info(path, root))
    return JSONResponse(path.relative_to(root).as_posix())


async def _move(request: Request, root: Path, src: str, dst: str) -> JSONResponse:
    source = safe_user_path(root, src, what="userdata path")
    target = _new_path(root, dst)
    if not source.is_file():
        raise ApiError(404, f"no user file {src!r}", "not_found")
    if target.exists() and request.query_params.get("overwrite", "").lower() != "true":
        raise ApiError(409, f"user file {dst!r} already exists", "exists")
    await in_thread(_moved, source, target)
    if request.query_params.get("full_info", "").lower() == "true":
        return JSONResponse(_info(target, root))
    return JSONResponse(target.relative_to(root).as_posix())


def _moved(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


async def delete_userdata(request: Request) -> Response:
    root, segments = _userdata_target(request)
    path = _one_path(root, segments)
    if not path.is_file():
        raise ApiError(404, f"no user file {'/'.join(segments)!r}", "not_found")
    path.unlink()
    return Response(status_code=204)


routes = [
    Route("/users", get_users, methods=["GET"]),
    Route("/users", post_users, methods=["POST"]),
    Route("/settings", get_settings, methods=["GET"]),
    Route("/settings", post_settings, methods=["POST"]),
    Route("/settings/{id}", get_setting, methods=["GET"]),
    Route("/settings/{id}", post_setting, methods=["POST"]),
    Route("/userdata", list_userdata, methods=["GET"]),
    Route("/userdata/{rest:path}", get_userdata, methods=["GET"]),
    Route("/userdata/{rest:path}", post_userdata, methods=["POST"]),
    Route("/userdata/{rest:path}", delete_userdata, methods=["DELETE"]),
]
