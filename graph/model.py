"""The in-memory graph every front end produces and the scheduler consumes.

YAML/JSON workflows, ComfyUI API prompts and ComfyUI editor graphs are all loaded into a
`Graph`. Links point at an output by index (names are resolved at load time against the node
declarations); every node and input may carry a `Location` so errors can point at the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Location:
    """Where something was written: file, 1-based line and column (0 when unknown)."""

    file: str = "<input>"
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file

    def written(self) -> Location:
        """Where the thing itself is written, without what gave the value there: an input's
        place when this is where a param's value is used, named with what gave it (the
        workflow loader's `GivenLocation`, `DefaultLocation`). A problem with the input
        itself (its name, its link) is placed here; only one with its value blames the
        value's giver."""
        return self

    @classmethod
    def at_offset(cls, file: str, text: str | bytes, offset: int) -> Location:
        """The line and column of `offset` in `text` (characters, or bytes before decoding)."""
        newline = "\n" if isinstance(text, str) else b"\n"
        line = text.count(newline, 0, offset) + 1
        return cls(file, line, offset - text.rfind(newline, 0, offset))


@dataclass(frozen=True)
class Link:
    """A connection to output number `output` of node `node`."""

    node: str
    output: int


@dataclass
class Node:
    """One node instance: its id, its type name and its inputs (literals or `Link`s)."""

    id: str
    type: str
    inputs: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    location: Location | None = None
    input_locations: dict[str, Location] = field(default_factory=dict)
    # Inputs an API prompt gave that the node type does not declare: ComfyUI ignores them, and
    # so does the run; validation warns, with a did-you-mean (a typo would silently take the
    # default of the input meant).
    ignored_inputs: tuple[str, ...] = ()

    def links(self) -> list[tuple[str, Link]]:
        return [(name, v) for name, v in self.inputs.items() if isinstance(v, Link)]


@dataclass
class Graph:
    """A set of nodes by id. Order is the order they were written in. `dialect` is "comfy"
    for graphs read from ComfyUI's formats, whose node type names are ComfyUI's."""

    nodes: dict[str, Node] = field(default_factory=dict)
    source: str = "<input>"
    dialect: str = "latentgraph"

    def add(self, node: Node) -> Node:
        """Add a node; an id already in the graph is a ValueError, never a silent replace."""
        if node.id in self.nodes:
            raise ValueError(f"node id {node.id!r} is already in the graph")
        self.nodes[node.id] = node
        return node

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def __iter__(self):
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def where(self, node_id: str, input_name: str | None = None) -> Location | None:
        node = self.nodes.get(node_id)
        if node is None:
            return None
        if input_name is not None and input_name in node.input_locations:
            return node.input_locations[input_name]
        return node.location
