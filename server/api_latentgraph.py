"""Our own routes: run a workflow file (latentgraph YAML/JSON, ComfyUI API or editor JSON),
and the OpenAPI document."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from latentgraph.graph.model import Graph
from latentgraph.graph.problems import Problem, WorkflowError, quoted
from latentgraph.graph.workflow import GivenLocation, given_by, read_source
from latentgraph.graph.workflow.building import shown_value

from .collector import in_thread
from .errors import ApiError, parse_json
from .jsontext import unsendable
from .messages import LATENTGRAPH_MESSAGES, sent_to, shown_paths, user_folders
from .openapi import document
from .prompts import PromptRejected
from .state import get_state

log = logging.getLogger("latentgraph.server")

# How a request's params are named in messages, as it gave them (`given_name`): the URL's
# `?set=seed=abc` as `set=seed=abc`, the JSON body's `{"params": {"seed": "abc"}}` as
# `params.seed='abc'`; a client fronting a command line names its own (`given_as`: submit's
# `--set`).
QUERY_GIVEN, BODY_GIVEN = "set=", "params."


def problem_json(p: Problem) -> dict[str, Any]:
    return {
        "code": p.code,
        "message": p.message,
        "node_id": p.node_id,
        "input_name": p.input_name,
        "location": str(p.location) if p.location is not None else None,
        "severity": p.severity,
        "text": str(p),
    }


def shown_problems(problems: list[Problem], graph: Graph,
                   folders: dict[str, str]) -> list[Problem]:  # fmt: skip
    """A workflow's validation problems as web clients see them, by POST /prompt's rule: each
    message through `messages.shown_paths`, with the values the client sent its node (its
    literals in `graph`, params given). Only these need it: reading a workflow consults no
    folder, so its problems name nothing but what the client sent."""
    sent = {nid: {"inputs": node.inputs} for nid, node in graph.nodes.items()}
    return [replace(p, message=shown_paths(p.message, folders, sent_to(sent, p.node_id)))
            for p in problems]  # fmt: skip


def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ApiError(400, f"set={quoted(pair)}: expected name=value", "invalid_param")
        out[name] = value
    return out


def _given_as(body: dict[str, Any]) -> str:
    """How the JSON body's params are named in messages: as it gave them (`params.seed`), or
    as its `given_as` says they were given to the client (`--set`: `latentgraph submit`)."""
    given_as = body.get("given_as", BODY_GIVEN)
    named = isinstance(given_as, str) and given_as.isprintable() and 0 < len(given_as) <= 32
    if not named or not given_as.strip():
        raise ApiError(400, "given_as must be a short line of text naming how the params were "
                       "given (for example --set)", "invalid_param")  # fmt: skip
    return given_as


def _from_query(problems: list[Problem], query: dict[str, str]) -> list[Problem]:
    """`problems`, a param the URL's query gave (`query`: those the JSON body's params left)
    named as the query gave it, where a problem is at its value: the body's are named by the
    body (`params.seed='abc'`), the query's `set=steps=abc`."""

    def named(location):
        if not isinstance(location, GivenLocation) or location.param not in query:
            return location
        value = shown_value(QUERY_GIVEN, query[location.param])
        return given_by(QUERY_GIVEN, location.param, location, value)

    return [replace(p, location=named(p.location)) for p in problems]


def _to_prompt(state, source: str, text: str, overrides: dict[str, Any], given_as: str):
    """Any workflow document (ours, ComfyUI API or editor format) as (prompt, extra_data);
    the params in `overrides` named in messages as `given_as` says (`given_name`)."""
    from latentgraph.graph.comfy_api import prompt_from_graph
    from latentgraph.graph.formats import load_text
    from latentgraph.graph.validate import validate

    loaded = load_text(text, source, overrides, state.registry, given_as)
    graph, extra = loaded.graph, loaded.extra
    problems = [p for p in validate(graph, state.registry, state.settings)
                if p.severity == "error"]  # fmt: skip
    if problems:  # refuse here, where problems still carry file:line locations
        log.warning("workflow refused: %s", WorkflowError(problems))  # the full paths
        raise WorkflowError(shown_problems(problems, graph, user_folders(state.settings)))
    # latentgraph's own messages too (each node's failure, warnings, outputs): this route's
    # client (`latentgraph submit`) prints the run as `run` does
    extra_data: dict[str, Any] = {"params": overrides, LATENTGRAPH_MESSAGES: True}
    # An editor graph, or our own document with its params: kept so saved PNGs reload as such.
    kept = {k: extra[k] for k in ("workflow", "latentgraph") if k in extra}
    if kept:
        extra_data["extra_pnginfo"] = kept
    return prompt_from_graph(graph, state.registry), extra_data


def _refused(exc: WorkflowError) -> JSONResponse:
    problems = [problem_json(p) for p in exc.problems]
    return JSONResponse({"error": {"type": "invalid_workflow", "message": str(exc),
                                   "details": "", "extra_info": {}},
                         "problems": problems, "node_errors": {}}, status_code=400)  # fmt: skip


async def run_workflow(request: Request) -> JSONResponse:
    """Queue a latentgraph workflow. JSON body {"workflow", "params", "client_id"} or raw YAML."""
    state = get_state(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    q = request.query_params
    query = _parse_overrides(q.getlist("set"))
    overrides: dict[str, Any] = dict(query)
    given_as, from_query = QUERY_GIVEN, {}  # from_query: the query's, when the body names its own
    client_id, prompt_id, source = (
        q.get("client_id"),
        q.get("prompt_id"),
        q.get("name", "<request>"),
    )
    try:  # the CLI's rule: a byte that is no UTF-8 at its line:col, a UTF-16 body named so
        body_text = read_source(source, raw)
    except WorkflowError as exc:
        return _refused(exc)
    if ctype == "application/json":
        body = parse_json(body_text)
        if not isinstance(body, dict) or "workflow" not in body:
            raise ApiError(400, "expected {\"workflow\": <YAML text or object>, \"params\": {...}}",
                           "invalid_workflow")  # fmt: skip
        wf = body["workflow"]
        text = wf if isinstance(wf, str) else json.dumps(wf)
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise ApiError(400, "params must be an object of name -> value", "invalid_param")
        overrides.update(params)
        given_as = _given_as(body)
        from_query = {name: v for name, v in query.items() if name not in params}
        client_id = body.get("client_id", client_id)
        prompt_id = body.get("prompt_id", prompt_id)
        source = str(body.get("name") or source)
    else:
        text = body_text
    if not text.strip():
        raise ApiError(400, "the workflow is empty", "invalid_workflow")
    try:
        prompt, extra_data = await in_thread(_to_prompt, state, source, text, overrides, given_as)
    except WorkflowError as exc:
        return _refused(WorkflowError(_from_query(exc.problems, from_query)))
    found = unsendable({"params": overrides, "workflow": prompt})
    if found is not None:  # YAML escapes can make lone surrogates; JSON bodies are checked
        raise ApiError(400, f"the workflow has {found[1]} at {found[0]}", "invalid_workflow")
    request_body = {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id,
                    "extra_data": extra_data}  # fmt: skip
    try:
        answer, _ = await state.enqueue(request_body)
    except PromptRejected as exc:
        return JSONResponse(exc.body, status_code=400)
    release = state.release_task(answer["prompt_id"], client_id)  # see Dispatcher.hold
    answer["prompt"] = prompt
    return JSONResponse(answer, background=release)


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document())


routes = [
    Route("/latentgraph/run", run_workflow, methods=["POST"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
