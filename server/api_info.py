"""Read-only descriptions the editor asks for at page load: nodes, system, features, models,
and the server's recent log lines (the editor's Logs terminal panel)."""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import shutil
import sys
import threading
from collections import deque
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from latentgraph.graph.paths import (
    WEIGHT_SUFFIXES,
    listed_file,
    models_folder_dirs,
    weight_files,
)
from latentgraph.graph.problems import quoted

from . import editor
from .collector import in_thread
from .devices import memory
from .errors import ApiError, read_json
from .safepath import clean_relative
from .state import get_state
from .workers import Device

FRONTEND_VERSION = "1.58.1"
# /system_stats' comfyui_version: the ComfyUI release whose server protocol (routes, node
# definitions, websocket messages) we follow, not latentgraph's own version. The editor shows
# it as the "current" ComfyUI when a workflow holds ComfyUI core nodes we lack ("Some nodes
# require a newer version of ComfyUI (current: ...)"), and sends it to comfy.org's release
# notes; latentgraph's 0.1.0 read there as an ancient ComfyUI that updating would fix.
COMFYUI_VERSION = "0.38.1"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


async def object_info(request: Request) -> JSONResponse:
    from latentgraph.graph.object_info import object_info as build

    state = get_state(request)
    return JSONResponse(await in_thread(build, state.registry, state.settings))


async def object_info_one(request: Request) -> JSONResponse:
    """/object_info/{class}: `{class: info}`, or `{}` for a class no node pack declares (a
    200, as ComfyUI answers it: clients ask "is this node installed?" with `name in answer`,
    and a 404 made them raise instead of answering no)."""
    from latentgraph.graph.object_info import object_info as build

    name = request.path_params["node_class"]
    state = get_state(request)
    registry = state.registry
    if registry.get(name) is None:
        return JSONResponse({})
    info = await in_thread(build, registry, state.settings)
    return JSONResponse({name: info[name]} if name in info else {})


def _devices(state) -> list[dict[str, Any]]:
    """The workers' devices as they last reported them (when idle); before any has, the CPU."""
    devices = state.dispatcher.devices()
    if not devices:
        total, free = memory()
        devices = [Device("cpu", "cpu", None, total, free, total, free)]
    return [dataclasses.asdict(d) for d in devices]


async def system_stats(request: Request) -> JSONResponse:
    total, free = memory()
    return JSONResponse({
        "system": {
            "os": os.name if sys.platform != "linux" else "posix",
            "ram_total": total,
            "ram_free": free,
            "comfyui_version": COMFYUI_VERSION,
            "required_frontend_version": FRONTEND_VERSION,
            "installed_templates_version": "",
            "required_templates_version": "",
            "python_version": sys.version,
            "pytorch_version": _version("torch"),
            "embedded_python": False,
            "argv": ["latentgraph", "serve"],
            "platform": platform.platform(),
        },
        "devices": _devices(get_state(request)),
    })  # fmt: skip


async def features(request: Request) -> JSONResponse:
    config = get_state(request).config
    return JSONResponse({"supports_preview_metadata": True,
                         "max_upload_size": config.max_upload_bytes})  # fmt: skip


async def extensions(request: Request) -> JSONResponse:
    """The editor extensions the editor imports at start-up (`editor.extensions`)."""
    return JSONResponse(editor.extensions(get_state(request).config.editor))


async def empty_object(request: Request) -> JSONResponse:
    return JSONResponse({})


def _model_folders(request: Request) -> dict[str, list[Path]]:
    """Each models folder kind the nodes read (handed over as `WorkerSetup.model_folders`),
    listed even when empty as ComfyUI lists its model types, with the directories found for it
    under the models roots."""
    return {kind: _folder_dirs(request, kind) for kind in request.app.state.model_folders}


def _folder_dirs(request: Request, kind: str) -> list[Path]:
    """The directories of one models folder kind under the models roots (the nodes' rule,
    `graph.paths.models_folder_dirs`); a 404 for a kind the nodes do not read."""
    names = request.app.state.model_folders.get(kind)
    if names is None:
        raise ApiError(404, f"no model folder {quoted(kind)}", "not_found")
    return models_folder_dirs(names, get_state(request).config.models_dirs)


async def models(request: Request) -> JSONResponse:
    folders = _model_folders(request)
    return JSONResponse([{"name": k, "folders": [str(p) for p in v]} for k, v in folders.items()])


async def folder_paths(request: Request) -> JSONResponse:
    """/internal/folder_paths: each models sub-folder with its paths and file suffixes (the
    editor's missing-model check asks for it when a workflow names models it cannot see)."""
    folders = _model_folders(request)
    return JSONResponse(
        {k: [[str(p) for p in v], list(WEIGHT_SUFFIXES)] for k, v in folders.items()}
    )


def _folder_files(request: Request, kind: str | None = None) -> list[dict[str, Any]]:
    """The model files of one models folder (`kind`, by default the one named in the path):
    name and which of its paths holds it, the files its nodes' dropdown lists (the one walk,
    `graph.paths.weight_files`)."""
    kind = kind or request.path_params["folder"]
    return [
        {"name": name, "pathIndex": index}
        for index, base in enumerate(_folder_dirs(request, kind))
        for name in weight_files(base)
    ]


def _file_names(request: Request, kind: str | None = None) -> list[str]:
    """The names of one models folder, each once: what the dropdowns of its files list
    (`Input.models_folder`; /object_info's lists, the built-in models first: ComfyUI's
    /models/<folder> is the list its loaders' dropdowns show), then any other file of it."""
    kind = kind or request.path_params["folder"]
    state = get_state(request)
    files = sorted({f["name"] for f in _folder_files(request, kind)}, key=str.lower)
    listed = [name for node_type in state.registry for inp in node_type.inputs
              if inp.models_folder == kind
              for name in node_type.shown_choices(inp, state.settings)]  # fmt: skip
    return list(dict.fromkeys([*listed, *files]))


async def models_in(request: Request) -> JSONResponse:
    return JSONResponse(await in_thread(_folder_files, request))


async def model_folder_names(request: Request) -> JSONResponse:
    """/models: the names of the models folders (ComfyUI's list of model types)."""
    return JSONResponse(list(request.app.state.model_folders))


async def model_file_names(request: Request) -> JSONResponse:
    """/models/{folder}: the names one models folder's dropdowns list (its files and the
    built-in models)."""
    return JSONResponse(await in_thread(_file_names, request))


async def embeddings(request: Request) -> JSONResponse:
    """/embeddings: the names of the embeddings/ files (those /models/embeddings lists) without
    their extension, as ComfyUI answers them (a prompt's `embedding:NAME`); none when the
    nodes read no embeddings folder."""
    if "embeddings" not in request.app.state.model_folders:
        return JSONResponse([])
    names = await in_thread(_file_names, request, "embeddings")
    return JSONResponse([os.path.splitext(name)[0] for name in names])


def _safetensors_metadata(request: Request) -> dict[str, Any]:
    """The `__metadata__` of a .safetensors file in one models folder (its header only; the
    tensors are never read, and nothing is unpickled)."""
    from safetensors import safe_open

    folder, name = request.path_params["folder"], request.query_params.get("filename", "")
    paths = _folder_dirs(request, folder)
    if not name.lower().endswith(WEIGHT_SUFFIXES):
        raise ApiError(404, f"{quoted(name)} is not a .safetensors file", "not_found")
    listed = clean_relative(name, "filename").as_posix()  # no ../, no absolute name: a 400
    for base in paths:
        path = listed_file(base, listed)  # a file the listing lists, symlinked ones included
        if path is not None:
            try:
                with safe_open(str(path), framework="np") as f:
                    return dict(f.metadata() or {})
            except Exception as exc:  # noqa: BLE001 - a file safetensors cannot read
                raise ApiError(404, f"{quoted(name)} has no readable safetensors header ({exc})",
                               "not_found") from None  # fmt: skip
    raise ApiError(404, f"no file {quoted(name)} in {folder}", "not_found")


async def view_metadata(request: Request) -> JSONResponse:
    """/view_metadata/{folder}?filename=: the model card the editor's Model Library shows."""
    return JSONResponse(await in_thread(_safetensors_metadata, request))


class RecentLogs(logging.Handler):
    """The last `keep` log records (each cut to `max_chars`) as ComfyUI's log entries
    ({"t": ISO time, "m": the line}): what the Logs panel shows when it opens. The app attaches
    one while it runs (app.py), where the server's lines are printed (`attach`); `serve`
    attaches it from the start of its start-up, so the panel holds what was said before the
    app ran too (the folders, whether a token is asked, a plugin that failed to load)."""

    def __init__(self, keep: int = 300, max_chars: int = 4000) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self._entries: deque[dict[str, str]] = deque(maxlen=keep)
        self._max_chars = max_chars
        self._guard = threading.Lock()
        self._attached: list[logging.Logger] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)[: self._max_chars]
            when = datetime.fromtimestamp(record.created).isoformat()
            with self._guard:
                self._entries.append({"t": when, "m": line + "\n"})
        except Exception:  # noqa: BLE001 - logging's own rule: a handler never raises
            self.handleError(record)

    def entries(self) -> list[dict[str, str]]:
        with self._guard:
            return list(self._entries)

    def keep_printed(self, line: str, level: int = logging.WARNING) -> None:
        """Keep a line the server printed on stderr instead of logging it (`latentgraph
        serve`'s plugin failures, in the CLI's form there), as a line of latentgraph.server."""
        self.handle(logging.LogRecord("latentgraph.server", level, __file__, 0, line, None, None))

    def attach(self) -> None:
        """Keep what the server prints: the root logger's records (latentgraph's, at the
        levels the console shows) and those of each logger printing with its own handlers
        instead of passing them to the root, as uvicorn's do (its start-up and request
        lines), so configure uvicorn first, or attach again after (a logger holds a handler
        once)."""
        own = [v for v in logging.root.manager.loggerDict.values()
               if isinstance(v, logging.Logger) and not v.propagate and v.handlers]  # fmt: skip
        self._attached = [logging.getLogger(), *own]
        for logger in self._attached:
            logger.addHandler(self)

    def detach(self) -> None:
        for logger in self._attached:
            logger.removeHandler(self)
        self._attached = []


async def logs_raw(request: Request) -> JSONResponse:
    """/internal/logs/raw: the kept lines and a terminal size for the panel to lay them out."""
    size = shutil.get_terminal_size()
    return JSONResponse({"entries": request.app.state.logs.entries(),
                         "size": {"cols": size.columns, "rows": size.lines}})  # fmt: skip


async def logs_text(request: Request) -> JSONResponse:
    """/internal/logs: the kept lines as one text, each `TIME - LINE`, as a JSON string
    (ComfyUI's answer): the editor's error report attaches it, and without the route every
    error dialog came with a second one, "Failed to fetch server logs"."""
    entries = request.app.state.logs.entries()
    return JSONResponse("".join(f"{entry['t']} - {entry['m']}" for entry in entries))


async def logs_subscribe(request: Request) -> JSONResponse:
    """/internal/logs/subscribe: accepted, but no lines are streamed over the websocket: the
    panel shows the lines kept when it opened (docs/comfy-compat.md)."""
    body = await read_json(request)
    if not (isinstance(body, dict) and isinstance(body.get("clientId"), str)
            and isinstance(body.get("enabled"), bool)):  # fmt: skip
        raise ApiError(400, "expected a JSON object {clientId: string, enabled: boolean}")
    return JSONResponse({})


routes = [
    Route("/object_info", object_info, methods=["GET"]),
    Route("/object_info/{node_class}", object_info_one, methods=["GET"]),
    Route("/system_stats", system_stats, methods=["GET"]),
    Route("/features", features, methods=["GET"]),
    Route("/extensions", extensions, methods=["GET"]),
    Route("/embeddings", embeddings, methods=["GET"]),
    Route("/i18n", empty_object, methods=["GET"]),
    Route("/global_subgraphs", empty_object, methods=["GET"]),
    Route("/experiment/models", models, methods=["GET"]),
    Route("/experiment/models/{folder}", models_in, methods=["GET"]),
    Route("/models", model_folder_names, methods=["GET"]),
    Route("/models/{folder}", model_file_names, methods=["GET"]),
    Route("/view_metadata/{folder}", view_metadata, methods=["GET"]),
    Route("/internal/folder_paths", folder_paths, methods=["GET"]),
    Route("/internal/logs", logs_text, methods=["GET"]),
    Route("/internal/logs/raw", logs_raw, methods=["GET"]),
    Route("/internal/logs/subscribe", logs_subscribe, methods=["PATCH"]),
]
