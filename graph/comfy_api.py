"""ComfyUI's API-format prompt to and from a `Graph`.

    {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "model": ["4", 0]},
           "_meta": {"title": "KSampler"}}}

A 2-element list `[node id (str), output index (int)]` is a link; a literal list travels
wrapped as `{"__value__": [...]}`. Inputs a known node type does not declare are dropped
(clients send extras such as `seed_control`); `_meta` is dropped except its title.
Unknown class types are kept so validation reports them with a "did you mean".

The format follows ComfyUI's rules, not our YAML's: a literal for an INT, FLOAT, STRING or
BOOLEAN input is converted as ComfyUI converts it (`api_literal`), and a server validates only output
nodes and what they need (`check_outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .context import Settings
from .declare import BOOLEAN, FLOAT, INT, STRING, Input, NodeType, Registry, registry_or_default
from .model import Graph, Link, Location, Node
from .problems import Problem, WorkflowError


def prompt_body(value: dict) -> dict | None:
    """The ComfyUI API prompt in `value` (bare, or a POST /prompt body), if it is one."""

    def is_prompt(body: Any) -> bool:
        return (
            isinstance(body, dict)
            and bool(body)
            and all(isinstance(v, dict) and "class_type" in v for v in body.values())
        )

    if "nodes" in value or "version" in value:
        return None
    if is_prompt(value):
        return value
    if is_prompt(value.get("prompt")):
        return value["prompt"]
    return None


def is_link(value: Any) -> bool:
    """Whether a prompt's input value is a link: `[node id (str), output index (int)]`, as
    ComfyUI reads one (a bool is no index: `["3", true]` is a literal, as is `[3, 0]`). The
    one rule for every reader of a prompt (the converter, POST /prompt's checks, the
    dispatcher's model keys, a run's messages): a plain function, as it runs per input."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
    )


# The `source` of a prompt not read from a file.
PROMPT_SOURCE = "<prompt>"


def graph_from_prompt(
    prompt: dict, registry: Registry | None = None, *, source: str = PROMPT_SOURCE
) -> Graph:
    """Build a `Graph` from an API-format prompt; raises `WorkflowError` ("invalid_prompt").

    A prompt read from a file (`source` its name) places its nodes there, so validation
    problems name the file as they do for the other formats; the unnamed default (a prompt
    a client sent the server) does not, so they read as ComfyUI words them."""
    registry = registry_or_default(registry)
    where = Location(source)
    node_location = where if source != PROMPT_SOURCE else None
    if not isinstance(prompt, dict):
        raise WorkflowError(
            [
                Problem(
                    "invalid_prompt",
                    "the prompt must be an object of node id to node",
                    location=where,
                )
            ]  # fmt: skip
        )
    problems: list[Problem] = []
    graph = Graph(source=source, dialect="comfy")
    for raw_id, body in prompt.items():
        node_id = str(raw_id)
        if not isinstance(body, dict):
            problems.append(
                Problem(
                    "invalid_prompt",
                    "a node must be an object with 'class_type' and 'inputs'",
                    node_id=node_id,
                    location=where,
                )  # fmt: skip
            )
            continue
        class_type = body.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            problems.append(
                Problem(
                    "invalid_prompt",
                    "the node has no 'class_type' (its node type name)",
                    node_id=node_id,
                    location=where,
                )  # fmt: skip
            )
            continue
        inputs = body.get("inputs")
        if inputs is None:  # missing or null: a node without inputs
            inputs = {}
        if not isinstance(inputs, dict):
            problems.append(
                Problem(
                    "invalid_prompt",
                    "'inputs' must be an object of input name to value",
                    node_id=node_id,
                    location=where,
                    node_type=class_type,
                )  # fmt: skip
            )
            continue
        node_type = registry.get(class_type)
        node = Node(id=node_id, type=class_type, location=node_location)
        meta = body.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get("title"), str):
            node.title = meta["title"]
        if node_type is None:
            node.inputs = {str(name): _from_wire(value) for name, value in inputs.items()}
        else:
            _read_inputs(node, node_type, inputs)
        graph.add(node)
    if problems:
        raise WorkflowError(problems)
    return graph


def _read_inputs(node: Node, node_type: NodeType, inputs: dict) -> None:
    """The inputs `node_type` declares, literals converted as ComfyUI converts them."""
    for name, value in inputs.items():
        decl = node_type.input(str(name))
        if decl is not None:
            node.inputs[decl.name] = api_literal(decl, _from_wire(value))
        else:
            node.ignored_inputs += (str(name),)


# How ComfyUI's validation converts a literal for these input types before checking it.
def api_boolean(value: bool | int | float | str) -> bool:
    """A BOOLEAN literal as API clients write it: true/false, 0/1 or the text "true"/"false"
    (any case). ComfyUI passes any of these to the node unchecked, where the text "false"
    would count as true; anything else raises ValueError (refused as invalid_input_type)."""
    if type(value) is bool:
        return value
    if type(value) is str and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if type(value) is not str and value in (0, 1):
        return value == 1
    raise ValueError(f"{value!r} is not a boolean")


_CONVERSIONS = {INT: int, FLOAT: float, STRING: str, BOOLEAN: api_boolean}


def api_literal(decl: Input, value: Any) -> Any:
    """A literal of an API-format prompt as the input `decl` takes it: ComfyUI clients send
    "5" for an INT, 64.0 for an INT, 7 for a STRING, and ComfyUI converts them with int(),
    float() or str() (so 7.9 for an INT is 7, and "7.5" for an INT fails); a BOOLEAN takes
    0/1 and "true"/"false" (`api_boolean`). A value that does
    not convert, and null, lists and objects, are kept as they are: validation reports them
    as invalid_input_type. Our own formats are not converted."""
    convert = _CONVERSIONS.get(decl.type)
    if convert is None or type(value) is convert or type(value) not in (bool, int, float, str):
        return value  # most often: already of its type, or a link
    if not decl.accepts_literal:
        return value
    try:
        return convert(value)
    except (ValueError, OverflowError):  # "7.5" as an INT, inf as an INT, digits past the limit
        return value


def _from_wire(value: Any) -> Any:
    if is_link(value):
        return Link(value[0], value[1])
    if isinstance(value, dict) and len(value) == 1 and "__value__" in value:
        return value["__value__"]
    return value


def _to_wire(value: Any) -> Any:
    if isinstance(value, Link):
        return [value.node, value.output]
    if isinstance(value, list | tuple):
        return {"__value__": list(value)}
    if isinstance(value, dict) and set(value) == {"__value__"}:
        return {"__value__": value}  # never happens in practice; keeps the round trip exact
    return value


def prompt_from_graph(graph: Graph, registry: Registry | None = None) -> dict:
    """The API-format prompt for `graph` (titles go to `_meta.title` when set)."""
    prompt: dict[str, Any] = {}
    for node in graph:
        entry: dict[str, Any] = {
            "class_type": node.type,
            "inputs": {name: _to_wire(value) for name, value in node.inputs.items()},
        }
        if node.title is not None:
            entry["_meta"] = {"title": node.title}
        prompt[node.id] = entry
    return prompt


# Problems that make the whole prompt unusable, whichever outputs a node feeds.
_PROMPT_LEVEL = frozenset({"unknown_node_type"})


@dataclass
class OutputCheck:
    """What ComfyUI's validation decides for a prompt: the outputs that may run (`good`), the
    errors that stop the others (`errors`: only on nodes a failed output needs; a node that
    feeds no output is never reported), and for each node with errors the failed outputs
    that need it (`dependents`)."""

    good: list[str]
    failed: list[str] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    dependents: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)


def check_outputs(
    graph: Graph, registry: Registry | None, settings: Settings | None, outputs: list[str]
) -> OutputCheck:
    """Validate `graph` read from an API prompt for each of `outputs` (its output nodes, or
    the client's targets) on its own, as ComfyUI does: an output runs when it and every node
    it needs are free of errors."""
    from .validate import validate

    everything = [p for p in validate(graph, registry, settings) if p.code != "prompt_no_outputs"]
    errors = [p for p in everything if p.severity == "error"]
    warnings = [p for p in everything if p.severity != "error"]
    if not errors:  # the common case: no walk
        return OutputCheck(list(outputs), warnings=warnings)
    if any(p.node_id is None or p.code in _PROMPT_LEVEL for p in errors):
        return OutputCheck([], list(outputs), errors, {}, warnings)
    by_node: dict[str, list[Problem]] = {}
    for p in errors:
        by_node.setdefault(str(p.node_id), []).append(p)
    result = OutputCheck([], warnings=warnings)
    reported: set[str] = set()
    for out in outputs:
        bad = [n for n in _needs(graph, out) if n in by_node]
        if not bad:
            result.good.append(out)
            continue
        result.failed.append(out)
        for nid in bad:
            result.dependents.setdefault(nid, []).append(out)
            if nid not in reported:
                reported.add(nid)
                result.errors += by_node[nid]
    return result


def _needs(graph: Graph, output: str) -> list[str]:
    """`output` and every node it needs, through links (iterative: no recursion limit)."""
    nodes = graph.nodes
    seen = {output}
    order = [output]
    stack = [output]
    while stack:
        node = nodes.get(stack.pop())
        if node is None:
            continue
        for value in node.inputs.values():
            if type(value) is Link and value.node not in seen:
                seen.add(value.node)
                order.append(value.node)
                stack.append(value.node)
    return order
