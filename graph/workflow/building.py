"""Building a `Graph` from a parsed workflow document: params and `--set` overrides, `$param`
substitution, links (`node.output`, `{from: node.output}`), and every problem at once."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..comfy_api import graph_from_prompt, prompt_body
from ..declare import RESERVED_NODE_KEYS, Input, NodeType, Registry, registry_or_default
from ..model import Graph, Link, Location, Node
from ..problems import Problem, WorkflowError, did_you_mean, printable, quoted
from ..validate import comfy_link_advice, no_output_message, output_at, self_link_message
from .positions import DATA_SOURCE, Positions, Refused, parse_yaml, plain_scalar
from .reading import parse_json, read_text

FORMAT_VERSION = 1
TOP_LEVEL_KEYS = ("version", "description", "params", "nodes", "$schema")

# A param's name: the one rule for declaring one (`params:`), setting one (`--set`) and
# referencing one in a string (`$name`, `${name}`; `$名前` is text), which the schema states too.
PARAM_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
PARAM_NAME_WORDS = "ASCII letters, digits and '_'"
_WHOLE_PARAM = re.compile(rf"\$(?:({PARAM_NAME})|\{{({PARAM_NAME})\}})")
# ... and in text, also `$$` (a dollar) and `${name` with no `}` (a reference left open)
_ANY_PARAM = re.compile(rf"\$(?:(\$)|({PARAM_NAME})|\{{({PARAM_NAME})\}}|\{{({PARAM_NAME}))")
_PARAM_NAME = re.compile(PARAM_NAME)
_NODE_INPUT = re.compile(rf"[^\s.=]+\.{PARAM_NAME}")
_NOT_COMFY = ", not [node, output] as in ComfyUI"  # how ComfyUI's prompts link


@dataclass
class Workflow:
    """A loaded workflow: the graph plus what the file said around it."""

    graph: Graph
    params: dict[str, Any]  # effective params (ComfyUI formats: the `node.input` overrides)
    description: str = ""
    raw: dict = field(default_factory=dict)  # the document as read
    extra: dict[str, Any] = field(default_factory=dict)  # ComfyUI prompt/workflow for PNGs
    format: str = "yaml"  # which reader read it: "yaml" (ours), "api" or "editor"


@dataclass(frozen=True)
class _ParamValueLocation(Location):
    """Where a param's value is used, shown with what gave that value (the subclasses)."""

    def written(self) -> Location:
        """The `$param`'s place alone: a problem with the input, not its value (a typo in the
        input's name), is the file's, not the value giver's (`Location.written`)."""
        return Location(self.file, self.line, self.column)


@dataclass(frozen=True)
class GivenLocation(_ParamValueLocation):
    """Where a value given for a param, not written in the file, is used: the `$param` at
    file:line:column, shown with what gave it, so a bad value names how it was given and the
    line using it ("--set seed=abc ($seed at my.yaml:22:11)", from Python "param seed='abc'
    ($seed at my.yaml:22:11)", from a server's request "params.seed='abc' ..."); the line
    alone blamed the file. `flag`: how the loader's caller gave it (`given_as`, named by
    `given_name`; a sweep names its own, `given_by`); `value` as that caller wrote it
    (`shown_value`)."""

    param: str = ""
    value: str = ""
    flag: str = "--set"

    def __str__(self) -> str:
        return _param_placed(f"{given_name(self.flag, self.param)}={self.value}", self.param, self)


@dataclass(frozen=True)
class DefaultLocation(_ParamValueLocation):
    """Where param `param`'s default, the value `params:` declares for it at `declared`, is
    used: shown as a given value is (`GivenLocation`), its declaration in the flag's place
    ("my.yaml:4:9: param seed's default ($seed at my.yaml:9:75)"), so a default the input
    refuses names the param and the line writing it, not only the `$seed` using it."""

    param: str = ""
    declared: Location = field(default_factory=Location)

    def __str__(self) -> str:
        return _param_placed(f"{self.declared}: param {self.param}'s default", self.param, self)


def _param_placed(giver: str, param: str, where: Location) -> str:
    """The one rule for a param's value placed in a message: what gave it, then the `$param`
    using it at `where`'s file:line:column."""
    return f"{giver} (${param} at {Location.__str__(where)})"


def given_name(given_as: str, name: str) -> str:
    """How messages name param `name` as its giver gave it: `given_as` a flag or a word, then
    the name (`--set seed`, from Python `param seed`), or the prefix it was written after,
    ending in `.` or `=` (a server's request: `params.seed` in its JSON body, `set=seed` in
    its URL's query)."""
    return f"{given_as}{name}" if given_as.endswith((".", "=")) else f"{given_as} {name}"


def given_by(flag: str, param: str, location: Location | None,
             value: str | None = None) -> Location | None:  # fmt: skip
    """`location`, when it is where param `param`'s given value is used, as given by `flag`
    (`--sweep`), with `value` as that giver wrote it (`shown_value`) when it wrote it
    otherwise; any other location as it is."""
    if isinstance(location, GivenLocation) and location.param == param:
        return replace(location, flag=flag, value=location.value if value is None else value)
    return location


def shown_value(given_as: str, value: Any) -> str:
    """A given param's value as whoever gave it wrote it, for messages: as text (`given_as` a
    flag, `--set`, `--sweep`, or a URL query's `set=`) the text after `NAME=`; as a value
    (from Python, `param`, `sweep`, or a JSON body's `params.`) its repr, so `param a='abc'`
    and `param a=500` differ as they did. What cannot be printed is escaped either way
    (`printable`, as `quoted` does): a U+202E typed in a value turned the rest of the error
    line around."""
    if given_as.startswith("-") or given_as.endswith("="):
        return printable(value if isinstance(value, str) else _text(value))
    return repr(value)


def parse_override(assignment: str, flag: str = "override") -> tuple[str, str]:
    """`"seed=7"` -> `("seed", "7")`: the name checked, the value the text as written (what it
    sets types it: `override_value`). `flag` names where it came from in the refusal
    ("--set", "--sweep").

    NAME is a param, or `<node id>.<input>` for ComfyUI workflows, which have no params."""
    name, sep, text = assignment.partition("=")
    name = name.strip()
    if not sep or not (_PARAM_NAME.fullmatch(name) or _NODE_INPUT.fullmatch(name)):
        raise WorkflowError(
            [
                Problem(
                    "invalid_value",
                    f"{flag} {quoted(assignment)}: expected NAME=VALUE with NAME a param "
                    f"({PARAM_NAME_WORDS}) or, for ComfyUI workflows, <node id>.<input>",
                )
            ]
        )
    return name, text


def unknown_override(
    flag: str, name: str, params: Collection[str] | None, node_ids: Collection[str] = ()
) -> str | None:
    """Why `flag NAME=...` names nothing the workflow has, or None: the one rule for the names
    `--set` and `--sweep` take (`flag` is the one the user wrote, named in the message as
    `given_name` names it).

    Our format (`params`: its declared names): NAME is a param. The ComfyUI formats (`params`
    None, they have none): NAME is `<node id>.<input>` of one of `node_ids`, the id up to the
    last dot (ids may hold dots)."""
    name = str(name)
    given = given_name(flag, name)
    if params is not None:
        if name in params:
            return None
        known = ", ".join(sorted(params)) or "none"
        return (f"{given}: the workflow has no param {quoted(name)}"
                f"{did_you_mean(name, list(params))} (params: {known})")  # fmt: skip
    node_id, _, input_name = name.rpartition(".")
    if node_id in node_ids and input_name:
        return None
    ids = list(node_ids)
    listed = f"(node ids: {', '.join(ids[:20])})"
    if not node_id:
        return (f"{given}: ComfyUI workflows have no params; name an input as "
                f"<node id>.<input> {listed}")  # fmt: skip
    if node_id not in node_ids:
        hint = did_you_mean(node_id, ids)
        return f"{given}: the workflow has no node {quoted(node_id)}{hint} {listed}"
    return f"{given}: no input named after node {quoted(node_id)}; write <node id>.<input>"


def override_value(value: Any, takes_text: bool) -> Any:
    """An override's value typed by what it sets, the one rule for params and `node.input`
    overrides: a param whose default is text or an input that takes text keeps the text as
    written (`[cat:dog:0.5]`, `null` and `5` are prompt text; a number given from Python
    becomes its text), anything else reads a string the YAML 1.2 way (`7`, `true`, `[1, 2]`)."""
    if takes_text:
        return _text(value) if isinstance(value, int | float) else value
    return _typed(value) if isinstance(value, str) else value


def _typed(text: str) -> Any:
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            value, _, _ = parse_yaml(stripped, "<override>")
        except Refused:
            return text
        if isinstance(value, list):
            return value
        return text
    if stripped != text:
        return text  # surrounding spaces: the user meant text
    return plain_scalar(text) if text else ""


def load_workflow(
    source: str | Path,
    *,
    text: str | None = None,
    overrides: dict[str, str] | None = None,
    registry: Registry | None = None,
    given_as: str = "--set",
) -> Workflow:
    """Read a workflow file (or `text`, with `source` naming it) into a `Graph`.

    Raises `WorkflowError` carrying every problem found while reading, together with the
    validation problems of the rest of the graph, so one pass fixes everything. A document
    that is a ComfyUI API prompt (`{id: {class_type, inputs}}`) is accepted too.
    Override values that are strings get YAML scalar typing, except for params whose default
    is a string, which keep the text as written (`--set prompt=7` is the text "7", also when
    the caller already typed it as the number 7). `given_as` says how the overrides were
    given, for the messages about them: `--set` (the CLI), `param` (a Python caller).
    """
    registry = registry_or_default(registry)
    name = str(source)
    try:
        content = read_text(source, text)
        looks_json = Path(name).suffix.lower() == ".json" or content.lstrip().startswith("{")
        if looks_json and Path(name).suffix.lower() not in (".yaml", ".yml"):
            value, doc, empty = parse_json(content, name) if content.strip() else (None, None, True)
        else:
            value, doc, empty = parse_yaml(content, name)
        if doc is not None and name == DATA_SOURCE:  # a dict's text: placed by key paths
            doc.by_path()
    except Refused as refused:
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
    prompt = prompt_body(value)
    if prompt is not None:
        graph = graph_from_prompt(prompt, registry, source=name)
        return Workflow(graph=graph, params={}, raw=value, format="api")
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
    return _build(value, doc, overrides or {}, registry, name, given_as)


def _kind(value: Any) -> str:
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


def _build(
    value: dict,
    doc: Positions,
    overrides: dict[str, Any],
    registry: Registry,
    name: str,
    given_as: str = "--set",
) -> Workflow:
    """The workflow a parsed document describes. Every step reads on past a problem, adding
    it to one list, so the `WorkflowError` names them all (then the validation errors of the
    rest of the graph): one pass fixes everything."""
    problems = list(doc.problems)

    def at(*path: Any) -> Location:
        return doc.at.get(path) or doc.key_at.get(path) or Location(name)

    description = _top_level(value, doc, at, name, problems)
    params, given = _params(value, overrides, problems, at, doc, name, given_as)
    defaults = {key: at("params", key) for key in params if key not in overrides}
    nodes = _node_entries(value, at, problems)
    types = {node_id: body.get("type") if isinstance(body, dict) else None
             for node_id, body in nodes.items()}  # fmt: skip
    reader = _NodeReader(doc, at, registry, params, given, given_as, defaults, types, problems)
    graph = Graph(source=name)
    for node_id, body in nodes.items():
        node = reader.node(node_id, body)
        if node is not None:
            graph.add(node)
    if problems:
        raise WorkflowError(problems + other_problems(graph, registry, problems, set(nodes)))
    return Workflow(graph=graph, params=params, description=description, raw=value)


def _top_level(
    value: dict, doc: Positions, at: Callable[..., Location], name: str, problems: list[Problem]
) -> str:
    """The document's description. An unknown top-level key, another version or a
    description that is not text is a problem, and reading goes on."""
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
        message = (
            f"'version' must be the number {FORMAT_VERSION}, not the text {quoted(version)}"
            if isinstance(version, str) and version.strip() == str(FORMAT_VERSION)
            else f"unsupported workflow version {version!r}; this latentgraph reads version "
            f"{FORMAT_VERSION}"
        )
        problems.append(Problem("invalid_value", message, location=at("version")))
    description = value.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        problems.append(Problem("syntax", "'description' must be text", location=at("description")))
        description = str(description)
    return description


def _node_entries(value: dict, at: Callable[..., Location], problems: list[Problem]) -> dict:
    """The `nodes` mapping, or none (a problem said) when it is missing or no mapping: the
    params are still read and checked."""
    nodes = value.get("nodes")
    if nodes is None:
        problems.append(Problem("syntax", "the workflow has no 'nodes' mapping", location=at()))
        return {}
    if not isinstance(nodes, dict):
        problems.append(
            Problem(
                "syntax",
                f"'nodes' must be a mapping of node id to node, not a {_kind(nodes)}",
                location=at("nodes"),
            )  # fmt: skip
        )
        return {}
    return nodes


def _entry_problem(node_id: str, body: Any, where: Location, hint: str = "") -> Problem | None:
    """Why a node entry is no node (not a mapping, no type name), or None. Such an entry is
    left out, its inputs unread: validation cannot say more about a node of no type. `hint`
    ends the message of an entry that is no mapping (`_NodeReader.slipped`)."""
    if not isinstance(body, dict):
        return Problem(
            "syntax",
            ("the node is empty: give it a 'type' (e.g. 'type: LatentNoise') and its inputs"
             if body is None
             else f"a node is a mapping with a 'type' key, not a {_kind(body)}") + hint,
            node_id=node_id,
            location=where,
        )  # fmt: skip
    type_name = body.get("type")
    if not isinstance(type_name, str) or not type_name:
        return Problem(
            "syntax",
            "the node has no 'type' (the node type name, e.g. 'type: LatentNoise')"
            if type_name is None or type_name == ""
            else f"'type' must be a node type name (text), not a {_kind(type_name)}",
            node_id=node_id,
            location=where,
        )  # fmt: skip
    return None


@dataclass
class _NodeReader:
    """Reading the `nodes` entries into `Node`s, with what every entry needs in one place:
    the document's positions, the params (`given`: those given a value, and `given_as` how,
    `defaults`: where the others' defaults are declared, to place their problems), each node
    id's type name (links are resolved against them) and
    the problems found so far, which it adds to."""

    doc: Positions
    at: Callable[..., Location]
    registry: Registry
    params: dict[str, Any]
    given: dict[str, str]
    given_as: str
    defaults: dict[str, Location]
    types: dict[str, str | None]
    problems: list[Problem]
    above: str | None = None  # the last entry read that may be a node (a mapping, or empty)

    def node(self, node_id: str, body: Any) -> Node | None:
        """One entry as a `Node`: its title and inputs with the params put in; None (a problem
        said) when the entry is no node (`_entry_problem`)."""
        where = self.doc.key_at.get(("nodes", node_id)) or self.at("nodes", node_id)
        hint = "" if isinstance(body, dict) else self.slipped(node_id)
        if isinstance(body, dict) or body is None:
            self.above = node_id
        problem = _entry_problem(node_id, body, where, hint)
        if problem is not None:
            self.problems.append(problem)
            return None
        type_name = body["type"]
        node = Node(id=node_id, type=type_name, location=where)
        title = body.get("title")
        if title is not None:
            titled = _Substitution(
                self.params, self.problems, node_id, "title", self.at("nodes", node_id, "title")
            )
            node.title = str(titled.value(title))
        node_type = self.registry.get(type_name)
        for input_name, raw_value in body.items():
            if input_name not in RESERVED_NODE_KEYS:
                self._input(node, node_type, input_name, raw_value)
        return node

    def slipped(self, key: str) -> str:
        """The hint for entry `key` when it is no node but reads as a line of the node above
        it indented too little, at the node ids' column (`  steps: 4` under a node's
        `    latent: ...`): one of that node's inputs, or its `type` or `title`; "" when not."""
        above = self.above
        if above is None:
            return ""
        if key in RESERVED_NODE_KEYS:
            what = f"the {key!r} of node {quoted(above)}"
        else:
            node_type = self.registry.get(self.types.get(above) or "")
            if node_type is None or node_type.input(key) is None:
                return ""
            what = f"input {quoted(key)} of node {quoted(above)} ({node_type.name})"
        fix = f"indent it under {quoted(above)}"
        return f"; it looks like {what} above, indented as a node id: {fix}"

    def _input(
        self, node: Node, node_type: NodeType | None, input_name: str, raw_value: Any
    ) -> None:
        """One written input into `node`: a link resolved against the other nodes, else the
        value with the params put in, read as its declaration reads it and placed where a
        given param's value came from; a link written wrong is a problem, the input left out."""
        where = self.at("nodes", node.id, input_name)
        node.input_locations[input_name] = where  # a link's `$` are not substituted
        decl = node_type.input(input_name) if node_type is not None else None
        comfy = None
        if decl is not None and not decl.accepts_literal:  # a literal there is refused anyway
            comfy = comfy_link_advice(self.types, self.registry, node.id, raw_value, decl.type)
        if comfy is not None:
            message = f"a link is written node.output{_NOT_COMFY}{comfy.text(': ', False)}"
            self.problems.append(Problem("bad_linked_input", message, node.id, input_name, where))
            return
        spec = _link_spec(raw_value, decl)
        if spec is None:
            substitution = _Substitution(self.params, self.problems, node.id, input_name, where)
            written = substitution.value(raw_value)
            node.inputs[input_name] = decl.literal(written) if decl is not None else written
            node.input_locations[input_name] = substitution.placed(
                self.given, self.given_as, self.defaults
            )
        elif not isinstance(spec, str):
            message = "a link is written {from: node.output}"
            comfy = comfy_link_advice(self.types, self.registry, node.id, spec, decl.type)
            if comfy is not None:
                message += _NOT_COMFY + comfy.text(": ", spelled_out=True)
            self.problems.append(Problem("syntax", message, node.id, input_name, where))
        else:
            link = _resolve_link(
                spec, self.types, self.registry, node.id, decl, where, self.problems
            )
            if link is not None:
                node.inputs[input_name] = link


def other_problems(
    graph: Graph, registry: Registry, problems: list[Problem], written: set[str]
) -> list[Problem]:
    """Validation errors of the rest of the graph, minus echoes of the reading problems; only
    those that hold whatever the run's settings (the loader has none: the caller validates
    with its own once the graph reads)."""
    from ..validate import validate

    reported = {(p.node_id, p.input_name) for p in problems}
    broken = written - set(graph.nodes)
    extra = []
    for problem in validate(graph, registry, run_settings=False):
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
    value: dict,
    overrides: dict[str, Any],
    problems: list[Problem],
    at: Any,
    doc: Positions,
    name: str,
    given_as: str = "--set",
) -> tuple[dict[str, Any], dict[str, str]]:
    """The effective params, and the ones given a value other than the file's (by `--set`, a
    sweep or a caller's params) with that value as its giver wrote it (`shown_value`): a bad
    one is placed at how it was given (`given_as`)."""
    declared = value.get("params") or {}
    if not isinstance(declared, dict):
        problems.append(Problem("syntax", "'params' must be a mapping of name to default value",
                                location=at("params")))  # fmt: skip
        declared = {}
    params: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, default in declared.items():
        if not _PARAM_NAME.fullmatch(key):
            problems.append(
                Problem(
                    "syntax",
                    f"param name {key!r} must be {PARAM_NAME_WORDS} (not starting with a digit)",
                    location=doc.key_at.get(("params", key), Location(name)),
                )  # fmt: skip
            )
        params[key] = default
    for key, override in overrides.items():
        unknown = unknown_override(given_as, key, params)
        if unknown:
            problems.append(Problem("unknown_param", unknown,
                                    location=at("params") if declared else Location(name)))  # fmt: skip
            continue
        typed = override_value(override, isinstance(params[key], str))
        if typed != params[key] or type(typed) is not type(params[key]):  # 128.0 is not 128
            given[key] = shown_value(given_as, override)
        params[key] = typed
    return params, given


def _link_spec(raw: Any, decl: Input | None) -> Any:
    """What a written value links from, or None: `{from: ...}` for a declared input, a text
    for a socket-only one. An undeclared input (or a node of unknown type) links nothing:
    its value is substituted as written and validation names the input."""
    if decl is None:
        return None
    if isinstance(raw, dict) and len(raw) == 1 and "from" in raw:
        return raw["from"]
    if decl.kind == "socket" and isinstance(raw, str):
        return raw
    return None


def _resolve_link(
    spec: str,
    types: dict[str, str | None],
    registry: Registry,
    node_id: str,
    decl: Input,
    where: Location,
    problems: list[Problem],
) -> Link | None:
    """The link `spec` (`node.output`, `node`) written in input `decl` of node `node_id`, or
    None with the problem said."""
    input_name = decl.name
    if spec not in types and _WHOLE_PARAM.fullmatch(spec):
        problems.append(Problem(
            "bad_linked_input", f"{spec} is a param, and a param cannot feed a link input: write "
            "the link itself here (<node>.<output>)", node_id, input_name, where))  # fmt: skip
        return None
    target, output = spec, None
    if spec not in types and "." in spec:
        target, output = spec.rsplit(".", 1)
    if target not in types:
        # Dangling: keep the link so validation reports it with the other graph problems.
        return Link(target, 0)
    target_type = registry.get(types[target] or "")
    if target_type is None:
        return Link(target, int(output) if output and output.isdigit() else 0)
    if output is None and len(target_type.outputs) == 1:
        return Link(target, 0)
    index = output_at(target_type, output) if output is not None else None
    if index is not None:
        return Link(target, index)
    if target == node_id:  # a link to the node holding it: no output of its is meant
        message = self_link_message(types, registry, node_id, output, decl.type)
        problems.append(Problem("cycle", message, node_id, input_name, where))
    elif output is not None:
        message = no_output_message(target, target_type, output)
        problems.append(Problem("bad_linked_input", message, node_id, input_name, where))
    else:
        names = [o.name for o in target_type.outputs]
        message = (
            f"node {quoted(target)} ({target_type.name}) has outputs {', '.join(names)}: "
            f"write {target}.<output>"
            if names
            else f"node {quoted(target)} ({target_type.name}) has no outputs"
        )
        problems.append(Problem("bad_linked_input", message, node_id, input_name, where))
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class _Substitution:
    """Putting the params into one written value (a node's input or title): `$name` or
    `${name}` alone is the param's value (its type kept), inside text its text, `$$` a dollar,
    in lists and mappings alike; an unknown name is a problem placed at `where`, kept as
    written. `used` holds the params put in, in order, as they are put in: the one record of
    which params a value uses (`placed`), so it cannot tell another story than the value."""

    params: dict[str, Any]
    problems: list[Problem]
    node_id: str
    input_name: str
    where: Location
    used: list[str] = field(default_factory=list)

    def value(self, raw: Any) -> Any:
        if isinstance(raw, list):
            return [self.value(item) for item in raw]
        if isinstance(raw, dict):
            return {key: self.value(item) for key, item in raw.items()}
        if not isinstance(raw, str) or "$" not in raw:
            return raw
        whole = _WHOLE_PARAM.fullmatch(raw)
        if whole:
            key = whole.group(1) or whole.group(2)
            return self._param(key) if self._known(key) else raw
        return _ANY_PARAM.sub(self._in_text, raw)

    def placed(self, given: dict[str, str], given_as: str = "--set",
               defaults: dict[str, Location] | None = None) -> Location:  # fmt: skip
        """`where`, or where the first param put in that was given its value (by `--set`, a
        sweep, a Python caller: `given_as`) is used, naming it (`GivenLocation`); else where
        the first one put in whose value is its declared default (`defaults`: where each is
        declared) is used, naming that declaration (`DefaultLocation`)."""
        where = self.where
        for param in self.used:
            if param in given:
                return GivenLocation(where.file, where.line, where.column, param, given[param],
                                     given_as)  # fmt: skip
        for param in self.used:
            if param in (defaults or {}):
                return DefaultLocation(where.file, where.line, where.column, param,
                                       defaults[param])  # fmt: skip
        return where

    def _in_text(self, match: re.Match) -> str:
        if match.group(1):
            return "$"
        if match.group(4):
            self._unclosed(match.group(0))
            return match.group(0)
        key = match.group(2) or match.group(3)
        return _text(self._param(key)) if self._known(key) else match.group(0)

    def _unclosed(self, opened: str) -> None:
        """A problem for `${name` with no `}`: a param reference left open (a typo), which
        was kept as text, refused only where the input wanted no text, as of the wrong type."""
        self.problems.append(
            Problem(
                "syntax",
                f"{opened} is a param reference missing its '}}': write {opened}}} (or $$ for a "
                "literal dollar)",
                self.node_id,
                self.input_name,
                self.where,
            )
        )

    def _param(self, key: str) -> Any:
        self.used.append(key)
        return self.params[key]

    def _known(self, key: str) -> bool:
        """Whether `key` is a param; a problem saying what the workflow has when not."""
        if key in self.params:
            return True
        known = ", ".join(sorted(self.params)) or "none declared"
        hint = did_you_mean(key, list(self.params))  # a name, as the params are listed
        self.problems.append(
            Problem(
                "unknown_param",
                f"${key} is not a param of this workflow{hint} (params: {known}); write $$ "
                "for a literal dollar",
                self.node_id,
                self.input_name,
                self.where,
            )
        )
        return False
