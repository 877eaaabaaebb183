"""Where a written editor document puts its nodes, and the view it opens at.

`editor_from_graph` (comfy_editor.py) writes a graph for ComfyUI's editor; this module decides
the geometry: how tall each node is drawn (`node_height`), which column each node goes in and
where (`lay_out`: by dependency depth, in columns a caller gives, or flowed so that a template
the editor fits into its window stays readable), and the view (`extra.ds`) the document opens
at (`opened_view`). Where a number is one of the editor's own (LiteGraph's title height, its
fit), the comment beside it says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .declare import IMAGE, NodeType
from .model import Graph

_COLUMN_WIDTH = 380
_NODE_WIDTH = 320
_ROW_GAP = 40
# (node width, column width) of a template too big to be read whole in those columns
# (scheduler_comparison's 24 nodes): still wider than any node the editor draws (UNetDenoise
# is 252 px), 30 px between columns for the links.
_NARROW = (260, 290)
# Room under the widgets for the picture the editor draws inside a node that shows one: as
# ComfyUI opens LoadImage (315 x 314, about 190 px of it the picture), so it is drawn within
# the node and not over the one below.
_PREVIEW_HEIGHT = 200
# The window a written document is opened in: a laptop's browser, the canvas filling it.
EDITOR_WINDOW = (1400, 900)
_TITLE_HEIGHT = 30  # LiteGraph.NODE_TITLE_HEIGHT: drawn above a node's `pos`
_FIT_SHARE = 0.75  # of the window the editor fits a graph into
_FIT_PADDING = 10  # around the graph's bounds, each side


def fitted_view(nodes: Sequence[Mapping[str, Any]],
                window: tuple[int, int] = EDITOR_WINDOW) -> dict[str, Any]:  # fmt: skip
    """The view (`extra.ds`) the editor's fitView gives `nodes` in `window`: their bounds,
    title bars included, padded 10 px a side (litegraph's `createBounds`), fitted into 75% of
    the window, each side taken as at least 300 px, and centred (`DragAndScale.fitToBounds`).
    A template is fitted so when the editor opens it; a converted file opens at the view it
    carries, so it carries this one rather than scale 1 at the origin, where the top bar and
    the sidebar cover its first nodes and the window cuts off its last."""
    if not nodes:
        return {"scale": 1.0, "offset": [0, 0]}
    left = min(n["pos"][0] for n in nodes) - _FIT_PADDING
    top = min(n["pos"][1] - _TITLE_HEIGHT for n in nodes) - _FIT_PADDING
    width = max(n["pos"][0] + n["size"][0] for n in nodes) + _FIT_PADDING - left
    height = max(n["pos"][1] + n["size"][1] for n in nodes) + _FIT_PADDING - top
    scale = min(_FIT_SHARE * window[0] / max(width, 300), _FIT_SHARE * window[1] / max(height, 300),
                10.0)  # fmt: skip
    offset = [window[0] / 2 / scale - left - width / 2, window[1] / 2 / scale - top - height / 2]
    return {"scale": round(scale, 4), "offset": [round(x, 1) for x in offset]}


# Below this scale the editor draws nodes as untitled boxes without widgets (its node text
# would be under 8 px: LiteGraph's MinFontSizeForLOD over NODE_TEXT_SIZE, 8 / 14 = 0.57).
READABLE_SCALE = 0.6
# What covers the canvas's top-left corner: the sidebar's width, the top and run bars' height.
_COVERED = (56, 82)


def opened_view(nodes: Sequence[Mapping[str, Any]],
                window: tuple[int, int] = EDITOR_WINDOW) -> dict[str, Any]:  # fmt: skip
    """The view a written document opens at: the editor's fit (`fitted_view`) when that is
    readable, else `READABLE_SCALE`, centred, or with the graph's top-left corner just clear
    of the bars when it is too big for that (the rest a pan away). A graph fitted below it (8 columns of txt2img: 56%) opened as
    untitled grey boxes, which said less than a part of it drawn whole."""
    view = fitted_view(nodes, window)
    if not nodes or view["scale"] >= READABLE_SCALE:
        return view
    low = [min(n["pos"][0] for n in nodes), min(n["pos"][1] - _TITLE_HEIGHT for n in nodes)]
    high = [
        max(n["pos"][0] + n["size"][0] for n in nodes),
        max(n["pos"][1] + n["size"][1] for n in nodes),
    ]
    offset = [  # centred, unless that puts the corner under the bars (a graph wider than them)
        max(window[k] / 2 / READABLE_SCALE - (low[k] + high[k]) / 2,
            (_COVERED[k] + 20) / READABLE_SCALE - low[k])
        for k in (0, 1)
    ]  # fmt: skip
    return {"scale": READABLE_SCALE, "offset": [round(x, 1) for x in offset]}


def _shows_image(node_type: NodeType | None) -> bool:
    """Whether the editor draws a picture in the node: the one an upload widget picked
    (LoadImage, LoadImageMask), or the images an output node was given (SaveImage,
    PreviewImage, SaveAnimatedWEBP)."""
    if node_type is None:
        return False
    takes_images = any(i.type == IMAGE for i in node_type.inputs)
    return any(i.image_upload for i in node_type.inputs) or (node_type.output_node and takes_images)


def _depths(graph: Graph) -> dict[str, int]:
    """Longest path from a source, iteratively (graphs may be deep)."""
    indeg = {n.id: 0 for n in graph}
    children: dict[str, list[str]] = {n.id: [] for n in graph}
    for node in graph:
        for _, link in node.links():
            if link.node in indeg:
                indeg[node.id] += 1
                children[link.node].append(node.id)
    depth = dict.fromkeys(indeg, 0)
    ready = [nid for nid, d in indeg.items() if d == 0]
    while ready:
        nid = ready.pop()
        for child in children[nid]:
            depth[child] = max(depth[child], depth[nid] + 1)
            indeg[child] -= 1
            if indeg[child] == 0:
                ready.append(child)
    # Pull sources (e.g. an empty latent) right next to their first consumer.
    for nid, kids in children.items():
        if kids and not graph[nid].links():
            depth[nid] = max(0, min(depth[k] for k in kids) - 1)
    return depth


def _depth_columns(graph: Graph) -> list[list[str]]:
    """The node ids in one column per dependency depth (graph order within a column)."""
    depth = _depths(graph)
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in graph:
        columns[depth[node.id]].append(node.id)
    return columns


def _given_columns(graph: Graph, columns: Sequence[Sequence[str]]) -> list[list[str]]:
    listed = [nid for ids in columns for nid in ids]
    if sorted(listed) != sorted(node.id for node in graph):
        raise ValueError(f"columns {columns!r} must list each node of the graph once")
    return [list(ids) for ids in columns]


def _flowed(order: Sequence[str], heights: Mapping[str, float], count: int) -> list[list[str]]:
    """`order` cut into at most `count` columns, top to bottom and left to right, the tallest
    of them as short as can be: the shortest column height (a run of nodes, gaps included)
    that cutting wherever the next node would pass it leaves within `count` columns."""

    def cut(cap: float) -> list[list[str]]:
        columns: list[list[str]] = []
        bottom = 0.0
        for nid in order:
            if not columns or bottom + _ROW_GAP + heights[nid] > cap:
                columns.append([])
                bottom = -_ROW_GAP
            columns[-1].append(nid)
            bottom += _ROW_GAP + heights[nid]
        return columns

    below = [0.0]  # each node's bottom when all are stacked in one column, less a gap
    for nid in order:
        below.append(below[-1] + heights[nid] + _ROW_GAP)
    runs = sorted({below[j] - below[i] - _ROW_GAP
                   for i in range(len(order)) for j in range(i + 1, len(order) + 1)})  # fmt: skip
    low, high = 0, len(runs) - 1  # the last, every node in one column, is always within
    while low < high:
        mid = (low + high) // 2
        if len(cut(runs[mid])) <= count:
            high = mid
        else:
            low = mid + 1
    return cut(runs[high]) if runs else []


def _columns_held(node_width: int, column_width: int, window: tuple[int, int]) -> int:
    """How many columns fit across `window` when the editor fits them there at
    `READABLE_SCALE` (`fitted_view`'s share of the window, less its padding)."""
    room = _FIT_SHARE * window[0] / READABLE_SCALE - 2 * _FIT_PADDING
    return max(1, int((room - node_width) // column_width) + 1)


def _readable_layout(graph: Graph, heights: Mapping[str, float],
                    window: tuple[int, int] = EDITOR_WINDOW,
                    ) -> tuple[list[list[str]], tuple[int, int]]:  # fmt: skip
    """The columns and (node width, column width) of a document the editor fits into
    `window` when it opens it, whatever view it carries (a template): one column per depth
    put the examples 5 to 8 columns across, opened at 27-56%, every node an untitled grey box.
    The nodes, in depth order, are flowed into as many columns as the window holds at
    `READABLE_SCALE`, each as short as that allows, so the fit is at least that when the graph
    can be: in 320 px columns, else narrower ones (`_NARROW`); the larger of the two fits when
    neither is readable."""
    order = [nid for column in _depth_columns(graph) for nid in column]
    tried: list[tuple[float, list[list[str]], tuple[int, int]]] = []
    for widths in ((_NODE_WIDTH, _COLUMN_WIDTH), _NARROW):
        columns = _flowed(order, heights, _columns_held(*widths, window))
        boxes = [{"pos": pos, "size": [widths[0], heights[nid]]}
                 for nid, pos in _positions(columns, heights, widths[1]).items()]  # fmt: skip
        scale = fitted_view(boxes, window)["scale"]
        if scale >= READABLE_SCALE:
            return columns, widths
        tried.append((scale, columns, widths))
    _, columns, widths = max(tried, key=lambda t: t[0])
    return columns, widths


def _positions(columns: Sequence[Sequence[str]], heights: Mapping[str, float],
               column_width: int) -> dict[str, list[float]]:  # fmt: skip
    """Each node's `pos`: its column's left edge, stacked under the one above it, a title
    bar and some clearance between."""
    placed: dict[str, list[float]] = {}
    for col, ids in enumerate(columns):
        y = 50.0
        for nid in ids:
            placed[nid] = [50 + col * column_width, y]
            y += heights[nid] + _ROW_GAP
    return placed


def _socket_rows(node_type: NodeType | None, inputs: list[dict[str, Any]]) -> int:
    """The input rows the editor draws: each socket written (a linked widget is drawn by its
    widget, no row of its own), and latentgraph's extras on a node of ComfyUI's name
    (`Input.comfy_extra`: sockets there, /object_info's `forceInput`), which are written only
    when linked (VAEDecode's `tiled` and `sliced`: four rows, not two)."""
    drawn = {entry["name"] for entry in inputs if "widget" not in entry}
    if node_type is not None:
        drawn |= {inp.name for inp in node_type.inputs if inp.comfy_extra}
    return len(drawn)


def node_height(node_type: NodeType | None, inputs: list[dict[str, Any]], values: list[Any],
                 outputs: list[tuple[str, str]]) -> int:  # fmt: skip
    """How tall a node is written: its rows (sockets or outputs, whichever are more) and
    widgets, with some to spare, and room for the picture it shows (`_shows_image`)."""
    rows = max(_socket_rows(node_type, inputs), len(outputs))
    height = 30 + 22 * rows + 26 * len(values)
    return height + _PREVIEW_HEIGHT if _shows_image(node_type) else height


@dataclass(frozen=True)
class Layout:
    """Nodes placed for the editor: `columns` of node ids (left to right, each top to bottom,
    the order nodes are written in), each node's `pos`, and the width every node is drawn."""

    columns: list[list[str]]
    positions: dict[str, list[float]]
    node_width: int


def lay_out(graph: Graph, heights: Mapping[str, float], *,
            columns: Sequence[Sequence[str]] | None = None, fitted: bool = False) -> Layout:  # fmt: skip
    """Columns by dependency depth; or the `columns` given (each node listed once); or, for a
    document the editor fits into its window when it opens it (`fitted`: a template), flowed
    so that fit is readable (`_readable_layout`)."""
    widths = (_NODE_WIDTH, _COLUMN_WIDTH)
    if columns is not None:
        laid = _given_columns(graph, columns)
    elif fitted:
        laid, widths = _readable_layout(graph, heights)
    else:
        laid = _depth_columns(graph)
    return Layout(laid, _positions(laid, heights, widths[1]), widths[0])
