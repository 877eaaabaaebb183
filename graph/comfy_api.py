"""ComfyUI's API-format prompt to and from a `Graph`.

    {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "model": ["4", 0]},
           "_meta": {"title": "KSampler"}}}

A 2-element list `[node id (str), output index (int)]` is a link; a literal list travels
wrapped as `{"__value__": [...]}`. Inputs a known node type does not declare are dropped
(clients send extras such as `seed_control`); `_meta` is dropped except its title.
Unknown class types are kept so validation reports them with a "did you mean".
"""

from __future__ import annotations

from typing import Any

from .declare import Registry, registry_or_default
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


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
    )


def graph_from_prompt(
    prompt: dict, registry: Registry | None = None, *, source: str = "<prompt>"
) -> Graph:
    """Build a `Graph` from an API-format prompt; raises `WorkflowError` ("invalid_prompt")."""
    registry = registry_or_default(registry)
    where = Location(source)
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
        node = Node(id=node_id, type=class_type)
        meta = body.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get("title"), str):
            node.title = meta["title"]
        for name, value in inputs.items():
            name = str(name)
            if node_type is not None and node_type.input(name) is None:
                continue
            node.inputs[name] = _from_wire(value)
        graph.add(node)
    if problems:
        raise WorkflowError(problems)
    return graph


def _from_wire(value: Any) -> Any:
    if _is_link(value):
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
