"""The OpenAPI 3.1 document of the server's HTTP routes, written as data.

Our own routes are described in full; the ComfyUI-compatible routes are listed with their
request shapes so API fuzzers (issue 7) can exercise them too.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "string"},
                "extra_info": {"type": "object"},
            },
        },
        "node_errors": {"type": "object"},
        "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}},
    },
}

_PROBLEM = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "node_id": {"type": ["string", "null"]},
        "input_name": {"type": ["string", "null"]},
        "location": {
            "type": ["string", "null"],
            "description": "the place the error line names: file:line:column, a param's value "
            "as given, `params.seed='abc' ($seed at <request>:34:11)`",
        },
        "severity": {"type": "string", "enum": ["error", "warning"]},
        "text": {"type": "string"},
    },
}

_QUEUED = {
    "type": "object",
    "required": ["prompt_id", "number", "node_errors"],
    "properties": {
        "prompt_id": {"type": "string"},
        "number": {"type": "integer"},
        "node_errors": {"type": "object"},
        "prompt": {"type": "object", "description": "the workflow in ComfyUI API format"},
    },
}

_PROMPT_BODY = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["class_type"],
                "properties": {
                    "class_type": {"type": "string"},
                    "inputs": {"type": "object"},
                    "_meta": {"type": "object"},
                },
            },
        },
        "client_id": {"type": "string"},
        "prompt_id": {"type": ["string", "number"]},  # a number is taken as its text
        "number": {"type": "integer"},
        "front": {"type": "boolean"},
        "partial_execution_targets": {"type": "array", "items": {"type": "string"}},
        "extra_data": {"type": "object"},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _answers(ok: dict[str, Any] | None = None, *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", **_json(ok or {"type": "object"})}}
    for code in codes or (400,):
        out[str(code)] = {"description": "refused", **_json({"$ref": "#/components/schemas/Error"})}
    return out


def _get(summary: str, params: list[tuple[str, str]] = (), ok=None, *codes: int) -> dict:
    parameters = [{"name": n, "in": "query", "required": False, "schema": {"type": t}}
                  for n, t in params]  # fmt: skip
    return {
        "get": {"summary": summary, "parameters": parameters, "responses": _answers(ok, *codes)}
    }


def _post(summary: str, body: dict[str, Any] | None = None, ok=None, *codes: int) -> dict:
    op: dict[str, Any] = {"summary": summary, "responses": _answers(ok, *codes)}
    if body is not None:
        op["requestBody"] = {"required": False, **_json(body)}
    return {"post": op}


def document() -> dict[str, Any]:
    """The OpenAPI document (bare paths; every ComfyUI route also exists under /api)."""
    ids = {"type": "object", "properties": {"clear": {"type": "boolean"},
                                            "delete": {"type": "array", "items": {"type": "string"}}}}  # fmt: skip
    paths: dict[str, Any] = {
        "/latentgraph/run": {"post": {
            "summary": "Queue a latentgraph workflow (YAML or JSON) with param overrides",
            "description": "JSON body {workflow, params, client_id, prompt_id, name, given_as}, "
                           "or the workflow text itself (YAML) with ?set=name=value&client_id=.",
            "parameters": [
                {"name": "set", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                {"name": "client_id", "in": "query", "schema": {"type": "string"}},
            ],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"type": "object", "required": ["workflow"],
                    "properties": {"workflow": {"type": ["string", "object"]},
                                   "params": {"type": "object"}, "client_id": {"type": "string"},
                                   "prompt_id": {"type": "string"}, "name": {"type": "string"},
                                   "given_as": {"type": "string"}}}},
                "application/yaml": {"schema": {"type": "string"}},
            }},
            "responses": _answers(_QUEUED, 400, 413, 429),
        }},
        "/openapi.json": _get("This document"),
        "/prompt": {**_get("Queue size", ok={"type": "object"}),
                    **_post("Queue an API-format prompt", _PROMPT_BODY, _QUEUED, 400, 413, 429)},
        "/queue": {**_get("Running and pending prompts"), **_post("Clear or delete pending", ids)},
        "/history": {**_get("Finished prompts", [("max_items", "integer"), ("offset", "integer")]),
                     **_post("Clear or delete history", ids)},
        "/history/{prompt_id}": {"get": {"summary": "One finished prompt", "parameters": [
            {"name": "prompt_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": _answers()}},
        "/jobs": _get("Jobs, paged", [("status", "string"), ("limit", "integer"),
                                      ("offset", "integer"), ("sort_order", "string")]),
        "/jobs/{job_id}": {"get": {"summary": "One job with outputs", "parameters": [
            {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": _answers(None, 404)}},
        "/view": _get("A file from output, input or temp; channel=rgb / a: an image without "
                      "its alpha / its alpha alone (PNG)", [("filename", "string"),
                      ("subfolder", "string"), ("type", "string"), ("preview", "string"),
                      ("channel", "string")], None, 400, 404),
        "/internal/files/{directory_type}": {"get": {
            "summary": "File names in output, input or temp, newest first", "parameters": [
            {"name": "directory_type", "in": "path", "required": True,
             "schema": {"type": "string", "enum": ["output", "input", "temp"]}}],
            "responses": _answers({"type": "array", "items": {"type": "string"}})}},
        "/upload/image": {"post": {"summary": "Upload an input image (multipart 'image')",
            "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object",
                "properties": {"image": {"type": "string", "format": "binary"},
                               "type": {"type": "string"}, "subfolder": {"type": "string"},
                               "overwrite": {"type": "string"}}}}}},
            "responses": _answers(None, 400, 413)}},
        "/upload/mask": {"post": {
            "summary": "Store a mask editor's mask: the image original_ref names (JSON "
                       "{filename, subfolder, type}) with the alpha of 'image', as /upload/image "
                       "stores",
            "requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object",
                "properties": {"image": {"type": "string", "format": "binary"},
                               "original_ref": {"type": "string"},
                               "type": {"type": "string"}, "subfolder": {"type": "string"},
                               "overwrite": {"type": "string"}}}}}},
            "responses": _answers(None, 400, 413)}},
        "/interrupt": _post("Interrupt the running prompt", {"type": "object", "properties": {
            "prompt_id": {"type": "string"}}}),
        "/free": _post("Unload models / free memory", {"type": "object", "properties": {
            "unload_models": {"type": "boolean"}, "free_memory": {"type": "boolean"}}}),
        "/object_info": _get("Every node type"),
        "/system_stats": _get("System and device information"),
        "/features": _get("Server feature flags"),
        "/users": _get("User storage mode"),
        "/settings": {**_get("Editor settings"), **_post("Merge editor settings", {"type": "object"})},
        "/userdata": _get("List user files", [("dir", "string"), ("recurse", "string"),
                          ("full_info", "string"), ("split", "string")]),
        "/extensions": _get("Editor extensions (none)"),
        "/i18n": _get("Translations (none)"),
        "/embeddings": _get("Textual inversion embedding names (embeddings/ files, no extension)"),
        "/experiment/models": _get("Model folders"),
        "/models": _get("Model folder names"),
        "/view_metadata/{folder}": {"get": {
            "summary": "A .safetensors model's header metadata", "parameters": [
                {"name": "folder", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "filename", "in": "query", "required": True,
                 "schema": {"type": "string"}}], "responses": _answers()}},
        "/models/{folder}": {"get": {"summary": "Model file names in one folder", "parameters": [
            {"name": "folder", "in": "path", "required": True,
             "schema": {"type": "string"}}], "responses": _answers()}},
        "/global_subgraphs": _get("Shared subgraphs (none)"),
        "/internal/logs": _get("The server's recent log lines as one text (a JSON string)"),
        "/internal/logs/raw": _get("The server's recent log lines (entries, size)"),
        "/internal/logs/subscribe": {"patch": {
            "summary": "Accepted; no log lines are streamed",
            "requestBody": {"required": True, **_json({"type": "object",
                "required": ["clientId", "enabled"], "properties": {
                    "clientId": {"type": "string"}, "enabled": {"type": "boolean"}}})},
            "responses": _answers()}},
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "latentgraph server", "version": "0.1.0",
                 "description": "ComfyUI-compatible API plus latentgraph's own routes. "
                                "Websocket: /ws?clientId= (ComfyUI messages; send "
                                "{type: queue_prompt, data: <POST /prompt body>} to queue)."},
        "paths": paths,
        "components": {"schemas": {"Error": _ERROR, "Problem": _PROBLEM}},
    }  # fmt: skip
