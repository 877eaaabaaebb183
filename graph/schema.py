"""JSON Schema of the workflow format, generated from the registry.

Editors use it (through a `# yaml-language-server: $schema=...` line) to autocomplete node
types and input names and to flag bad literals while typing. It is draft-07, the draft
yaml-language-server understands best. It accepts what `latentgraph validate` accepts; it is
looser where it cannot know (a link's target and type, a param's value, a file's existence) and
where JSON Schema cannot tell (4.0 counts as an integer there, and no schema sees NaN):
`latentgraph validate` has the last word. docs/workflows.md describes the format.
"""

from __future__ import annotations

import math
from typing import Any

from .declare import (
    BOOLEAN,
    COMBO,
    FLOAT,
    INT,
    REQUIRED,
    STRING,
    Aliases,
    Input,
    NodeType,
    Registry,
    registry_or_default,
)
from .problems import with_article
from .workflow import PARAM_NAME

SCHEMA_ID = "https://latentgraph.invalid/schema/workflow.json"
_PARAM = rf"\$(?:{PARAM_NAME}|\{{{PARAM_NAME}\}})"
_PARAM_REF = {"type": "string", "pattern": f"^{_PARAM}$"}
# A node id is any text, so a link is any text but a whole `$param` (which cannot feed a link).
_LINK_TEXT = {"type": "string", "pattern": f"^(?!{_PARAM}$)", "description": "a link: node.output"}
_TITLE = {
    "type": ["string", "number", "boolean", "null"],
    "description": "shown instead of the node type (the editor's title); $param allowed",
}
_LINK = {
    "type": "object",
    "properties": {"from": _LINK_TEXT},
    "required": ["from"],
    "additionalProperties": False,
    "description": "a link to another node's output: {from: node.output}",
}


def _literal(decl: Input) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    if decl.type == INT:
        schema["type"] = "integer"  # JSON Schema counts 4.0 in; `validate` refuses it
    elif decl.type == FLOAT:
        schema["type"] = "number"
    elif decl.type == STRING:
        schema["type"] = "string"
        if decl.max_length is not None:
            schema["maxLength"] = decl.max_length
    elif decl.type == BOOLEAN:
        schema["type"] = "boolean"
    if decl.type in (INT, FLOAT):
        if decl.min is not None and math.isfinite(decl.min):
            schema["minimum"] = decl.min
        if decl.max is not None and math.isfinite(decl.max):
            schema["maximum"] = decl.max
    if decl.type == COMBO or decl.choices is not None:
        if callable(decl.choices):  # listed at run time (e.g. files): any text here
            schema["type"] = "string"
        else:  # with the other spellings validation takes, which no dropdown lists
            aliases = decl.also_accepts if isinstance(decl.also_accepts, Aliases) else None
            schema["enum"] = [*decl.choice_list(), *(aliases.names if aliases else ())]
    return schema


def _input_schema(decl: Input) -> dict[str, Any]:
    description = decl.description or f"{decl.type} ({decl.kind})"
    if decl.kind == "socket":
        return {
            "anyOf": [_LINK_TEXT, _LINK],
            "description": f"{description}; a link from {with_article(decl.type)} output: "
            "node.output",
        }
    options = [_literal(decl), _PARAM_REF, _LINK]
    if decl.takes_null:  # `validate` takes null as "not given" here
        options.append({"type": "null"})
    schema = {"anyOf": options, "description": description}
    if decl.default is not REQUIRED and _json_safe(decl.default):
        schema["default"] = decl.default
    return schema


def _json_safe(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool | list) or value is None


def _node_schema(node_type: NodeType) -> dict[str, Any]:
    properties: dict[str, Any] = {"type": {"const": node_type.name}, "title": _TITLE}
    for decl in node_type.inputs:
        properties[decl.name] = _input_schema(decl)
    schema: dict[str, Any] = {
        "type": "object",
        "description": node_type.description or node_type.display_name,
        "properties": properties,
        "additionalProperties": False,
    }
    required = [i.name for i in node_type.inputs if i.required]
    if required:
        schema["required"] = ["type", *required]
    return schema


def workflow_schema(registry: Registry | None = None) -> dict:
    """The JSON Schema (draft-07) of workflow documents for the node types in `registry`."""
    registry = registry_or_default(registry)
    types = list(registry)
    definitions = {t.name: _node_schema(t) for t in types}
    node_schema: dict[str, Any] = {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"enum": [t.name for t in types], "description": "the node type"},
            "title": _TITLE,
        },
        "allOf": [
            {
                "if": {"properties": {"type": {"const": t.name}}, "required": ["type"]},
                "then": {"$ref": f"#/definitions/{t.name}"},
            }
            for t in types
        ],
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "latentgraph workflow",
        "type": "object",
        "required": ["nodes"],
        "additionalProperties": False,
        "properties": {
            "$schema": {"type": "string"},
            "version": {"const": 1},
            "description": {"type": ["string", "null"]},
            "params": {
                "type": ["object", "null"],
                "description": "name: default value; use as $name, override with --set name=value",
                "propertyNames": {"pattern": f"^{PARAM_NAME}$"},
            },
            "nodes": {
                "type": "object",
                "description": "node id: node",
                "minProperties": 1,
                "additionalProperties": node_schema,
            },
        },
        "definitions": definitions,
    }


if __name__ == "__main__":  # python -m latentgraph.graph.schema > workflows/schema.json
    import json

    print(json.dumps(workflow_schema(), indent=2))
