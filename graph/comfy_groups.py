"""The editor's old "group nodes", expanded into their inner nodes.

Before subgraphs, the editor could merge selected nodes into one node of type `workflow>NAME`
(`workflow/NAME` in the first versions), defined in the workflow under `extra.groupNodes[NAME]`:

    {"nodes": [inner nodes as the editor saves them, position in the list = index],
     "links": [[from index, from slot, to index, to slot, ...], ...],   # links between them
     "external": [[index, slot, type], ...],                           # outputs used outside
     "config": {index: {"input": {name: {"visible": bool}}, "output": {slot: {...}}}}}

An instance shows, in inner-node order: as inputs, the socket inputs no inner link feeds;
as widgets, every widget of every inner node (a seed widget followed by its control value)
except those converted to inputs, which become inputs of the instance after its sockets
(ComfyUI's widgets: latentgraph's extras on a node of ComfyUI's name, `Input.comfy_extra`,
take none of the values, and keep their defaults);
as outputs, the outputs that are not only used inside (or that `config` makes visible).
`expand_group_nodes` rewrites each instance into plain editor nodes with ids
`<instance id>:<index>` (as ComfyUI numbers them) and rewires the links, so the rest of the
editor loader (muting, reroutes, primitives, seed controls) applies unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .declare import Registry
from .model import Location
from .problems import Problem, WorkflowError

PREFIXES = ("workflow>", "workflow/")
# Editor-only node types that may sit inside a group: no declaration, no widgets of their own
# except a PrimitiveNode's value (and its control value).
_VIRTUAL = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})


def group_name(node_type: str) -> str | None:
    """NAME for a node type `workflow>NAME` (or the older `workflow/NAME`)."""
    for prefix in PREFIXES:
        if node_type.startswith(prefix):
            return node_type[len(prefix) :]
    return None


class _Group:
    """One group definition, with the slot maps an instance needs."""

    def __init__(self, body: Mapping[str, Any], registry: Registry) -> None:
        self.nodes: list[dict] = [n for n in body.get("nodes") or [] if isinstance(n, Mapping)]
        count = len(self.nodes)
        self.links = [ln for ln in body.get("links") or []
                      if isinstance(ln, list) and len(ln) >= 4
                      and all(type(ln[i]) is int for i in range(4))
                      and 0 <= ln[0] < count and 0 <= ln[2] < count]  # fmt: skip
        self.registry = registry
        external = {(e[0], e[1]) for e in body.get("external") or []
                    if isinstance(e, list) and len(e) >= 2}  # fmt: skip
        config = body.get("config") if isinstance(body.get("config"), Mapping) else {}
        fed = {(ln[2], ln[3]) for ln in self.links}
        used = {(ln[0], ln[1]) for ln in self.links}
        # instance input slot -> (inner index, inner slot); sockets first, converted widgets last
        self.inputs: list[tuple[int, int]] = []
        converted: list[tuple[int, int]] = []
        for index, node in enumerate(self.nodes):
            for slot, inp in enumerate(node.get("inputs") or []):
                if not isinstance(inp, Mapping) or (index, slot) in fed:
                    continue
                if (_config(config, index, "input", inp.get("name")) or {}).get("visible") is False:
                    continue
                (converted if inp.get("widget") else self.inputs).append((index, slot))
        self.inputs += converted
        # instance output slot -> (inner index, inner slot)
        self.outputs: list[tuple[int, int]] = []
        for index, node in enumerate(self.nodes):
            for slot, _ in enumerate(node.get("outputs") or []):
                inside_only = (index, slot) in used and (index, slot) not in external
                visible = (_config(config, index, "output", slot) or {}).get("visible")
                if visible if visible is not None else not inside_only:
                    self.outputs.append((index, slot))

    def unsupported(self) -> list[tuple[int, str]]:
        """(index, type) of inner nodes latentgraph has no node type for."""
        return [(i, n.get("type")) for i, n in enumerate(self.nodes)
                if n.get("type") not in _VIRTUAL and n.get("type") not in self.registry]  # fmt: skip

    def widget_values(self, instance_values: Any) -> list[list[Any] | None]:
        """The instance's widgets_values split per inner node (None: keep the node's own)."""
        if not isinstance(instance_values, list):
            return [None] * len(self.nodes)
        from .comfy_editor import is_seed_control, map_widgets, widget_inputs

        values = list(instance_values)
        pos = 0
        out: list[list[Any] | None] = []
        for node in self.nodes:
            own = node.get("widgets_values")
            if node.get("type") == "PrimitiveNode":
                count = len(own) if isinstance(own, list) else 0
                out.append(values[pos : pos + count] or None)
                pos += count
                continue
            node_type = self.registry.get(node.get("type"))
            if node_type is None:
                out.append(None)
                continue
            converted = {i.get("name") for i in node.get("inputs") or []
                         if isinstance(i, Mapping) and i.get("widget")}  # fmt: skip
            saved = map_widgets(node_type, own)[0] if converted else {}
            mine: list[Any] = []
            for inp in widget_inputs(node_type):
                if inp.comfy_extra:  # ComfyUI's node has no such widget: the group's list
                    break  # holds none (extras come last), the next values are the next node's
                if inp.name in converted:  # an input of the instance: no value there, but
                    mine.append(saved.get(inp.name))  # the inner list keeps its place
                    continue
                if pos >= len(values):
                    break
                mine.append(values[pos])
                pos += 1
                if inp.seed and pos < len(values) and is_seed_control(values[pos]):
                    mine.append(values[pos])
                    pos += 1
            out.append(mine or None)
        return out


def _config(config: Mapping, index: int, side: str, key: Any) -> Mapping | None:
    entry = config.get(str(index)) or config.get(index)  # type: ignore[call-overload]
    if not isinstance(entry, Mapping) or not isinstance(entry.get(side), Mapping):
        return None
    found = entry[side].get(str(key)) or entry[side].get(key)
    return found if isinstance(found, Mapping) else None


def expand_group_nodes(data: Mapping[str, Any], registry: Registry, source: str, *,
                       problems: list[Problem] | None = None) -> Mapping[str, Any]:  # fmt: skip
    """`data` with every group-node instance replaced by its inner nodes (a copy; `data`
    itself when it has none). An undefined group or an inner node type latentgraph does not
    have is named: in a WorkflowError, or given `problems`, added to it with that instance
    left as it is (a `workflow>NAME` node: the reader leaves it out and reads the rest)."""
    defs = (
        (data.get("extra") or {}).get("groupNodes")
        if isinstance(data.get("extra"), Mapping)
        else None
    )
    instances = [n for n in data.get("nodes") or []
                 if isinstance(n, Mapping) and isinstance(n.get("type"), str)
                 and group_name(n["type"]) is not None]  # fmt: skip
    if not instances:
        return data
    defs = defs if isinstance(defs, Mapping) else {}
    found: list[Problem] = []
    groups: dict[str, _Group] = {}
    for inst in instances:
        name = group_name(inst["type"])
        body = defs.get(name)
        where = Location(source)
        if not isinstance(body, Mapping):
            found.append(Problem("unknown_node_type", f"group node {inst['type']!r} is not "
                                 "defined in the workflow's extra.groupNodes",
                                 node_id=str(inst.get("id")), location=where,
                                 node_type=inst["type"]))  # fmt: skip
            continue
        group = groups.setdefault(name, _Group(body, registry))
        for index, inner_type in group.unsupported():
            found.append(Problem("unknown_node_type", f"group node {inst['type']!r} contains "
                                 f"node {index} of type {inner_type!r}, a ComfyUI core or "
                                 "custom node latentgraph does not have",
                                 node_id=f"{inst.get('id')}:{index}", location=where,
                                 node_type=inner_type))  # fmt: skip
    if found and problems is None:
        raise WorkflowError(found)
    if found:
        problems += found
        named = {p.node_id.split(":")[0] for p in found if p.node_id is not None}
        instances = [i for i in instances if str(i.get("id")) not in named]

    out = dict(data)
    expanded = {id(i) for i in instances}
    nodes = [n for n in data.get("nodes") or [] if id(n) not in expanded]
    links = [copy.copy(ln) for ln in data.get("links") or []]
    next_link = _max_link_id(links) + 1
    for inst in instances:
        group = groups[group_name(inst["type"])]
        gid = inst.get("id")
        inner_ids = [f"{gid}:{i}" for i in range(len(group.nodes))]
        values = group.widget_values(inst.get("widgets_values"))
        for index, node in enumerate(group.nodes):
            inner = copy.deepcopy(node)
            inner["id"] = inner_ids[index]
            inner["mode"] = inst.get("mode", 0)
            for entry in inner.get("inputs") or []:
                if isinstance(entry, dict):  # the links are renumbered: an inner input takes
                    entry.pop("link", None)  # the link to its slot, not the id it saved
            if values[index] is not None:
                inner["widgets_values"] = values[index]
            nodes.append(inner)
        for ln in group.links:
            links.append([next_link, inner_ids[ln[0]], ln[1], inner_ids[ln[2]], ln[3],
                          ln[5] if len(ln) > 5 else None])  # fmt: skip
            next_link += 1
        _rewire(links, gid, group, inner_ids)
    out["nodes"] = nodes
    out["links"] = links
    return out


def _max_link_id(links: list) -> int:
    ids = [ln[0] if isinstance(ln, list) else ln.get("id") for ln in links
           if isinstance(ln, list | Mapping)]  # fmt: skip
    return max([i for i in ids if isinstance(i, int)], default=0)


def _rewire(links: list, gid: Any, group: _Group, inner_ids: list[str]) -> None:
    """Point the outer links that end or start at the instance at the inner nodes."""
    for k, ln in enumerate(links):
        if isinstance(ln, list) and len(ln) >= 5:
            src, src_slot, dst, dst_slot = ln[1], ln[2], ln[3], ln[4]
        elif isinstance(ln, Mapping):
            src, src_slot = ln.get("origin_id"), ln.get("origin_slot")
            dst, dst_slot = ln.get("target_id"), ln.get("target_slot")
        else:
            continue
        if dst == gid and isinstance(dst_slot, int) and 0 <= dst_slot < len(group.inputs):
            index, slot = group.inputs[dst_slot]
            dst, dst_slot = inner_ids[index], slot
        if src == gid and isinstance(src_slot, int) and 0 <= src_slot < len(group.outputs):
            index, slot = group.outputs[src_slot]
            src, src_slot = inner_ids[index], slot
        link_type = ln[5] if isinstance(ln, list) and len(ln) > 5 else None
        if isinstance(ln, Mapping):
            link_type = ln.get("type")
        links[k] = [ln[0] if isinstance(ln, list) else ln.get("id"), src, src_slot, dst,
                    dst_slot, link_type]  # fmt: skip
