"""Checking a POST /prompt body and shaping refusals the way ComfyUI's editor reads them.

The engine's validator mostly speaks ComfyUI's error type names; this module groups its
problems per node (`node_errors`, which the editor outlines in red), gives each the ComfyUI
type the editor knows (`COMFY_ERROR_TYPES`, our code kept beside it) and picks the top-level
error type.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from latentgraph.graph import Registry, Settings
from latentgraph.graph.comfy_api import is_link, prompt_body
from latentgraph.graph.comfy_editor import is_editor_workflow
from latentgraph.graph.object_info import input_config
from latentgraph.graph.pictures import text_key_problem
from latentgraph.graph.problems import Problem, WorkflowError, node_name, quoted

from .config import server_limit_label
from .errors import ApiError
from .messages import sent_to, shown_paths, user_folders

log = logging.getLogger("latentgraph.server")

# Problems that say the prompt itself is unusable rather than one input of a node.
_PROMPT_LEVEL = {"invalid_prompt", "unknown_node_type", "syntax", "cycle", "duplicate_node"}
# Problems we do not refuse: ComfyUI ignores extra inputs (one client sends `seed_control`).
_IGNORED = {"unknown_input", "unused_node"}

# Each of our problem codes (graph/problems.py, and value_too_long here) as the ComfyUI error
# type a `node_errors` entry carries: ComfyUI's editor shows any type its catalog lacks as "an
# unrecognized validation error", the message only in a tooltip. Our code stays in the
# entry's extra_info as `latentgraph_type`. Chosen one by one (ComfyUI's execution.py
# validate_inputs says what each of its types means):
COMFY_ERROR_TYPES = {
    # ComfyUI's own checks, the same meaning
    "required_input_missing": "required_input_missing",
    "bad_linked_input": "bad_linked_input",
    "return_type_mismatch": "return_type_mismatch",
    "invalid_input_type": "invalid_input_type",
    "value_smaller_than_min": "value_smaller_than_min",
    "value_bigger_than_max": "value_bigger_than_max",
    "value_not_in_list": "value_not_in_list",
    # a node's own check refusing a value: ComfyUI's VALIDATE_INPUTS failing
    "invalid_value": "custom_validation_failed",
    # the server's limits (--max-steps, --max-string-chars, ...): the editor shows a
    # custom_validation_failed's details, our message naming the flag; value_bigger_than_max
    # would show only "a value above the maximum"
    "limit_exceeded": "custom_validation_failed",
    "value_too_long": "custom_validation_failed",
    "unknown_param": "custom_validation_failed",
    "unknown_input": "custom_validation_failed",  # never sent: _IGNORED, as ComfyUI does
    "unused_node": "custom_validation_failed",  # a warning, never sent
    "cycle": "dependency_cycle",
    # a node that cannot be checked at all; the prompt's own error is ComfyUI's
    # missing_node_type for an unknown type (the editor then lists the missing nodes)
    "unknown_node_type": "exception_during_validation",
    "invalid_prompt": "exception_during_validation",
    "syntax": "exception_during_validation",
    "duplicate_node": "exception_during_validation",
    "prompt_no_outputs": "exception_during_validation",
}


# The ComfyUI error types whose extra_info quotes the input's declaration as /object_info lists
# it (`input_config`, [TYPE, options]): each type ComfyUI's execution.py validate_inputs gives
# for an input, but required_input_missing. A value_not_in_list's is null when the list has
# more than 20 choices, as ComfyUI's is (no "gigantic lists" of model files sent back).
QUOTE_INPUT_CONFIG = frozenset({
    "bad_linked_input", "return_type_mismatch", "invalid_input_type", "value_smaller_than_min",
    "value_bigger_than_max", "value_not_in_list", "custom_validation_failed"})  # fmt: skip
LONGEST_LIST_QUOTED = 20


def input_config_info(code: str, class_type: str, name: str, registry: Registry | None,
                      settings: Any, known: dict | None = None) -> dict[str, Any]:  # fmt: skip
    """`{"input_config": ...}` for an error of our `code` about input `name` of a
    `class_type` node, when ComfyUI's type for it carries one (`QUOTE_INPUT_CONFIG`): the
    input as /object_info shows it under `settings`, built by the function /object_info uses
    (graph/object_info.py `input_config`). Empty without a registry, or for an input the type
    does not declare. `known`: what one answer built already, per type, input and error type
    (a dropdown's choices are a models folder's files)."""
    comfy_type = COMFY_ERROR_TYPES[code]
    node_type = registry.get(class_type) if registry is not None else None
    if comfy_type not in QUOTE_INPUT_CONFIG or node_type is None or node_type.input(name) is None:
        return {}
    known = {} if known is None else known
    key = (class_type, name, comfy_type)
    if key not in known:
        config = input_config(node_type, name, settings)
        if comfy_type == "value_not_in_list" and isinstance(config[0], list) \
                and len(config[0]) > LONGEST_LIST_QUOTED:  # fmt: skip
            config = None
        known[key] = config
    return {"input_config": known[key]}


def comfy_error(code: str, message: str, details: str, info: dict[str, Any]) -> dict[str, Any]:
    """One `node_errors` error: ComfyUI's type for our `code`, which extra_info keeps."""
    return {"type": COMFY_ERROR_TYPES[code], "message": message, "details": details,
            "extra_info": {**info, "latentgraph_type": code}}  # fmt: skip


class PromptRejected(Exception):
    """A prompt that cannot be queued; `body` is the 400 response in the protocol's shape,
    `logged` the same as it was made, with the server's full paths (`log_refusal` logs it;
    `check_prompt` shows the client `body` with its folders as the client knows them)."""

    def __init__(self, body: dict[str, Any]) -> None:
        error = body["error"]
        super().__init__(error["message"])
        self.body = body
        self.logged = body


def log_refusal(exc: PromptRejected | ApiError) -> None:
    """The line a refused prompt leaves in the server's log (and so in the editor's Logs
    panel), as ComfyUI's "invalid prompt" does: `prompt refused (TYPE): MESSAGE`, for a
    `PromptRejected` (its failed outputs' details too) or an `ApiError` (a full queue, a
    prompt of too many nodes, a body that is no prompt). `ServerState.enqueue`, which every
    route queues through, logs each refusal here."""
    if isinstance(exc, PromptRejected):
        error = exc.logged["error"]
        type_, message = error["type"], error["message"]
        why = error.get("details") if type_ == "prompt_outputs_failed_validation" else ""
    else:
        type_, message, why = exc.type, exc.message, ""
    log.warning("prompt refused (%s): %s%s", type_, message, f": {why}" if why else "")


@dataclass
class CheckedPrompt:
    """A prompt that may be queued: `targets` are what runs when not every output node does
    (the client's partial_execution_targets, or the outputs that passed validation when some
    failed), and `node_errors` the failed outputs' errors, which the 200 answer carries."""

    prompt: dict[str, Any]
    outputs: list[str]
    targets: list[str] | None = None
    node_errors: dict[str, Any] = field(default_factory=dict)


def error_body(
    type_: str,
    message: str,
    details: str = "",
    node_errors: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A refused prompt's answer as ComfyUI shapes it: the error (`extra` its extra_info) and
    the node_errors, empty when none."""
    return {
        "error": {"type": type_, "message": message, "details": details, "extra_info": extra},
        "node_errors": node_errors or {},
    }


def _dependent_outputs(prompt: dict[str, Any], outputs: list[str]) -> dict[str, list[str]]:
    """For each node id, the output nodes that (transitively) consume it, read from the
    prompt itself (for a prompt that does not convert to a Graph)."""
    parents: dict[str, set[str]] = {}
    for nid, spec in prompt.items():
        ins = spec.get("inputs", {}) if isinstance(spec, dict) else {}
        parents[str(nid)] = {
            v[0] for v in (ins.values() if isinstance(ins, dict) else []) if is_link(v)
        }  # fmt: skip
    result: dict[str, list[str]] = {}
    for out in outputs:
        stack, seen = [out], set()
        while stack:
            nid = stack.pop()
            if nid in seen:
                continue
            seen.add(nid)
            result.setdefault(nid, []).append(out)
            stack.extend(parents.get(nid, ()))
    return result


def _output_ids(prompt: dict[str, Any], registry: Registry | None) -> list[str]:
    """The prompt's output nodes, by their declared types (none without a registry; a node
    of an unknown type or without a class_type is none)."""
    if registry is None:
        return []
    outputs = []
    for nid, spec in prompt.items():
        class_type = spec.get("class_type") if isinstance(spec, dict) else None
        declared = registry.get(class_type) if isinstance(class_type, str) else None
        if declared is not None and declared.output_node:
            outputs.append(str(nid))
    return outputs


def reject(
    problems: list[Problem],
    prompt: dict[str, Any],
    dependents: dict[str, list[str]] | None = None,
    *,
    registry: Registry | None = None,
    settings: Any = None,
) -> PromptRejected:
    """Turn engine problems into the protocol's 400 body (with the registry and settings
    /object_info answers with, an input's error quotes its declaration: `node_errors`)."""
    errors = [p for p in problems if p.severity == "error" and p.code not in _IGNORED]
    top = next((p for p in errors if p.node_id is None or p.code in _PROMPT_LEVEL), None)
    if top is not None and top.node_id is None:
        code = top.code if top.code in ("prompt_no_outputs", "no_prompt") else "invalid_prompt"
        return PromptRejected(error_body(code, str(top), top.message))
    if top is not None:
        class_type = top.node_type or _class_of(prompt, top.node_id)
        return PromptRejected(
            error_body(
                "invalid_prompt",
                f"Cannot execute because {node_name(top.node_id, class_type)}: {top.message}",
                f"Node ID '#{top.node_id}'",
            )
        )
    return PromptRejected(
        error_body(
            "prompt_outputs_failed_validation",
            "Prompt outputs failed validation",
            "; ".join(str(p) for p in errors[:5]),
            node_errors=node_errors(
                errors, prompt, dependents or {}, registry=registry, settings=settings
            ),
        )
    )


def node_errors(
    errors: list[Problem],
    prompt: dict[str, Any],
    dependents: dict[str, list[str]],
    *,
    registry: Registry | None = None,
    settings: Any = None,
) -> dict[str, Any]:
    """The protocol's `node_errors`: per node, its errors and the outputs they stop; an
    error about an input names it, quotes its declaration as ComfyUI does
    (`input_config_info`, with the `registry` and `settings` /object_info answers with) and
    the value received."""
    result: dict[str, Any] = {}
    known: dict = {}
    for p in errors:
        nid = str(p.node_id)
        entry = result.setdefault(nid, {
            "errors": [], "dependent_outputs": dependents.get(nid, []),
            "class_type": p.node_type or _class_of(prompt, nid)})  # fmt: skip
        info: dict[str, Any] = {}
        if p.input_name is not None:
            info["input_name"] = p.input_name
            info.update(input_config_info(p.code, entry["class_type"], p.input_name, registry,
                                          settings, known))  # fmt: skip
            info["received_value"] = _received_value(p, prompt)
        entry["errors"].append(comfy_error(p.code, p.message, str(p), info))
    return result


def _received_value(problem: Problem, prompt: dict[str, Any]) -> Any:
    """The value of the problem's input as the client sent it (ComfyUI reports the prompt's
    value, not the converted one: "nan" for a FLOAT is sent back as "nan", never as a NaN
    that JSON cannot carry); the value the problem names when the prompt has none, as JSON
    can carry it (its repr when it cannot), so no problem makes the 400 unencodable."""
    spec = prompt.get(str(problem.node_id))
    inputs = spec.get("inputs") if isinstance(spec, dict) else None
    if isinstance(inputs, dict) and problem.input_name in inputs:
        value = inputs[problem.input_name]
    else:
        value = problem.received
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
    return value


def _class_of(prompt: dict[str, Any], node_id: str | None) -> str:
    spec = prompt.get(str(node_id)) if node_id is not None else None
    return str(spec.get("class_type", "")) if isinstance(spec, dict) else ""


def _strings(value: Any, path: str) -> Any:
    """Every string in `value` (keys too) with its dotted path, depth first, no recursion."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, child in item.items():
                yield f"{where}.{key}", str(key)
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}.{i}") for i, child in enumerate(item))


def _holds_longer(value: Any, max_chars: int) -> bool:
    """Whether `value` holds a string (a key too) longer than `max_chars`: `_strings` without
    the paths, which took longer than the rest of the check on a 100,000-node prompt. Exact
    type tests first (what JSON gives), subclasses converted to them."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str:
            if len(item) > max_chars:
                return True
        elif kind is dict:
            for key in item:
                if len(key if type(key) is str else str(key)) > max_chars:
                    return True
            extend(item.values())
        elif kind is list:
            extend(item)
        elif isinstance(item, (str, dict, list)):  # a subclass: walked as its base type
            base = str if isinstance(item, str) else dict if isinstance(item, dict) else list
            stack.append(base(item))
    return False


def check_string_lengths(prompt: Any, max_chars: int, text: str | None = None,
                         registry: Registry | None = None,
                         settings: Any = None) -> None:  # fmt: skip
    """Refuse a prompt holding a string longer than `max_chars` (the server's
    `max_string_chars`), naming the node and input, before any other work: a 50 MB text held
    the text encoder for minutes and could not be interrupted. `text`, the prompt's JSON text
    when known: a JSON text holds no string, nor key, longer than itself, so one within the
    limit is not walked (0.11 ms of a 201-node prompt's 1.05 ms check). With the `registry`,
    the refusal names the outputs that need the node, as every other node error does, and
    quotes the input's declaration as /object_info shows it under `settings`."""
    if text is not None and len(text) <= max_chars:
        return
    if not isinstance(prompt, dict) or not _holds_longer(prompt, max_chars):
        return  # the common case: one walk, no path built for every string
    for nid, spec in prompt.items():
        strings = itertools.chain([("", str(nid))], _strings(spec, ""))
        found = next(((path, text) for path, text in strings if len(text) > max_chars), None)
        if found is None:
            continue
        path, text = found
        parts = path.split(".")
        name = parts[2] if len(parts) > 2 and parts[1] == "inputs" else None
        where = f"input {name!r}" if name else path.lstrip(".") or "its id"
        message = (
            f"{where} is {len(text):,} characters long; the limit is {max_chars:,} "
            f"({server_limit_label('max_string_chars')})"
        )
        node, class_type = str(nid)[:64], _class_of(prompt, nid)[:64]
        needing = _dependent_outputs(prompt, _output_ids(prompt, registry)).get(str(nid), [])
        raise PromptRejected(error_body(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation",
            f"{node_name(node, class_type)}: {message}", node_errors={node: {
                "class_type": class_type, "dependent_outputs": needing, "errors": [comfy_error(
                    "value_too_long", message, f"{node_name(node)}: {message}",
                    {"input_name": name, **input_config_info(
                        "value_too_long", class_type, name, registry, settings)}
                    if name else {})]}}))  # fmt: skip


def check_extra_pnginfo(extra_data: dict[str, Any]) -> None:
    """A 400 for an `extra_pnginfo` SaveImage cannot write: not an object, or a key no PNG
    text chunk can have (`text_key_problem`). ComfyUI's SaveImage writes each entry as a chunk
    of its key, and failed at run time on such a key; here the client hears it when it posts."""
    pnginfo = extra_data.get("extra_pnginfo")
    if pnginfo is None:
        return
    if not isinstance(pnginfo, dict):
        raise ApiError(400, "extra_data.extra_pnginfo must be an object of PNG text chunk "
                       "name -> value", "invalid_prompt")  # fmt: skip
    for key in pnginfo:
        problem = text_key_problem(key)
        if problem is not None:
            raise ApiError(400, f"extra_data.extra_pnginfo key {quoted(key)}: {problem}",
                           "invalid_prompt")  # fmt: skip


def no_prompt(body: dict[str, Any] | None = None) -> PromptRejected:
    """The refusal of a body whose 'prompt' is no object of nodes (or an empty one), as ComfyUI
    words it. `body`: the request's, when it has no "prompt" at all: `curl -d @file.json`
    sends a saved document whole, and one that is an editor workflow or an API prompt is
    named, with what POST /prompt takes (ComfyUI says "No prompt provided" alone)."""
    message = "No prompt provided"
    if body is not None and is_editor_workflow(body):
        message += f": {_editor_workflow_hint()}"
    elif body is not None and prompt_body(body) is body:
        message += (
            ': POST /prompt takes {"prompt": <API prompt>}; this body is the API prompt itself'
        )
    return PromptRejected(error_body("no_prompt", message, "'prompt' must be a "
                                     "non-empty object of node id -> node"))  # fmt: skip


def no_class_type(nid: str, editor: bool = False) -> PromptRejected:
    """The refusal of a prompt whose node `nid` is no object with a class_type, as ComfyUI
    words it. `editor`: the prompt is an editor workflow (`is_editor_workflow`; the member
    named is its first, `last_node_id` or `id`): the message says so, which format POST /prompt
    takes, and which route takes this one."""
    message = f"Cannot execute because {node_name(nid)} has no class_type"
    if editor:
        message += f": {_editor_workflow_hint()}"
    return PromptRejected(error_body("invalid_prompt", message, f"Node ID '#{nid}'"))


def _editor_workflow_hint() -> str:
    """What a refusal of an editor workflow adds, sent as the prompt or as the whole body:
    what it is, which format POST /prompt takes and which route takes this one."""
    return ('this is an editor workflow (a "nodes" list); POST /prompt takes the API format '
            "(the editor's Export (API)), POST /latentgraph/run takes this one")  # fmt: skip


def check_nodes(prompt: Any) -> None:
    """Refuse a prompt that is no object of nodes, as ComfyUI does: an empty one or no object
    (`no_prompt`), or one with a member that is no object with a class_type (`no_class_type`,
    saying so when the prompt is an editor workflow). `prompt_body` refuses a large body's
    alike as it reads it."""
    if not isinstance(prompt, dict) or not prompt:
        raise no_prompt()
    for nid, spec in prompt.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("class_type"), str):
            raise no_class_type(nid, is_editor_workflow(prompt))


def check_prompt(prompt: Any, registry: Registry, settings: Settings,
                 targets: Any = None) -> tuple[CheckedPrompt, Any]:  # fmt: skip
    """Convert and validate an API-format prompt as ComfyUI does: an unknown node type anywhere
    refuses it; otherwise each output node (or target) is checked with what it needs, a node
    feeding none is not checked, and the prompt runs the outputs that passed. Returns it and
    its Graph, or raises when none passed. Its errors name the server's folders as a web
    client knows them (`shown_answer`); the server's log keeps the full paths. A prompt that
    is no object of nodes is refused first (`check_nodes`), naming only what the client sent,
    as the reader of a large body refuses it."""
    check_nodes(prompt)
    try:
        checked, graph = _check_prompt(prompt, registry, settings, targets)
    except PromptRejected as exc:
        exc.body = shown_answer(exc.body, prompt, user_folders(settings))
        raise
    if checked.node_errors:
        checked.node_errors = shown_answer({"node_errors": checked.node_errors}, prompt,
                                           user_folders(settings))["node_errors"]  # fmt: skip
    return checked, graph


def shown_answer(body: dict[str, Any], prompt: Any, folders: dict[str, str]) -> dict[str, Any]:
    """POST /prompt's answer (its 400 body, or `{"node_errors": ...}`) as web clients see it:
    every message and details through `messages.shown_paths`, a node's with the values the
    client sent it, the prompt-wide ones with those of every node named."""
    prompt = prompt if isinstance(prompt, dict) else {}

    def shown(error: dict[str, Any], values: list[str]) -> dict[str, Any]:
        return {**error, **{k: shown_paths(error[k], folders, values)
                            for k in ("message", "details") if isinstance(error.get(k), str)}}  # fmt: skip

    node_errors = {nid: {**entry, "errors": [shown(e, sent_to(prompt, nid)) for e in entry["errors"]]}
                   for nid, entry in (body.get("node_errors") or {}).items()}  # fmt: skip
    answer = {**body, "node_errors": node_errors}
    if isinstance(body.get("error"), dict):
        named = [*node_errors, body["error"].get("extra_info", {}).get("node_id")]
        answer["error"] = shown(body["error"], [v for nid in named for v in sent_to(prompt, nid)])
    return answer


def _check_prompt(
    prompt: Any, registry: Registry, settings, targets: Any = None
) -> tuple[CheckedPrompt, Any]:
    from latentgraph.graph.comfy_api import check_outputs, graph_from_prompt
    from latentgraph.graph.validate import output_nodes

    _refuse_unknown_types(prompt, registry)
    try:  # drops `_meta` and the inputs a node type does not declare
        graph = graph_from_prompt(prompt, registry, source="<prompt>")
    except WorkflowError as exc:
        raise reject(exc.problems, prompt, registry=registry, settings=settings) from None
    outputs = [str(n) for n in output_nodes(graph, registry)]
    if targets is not None:
        if not isinstance(targets, list) or not all(str(t) in prompt for t in targets):
            raise PromptRejected(error_body(
                "invalid_prompt", "partial_execution_targets must list node ids of the prompt"))  # fmt: skip
        targets = [str(t) for t in targets]
    if not outputs and not targets:
        raise PromptRejected(error_body("prompt_no_outputs", "Prompt has no outputs",
                                        "the prompt has no output node (e.g. SaveImage)"))  # fmt: skip
    check = check_outputs(graph, registry, settings, targets or outputs)
    errors = [p for p in check.errors if p.code not in _IGNORED]
    if not check.good:
        raise reject(errors, prompt, check.dependents, registry=registry, settings=settings)
    if check.failed:  # run only what passed; the answer names what did not
        targets = check.good
    return CheckedPrompt(prompt, outputs, targets, node_errors(
        errors, prompt, check.dependents, registry=registry, settings=settings)), graph  # fmt: skip


def _refuse_unknown_types(prompt: dict[str, Any], registry: Registry) -> None:
    """Refuse a prompt naming a node type this server lacks, wherever the node is (ComfyUI
    does the same), naming every such type and the outputs each such node feeds."""
    unknown = {str(nid): spec["class_type"] for nid, spec in prompt.items()
               if registry.get(spec["class_type"]) is None}  # fmt: skip
    if not unknown:
        return
    from latentgraph.graph.validate import unknown_type_message

    deps = _dependent_outputs(prompt, _output_ids(prompt, registry))
    first, names, known = next(iter(unknown)), sorted(set(unknown.values())), registry.names()
    messages = {t: unknown_type_message("comfy", t, known, registry.plugin_failures)
                for t in names}  # fmt: skip
    meta = prompt[first].get("_meta")
    title = meta.get("title") if isinstance(meta, dict) else None
    if not isinstance(title, str):
        title = unknown[first]  # as ComfyUI names an untitled node
    raise PromptRejected(error_body(
        "missing_node_type",
        f"Cannot execute because node {', '.join(map(quoted, names))} does not exist.",
        f"Node ID '#{first}'", node_errors={nid: {
            "class_type": t, "dependent_outputs": deps.get(nid, []), "errors": [comfy_error(
                "unknown_node_type", messages[t], f"Node ID '#{nid}': {messages[t]}", {})]}
            for nid, t in unknown.items()},
        node_id=first, class_type=unknown[first], node_title=title))  # fmt: skip
