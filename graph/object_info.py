"""ComfyUI's `/object_info`: node definitions for the editor, derived from the registry.

Each input is `[TYPE, options]`; a dropdown puts its choice list in the type slot. Widget
order is declaration order, which fixes the order of `widgets_values` in saved editor graphs.
An input ComfyUI's node of the same name lacks (`Input.comfy_extra`) is sent with
`forceInput`: the editor makes it an input socket, not a widget, so the editor's widget lists
(the `widgets_values` it saves, a group node's values it converts to a subgraph) are ComfyUI's.
JSON cannot carry infinity, so unbounded FLOAT ranges are sent as +-FLOAT_LIMIT.
"""

from __future__ import annotations

import math
from typing import Any

from .context import Settings
from .declare import (
    BOOLEAN,
    COMBO,
    FLOAT,
    INT,
    REQUIRED,
    STRING,
    Input,
    NodeType,
    Registry,
    registry_or_default,
)

FLOAT_LIMIT = 1e308


def _finite(value: float | None, sign: int) -> float | int | None:
    if value is None:
        return None
    if math.isinf(value) or math.isnan(value):
        return sign * FLOAT_LIMIT
    return value


def _input_entry(decl: Input, settings: Settings | None, node_type: NodeType) -> list[Any]:
    options: dict[str, Any] = {}
    has_default = decl.default is not REQUIRED and decl.default is not None
    if decl.kind == "socket":
        if decl.type in (INT, FLOAT, STRING, BOOLEAN):
            options["forceInput"] = True
        if decl.description:
            options["tooltip"] = decl.description
        return [decl.type, options]
    if has_default:
        options["default"] = decl.default
    if decl.comfy_extra:  # a socket, not a widget: the editor's widget list stays ComfyUI's
        options["forceInput"] = True
    if decl.type == COMBO or decl.choices is not None:
        choices = node_type.shown_choices(decl, settings)  # a folder missing: an empty one
        if not has_default and choices:
            options["default"] = choices[0]
        if decl.image_upload:
            options["image_upload"] = True
        if decl.description:
            options["tooltip"] = decl.description
        return [choices, options]
    if decl.type in (INT, FLOAT):
        highest = decl.max if settings is None else node_type.largest_allowed(decl, settings)
        for key, value, sign in (("min", decl.min, -1), ("max", highest, 1)):
            bound = _finite(value, sign)
            if bound is not None:
                options[key] = bound
        if decl.step is not None:
            options["step"] = decl.step
        if decl.type == FLOAT and decl.round is not None:
            options["round"] = decl.round
        if decl.type == INT and decl.seed:
            options["control_after_generate"] = True
    elif decl.type == STRING:
        options["multiline"] = decl.multiline
        if decl.dynamic_prompts:
            options["dynamicPrompts"] = True
    if decl.description:
        options["tooltip"] = decl.description
    return [decl.type, options]


def input_config(node_type: NodeType, name: str, settings: Settings | None = None) -> list | None:
    """Input `name` of `node_type` as `node_info` lists it (`[TYPE, options]`), or None when
    the type declares no such input: what a refusal of that input quotes (ComfyUI's
    node_errors `extra_info.input_config`), the same as /object_info under `settings`."""
    decl = node_type.input(name)
    return None if decl is None else _input_entry(decl, settings, node_type)


def node_info(node_type: NodeType, settings: Settings | None = None) -> dict:
    """The /object_info entry of one node type; dropdowns list the files `settings` name,
    and inputs bounded by a run limit advertise the maximum `settings` allow."""
    required: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    for decl in node_type.inputs:
        entry = _input_entry(decl, settings, node_type)
        (optional if decl.optional else required)[decl.name] = entry
    return {
        "input": {"required": required, "optional": optional, "hidden": {}},
        "input_order": {"required": list(required), "optional": list(optional)},
        "output": [o.type for o in node_type.outputs],
        "output_is_list": [o.is_list for o in node_type.outputs],
        "output_name": [o.name for o in node_type.outputs],
        "output_tooltips": [o.description for o in node_type.outputs],
        "name": node_type.name,
        "display_name": node_type.display_name or node_type.name,
        "description": node_type.description,
        "python_module": editor_module(node_type.module),
        "category": node_type.category,
        "output_node": node_type.output_node,
    }


def editor_module(module: str) -> str:
    """The module name as the editor reads it: "nodes" marks a built-in (core) node, and
    "custom_nodes.<name>" a plugin, which the editor labels with its source."""
    if not module or module.startswith("latentgraph."):
        return "nodes"
    return f"custom_nodes.{module}"


def object_info(registry: Registry | None = None, settings: Settings | None = None) -> dict:
    """`{class name: node_info}` for every registered node type."""
    registry = registry_or_default(registry)
    return {node_type.name: node_info(node_type, settings) for node_type in registry}
