"""ComfyUI editor-format graphs ("UI" workflows) ⇄ `Graph`.

The editor saves node positions, positional `widgets_values` and links as
`[id, from node, from slot, to node, to slot, type]`. Turning that into a runnable graph needs
each node type's widget order, which comes from the node declarations: required widget inputs in
declaration order, then optional ones (the order /object_info publishes). Editor-only
constructs are resolved here: seed-control values, muted (mode 2) and bypassed (mode 4) nodes,
Reroute, PrimitiveNode, notes, subgraphs (expanded inline as `<instance id>:<inner id>`) and
old group nodes (comfy_groups.py).

Going back, `editor_from_graph` writes a graph as an editor document; where its nodes go and the
view it opens at are editor_layout.py's.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .comfy_groups import expand_group_nodes, group_name
from .declare import (
    BOOLEAN,
    FLOAT,
    INT,
    REQUIRED,
    WIDGET_TYPES,
    Input,
    NodeType,
    Registry,
    default_registry,
)
from .editor_layout import lay_out, node_height, opened_view
from .model import Graph, Link, Location, Node
from .problems import EditorLocation, Problem, WorkflowError, WorkflowWarning, node_name

MODE_NORMAL = 0
MODE_MUTED = 2
MODE_BYPASSED = 4


def mode_runs(mode: int) -> bool:
    """Whether a node of this editor mode runs as itself. Only Never (2, muted) and Bypass (4)
    change execution in ComfyUI; Always (0), On Event (1) and On Trigger (3) all run."""
    return mode not in (MODE_MUTED, MODE_BYPASSED)


# Values the editor stores after a widget with `control_after_generate`.
SEED_CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
# Node types that exist only in the editor and never run.
FRONTEND_ONLY = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
# Where the editor keeps a latentgraph node id so a YAML → editor → YAML trip keeps names.
ID_PROPERTY = "latentgraph_id"

_SUBGRAPH_INPUT = -10
_SUBGRAPH_OUTPUT = -20


def is_editor_workflow(data: Any) -> bool:
    """True for the editor's shape: a `nodes` list (the API format is a mapping of ids)."""
    return isinstance(data, Mapping) and isinstance(data.get("nodes"), list)


def widget_inputs(node_type: NodeType) -> list[Input]:
    """The inputs that are editor widgets, in `widgets_values` order: ComfyUI's (required,
    then optional), then latentgraph's extras on a node of ComfyUI's name (`Input.comfy_extra`,
    widgets only to files this program wrote). A file ComfyUI saved ends before them; one our
    served editor saved before they became sockets, or `editor_from_graph` wrote with one set,
    holds their values after ComfyUI's, where they are read."""
    widgets = [i for i in node_type.inputs if i.accepts_literal and i.type in WIDGET_TYPES]
    return sorted(widgets, key=lambda i: (i.comfy_extra, i.optional))


def _upload_slot(widgets: list[Input]) -> int | None:
    """Index of the widget the editor's upload-button value follows, or None without one.

    The editor adds the button as one more required input, so its value comes after the
    required widgets (LoadImageMask saves ["mask.png", "red", "image"]), before optional ones.
    """
    uploads = [n for n, i in enumerate(widgets) if i.image_upload]
    if not uploads:
        return None
    required = [n for n, i in enumerate(widgets) if not i.optional]
    return max(uploads[0], required[-1] if required else 0)


# --- editor → Graph -------------------------------------------------------------------------


@dataclass
class _Raw:
    """One editor node after subgraph flattening, before resolution."""

    id: str
    type: str
    mode: int
    data: dict[str, Any]
    # input slot -> (origin node id, origin slot), from the links
    in_links: dict[int, tuple[str, int]] = field(default_factory=dict)
    # for a subgraph's input node: slot -> literal promoted onto the instance
    literals: dict[int, Any] = field(default_factory=dict)
    # for a subgraph's input node: the subgraph's input names, by slot
    input_names: list[Any] = field(default_factory=list)
    kind: str = "node"  # "node" | "subgraph" | "sg_in" | "sg_out"
    # input slot -> why the link its entry names leads to no node (`_Flattener._name_dangling`)
    dangling: dict[int, str] = field(default_factory=dict)

    def shown_type(self) -> str:
        """The node's type as messages name it (a subgraph instance: "subgraph")."""
        return "subgraph" if self.kind == "subgraph" else self.type

    def user_title(self, node_type: NodeType | None) -> str:
        """The title the user gave the node in the editor, or "": the editor saves a title
        only when it differs from the type's own (display) name; the one `editor_from_graph`
        writes for a named node (its latentgraph id) is none either."""
        title = self.data.get("title")
        properties = self.data.get("properties")
        own = properties.get(ID_PROPERTY) if isinstance(properties, Mapping) else None
        names = {self.type, own, node_type.display_name if node_type else None}
        if self.type == "PrimitiveNode":
            names.add("Primitive")
        return title if isinstance(title, str) and title.strip() and title not in names else ""

    def place(self, source: str, registry: Registry) -> Location:
        """Where the node was written, naming its title when the user gave it one."""
        title = self.user_title(registry.get(self.type))
        return EditorLocation(source, title=title, node_type=self.type) if title else \
            Location(source)  # fmt: skip


@dataclass(frozen=True)
class _Muted:
    """Marks a link whose source is muted, or bypassed with no linked input of the output's
    type to pass on (`passes`: that type, "" for any): the target loses that input, as in
    ComfyUI. `node` is that node, for the messages about what it dropped."""

    node: str
    bypassed: bool = False
    passes: str = ""

    @property
    def state(self) -> str:
        """Why the node gives nothing: "muted", or its bypass passing nothing on."""
        if not self.bypassed:
            return "muted"
        kind = f"{self.passes} " if self.passes else ""
        return f"bypassed with no linked {kind}input to pass on"


def _parse_link(link: Any) -> tuple[Any, Any, Any, Any, Any] | None:
    """A link's (id, from, from_slot, to, to_slot), from the array form
    `[id, from, from_slot, to, to_slot, type]` or the object form."""
    if isinstance(link, list) and len(link) >= 5:
        return (link[0], link[1], link[2], link[3], link[4])
    if isinstance(link, Mapping):
        try:
            return (link.get("id"), link["origin_id"], link["origin_slot"], link["target_id"],
                    link["target_slot"])  # fmt: skip
        except KeyError:
            return None
    return None


_UNSAID = object()


def _link_id_at(node: Mapping[str, Any], slot: int) -> Any:
    """The link id a node's input entry at `slot` names (None: not linked), or `_UNSAID` when
    there is no entry saying so (a subgraph's output node, a hand-written file): then the links
    to that slot count."""
    inputs = node.get("inputs")
    if not isinstance(inputs, list) or slot >= len(inputs) or not isinstance(inputs[slot], Mapping):
        return _UNSAID
    link_id = inputs[slot].get("link", _UNSAID)
    return link_id if link_id is None or isinstance(link_id, int | str) else _UNSAID


class _Flattener:
    """Collects the nodes of a workflow and of every subgraph instance into one table."""

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.nodes: dict[str, _Raw] = {}
        # node id -> widget values promoted onto the subgraph instances around it
        self.overrides: dict[str, dict[str, Any]] = {}
        defs = (data.get("definitions") or {}).get("subgraphs") or []
        self.subgraphs = {
            s["id"]: s for s in defs if isinstance(s, Mapping) and isinstance(s.get("id"), str)
        }

    def problem(self, message: str, node_id: str | None = None) -> None:
        loc = Location(self.source)
        self.problems.append(Problem("syntax", message, node_id=node_id, location=loc))

    def add_level(self, level: Mapping[str, Any], prefix: str, depth: int = 0) -> None:
        """Add the nodes and links of one graph level (the top or a subgraph body)."""
        if depth > 32:
            self.problem("subgraphs nested more than 32 deep (a subgraph containing itself?)")
            return
        where = f"subgraph instance {prefix[:-1]}" if prefix else "workflow"
        nodes = level.get("nodes")
        if not isinstance(nodes, list):
            self.problem(f"{where}: 'nodes' must be a list")
            return
        ids: dict[Any, str] = {}
        for n in nodes:
            if not isinstance(n, Mapping) or "id" not in n or not isinstance(n.get("type"), str):
                self.problem(f"a node without an 'id' and a 'type' string: {str(n)[:80]}")
                continue
            nid = f"{prefix}{n['id']}"
            if nid in self.nodes:
                self.problem(f"node id {n['id']!r} appears twice", node_id=nid)
                continue
            ids[n["id"]] = nid
            mode = n.get("mode")
            kind = "subgraph" if n["type"] in self.subgraphs else "node"
            self.nodes[nid] = _Raw(
                nid, n["type"], mode if isinstance(mode, int) else MODE_NORMAL, dict(n), kind=kind
            )
        if prefix:  # the virtual input/output nodes of a subgraph body
            for special, kind in ((_SUBGRAPH_INPUT, "sg_in"), (_SUBGRAPH_OUTPUT, "sg_out")):
                nid = f"{prefix}{special}"
                ids[special] = nid
                self.nodes[nid] = _Raw(nid, kind, MODE_NORMAL, {}, kind=kind)
        links = level.get("links") or []
        if not isinstance(links, list):
            self.problem(f"{where}: 'links' must be a list")
            links = []
        by_id: dict[Any, tuple[str, int]] = {}
        # why a link an input may name leads to no node, by link id
        dangling: dict[Any, str] = {}
        place = f"subgraph instance {prefix[:-1]}" if prefix else "the file"
        for raw in links:
            if raw is None:  # the editor's graph library skips these (with a console warning)
                continue
            parsed = _parse_link(raw)
            if parsed is None:
                self.problem(
                    f"a link of the wrong shape: {str(raw)[:80]} (expected [id, from, from_slot, to, to_slot, type])"
                )
                continue
            link_id, src, src_slot, dst, dst_slot = parsed
            if src not in ids or dst not in ids:
                # dangling links are common in saved files: the target just loses it, and a
                # required input left without a link names it (graph_from_editor)
                if src not in ids:
                    why = f"link {link_id} comes from node '{prefix}{src}', which is not in {place}"
                    dangling.setdefault(link_id, why)
                    if dst in ids and isinstance(dst_slot, int) and dst_slot >= 0 and (
                            _link_id_at(self.nodes[ids[dst]].data, dst_slot) is _UNSAID):  # fmt: skip
                        self.nodes[ids[dst]].dangling[dst_slot] = why
                continue
            if not isinstance(src_slot, int) or not isinstance(dst_slot, int):
                self.problem(f"a link with non-integer slots: {str(raw)[:80]}")
                continue
            by_id.setdefault(link_id, (ids[src], src_slot))
            if _link_id_at(self.nodes[ids[dst]].data, dst_slot) is _UNSAID:
                self.nodes[ids[dst]].in_links[dst_slot] = (ids[src], src_slot)
        listed = {p[0] for p in map(_parse_link, links) if p is not None}
        for nid in ids.values():
            self._link_inputs(self.nodes[nid], by_id)
            self._name_dangling(self.nodes[nid], by_id, dangling, listed, place)
        # Expand subgraph instances that run (muted/bypassed instances act as one node).
        for nid in list(ids.values()):
            raw = self.nodes[nid]
            if raw.kind == "subgraph" and mode_runs(raw.mode):
                self.expand(raw, depth)

    @staticmethod
    def _link_inputs(raw: _Raw, by_id: Mapping[Any, tuple[str, int]]) -> None:
        """Connect each input to the link its entry names, as the editor does: a link that
        only claims the slot (a leftover after an edit) does not count."""
        inputs = raw.data.get("inputs")
        for slot in range(len(inputs) if isinstance(inputs, list) else 0):
            link_id = _link_id_at(raw.data, slot)
            if link_id is not _UNSAID and link_id in by_id:
                raw.in_links[slot] = by_id[link_id]

    @staticmethod
    def _name_dangling(raw: _Raw, by_id: Mapping[Any, Any], dangling: Mapping[Any, str],
                       listed: set[Any], place: str) -> None:  # fmt: skip
        """Say why each link an input entry names leads to no node: a link id not in the
        links, or a link from a node that is not there."""
        inputs = raw.data.get("inputs")
        for slot in range(len(inputs) if isinstance(inputs, list) else 0):
            link_id = _link_id_at(raw.data, slot)
            if link_id is _UNSAID or link_id is None or link_id in by_id:
                continue
            if link_id in dangling:
                raw.dangling[slot] = dangling[link_id]
            elif link_id not in listed:
                where = "the file's links" if place == "the file" else f"the links of {place}"
                raw.dangling[slot] = f"link {link_id} is not in {where}"

    def expand(self, instance: _Raw, depth: int) -> None:
        body = self.subgraphs[instance.type]
        prefix = f"{instance.id}:"
        self.add_level(body, prefix, depth + 1)
        sg_in = self.nodes.get(f"{prefix}{_SUBGRAPH_INPUT}")
        if sg_in is None:
            return
        names = _subgraph_input_names(body, instance.data.get("inputs"))
        sg_in.input_names = names
        sg_in.in_links = _border_links(names, instance)
        for target, widget, value in self.promoted(instance):
            self.promote(instance, target, widget, value)

    def promoted(self, instance: _Raw) -> list[tuple[str, str, Any]]:
        """(inner node id or "-1" for the subgraph's input node, widget name, value) for each
        value saved on an instance. With `properties.proxyWidgets` (frontend 1.35+) the values
        follow its entries one for one; before that, the instance's widget inputs in order."""
        values = instance.data.get("widgets_values")
        if not isinstance(values, list):
            return []
        properties = instance.data.get("properties")
        proxies = properties.get("proxyWidgets") if isinstance(properties, Mapping) else None
        if proxies is None:
            inputs = instance.data.get("inputs") or []
            names = [i["name"] for i in inputs if isinstance(i, Mapping) and i.get("widget")
                     and isinstance(i.get("name"), str)]  # fmt: skip
            return [("-1", name, v) for name, v in zip(names, values, strict=False)]
        entries = _proxy_entries(proxies)
        if entries is None:
            self.problem(f"properties.proxyWidgets = {str(proxies)[:80]} is not a list of "
                         "[node id, widget name] pairs", node_id=instance.id)  # fmt: skip
            return []
        return [(target, widget, v) for (target, widget), v in zip(entries, values, strict=False)
                if widget != CONTROL_WIDGET]  # fmt: skip

    def promote(self, instance: _Raw, target: str, widget: str, value: Any) -> None:
        """Give a value promoted onto `instance` to the widget it stands for: the subgraph
        input of that name ("-1"), an inner node's widget, or through an inner instance (its
        input or one of its own promoted widgets) to a node further in. Values of an outer
        instance are applied after the inner ones, so they win."""
        prefix = f"{instance.id}:"
        if target == "-1":
            sg_in = self.nodes.get(f"{prefix}{_SUBGRAPH_INPUT}")
            names = sg_in.input_names if sg_in is not None else []
            if widget in names and names.index(widget) not in sg_in.in_links:
                sg_in.literals[names.index(widget)] = value
            return
        inner = self.nodes.get(f"{prefix}{target}")
        if inner is None:
            return
        if inner.kind != "subgraph":
            self.overrides.setdefault(inner.id, {})[widget] = value
            return
        sg_in = self.nodes.get(f"{inner.id}:{_SUBGRAPH_INPUT}")
        if sg_in is not None and widget in sg_in.input_names:
            self.promote(inner, "-1", widget, value)
            return
        for inner_target, inner_widget, _ in self.promoted(inner):
            if inner_widget == widget:
                self.promote(inner, inner_target, widget, value)


CONTROL_WIDGET = "control_after_generate"


def _proxy_entries(proxies: Any) -> list[tuple[str, str]] | None:
    """`proxyWidgets` as (node id, widget name) pairs; some frontend versions save it as JSON
    text. None when it is not that shape."""
    if isinstance(proxies, str):
        try:
            proxies = json.loads(proxies)
        except ValueError:
            return None
    if not isinstance(proxies, list):
        return None
    entries = []
    for entry in proxies:
        if not (isinstance(entry, list) and len(entry) == 2
                and all(isinstance(x, str | int) and not isinstance(x, bool) for x in entry)):  # fmt: skip
            return None
        entries.append((str(entry[0]), str(entry[1])))
    return entries


def _subgraph_input_names(body: Mapping[str, Any], instance_inputs: Any) -> list[Any]:
    """The names of a subgraph's inputs, by index (the slots of its input node). A body
    without an `inputs` list (hand-written) takes the instance's input names."""
    declared = body.get("inputs")
    entries = declared if isinstance(declared, list) else instance_inputs
    if not isinstance(entries, list):
        return []
    return [e.get("name") if isinstance(e, Mapping) else None for e in entries]


def _border_links(names: list[Any], instance: _Raw) -> dict[int, tuple[str, int]]:
    """What feeds each subgraph input, from the links into the instance. The instance's inputs
    are matched to the subgraph's by name: frontends 1.35+ leave out of the instance the inputs
    that are only widgets, so its slots are not the subgraph's."""
    inputs = instance.data.get("inputs") or []
    out: dict[int, tuple[str, int]] = {}
    for slot, origin in instance.in_links.items():
        name = (
            inputs[slot].get("name")
            if slot < len(inputs) and isinstance(inputs[slot], Mapping)
            else None
        )
        index = names.index(name) if name is not None and name in names else slot
        out[index] = origin
    return out


@dataclass(frozen=True)
class _Literal:
    """A value that reaches an input instead of a link (a PrimitiveNode, a promoted widget):
    `primitive` is the PrimitiveNode it comes from."""

    value: Any
    primitive: _Raw | None = None


class _Resolver:
    def __init__(self, nodes: dict[str, _Raw]) -> None:
        self.nodes = nodes

    def resolve(self, origin: tuple[str, int] | None) -> Link | _Literal | _Muted | None:
        """Follow an output reference through reroutes, bypassed nodes and subgraph borders to
        a real node's output, a literal, `_Muted`, or None when it leads nowhere (a loop of
        reroutes included)."""
        seen: set[tuple[str, int]] = set()
        while origin is not None and origin not in seen:
            seen.add(origin)
            nid, slot = origin
            raw = self.nodes.get(nid)
            if raw is None or raw.kind == "sg_out":  # the output node has no outputs
                return None
            if raw.kind == "sg_in":
                if slot in raw.literals:
                    return _Literal(raw.literals[slot])
                origin = raw.in_links.get(slot)
            elif raw.mode == MODE_MUTED:
                return _Muted(raw.id)
            elif raw.mode == MODE_BYPASSED:
                origin = self._bypass(raw, slot)
                if origin is None:  # nothing to pass on: as muted, named as bypassed
                    kind = _output_type(raw, slot)
                    return _Muted(raw.id, True, "" if kind in (None, "*") else kind)
            elif raw.type == "Reroute":
                origin = raw.in_links.get(0)
            elif raw.type == "PrimitiveNode":
                values = raw.data.get("widgets_values")
                return _Literal(values[0], raw) if isinstance(values, list) and values else None
            elif raw.kind == "subgraph":
                out = self.nodes.get(f"{raw.id}:{_SUBGRAPH_OUTPUT}")
                origin = out.in_links.get(slot) if out is not None else None
            else:
                return Link(raw.id, slot)
        return None

    @staticmethod
    def _bypass(raw: _Raw, slot: int) -> tuple[str, int] | None:
        """A bypassed node passes on the input of the output's type (same slot first)."""
        inputs = raw.data.get("inputs") or []
        want = _output_type(raw, slot)
        candidates = [slot] + [i for i in range(len(inputs)) if i != slot]
        for i in candidates:
            if i >= len(inputs) or i not in raw.in_links or not isinstance(inputs[i], Mapping):
                continue
            if want is None or inputs[i].get("type") in (want, "*") or want == "*":
                return raw.in_links[i]
        return None


def _output_type(raw: _Raw, slot: int) -> str | None:
    """The type of a node's output `slot` as the file saved it, or None."""
    outputs = raw.data.get("outputs") or []
    entry = outputs[slot] if slot < len(outputs) else None
    kind = entry.get("type") if isinstance(entry, Mapping) else None
    return kind if isinstance(kind, str) else None


def _fits(inp: Input, value: Any) -> bool:
    """Whether a saved widget value has the shape of its widget (None: left to validation)."""
    if value is None:
        return True
    if inp.type == BOOLEAN:
        return isinstance(value, bool)
    if inp.type in (INT, FLOAT):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)  # STRING and dropdowns


def is_seed_control(value: Any) -> bool:
    """The editor-only value after a seed widget: a mode name, or a boolean in the files of
    some frontend versions (the editor's own default workflow among them)."""
    return isinstance(value, bool) or value in SEED_CONTROL_VALUES


def map_widgets(node_type: NodeType, values: Any) -> tuple[dict[str, Any], str | None]:
    """Assign positional `widgets_values` to widget input names, by declaration.

    Returns (values by name, why the list does not fit or None). A list that does not fit (a
    value of the wrong kind, values left over) is refused rather than shifted onto the wrong
    widgets; values missing at the end leave those widgets at their defaults."""
    if isinstance(values, Mapping):  # some nodes save widgets by name
        return {k: inp.literal(v) for k, v in values.items()
                if (inp := node_type.input(k)) is not None}, None  # fmt: skip
    if not isinstance(values, list):
        return {}, None
    widgets = widget_inputs(node_type)
    upload = _upload_slot(widgets)
    out: dict[str, Any] = {}
    pos = 0
    for n, inp in enumerate(widgets):
        if pos >= len(values):
            break
        if not _fits(inp, values[pos]):
            return out, (f"widgets_values[{pos}] = {values[pos]!r} does not fit widget "
                         f"{inp.name!r} ({inp.type}); {node_type.name} widgets in order: "
                         f"{_widget_order(widgets)}")  # fmt: skip
        out[inp.name] = inp.literal(values[pos])
        pos += 1
        if inp.seed and pos < len(values) and is_seed_control(values[pos]):
            pos += 1
        if n == upload:
            rest_widgets = len(widgets) - n - 1
            if len(values) - pos > rest_widgets:
                pos += 1
    if pos < len(values):
        return out, (f"{len(values)} widgets_values for {len(widgets)} widget(s) of "
                     f"{node_type.name}: {values[pos:]!r} left over; widgets in order: "
                     f"{_widget_order(widgets)}")  # fmt: skip
    return out, None


def _widget_order(widgets: list[Input]) -> str:
    return ", ".join(w.name + (" (+ control value)" if w.seed else "") for w in widgets)


def graph_from_editor(data: Mapping[str, Any], registry: Registry | None = None, *,
                      source: str = "<editor>") -> Graph:  # fmt: skip
    """Convert an editor-format workflow into a runnable `Graph`.

    Unknown node types are kept (with their links) so validation reports them by name. A
    node that loses a required input because its source is muted (or bypassed with no linked
    input of the output's type to pass on) is dropped too, and so on downstream: muting a node
    mutes what needs it. When that leaves no output node, the
    refusal names the muted nodes the outputs needed (`_muted_outputs`); when other outputs
    are left to run, a `WorkflowWarning` names each output dropped and the muted node it needs.

    Messages name a node with the title the user gave it (`node_name`): problems at its place
    (an `EditorLocation`), an input a PrimitiveNode sets with that PrimitiveNode too.

    A node that cannot be read (its `widgets_values` do not fit, a group node that cannot be
    expanded, an id used twice) is reported and left out, and reading goes on: the refusal
    lists every such problem (and each required input whose link leads to no node), then the
    validation errors of the rest of the graph, as for a file without them. A document whose
    shape is wrong (a link or node list that cannot be read) is refused with just that.
    """
    graph, dropped_outputs = _read_graph(data, registry or default_registry, source)
    for reason in dropped_outputs:
        warnings.warn(f"{source}: {reason}: it is left out, the other outputs run",
                      WorkflowWarning, stacklevel=2)  # fmt: skip
    return graph


def _read_graph(data: Mapping[str, Any], registry: Registry,
                source: str) -> tuple[Graph, list[str]]:  # fmt: skip
    """`graph_from_editor`'s graph, and why each output node muting dropped while others are
    left to run is gone (said as a warning by `graph_from_editor`)."""
    data, flat, problems = _flattened(data, registry, source)
    reader = _GraphReader(flat, registry, source, problems)
    for raw in flat.nodes.values():
        reader.read(raw)
    return reader.finish(_preferred_ids(data))


def _flattened(data: Mapping[str, Any], registry: Registry,
               source: str) -> tuple[Mapping[str, Any], _Flattener, list[Problem]]:  # fmt: skip
    """The document with its group nodes expanded, its nodes flattened out of subgraphs, and
    the problems found doing so. A document whose shape is wrong (no node list, a link or node
    list that cannot be read) is refused here: what would be read of the rest would mislead."""
    if not is_editor_workflow(data):
        loc = Location(source)
        raise WorkflowError(
            [Problem("syntax", "not an editor workflow: expected a 'nodes' list", location=loc)]
        )
    group_problems: list[Problem] = []
    data = expand_group_nodes(data, registry, source, problems=group_problems)
    flat = _Flattener(data, source)
    flat.add_level(data, "")
    problems = group_problems + flat.problems
    if any(p.node_id is None for p in flat.problems):  # the document's shape: links or nodes
        raise WorkflowError(problems)  # are lost, what is read of the rest would mislead
    return data, flat, problems


def _input_name(entry: Any) -> str | None:
    """The input an editor node's `inputs` entry is for: a widget turned into an input by its
    widget's name, else the entry's own; None for an entry that names none."""
    if not isinstance(entry, Mapping):
        return None
    widget = entry.get("widget")
    name = (
        widget.get("name")
        if isinstance(widget, Mapping) and widget.get("name")
        else entry.get("name")
    )
    return name if isinstance(name, str) else None


class _GraphReader:
    """Reading the flattened editor nodes into a `Graph`, one at a time, then finishing it:
    the state the reading keeps between nodes (the links to muted nodes, the nodes left out,
    the output nodes muted or bypassed, the problems) in one place."""

    def __init__(self, flat: _Flattener, registry: Registry, source: str,
                 problems: list[Problem]) -> None:  # fmt: skip
        self.flat = flat
        self.registry = registry
        self.source = source
        self.problems = problems
        self.resolver = _Resolver(flat.nodes)
        self.graph = Graph(source=source, dialect="comfy")
        self.muted_inputs: dict[str, list[tuple[str, _Muted]]] = {}
        self.unread: set[str] = set()  # nodes left out: their problems are reported already
        self.stopped: list[_Raw] = []  # output nodes muted or bypassed themselves

    def read(self, raw: _Raw) -> None:
        """One editor node into the graph, with its widget values and links; a node the
        frontend alone has, or that does not run (muted, bypassed), is not, nor one that
        cannot be read (its problem said, it is left out and reading goes on)."""
        if raw.kind != "node" or raw.type in FRONTEND_ONLY:
            return
        node_type = self.registry.get(raw.type)
        if not mode_runs(raw.mode):
            if node_type is not None and node_type.output_node:
                self.stopped.append(raw)
            return
        place = raw.place(self.source, self.registry)
        input_places: dict[str, Location] = {}
        inputs = self._widgets(raw, node_type, place)
        if inputs is None:
            self.unread.add(raw.id)
            return
        unlinked = self._links(raw, inputs, input_places, place)
        if node_type is not None:
            self.problems += _dangling_problems(raw, node_type, inputs, unlinked, place)
        title = raw.data.get("title")
        self.graph.add(Node(id=raw.id, type=raw.type, inputs=inputs,
                            title=title if isinstance(title, str) else None,
                            location=place, input_locations=input_places))  # fmt: skip

    def _widgets(self, raw: _Raw, node_type: NodeType | None,
                 place: Location) -> dict[str, Any] | None:  # fmt: skip
        """The node's widget values (`map_widgets`), with the ones a subgraph instance
        promoted onto it; None when it cannot be read: a group node that could not be
        expanded (said already), widgets_values that do not fit (said here)."""
        if group_name(raw.type) is not None:  # a group node that could not be expanded
            return None
        if node_type is None:
            return {}
        inputs, misfit = map_widgets(node_type, raw.data.get("widgets_values"))
        if misfit:
            self.problems.append(Problem("invalid_input_type", misfit, node_id=raw.id,
                                         location=place, node_type=raw.type))  # fmt: skip
            return None
        promoted = self.flat.overrides.get(raw.id, {})
        inputs.update((k, v) for k, v in promoted.items() if node_type.input(k) is not None)
        return inputs

    def _links(self, raw: _Raw, inputs: dict[str, Any], input_places: dict[str, Location],
               place: Location) -> list[tuple[str, str]]:  # fmt: skip
        """Put what the node's input links resolve to into `inputs`: a node's output, a value
        (a PrimitiveNode's, placed at it in `input_places`) or nothing (a muted source, kept
        for the messages). Returns the (input name, why) of links that lead to no node."""
        unlinked: list[tuple[str, str]] = []  # (input name, why its link leads nowhere)
        for slot, inp in enumerate(raw.data.get("inputs") or []):
            name = _input_name(inp)
            if name is None:
                continue
            if slot not in raw.in_links:
                if slot in raw.dangling:
                    unlinked.append((name, raw.dangling[slot]))
                continue
            target = self.resolver.resolve(raw.in_links[slot])
            if target is None:
                continue  # dangling: a widget keeps its value, a socket is reported as missing
            if isinstance(target, _Muted):
                inputs.pop(name, None)
                self.muted_inputs.setdefault(raw.id, []).append((name, target))
            elif isinstance(target, _Literal):
                inputs[name] = target.value
                if target.primitive is not None:
                    input_places[name] = _primitive_place(place, target.primitive, self.source)
            else:
                inputs[name] = target
        return unlinked

    def finish(self, top_ids: dict[str, str]) -> tuple[Graph, list[str]]:
        """The graph read, without what muting dropped and with its nodes' latentgraph ids
        back (`top_ids`), and why each output muting dropped is gone; a `WorkflowError` with
        every problem (a workflow left with no output to run among them) instead when any."""
        registry, problems, flat = self.registry, self.problems, self.flat
        dropped = _drop_muted_dependents(self.graph, self.muted_inputs, registry)
        names = _safe_names(self.graph, top_ids)
        graph = _rename(self.graph, names)
        for problem in problems:
            if problem.node_id in names:
                problem.node_id = names[problem.node_id]

        def named(nid: str) -> str:
            raw = flat.nodes[nid]
            return node_name(names.get(nid, nid), raw.shown_type(),
                             raw.user_title(registry.get(raw.type)))  # fmt: skip

        lost = _dropped_outputs(dropped, named, registry)
        if not any(_may_be_output(flat.nodes[nid].type, registry) for nid in self.unread):
            problems += _muted_outputs(graph, lost, self.stopped, named, registry)
        if problems:
            rest = _rest_of_graph(graph, registry, problems, self.unread, names)
            raise WorkflowError(problems + rest)
        return graph, lost


def _primitive_place(place: Location, primitive: _Raw, source: str) -> EditorLocation:
    """Where an input a PrimitiveNode sets was given its value: the node's place (`place`),
    naming the PrimitiveNode."""
    title = primitive.user_title(None)
    if isinstance(place, EditorLocation):
        return EditorLocation(source, title=place.title, node_type=place.node_type,
                              primitive=primitive.id, primitive_title=title)  # fmt: skip
    return EditorLocation(source, primitive=primitive.id, primitive_title=title)


def _dangling_problems(raw: _Raw, node_type: NodeType, inputs: Mapping[str, Any],
                       unlinked: list[tuple[str, str]], place: Location) -> list[Problem]:  # fmt: skip
    """A required input left with nothing because the link its entry names leads to no node:
    named with that link (without, it read as an input never linked). An optional input, or
    a widget keeping its value, just loses the link, as in the editor."""
    out = []
    for name, why in unlinked:
        decl = node_type.input(name)
        if decl is None or not decl.required or name in inputs:
            continue
        out.append(Problem("required_input_missing",
                           f"{why}, so this required {decl.type} input has no link",
                           node_id=raw.id, input_name=name, location=place,
                           node_type=raw.type))  # fmt: skip
    return out


def _rest_of_graph(graph: Graph, registry: Registry, problems: list[Problem], unread: set[str],
                   names: Mapping[str, str]) -> list[Problem]:  # fmt: skip
    """The validation errors of the graph read around `problems` (the nodes `unread` left
    out), without echoes of them: what a file without those problems would be told."""
    from .workflow.building import other_problems

    left_out = {names.get(nid, nid) for nid in unread}
    rest = other_problems(graph, registry, problems, set(graph.nodes) | left_out)
    if any(p.code == "prompt_no_outputs" for p in problems):  # said with its cause already
        rest = [p for p in rest if p.code != "prompt_no_outputs"]
    return rest


@dataclass(frozen=True)
class _Dropped:
    """A node muting dropped (`type`), the muted node it needs and the node and input that
    took that node's output (the dropped node itself, or one it needs)."""

    type: str
    muted: _Muted
    taker: str
    taker_type: str
    input: str


def _drop_muted_dependents(graph: Graph, muted_inputs: dict[str, list[tuple[str, _Muted]]],
                           registry: Registry) -> dict[str, _Dropped]:  # fmt: skip
    """Drop the nodes that lose a required input to a muted node, and what needs them: the
    dropped nodes by id, each with the muted node it needs."""
    dropped: dict[str, _Dropped] = {}
    for nid, entries in muted_inputs.items():
        node = graph[nid]
        node_type = registry.get(node.type)
        for name, muted in entries:
            inp = node_type.input(name) if node_type else None
            if (inp is None or inp.required) and nid not in dropped:
                dropped[nid] = _Dropped(node.type, muted, nid, node.type, name)
    changed = bool(dropped)
    while changed:
        changed = False
        for node in graph:
            if node.id in dropped:
                continue
            cause = next((dropped[link.node] for _, link in node.links() if link.node in dropped),
                         None)  # fmt: skip
            if cause is not None:
                dropped[node.id] = _Dropped(node.type, cause.muted, cause.taker, cause.taker_type,
                                            cause.input)  # fmt: skip
                changed = True
    for nid in dropped:
        del graph.nodes[nid]
    return dropped


def _may_be_output(type_name: str, registry: Registry) -> bool:
    """An output node, or a node of a type not installed (which may be one)."""
    node_type = registry.get(type_name)
    return node_type is None or node_type.output_node


def _dropped_outputs(dropped: Mapping[str, _Dropped], named: Callable[[str], str],
                     registry: Registry) -> list[str]:  # fmt: skip
    """Why each output node muting dropped is gone: `node '9' (SaveImage) needs node '7'
    (CLIPTextEncode), which is muted (node '3' (KSampler) input 'negative' takes it)`."""
    reasons = []
    for nid, why in dropped.items():
        node_type = registry.get(why.type)
        if node_type is None or not node_type.output_node:
            continue
        reason = f"{named(nid)} needs {named(why.muted.node)}, which is {why.muted.state}"
        if why.taker == nid:
            reason += f" (its input '{why.input}')"
        else:
            reason += f" ({named(why.taker)} input '{why.input}' takes it)"
        reasons.append(reason)
    return reasons


def _muted_outputs(graph: Graph, lost: list[str], stopped: list[_Raw],
                   named: Callable[[str], str], registry: Registry) -> list[Problem]:  # fmt: skip
    """The refusal of a workflow whose every output node is muted, bypassed or needs a muted
    node (`lost`, `_dropped_outputs`), instead of only "no output node". Nothing while an
    output node (or a node of unknown type, which may be one) is left to run, or when no
    output node was there to begin with."""
    if any(_may_be_output(n.type, registry) for n in graph):
        return []
    reasons = []
    for raw in stopped:
        state = "muted" if raw.mode == MODE_MUTED else "bypassed"
        reasons.append(f"{named(raw.id)} is {state}")
    reasons += lost
    if not reasons:
        return []
    message = "the workflow has no output node left to run: " + "; ".join(reasons)
    return [Problem("prompt_no_outputs", message, location=Location(graph.source))]


def _preferred_ids(data: Mapping[str, Any]) -> dict[str, str]:
    """Editor id -> latentgraph id saved in node properties by `editor_from_graph` (a
    subgraph's inner id `10:3` too, so it survives editor -> YAML/API -> editor trips)."""
    out: dict[str, str] = {}
    for n in data.get("nodes") or []:
        if isinstance(n, Mapping) and isinstance(n.get("properties"), Mapping):
            name = n["properties"].get(ID_PROPERTY)
            if isinstance(name, str) and name:
                out[str(n.get("id"))] = name
    if len(set(out.values())) != len(out):
        return {}
    return out


def _safe_names(graph: Graph, names: dict[str, str]) -> dict[str, str]:
    """`names` when every one can be given back (none is the id of a node it does not rename),
    else none of them."""
    taken = set(graph.nodes) - set(names)
    return {} if taken & set(names.values()) else names


def _rename(graph: Graph, names: dict[str, str]) -> Graph:
    """Give nodes back their latentgraph ids. A title equal to the restored id is the one
    `editor_from_graph` wrote for an untitled node: the node is untitled again."""
    names = _safe_names(graph, names)
    if not names:
        return graph

    def new(nid: str) -> str:
        return names.get(nid, nid)

    out = Graph(source=graph.source, dialect=graph.dialect)
    for node in graph:
        inputs = {k: Link(new(v.node), v.output) if isinstance(v, Link) else v
                  for k, v in node.inputs.items()}  # fmt: skip
        title = None if node.id in names and node.title == names[node.id] else node.title
        out.add(Node(new(node.id), node.type, inputs, title, node.location, node.input_locations))
    return out


# --- Graph → editor -------------------------------------------------------------------------


def _editor_value(inp: Input, value: Any) -> Any:
    """A widget's saved value: a linked or unset widget keeps its declared default (null when
    it has none), as the editor saves a widget converted to an input."""
    if isinstance(value, Link) or value is None:
        return None if inp.default is REQUIRED else inp.default
    return value


def _widgets_written(widgets: list[Input], node: Node) -> int:
    """How many of `widgets` a node's `widgets_values` hold: up to the last one that is
    required or given. Optional widgets left unset at the end (latentgraph's own, such as
    VAEDecode's `tiled` and `sliced`, which ComfyUI's node of that name does not have) are
    left out, so ComfyUI's editor reads the widget list of its own node; reading the file
    back leaves them unset too. An extra given a value is written after ComfyUI's widgets,
    which the editor ignores (it has no widget there) and this reader reads back."""
    count = len(widgets)
    while count and (last := widgets[count - 1]).optional and node.inputs.get(last.name) is None:
        count -= 1
    return count


def _output_slots(graph: Graph, registry: Registry) -> dict[str, list[tuple[str, str]]]:
    """Each node's output slots as (name, type): its declared outputs, or for a type that is
    not installed one "*" slot up to the highest its links use, so every link has a slot."""
    used: dict[str, int] = {}
    for node in graph:
        for _, link in node.links():
            used[link.node] = max(used.get(link.node, 0), link.output + 1)
    slots: dict[str, list[tuple[str, str]]] = {}
    for node in graph:
        node_type = registry.get(node.type)
        if node_type is not None:
            slots[node.id] = [(o.name, o.type) for o in node_type.outputs]
        else:
            slots[node.id] = [("*", "*")] * used.get(node.id, 0)
    return slots


def _editor_ids(graph: Graph) -> dict[str, int]:
    """The editor's integer id of each node: a numeric id kept, any other the next free
    integer, in graph order, after the highest numeric one."""
    ids: dict[str, int] = {}
    used = {int(n.id) for n in graph if n.id.isdigit()}
    next_id = max(used, default=0) + 1
    for node in graph:
        if node.id.isdigit():
            ids[node.id] = int(node.id)
        else:
            ids[node.id] = next_id
            next_id += 1
    return ids


def _editor_inputs(
    node: Node, node_type: NodeType | None, seed_control: str = "fixed"
) -> tuple[list[dict[str, Any]], list[Any]]:
    """A node's editor `inputs` entries (unlinked yet) and its `widgets_values`: its sockets,
    then its widgets' values in the editor's order (a seed's control value, `seed_control`,
    and the upload button's after theirs), a linked widget also an input entry; a type that is
    not installed keeps an entry per link, so nothing is silently lost."""
    inputs: list[dict[str, Any]] = []
    values: list[Any] = []
    widgets = widget_inputs(node_type) if node_type else []
    widget_names = {w.name for w in widgets}
    sockets = [i for i in node_type.inputs if i.name not in widget_names] if node_type else []
    for inp in sockets:
        inputs.append({"name": inp.name, "type": inp.type, "link": None})
    upload = _upload_slot(widgets)
    for n, inp in enumerate(widgets[: _widgets_written(widgets, node)]):
        values.append(_editor_value(inp, node.inputs.get(inp.name)))
        if inp.seed:
            values.append(seed_control)
        if n == upload:
            values.append("image")
        if isinstance(node.inputs.get(inp.name), Link):  # an extra is a socket in the editor
            widget = {} if inp.comfy_extra else {"widget": {"name": inp.name}}
            inputs.append({"name": inp.name, "type": inp.type, **widget, "link": None})
    if node_type is None:  # unknown type: keep its links so nothing is silently lost
        for name, _ in node.links():
            inputs.append({"name": name, "type": "*", "link": None})
    return inputs, values


@dataclass
class _EditorLinks:
    """The editor's link table as it is written: links numbered from 1 in the order their
    targets are written (`connect`), and each output slot's links (`outputs`)."""

    ids: dict[str, int]  # the editor id of each node (`_editor_ids`)
    slots: dict[str, list[tuple[str, str]]]  # each node's output slots (`_output_slots`)
    rows: list[list[Any]] = field(default_factory=list)
    leaving: dict[tuple[str, int], list[int]] = field(default_factory=dict)

    def connect(self, node: Node, inputs: list[dict[str, Any]]) -> None:
        """Number the links into `node`'s `inputs` entries, setting each entry's `link`."""
        for slot, entry in enumerate(inputs):
            value = node.inputs.get(entry["name"])
            if not isinstance(value, Link) or value.node not in self.ids:
                continue
            link_id = len(self.rows) + 1
            src_slots = self.slots[value.node]
            src_type = src_slots[value.output][1] if value.output < len(src_slots) else "*"
            self.rows.append([link_id, self.ids[value.node], value.output, self.ids[node.id],
                              slot, src_type])  # fmt: skip
            entry["link"] = link_id
            self.leaving.setdefault((value.node, value.output), []).append(link_id)

    def outputs(self, node: Node) -> list[dict[str, Any]]:
        """`node`'s editor `outputs`: each slot with the links leaving it."""
        return [
            {"name": name, "type": type_, "links": self.leaving.get((node.id, k), []),
             "slot_index": k}
            for k, (name, type_) in enumerate(self.slots[node.id])
        ]  # fmt: skip


def editor_from_graph(graph: Graph, registry: Registry | None = None, *,
                      seed_control: str = "fixed",
                      columns: Sequence[Sequence[str]] | None = None,
                      fitted: bool = False) -> dict[str, Any]:  # fmt: skip
    """An editor-format workflow (schema 0.4) for `graph`, laid out in columns by dependency
    depth, opened in a 1400x900 window with every node in view, or readable (`opened_view`).
    `columns` (each column's node ids, top to bottom, every node in one) arranges a graph
    whose layout someone chose; `fitted` lays out a graph the editor fits into its window
    when it opens it (a template, server/api_templates.py) so that fit is readable
    (`editor_layout.lay_out`).

    `seed_control` is what the editor does to each seed after queueing (`SEED_CONTROL_VALUES`):
    `fixed` by default, so a converted document runs what the file ran, run after run;
    `randomize` is the editor's own default for a new node, and ComfyUI's default graph's.

    Numeric node ids are kept; other ids get the next free integers, in graph order, after the
    highest numeric one. The original id is kept in the node's properties (and as its title
    when it has none) so converting back restores it. Links are numbered from 1 in the order
    their targets are written.
    """
    if seed_control not in SEED_CONTROL_VALUES:
        raise ValueError(f"seed_control {seed_control!r}: one of {sorted(SEED_CONTROL_VALUES)}")
    registry = registry or default_registry
    ids = _editor_ids(graph)
    slots = _output_slots(graph, registry)
    links = _EditorLinks(ids, slots)
    made = {node.id: _editor_inputs(node, registry.get(node.type), seed_control) for node in graph}
    heights = {node.id: node_height(registry.get(node.type), *made[node.id], slots[node.id])
               for node in graph}  # fmt: skip
    layout = lay_out(graph, heights, columns=columns, fitted=fitted)
    nodes: list[dict[str, Any]] = []
    for nid in (nid for column in layout.columns for nid in column):
        node = graph[nid]
        inputs, values = made[nid]
        links.connect(node, inputs)
        entry: dict[str, Any] = {
            "id": ids[node.id],
            "type": node.type,
            "pos": layout.positions[nid],
            "size": [layout.node_width, heights[nid]],
            "flags": {},
            "order": len(nodes),
            "mode": MODE_NORMAL,
            "inputs": inputs,
            "outputs": [],
            "properties": {"Node name for S&R": node.type},
            "widgets_values": values,
        }
        if not node.id.isdigit():
            entry["properties"][ID_PROPERTY] = node.id
        title = node.title or (None if node.id.isdigit() else node.id)
        if title:
            entry["title"] = title
        nodes.append(entry)
    by_id = {n["id"]: n for n in nodes}
    for node in graph:
        by_id[ids[node.id]]["outputs"] = links.outputs(node)
    return {
        "id": str(uuid.uuid4()),
        "revision": 0,
        "last_node_id": max(ids.values(), default=0),
        "last_link_id": len(links.rows),
        "nodes": nodes,
        "links": links.rows,
        "groups": [],
        "config": {},
        "extra": {"ds": opened_view(nodes)},
        "version": 0.4,
    }


# --- a run's values back into its editor workflow ------------------------------------------


def editor_with_values(data: Mapping[str, Any], values: Mapping[tuple[str, str], Any],
                       registry: Registry | None = None) -> dict[str, Any] | None:  # fmt: skip
    """A copy of editor workflow `data` holding `values` ((node id, input name) -> value, the
    ids `graph_from_editor` gives), as a run that overrode those inputs (--set, --sweep) saves
    it in its images; None when they cannot all be placed.

    Each value goes where the loader reads that input from: the node's own `widgets_values`,
    at the index `map_widgets` itself reads it from (so there is one widget mapping), or the
    PrimitiveNode (through reroutes) feeding it. The copy must load to the graph `data` loads
    to with exactly those inputs changed, else None: an input linked from a real node, a node
    inside a subgraph or group node (its values live in a definition every instance shares,
    or on the instance), a PrimitiveNode that feeds other inputs too."""
    import copy

    registry = registry or default_registry
    try:
        before, _ = _read_graph(data, registry, "<editor>")
    except WorkflowError:
        return None
    out = copy.deepcopy(dict(data))
    nodes = {str(n.get("id")): n for n in out.get("nodes") or [] if isinstance(n, dict)}
    links = {p[0]: p for p in map(_parse_link, out.get("links") or []) if p is not None}
    editor_ids = {name: nid for nid, name in _preferred_ids(data).items()}
    expected = {nid: dict(node.inputs) for nid, node in before.nodes.items()}
    for (node_id, name), value in values.items():
        node = nodes.get(editor_ids.get(node_id, node_id))
        if node is None or node_id not in expected:
            return None
        expected[node_id][name] = value
        entry = next((i for i in node.get("inputs") or [] if isinstance(i, Mapping)
                      and name in (i.get("name"), (i.get("widget") or {}).get("name"))), None)  # fmt: skip
        link = entry.get("link") if entry is not None else None
        if link is not None and link in links:  # fed: the PrimitiveNode it comes from
            source = nodes.get(str(links[link][1]))
            while source is not None and source.get("type") == "Reroute":
                feed = (source.get("inputs") or [{}])[0].get("link")
                source = nodes.get(str(links[feed][1])) if feed in links else None
            saved = source.get("widgets_values") if source is not None else None
            if source is None or source.get("type") != "PrimitiveNode" or not saved:
                return None
            saved[0] = value
            continue
        node_type = registry.get(node.get("type"))
        saved = node.get("widgets_values")
        if node_type is None or node_type.input(name) is None:
            return None
        if isinstance(saved, Mapping):  # saved by name
            node["widgets_values"] = {**saved, name: value}
            continue
        saved = list(saved) if isinstance(saved, list) else []
        read, misfit = map_widgets(node_type, saved)
        for index in range(0 if misfit else len(saved) + 1):
            probe = saved[:index] + [value] + saved[index + 1 :]
            got, misfit = map_widgets(node_type, probe)
            if not misfit and got == {**read, name: node_type.input(name).literal(value)}:
                node["widgets_values"] = probe
                break
        else:
            return None
    try:
        after, _ = _read_graph(out, registry, "<editor>")
    except WorkflowError:
        return None
    return out if {nid: node.inputs for nid, node in after.nodes.items()} == expected else None
