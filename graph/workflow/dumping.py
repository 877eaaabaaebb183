"""Writing a `Graph` as workflow YAML (links as `node.output`, `$` escaped as `$$`)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from ..declare import Registry, registry_or_default
from ..model import Graph, Link
from .building import FORMAT_VERSION
from .positions import plain_scalar


def graph_to_document(graph: Graph, registry: Registry | None = None) -> dict:
    """The workflow document (JSON-able dict) for `graph`; `load_workflow` reads it back."""
    registry = registry_or_default(registry)
    nodes: dict[str, Any] = {}
    for node in graph:
        node_type = registry.get(node.type)
        body: dict[str, Any] = {"type": node.type}
        if node.title is not None:
            body["title"] = _escape(node.title)
        for name, value in node.inputs.items():
            decl = node_type.input(name) if node_type is not None else None
            if isinstance(value, Link):
                spec = _link_text(value, graph, registry)
                body[name] = spec if decl is not None and decl.kind == "socket" else {"from": spec}
            else:
                body[name] = _escape(value)
        nodes[node.id] = body
    return {"version": FORMAT_VERSION, "nodes": nodes}


def _link_text(link: Link, graph: Graph, registry: Registry) -> str:
    target = graph.nodes.get(link.node)
    target_type = registry.get(target.type) if target is not None else None
    if target_type is not None and 0 <= link.output < len(target_type.outputs):
        return f"{link.node}.{target_type.outputs[link.output].name}"
    return f"{link.node}.{link.output}"


def _escape(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_escape(v) for v in value]
    return value


def dump_workflow(
    graph: Graph,
    registry: Registry | None = None,
    *,
    params: dict[str, Any] | None = None,
    description: str = "",
) -> str:
    """YAML text of the workflow; links are written `node.output` so a person can read them."""
    document = graph_to_document(graph, registry)
    head: dict[str, Any] = {"version": FORMAT_VERSION}
    if description:
        head["description"] = description
    if params:
        head["params"] = dict(params)
    head["nodes"] = document["nodes"]
    return dump_document(head)


def dump_document(document: dict[str, Any]) -> str:
    """A workflow document (e.g. ours read from JSON) as YAML text that reads back the same."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


_LINE_BREAKS = re.compile("[\x85\u2028\u2029\ufeff]")


class _Dumper(yaml.SafeDumper):
    """Quotes strings that would not read back as the same text.

    PyYAML decides what needs quotes by YAML 1.1 rules, but `load_workflow` types plain
    scalars the YAML 1.2 way (`plain_scalar`): `0E0` or `+1` are numbers to the reader and
    plain text to PyYAML. Unicode line breaks would be folded away unless double-quoted.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    if _LINE_BREAKS.search(value):
        style = '"'
    elif not isinstance(plain_scalar(value), str):
        style = "'"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def text_with_params(text: str, declared: Any, params: dict[str, Any]) -> str:
    """Our workflow document as written (comments and all), with the params a run used in
    place of the declared ones: what a saved PNG embeds, so the image re-runs as it was made."""
    changed = {k: v for k, v in params.items()
               if not isinstance(declared, dict) or declared.get(k) != v}  # fmt: skip
    if not changed:
        return text
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # already read once: no aliases, sized
    block = next((v for k, v in root.value if k.value == "params"), None)
    edits = [(v.start_mark.index, v.end_mark.index, changed[k.value])
             for k, v in (block.value if block is not None else []) if k.value in changed]  # fmt: skip
    for start, end, value in sorted(edits, reverse=True):
        tail = "\n" if text[start:end].endswith("\n") else ""  # a block scalar ends a line
        text = text[:start] + _flow(value) + tail + text[end:]
    return text


def _flow(value: Any) -> str:
    """A value as one-line YAML that reads back the same (JSON, except non-finite floats)."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return json.dumps(value, ensure_ascii=False)
