"""latentgraph's own workflow format (YAML, or the same model in JSON) to and from a `Graph`.

    version: 1
    description: what it does
    params: {prompt: a red fox, seed: 42}      # overridable with --set name=value
    nodes:
      noise: {type: LatentNoise, seed: $seed}
      denoise: {type: UNetDenoise, latent: noise.latent, steps: {from: steps_node.value}}

Why a custom loader: errors must point at file:line:column, and plain YAML silently merges
duplicate keys, expands alias bombs and types `no` as false. So the document is *composed*
(never constructed: no tags run code), checked for size, depth, aliases and duplicate keys, and
converted with YAML 1.2 core scalar typing while every position is kept.

Links: for a socket-only input a string `node.output` (or `node` when that node has one output)
is a link; a widget input takes a literal, and `{from: node.output}` links a widget or "both"
input. `$name` / `${name}` substitutes a param (a whole-value reference keeps the param's type,
inside longer text it interpolates); `$$` is a literal dollar.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .declare import Registry
from .model import Graph, Link, Location, Node
from .problems import Problem, WorkflowError

MAX_BYTES = 5 * 1024 * 1024  # a workflow is a few KB; refuse anything absurd before parsing
MAX_DEPTH = 64  # nesting levels; also keeps the recursive composer far from Python's limit
FORMAT_VERSION = 1
TOP_LEVEL_KEYS = ("version", "description", "params", "nodes", "$schema")
RESERVED_NODE_KEYS = ("type", "title")

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_WHOLE_PARAM = re.compile(rf"\$(?:({_NAME})|\{{({_NAME})\}})")
_ANY_PARAM = re.compile(rf"\$(?:(\$)|({_NAME})|\{{({_NAME})\}})")
_PARAM_NAME = re.compile(_NAME)

# YAML 1.2 core schema for plain scalars: `yes`, `on`, `010` and `1:20` stay what they look like.
_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")

_PLAIN = "lg:plain"
_CORE = "tag:yaml.org,2002:"


@dataclass
class Workflow:
    """A loaded workflow: the graph plus what the file said around it."""

    graph: Graph
    params: dict[str, Any]
    description: str = ""
    raw: dict = field(default_factory=dict)


# --- scalars -----------------------------------------------------------------------------


def _plain_scalar(text: str) -> Any:
    """Type a plain (unquoted) scalar the YAML 1.2 core way."""
    if _NULL.fullmatch(text):
        return None
    if _BOOL.fullmatch(text):
        return text.lower() == "true"
    if _INT.fullmatch(text):
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


def parse_override(assignment: str) -> tuple[str, Any]:
    """`"seed=7"` -> `("seed", 7)`: YAML 1.2 scalar typing; `[a, b]` is a list; else text."""
    name, sep, text = assignment.partition("=")
    name = name.strip()
    if not sep or not _PARAM_NAME.fullmatch(name):
        raise WorkflowError(
            [
                Problem(
                    "invalid_value",
                    f"cannot read override {assignment!r}: expected NAME=VALUE "
                    "with NAME made of letters, digits and '_'",
                )
            ]
        )
    return name, _override_value(text)


def _override_value(text: str) -> Any:
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            value, _, _ = _parse_yaml(stripped, "<override>")
        except _Refused:
            return text
        if isinstance(value, list):
            return value
        return text
    if stripped != text:
        return text  # surrounding spaces: the user meant text
    return _plain_scalar(text) if text else ""


# --- composing YAML with positions -------------------------------------------------------


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def _loc(source: str, mark: Any) -> Location:
    return Location(source, mark.line + 1, mark.column + 1)


class _Loader(yaml.SafeLoader):
    """Composes only. Refuses aliases (alias bombs) and documents nested too deep."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self._source = source
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise _Refused(
                Problem(
                    "syntax",
                    f"YAML aliases (*{event.anchor}) are not allowed in workflows; "
                    "write the value out (or use a param)",
                    location=_loc(self._source, event.start_mark),
                )
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    Problem(
                        "limit_exceeded",
                        f"the document is nested more than {MAX_DEPTH} levels deep",
                        location=_loc(self._source, self.peek_event().start_mark),
                    )
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)


class _Doc:
    """A parsed document: positions of values and of mapping keys, by path, and problems."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.at: dict[tuple, Location] = {}
        self.key_at: dict[tuple, Location] = {}
        self.problems: list[Problem] = []


def _parse_yaml(text: str, source: str) -> tuple[Any, _Doc, bool]:
    """Returns (value, positions, empty). Raises _Refused for syntax and limits."""
    doc = _Doc(source)
    loader = None
    try:
        loader = _Loader(text, source)
        root = loader.get_single_node()
    except _Refused:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _loc(source, mark) if mark is not None else Location(source)
        message = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc)
        raise _Refused(Problem("syntax", f"YAML syntax error: {message}", location=where)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise _Refused(
            Problem(
                "syntax",
                f"character U+{exc.character:04X} is not allowed in a workflow",
                location=Location(source, line, column),
            )
        ) from None
    except yaml.YAMLError as exc:
        raise _Refused(Problem("syntax", f"YAML error: {exc}", location=Location(source))) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return None, doc, True
    return _convert(root, (), doc), doc, False


def _convert(node: Any, path: tuple, doc: _Doc) -> Any:
    doc.at[path] = _loc(doc.source, node.start_mark)
    if isinstance(node, ScalarNode):
        return _scalar(node, doc)
    if isinstance(node, SequenceNode):
        if node.tag != _CORE + "seq":
            raise _Refused(_tag_problem(node, doc))
        return [_convert(item, (*path, n), doc) for n, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        if node.tag != _CORE + "map":
            raise _Refused(_tag_problem(node, doc))
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise _Refused(
                    Problem(
                        "syntax",
                        "mapping keys must be plain names, not lists or mappings",
                        location=_loc(doc.source, key_node.start_mark),
                    )
                )
            key = key_node.value
            key_path = (*path, key)
            if key in result:
                doc.problems.append(_duplicate(path, key, doc, key_node))
                continue
            doc.key_at[key_path] = _loc(doc.source, key_node.start_mark)
            result[key] = _convert(value_node, key_path, doc)
        return result
    raise _Refused(Problem("syntax", "unsupported YAML node", location=doc.at[path]))


def _duplicate(path: tuple, key: str, doc: _Doc, key_node: Any) -> Problem:
    where = _loc(doc.source, key_node.start_mark)
    first = doc.key_at.get((*path, key))
    first_text = f" (first at line {first.line} column {first.column})" if first else ""
    if path == ("nodes",):
        return Problem(
            "duplicate_node",
            f"node id {key!r} is used twice{first_text}; node ids must be unique",
            node_id=key,
            location=where,
        )
    if len(path) == 2 and path[0] == "nodes":
        return Problem(
            "syntax",
            f"input {key!r} is written twice{first_text}",
            node_id=path[1],
            input_name=key,
            location=where,
        )
    return Problem("syntax", f"key {key!r} is written twice{first_text}", location=where)


def _scalar(node: ScalarNode, doc: _Doc) -> Any:
    if node.tag == _PLAIN:
        return _plain_scalar(node.value)
    if node.tag == _CORE + "str":
        return node.value
    kinds = {"int": int, "float": float, "bool": bool, "null": type(None)}
    kind = node.tag[len(_CORE) :] if node.tag.startswith(_CORE) else None
    if kind in kinds:
        value = _plain_scalar(node.value)
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, kinds[kind]) and not (kind == "int" and isinstance(value, bool)):
            return value
        raise _Refused(
            Problem(
                "syntax",
                f"{node.value!r} is not a valid !!{kind}",
                location=_loc(doc.source, node.start_mark),
            )
        )
    raise _Refused(_tag_problem(node, doc))


def _tag_problem(node: Any, doc: _Doc) -> Problem:
    return Problem(
        "syntax",
        f"YAML tag {node.tag!r} is not supported in workflows",
        location=_loc(doc.source, node.start_mark),
    )


def _parse_json(text: str, source: str) -> tuple[Any, _Doc, bool]:
    """Values from `json` (exact JSON semantics); positions and duplicates from the composer."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        where = Location(source, exc.lineno, exc.colno)
        raise _Refused(Problem("syntax", f"JSON syntax error: {exc.msg}", location=where)) from None
    except RecursionError:
        raise _Refused(
            Problem(
                "limit_exceeded", "the document is nested too deeply", location=Location(source)
            )
        ) from None
    try:
        # YAML refuses tabs where JSON allows them; same length keeps columns right.
        _, doc, _ = _parse_yaml(text.replace("\t", " "), source)
    except _Refused as refused:
        if refused.problem.code == "limit_exceeded":
            raise
        doc = _Doc(source)
        doc.problems = [
            Problem("syntax", f"key {key!r} is written twice", location=Location(source))
            for key in duplicates
        ]
    return value, doc, False


# --- loading -----------------------------------------------------------------------------


def _read(source: str | Path, text: str | None) -> str:
    name = str(source)
    if text is not None:
        if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            raise _Refused(_too_big(name))
        return text
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _Refused(_too_big(name))
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise _Refused(
            Problem("invalid_value", f"cannot read workflow: {reason}", location=Location(name))
        ) from None
    if len(data) > MAX_BYTES:
        raise _Refused(_too_big(name))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _Refused(
            Problem(
                "syntax",
                f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                location=Location(name, line, column),
            )
        ) from None


def _too_big(name: str) -> Problem:
    return Problem(
        "limit_exceeded",
        f"the workflow is larger than {MAX_BYTES // (1024 * 1024)} MB",
        location=Location(name),
    )


def _default_registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from .declare import default_registry
    from .plugins import builtin_nodes

    builtin_nodes()
    return default_registry


def load_workflow(
    source: str | Path,
    *,
    text: str | None = None,
    overrides: dict[str, str] | None = None,
    registry: Registry | None = None,
) -> Workflow:
    """Read a workflow file (or `text`, with `source` naming it) into a `Graph`.

    Raises `WorkflowError` carrying every problem found while reading, together with the
    validation problems of the rest of the graph, so one pass fixes everything. A document
    that is a ComfyUI API prompt (`{id: {class_type, inputs}}`) is accepted too.
    Override values that are strings get YAML scalar typing, except for params whose default
    is a string, which keep the text as written (`--set prompt=7` is the text "7", also when
    the caller already typed it as the number 7).
    """
    registry = _default_registry(registry)
    name = str(source)
    try:
        content = _read(source, text)
        looks_json = Path(name).suffix.lower() == ".json" or content.lstrip().startswith("{")
        if looks_json and Path(name).suffix.lower() not in (".yaml", ".yml"):
            value, doc, empty = (
                _parse_json(content, name) if content.strip() else (None, None, True)
            )
        else:
            value, doc, empty = _parse_yaml(content, name)
    except _Refused as refused:
        raise WorkflowError([refused.problem]) from None
    if empty or value is None:
        raise WorkflowError([Problem("syntax", "the workflow is empty", location=Location(name))])
    if not isinstance(value, dict):
        raise WorkflowError(
            [
                Problem(
                    "syntax",
                    f"a workflow is a mapping with a 'nodes' key, not a {_kind(value)}",
                    location=doc.at.get((), Location(name)),
                )
            ]
        )
    prompt = _prompt_body(value)
    if prompt is not None:
        from .comfy_api import graph_from_prompt

        graph = graph_from_prompt(prompt, registry, source=name)
        return Workflow(graph=graph, params={}, raw=value)
    if isinstance(value.get("nodes"), list) and "links" in value:
        raise WorkflowError(
            [
                Problem(
                    "syntax",
                    "this is a ComfyUI editor workflow (nodes + links); export it in API "
                    "format or convert it with the editor-format loader",
                    location=Location(name),
                )
            ]
        )
    return _build(value, doc, overrides or {}, registry, name)


def _kind(value: Any) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


def _prompt_body(value: dict) -> dict | None:
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


def _build(
    value: dict, doc: _Doc, overrides: dict[str, Any], registry: Registry, name: str
) -> Workflow:
    problems = list(doc.problems)

    def at(*path: Any) -> Location:
        return doc.at.get(path) or doc.key_at.get(path) or Location(name)

    for key in value:
        if key not in TOP_LEVEL_KEYS:
            problems.append(
                Problem(
                    "syntax",
                    f"unknown top-level key {key!r}; expected one of {', '.join(TOP_LEVEL_KEYS)}",
                    location=doc.key_at.get((key,), Location(name)),
                )
            )
    version = value.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION or isinstance(version, bool):
        problems.append(
            Problem(
                "invalid_value",
                f"unsupported workflow version {version!r}; this latentgraph reads version "
                f"{FORMAT_VERSION}",
                location=at("version"),
            )
        )
    description = value.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        problems.append(Problem("syntax", "'description' must be text", location=at("description")))
        description = str(description)

    params = _params(value, overrides, problems, at, doc, name)

    graph = Graph(source=name)
    nodes = value.get("nodes")
    if nodes is None:
        problems.append(Problem("syntax", "the workflow has no 'nodes' mapping", location=at()))
        nodes = {}
    elif not isinstance(nodes, dict):
        problems.append(
            Problem(
                "syntax",
                f"'nodes' must be a mapping of node id to node, not a {_kind(nodes)}",
                location=at("nodes"),
            )  # fmt: skip
        )
        nodes = {}

    types: dict[str, str | None] = {}
    for node_id, body in nodes.items():
        types[node_id] = body.get("type") if isinstance(body, dict) else None

    for node_id, body in nodes.items():
        node_loc = doc.key_at.get(("nodes", node_id)) or at("nodes", node_id)
        if not isinstance(body, dict):
            problems.append(
                Problem(
                    "syntax",
                    f"a node is a mapping with a 'type' key, not a {_kind(body)}",
                    node_id=node_id,
                    location=node_loc,
                )  # fmt: skip
            )
            continue
        type_name = body.get("type")
        if not isinstance(type_name, str) or not type_name:
            problems.append(
                Problem(
                    "syntax",
                    "the node has no 'type' (the node type name, e.g. 'type: LatentNoise')",
                    node_id=node_id,
                    location=node_loc,
                )  # fmt: skip
            )
            continue
        node = Node(id=node_id, type=type_name, location=node_loc)
        title = body.get("title")
        if title is not None:
            node.title = str(_subst_value(title, params, problems, node_id, "title", at))
        node_type = registry.get(type_name)
        for input_name, raw_value in body.items():
            if input_name in RESERVED_NODE_KEYS:
                continue
            where = at("nodes", node_id, input_name)
            node.input_locations[input_name] = where
            decl = node_type.input(input_name) if node_type is not None else None
            if decl is None:  # unknown type or input: validation names it
                node.inputs[input_name] = _subst_value(
                    raw_value, params, problems, node_id, input_name, at
                )
                continue
            spec = _link_spec(raw_value)
            if spec is None and decl.kind == "socket" and isinstance(raw_value, str):
                spec = raw_value
            if spec is not None:
                if not isinstance(spec, str):
                    problems.append(
                        Problem(
                            "syntax",
                            "a link is written {from: node.output}",
                            node_id=node_id,
                            input_name=input_name,
                            location=where,
                        )  # fmt: skip
                    )
                    continue
                link = _resolve_link(spec, types, registry, node_id, input_name, where, problems)
                if link is not None:
                    node.inputs[input_name] = link
                continue
            node.inputs[input_name] = _subst_value(
                raw_value, params, problems, node_id, input_name, at
            )
        graph.add(node)

    if problems:
        raise WorkflowError(problems + _other_problems(graph, registry, problems, set(nodes)))
    return Workflow(graph=graph, params=params, description=description, raw=value)


def _other_problems(
    graph: Graph, registry: Registry, problems: list[Problem], written: set[str]
) -> list[Problem]:
    """Validation errors of the rest of the graph, minus echoes of the reading problems."""
    from .validate import validate

    reported = {(p.node_id, p.input_name) for p in problems}
    broken = written - set(graph.nodes)
    extra = []
    for problem in validate(graph, registry):
        if problem.severity != "error" or problem.node_id in broken:
            continue
        if (problem.node_id, problem.input_name) in reported:
            continue
        if problem.code == "prompt_no_outputs" and broken:
            continue
        node = graph.nodes.get(problem.node_id or "")
        value = node.inputs.get(problem.input_name or "") if node is not None else None
        if isinstance(value, Link) and value.node in broken:
            continue
        extra.append(problem)
    return extra


def _params(
    value: dict, overrides: dict[str, Any], problems: list[Problem], at: Any, doc: _Doc, name: str
) -> dict[str, Any]:
    declared = value.get("params") or {}
    if not isinstance(declared, dict):
        problems.append(Problem("syntax", "'params' must be a mapping of name to default value",
                                location=at("params")))  # fmt: skip
        declared = {}
    params: dict[str, Any] = {}
    for key, default in declared.items():
        if not _PARAM_NAME.fullmatch(key):
            problems.append(
                Problem(
                    "syntax",
                    f"param name {key!r} must be letters, digits and '_' "
                    "(not starting with a digit)",
                    location=doc.key_at.get(("params", key), Location(name)),
                )  # fmt: skip
            )
        params[key] = default
    for key, override in overrides.items():
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            problems.append(
                Problem(
                    "unknown_param",
                    f"--set {key}: the workflow has no param {key!r} (params: {known})",
                    location=at("params") if declared else Location(name),
                )  # fmt: skip
            )
            continue
        if isinstance(override, str) and not isinstance(params[key], str):
            override = _override_value(override)
        elif isinstance(params[key], str) and isinstance(override, int | float):
            override = _text(override)  # `--set prompt=7` typed early: the user meant text
        params[key] = override
    return params


def _link_spec(raw: Any) -> Any:
    if isinstance(raw, dict) and len(raw) == 1 and "from" in raw:
        return raw["from"]
    return None


def _resolve_link(
    spec: str,
    types: dict[str, str | None],
    registry: Registry,
    node_id: str,
    input_name: str,
    where: Location,
    problems: list[Problem],
) -> Link | None:
    target, output = spec, None
    if spec not in types and "." in spec:
        target, output = spec.rsplit(".", 1)
    if target not in types:
        # Dangling: keep the link so validation reports it with the other graph problems.
        return Link(target, 0)
    target_type = registry.get(types[target] or "")
    if target_type is None:
        return Link(target, int(output) if output and output.isdigit() else 0)
    names = [o.name for o in target_type.outputs]
    if output is None:
        if len(names) == 1:
            return Link(target, 0)
        message = (
            f"node {target!r} ({target_type.name}) has outputs {', '.join(names)}: "
            f"write {target}.<output>"
            if names
            else f"node {target!r} ({target_type.name}) has no outputs"
        )
        problems.append(Problem("bad_linked_input", message, node_id, input_name, where))
        return None
    index = target_type.output_index(output)
    if index is None and output.isdigit() and int(output) < len(names):
        index = int(output)
    if index is None:
        problems.append(
            Problem(
                "bad_linked_input",
                f"node {target!r} ({target_type.name}) has no output {output!r}; outputs: "
                f"{', '.join(names) or 'none'}",
                node_id,
                input_name,
                where,
            )
        )
        return None
    return Link(target, index)


def _subst_value(
    raw: Any, params: dict[str, Any], problems: list[Problem], node_id: str, input_name: str,
    at: Any,
) -> Any:  # fmt: skip
    if isinstance(raw, str):
        if "$" not in raw:
            return raw
        whole = _WHOLE_PARAM.fullmatch(raw)
        if whole:
            key = whole.group(1) or whole.group(2)
            if key in params:
                return params[key]
            _unknown_param(key, params, problems, node_id, input_name, at)
            return raw

        def repl(match: re.Match) -> str:
            if match.group(1):
                return "$"
            key = match.group(2) or match.group(3)
            if key not in params:
                _unknown_param(key, params, problems, node_id, input_name, at)
                return match.group(0)
            return _text(params[key])

        return _ANY_PARAM.sub(repl, raw)
    if isinstance(raw, list):
        return [_subst_value(v, params, problems, node_id, input_name, at) for v in raw]
    if isinstance(raw, dict):
        return {
            k: _subst_value(v, params, problems, node_id, input_name, at) for k, v in raw.items()
        }
    return raw


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unknown_param(
    key: str, params: dict[str, Any], problems: list[Problem], node_id: str, input_name: str,
    at: Any,
) -> None:  # fmt: skip
    known = ", ".join(sorted(params)) or "none declared"
    problems.append(
        Problem(
            "unknown_param",
            f"${key} is not a param of this workflow (params: {known}); write $$ for a "
            "literal dollar",
            node_id,
            input_name,
            at("nodes", node_id, input_name),
        )
    )


# --- dumping -----------------------------------------------------------------------------


def graph_to_document(graph: Graph, registry: Registry | None = None) -> dict:
    """The workflow document (JSON-able dict) for `graph`; `load_workflow` reads it back."""
    registry = _default_registry(registry)
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
    return yaml.dump(head, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


_LINE_BREAKS = re.compile("[\x85\u2028\u2029\ufeff]")


class _Dumper(yaml.SafeDumper):
    """Quotes strings that would not read back as the same text.

    PyYAML decides what needs quotes by YAML 1.1 rules, but `load_workflow` types plain
    scalars the YAML 1.2 way (`_plain_scalar`): `0E0` or `+1` are numbers to the reader and
    plain text to PyYAML. Unicode line breaks would be folded away unless double-quoted.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    if _LINE_BREAKS.search(value):
        style = '"'
    elif not isinstance(_plain_scalar(value), str):
        style = "'"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
