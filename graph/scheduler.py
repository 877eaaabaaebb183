"""Running a graph: only what the outputs need, in dependency order, through the cache.

One run, in phases, none of them recursive (a 100,000-deep chain runs):

1. plan: ancestors of the targets (iterative walk), topological order (Kahn, written order
   first among ready nodes);
2. keys: each node's cache key from its literals and its parents' keys, in order; nodes
   downstream of a non-deterministic node get theirs once that node has run (from a digest
   of its outputs), so identical outputs still hit;
3. decide, in reverse order: a needed node whose key is cached is served from the cache and its
   parents are needed no more; otherwise it runs and its parents are needed;
4. execute in order, releasing each value after its last consumer; a failure skips exactly its
   dependants; cancellation is checked between nodes and inside nodes via the Context. What a
   node returns is checked against its outputs' declared types (`socket_checks`) before it is
   cached or passed on: a None or a str for an INT is that node's failure.

A node served from the cache says again what was said computing its values (`replay`): its
cache entry keeps its own warnings and those of the nodes its values were computed from, each
with the key of the node that said it, so a second run of a workflow warns as the first did.
"""

from __future__ import annotations

import heapq
import math
import time
import traceback
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .cache import Cache, Said, content_key, default_cache, handed_out, node_key, value_digest
from .context import Cancelled, CancelToken, Context, Settings
from .declare import REQUIRED, NodeResult, NodeType, Registry, default_registry
from .events import (
    Event,
    NodeFailed,
    NodeFinished,
    NodeProgress,
    NodesCached,
    NodeStarted,
    NodeWarning,
    RunFinished,
    RunStarted,
    RunStatus,
)
from .model import Graph, Link
from .problems import InputError, Problem, WorkflowError, quoted, refusing_node
from .socket_checks import SIZES, TESTS, expected, not_none
from .validate import cycle_problems, output_nodes, unknown_type_problem

PROGRESS_INTERVAL = 0.05  # seconds between two NodeProgress events of one node
# The longest text a node's failure reports as it is (`reported`): a linked input's text may be
# a file's contents, and the failure crosses the pipe, the history and every websocket.
REPORTED_TEXT_CHARS = 10_000


class _CallbackRaised(BaseException):
    """The caller's `on_event` raised while a node reported progress or a warning: carried
    through the node's code (a BaseException, which no `except Exception` there takes for the
    node's failure) to `Scheduler.run`, which raises `error` itself to its caller."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class NodeOutcome(Enum):
    """What executing one node came to."""

    OK = "ok"
    CACHED = "cached"  # late hit: its key became known once a non-deterministic parent ran
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class Outputs(Mapping[str, tuple]):
    """`RunResult.outputs`: node id -> its output values. The engine's values are the cache's
    own, so each read hands out copies (`cache.handed_out`): changing one in place does not
    change what later runs are served. Copied when read, not when the run ends: an output never
    read costs nothing, and the engine's node-to-node values are never copied."""

    def __init__(self, held: dict[str, tuple] | None = None, ran: Collection[str] = (),
                 nodes: Collection[str] = (), unneeded: Collection[str] = ()) -> None:  # fmt: skip
        self._held = dict(held or {})
        self._ran, self._nodes = ran, nodes  # what ran; the graph's node ids: `missing`
        self._unneeded = unneeded  # what a target needs, not run: what it feeds was cached

    def __getitem__(self, node_id: str) -> tuple:
        return tuple(handed_out(v) for v in self._values(node_id))

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._held

    def get(self, node_id: str, default: Any = None) -> Any:
        return self[node_id] if node_id in self._held else default

    def _values(self, node_id: str) -> tuple:
        try:
            return self._held[node_id]
        except KeyError:
            raise KeyError(self.missing(node_id)) from None

    def missing(self, node_id: str) -> str:
        """Why `node_id` has no outputs here: it ran but was not kept (say how to keep it), it
        was not needed as what it feeds came from the cache, it did not run, or there is no
        such node (the KeyError a read raises says it)."""
        if node_id in self._ran:
            return (f"node {node_id!r} ran, but its outputs were not kept: a result holds the "
                    f"targets' (by default the output nodes') and keep's; run with "
                    f"keep=[{node_id!r}] to keep them")  # fmt: skip
        if node_id in self._unneeded:
            return (f"node {node_id!r} was not needed: the nodes it feeds were served from the "
                    f"cache, so its outputs were not kept; run with keep=[{node_id!r}] to keep "
                    "them (from the cache too, when it holds them)")  # fmt: skip
        if node_id in self._nodes:
            return (f"node {node_id!r} did not run: it failed or was skipped (result.failures, "
                    f"result.skipped), or no target needs it (keep=[{node_id!r}] runs it)")  # fmt: skip
        held = ", ".join(map(repr, self._held)) or "none"
        return f"the workflow has no node {node_id!r} (outputs held: {held})"

    def __iter__(self) -> Iterator[str]:
        return iter(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def __repr__(self) -> str:
        held = {nid: [describe_value(v) for v in vs] for nid, vs in self._held.items()}
        return f"Outputs({held})"

    def value(self, node_id: str, index: int = 0) -> Any:
        """One output of `node_id` (a copy, as every read), the others left uncopied."""
        values = self._values(node_id)
        if not -len(values) <= index < len(values):
            raise IndexError(f"node {node_id!r} has {len(values)} output(s), no output {index}")
        return handed_out(values[index])


@dataclass
class RunResult:
    """What one run produced.

    `status`: "success", "failed" (a node raised: the nodes that do not depend on it ran; no
    exception reaches the caller) or "interrupted". `outputs`: node id -> its output values, for
    the targets (by default the output nodes) and the nodes named in `keep` only, each read a
    copy of the cache's (`Outputs`). `ui`: what output nodes show (saved files, preview text),
    a copy too: changing it changes no later run's. `executed` / `cached` / `skipped`: node ids
    run, served from the cache, not run because something they need failed. `failures`: one
    `NodeFailed` per failed node (message, exception type, traceback). `warnings`: what nodes
    warned about. An interrupted run's `skipped` also holds the nodes it did not start;
    `interrupted_node` is the node the stop cut short while it ran, None when the run stopped
    between two nodes (the node running when the stop came, checking no step, finished first:
    it is in `executed`, and no node was cut short).
    """

    run_id: str
    status: RunStatus
    outputs: Outputs = field(default_factory=Outputs)
    ui: dict[str, dict] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failures: list[NodeFailed] = field(default_factory=list)
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)
    interrupted_node: str | None = None
    warnings: list[NodeWarning] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def output(self, node_id: str, index: int = 0) -> Any:
        """One output value of a target node (first output by default): a copy (`Outputs`)."""
        return self.outputs.value(node_id, index)


@dataclass
class _Plan:
    order: list[str]  # topological order of every node the targets depend on
    types: dict[str, NodeType]
    parents: dict[str, list[str]]  # distinct parent ids per node
    targets: list[str]


def describe_value(value: Any) -> str:
    """One short line about a value a node returned or was given (`NodeFinished.summary`, a
    failure's inputs): type and shape for arrays, repr for small scalars. Read from what
    arrays and pictures have (`shape`, `dtype`; PIL's `size`, `mode`): a value's type declares
    no hook of its own here."""
    shape = getattr(value, "shape", None)
    if shape is not None and not callable(shape):
        try:
            return f"{type(value).__name__}{list(shape)} {getattr(value, 'dtype', '')}".rstrip()
        except TypeError:
            pass
    if type(value) is int and value.bit_length() > 128:
        # repr of a huge int is quadratic in its digits (and refused past 4300 digits).
        return f"int ({value.bit_length()} bits)"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 60 else text[:56] + "...'"
    if isinstance(value, (list, tuple, dict, set)):
        return f"{type(value).__name__}[{len(value)}]"
    size, mode = getattr(value, "size", None), getattr(value, "mode", None)
    if isinstance(size, tuple) and isinstance(mode, str):  # PIL images
        return f"{type(value).__name__}{list(size)} {mode}"
    return type(value).__name__


def reported(value: Any) -> Any:
    """An input's value as a node's failure reports it (`NodeFailed.inputs`, the server's
    `execution_error` `current_inputs`): a JSON value as it is (None, a bool, a number, a text),
    as ComfyUI reports it; anything else, or a value JSON would not carry as it is (NaN, an
    int past 128 bits, a text past `REPORTED_TEXT_CHARS`), as `describe_value` says it."""
    kind = type(value)
    if (value is None or kind is bool or (kind is int and value.bit_length() <= 128)
            or (kind is float and math.isfinite(value))
            or (kind is str and len(value) <= REPORTED_TEXT_CHARS)):  # fmt: skip
        return value
    return describe_value(value)


def normalize(node_type: NodeType, result: Any) -> tuple[tuple, dict | None]:
    """A node function's return value as (values tuple of the declared length, ui)."""
    ui = None
    if isinstance(result, NodeResult):
        values, ui = result.values, result.ui
        values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    elif isinstance(result, tuple):
        values = result
        if len(node_type.outputs) == 1 and len(values) != 1:
            values = (result,)
    elif result is None and not node_type.outputs:
        values = ()
    else:
        values = (result,)
    if len(values) != len(node_type.outputs):
        # a function that fell off its end (or `return`) returned no value, not one
        returned = "None (nothing)" if result is None else f"{len(values)} value(s)"
        raise TypeError(
            f"node type {node_type.name!r} returned {returned} but declares "
            f"{len(node_type.outputs)} output(s){_count_hint(node_type, result)}"
        )
    return values, ui


def _count_hint(node_type: NodeType, result: Any) -> str:
    """What was probably meant by a result of the wrong length: a list holding one value per
    output is one value (a list output's), and a dict from a node without outputs is what an
    output node shows (docs/custom-nodes.md, What a node returns)."""
    count = len(node_type.outputs)
    if isinstance(result, list) and count > 1 and len(result) == count:
        return "; return a tuple, not a list (a list is one value: a list output's)"
    if isinstance(result, dict) and not count:
        return "; to show something, return NodeResult(ui={...})"
    return ""


def check_returned(node_type: NodeType, values: tuple, settings: Settings) -> None:
    """Refuse a returned value that its output's declared type rules out (`socket_checks`:
    None but for ANY, a str for an INT, a list for an IMAGE...), or that is over the run's
    limits for its type (`socket_checks.SIZES`: a STRING longer than max_string_chars). Raises
    TypeError (the node's bug), or InputError (a size the user's values led to: no traceback):
    the failure is the producing node's, before its values are cached or passed on (its error
    line names the node: the message does not again)."""
    for out, value in zip(node_type.outputs, values, strict=False):  # as long: normalize
        if not TESTS.get(out.type, not_none)(value):
            shown = "None" if value is None else f"{describe_value(value)} ({type(value).__name__})"
            want = expected(out.type)
            raise TypeError(
                f"returned {shown} for output "
                f"{out.name!r}, declared {out.type}" + (f" ({want})" if want else "")
            )
        size = SIZES.get(out.type)
        too_large = size(value, settings) if size is not None else None
        if too_large is not None:
            raise InputError(f"output {out.name!r} {too_large}")


def _topological(position: dict[str, int], parents: dict[str, list[str]]) -> list[str]:
    """Dependency order preferring written order among ready nodes; on a cycle, only the
    nodes before it (the rest wait on it).

    Hand-written Kahn rather than networkx: the profile of a 10,000-node run showed building
    the DiGraph and networkx's sort as the largest share of the engine's own time. A graph
    already written in dependency order (the usual case) is recognized in one pass."""
    if all(position[p] < i for n, i in position.items() for p in parents[n]):
        return list(position)
    children: dict[str, list[str]] = {n: [] for n in position}
    waiting: dict[str, int] = {}
    for n, ps in parents.items():
        waiting[n] = len(ps)
        for p in ps:
            children[p].append(n)
    ready = [(position[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for c in children[n]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (position[c], c))
    return order


def unknown_types(graph: Graph, registry: Registry, skip: Collection[str] = ()) -> list[Problem]:
    """Each node (but those in `skip`) whose type `registry` lacks. A graph holding one never
    runs, not even unvalidated, whether a target needs it or not (`plan_run`): a server's
    worker runs unvalidated what the server checked with its own registry, and must not
    report success without an output node it lacks."""
    return [unknown_type_problem(node, registry, graph.dialect) for node in graph
            if node.id not in skip and registry.get(node.type) is None]  # fmt: skip


def plan_run(graph: Graph, registry: Registry, targets: list[str] | None, keep: list[str]) -> _Plan:
    """What a run needs: the nodes the targets (default: the output nodes) and `keep` depend
    on, their types and parents, in dependency order. Raises WorkflowError, naming every node
    of an unknown type, needed or not (`unknown_types`)."""
    problems: list[Problem] = []
    if targets is None:
        targets = output_nodes(graph, registry)
        if not targets:  # an unknown node may be the output
            raise WorkflowError(unknown_types(graph, registry) or [
                Problem("prompt_no_outputs", "the workflow has no output node to run")])  # fmt: skip
    for ids, what in ((targets, "run"), (keep, "keep")):
        problems += [Problem("invalid_value", f"no node {quoted(t)} to {what}", node_id=t)
                     for t in ids if t not in graph.nodes]  # fmt: skip
    if problems:
        raise WorkflowError(problems)

    types: dict[str, NodeType] = {}
    parents: dict[str, list[str]] = {}
    stack = list(dict.fromkeys([*targets, *keep]))
    seen = set(stack)
    while stack:
        nid = stack.pop()
        node = graph.nodes[nid]
        nt = registry.get(node.type)
        if nt is None:
            problems.append(unknown_type_problem(node, registry, graph.dialect))
        else:
            types[nid] = nt
        ps = []
        for name, v in node.inputs.items():
            if type(v) is not Link:
                continue
            if v.node not in graph.nodes:
                problems.append(
                    Problem(
                        "bad_linked_input",
                        f"links to missing node {v.node!r}",
                        node_id=nid,
                        input_name=name,
                        location=graph.where(nid, name),
                    )  # fmt: skip
                )
                continue
            if v.node not in ps:
                ps.append(v.node)
            if v.node not in seen:
                seen.add(v.node)
                stack.append(v.node)
        parents[nid] = ps
    problems += unknown_types(graph, registry, skip=seen)
    if problems:
        raise WorkflowError(problems)

    position = {n: i for i, n in enumerate(graph.nodes) if n in seen}
    order = _topological(position, parents)
    if len(order) < len(position):  # an unchecked graph's cycle, named as validation names it
        raise WorkflowError(cycle_problems(graph, set(position).difference(order), parents))
    return _Plan(order, types, parents, list(targets))


class Scheduler:
    """Runs graphs against one registry, cache and settings. One run at a time per instance."""

    def __init__(
        self,
        registry: Registry | None = None,
        cache: Cache | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.registry = registry if registry is not None else default_registry
        self.cache = cache if cache is not None else default_cache(disk=False)
        self.settings = settings if settings is not None else Settings()
        self._defaults: dict[int, tuple[NodeType, dict[str, Any]]] = {}

    def type_defaults(self, nt: NodeType) -> dict[str, Any]:
        """The declared defaults of a node type's inputs (memoized per type)."""
        entry = self._defaults.get(id(nt))
        if entry is None or entry[0] is not nt:
            defaults = {i.name: i.default for i in nt.inputs if i.default is not REQUIRED}
            entry = self._defaults[id(nt)] = (nt, defaults)
        return entry[1]

    def _validate(self, graph: Graph, targets: list[str] | None,
                  keep: list[str] | None) -> list[Problem]:  # fmt: skip
        """Every problem at once (`run_problems`); raises on errors, returns the warnings."""
        problems = run_problems(graph, self.registry, self.settings, targets, keep)
        if any(p.severity == "error" for p in problems):
            raise WorkflowError(problems)
        return problems

    def run(
        self,
        graph: Graph,
        *,
        targets: str | list[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
        cancel: CancelToken | None = None,
        run_id: str | None = None,
        extra: dict | None = None,
        keep: str | list[str] | None = None,
        validate: bool = True,
    ) -> RunResult:
        """Run what `targets` (default: the output nodes) need. Raises WorkflowError on a
        graph that cannot run; node failures are reported in the result, not raised.
        `targets` and `keep` are node ids, a list or one id as a str. What `on_event` raises
        leaves here as raised, whichever event it was given (the caller's bug, no node's)."""
        start = time.perf_counter()
        targets, keep = node_ids(targets, "targets"), node_ids(keep, "keep")
        problems = self._validate(graph, targets, keep) if validate else []
        run = _Run(
            self,
            graph,
            run_id=run_id or uuid.uuid4().hex,
            emit=on_event,
            cancel=cancel if cancel is not None else CancelToken(),
            extra=extra if extra is not None else {},
        )
        try:
            run.plan(targets, list(keep or []), problems)
            run.keys()
            run.decide()
            run.execute()
        except _CallbackRaised as raised:
            error = raised.error
        except Exception:
            raise
        except BaseException:  # no node's failure: the caller stopping the run at once
            run.give_up(start)
            raise
        else:
            return run.finish(start)
        raise error  # outside the except: not "during handling of" our carrier


def run_problems(graph: Graph, registry: Registry, settings: Settings,
                 targets: list[str] | None = None,
                 keep: list[str] | None = None) -> list[Problem]:  # fmt: skip
    """Every problem a run of `graph` with `targets` and `keep` (node ids, as `Scheduler.run`
    takes them) is checked for before its first node, errors and warnings (graph.validate):
    the one check, which a sweep makes for every value's graph before its first run too.

    With explicit targets the graph needs no output node of its own; a target or a kept
    node runs, so it is not warned to feed no output node."""
    from .validate import validate

    problems = validate(graph, registry, settings, targets=[*(targets or []), *(keep or [])])
    if targets is not None:
        problems = [p for p in problems if p.code != "prompt_no_outputs"]
    return problems


def node_ids(ids: str | Iterable[str] | None, keyword: str) -> list[str] | None:
    """`targets` or `keep` (named by `keyword`) as a list: one node id given as a str is that
    node ("decode"), not its letters. Anything else but a list of str is the caller's bug,
    refused naming the keyword (`keep=5` said "'int' object is not iterable")."""
    if ids is None:
        return None
    found = [ids] if isinstance(ids, str) else list(ids) if isinstance(ids, Iterable) else None
    if found is None or not all(isinstance(i, str) for i in found):
        raise TypeError(f"{keyword}= takes a node id or a list of node ids, not {ids!r}")
    return found


def _summary(nt: NodeType, vals: tuple) -> list[str]:
    return [f"{o.name}: {describe_value(v)}" for o, v in zip(nt.outputs, vals, strict=False)]


class _Run:
    """One run of a graph: its state, and the phases of the module docstring as methods
    (plan, keys, decide, execute), called in that order by `Scheduler.run`."""

    def __init__(
        self,
        scheduler: Scheduler,
        graph: Graph,
        *,
        run_id: str,
        emit: Callable[[Event], None] | None,
        cancel: CancelToken,
        extra: dict,
    ) -> None:
        self.scheduler = scheduler
        self.cache = scheduler.cache
        self.settings = scheduler.settings
        self.type_defaults = scheduler.type_defaults
        self.graph = graph
        self.run_id = run_id
        self.emit = emit
        self.cancel = cancel
        self.extra = extra
        self.result = RunResult(run_id=run_id, status="success")
        self.planned: _Plan  # set by plan()
        self.keep: list[str] = []
        self.retain: set[str] = set()  # targets and `keep`: their values survive the run
        self.key_of: dict[str, str | None] = {}  # None: not known before a parent runs
        self.values: dict[str, tuple] = {}
        self.uis: dict[str, dict | None] = {}
        self.to_run: list[str] = []  # in dependency order
        self.remaining: dict[str, int] = {}  # node id -> consumers still to run
        self.stopped = False  # a cancel or `give_up` ended it: its status is interrupted
        self.interrupted: str | None = None  # the node the stop cut short, if one was
        self.announced = False  # RunStarted sent: its events must end with RunFinished
        self.at: str | None = None  # the node whose NodeStarted was sent last
        self.uncached: set[str] = set()  # results not to cache: a NaN one, and what uses it
        self.refused: dict[str, dict | None] = {}  # node id -> the cached ui `reuse` refused
        self.own: dict[str, list[str]] = {}  # node id -> what its code said this run
        self.said: dict[str, Said] = {}  # node id -> the warnings behind its values (if any)
        self.heard: set[tuple[str, str]] = set()  # (node id, message) said this run
        self.node_at: dict[str, list[str]] = {}  # cache key -> its node ids (`speakers`)
        # node type name -> its code digest, taken once per run: a notebook's node is keyed by
        # the globals and closure its code reads now (`code_identity.Code.digest`)
        self.codes: dict[str, str] = {}

    # --- 1. plan -----------------------------------------------------------------------

    def plan(self, targets: list[str] | None, keep: list[str], warnings: list[Problem]) -> None:
        self.planned = plan_run(self.graph, self.scheduler.registry, targets, keep)
        self.keep = keep
        self.retain = set(self.planned.targets) | set(keep)
        emit = self.emit
        if emit:
            self.announced = True
            emit(RunStarted(self.run_id, nodes=list(self.planned.order)))
        for p in warnings:
            w = NodeWarning(self.run_id, node_id=p.node_id or "",
                            node_type=self.type_of(p.node_id), message=p.message,
                            input_name=p.input_name)  # fmt: skip
            self.result.warnings.append(w)
            if emit:
                emit(w)

    # --- 2. keys -----------------------------------------------------------------------

    def keys(self) -> None:
        nodes, types, keys = self.graph.nodes, self.planned.types, self.key_of
        for nid in self.planned.order:
            nt = types[nid]
            keys[nid] = self.node_key(nodes[nid].inputs, nt) if nt.deterministic else None

    def node_key(self, inputs: dict[str, Any], nt: NodeType) -> str | None:
        """The node's cache key, or None while a parent's key is unknown."""
        literals = dict(self.type_defaults(nt))
        keys = self.key_of
        links: dict[str, str] = {}
        for name, v in inputs.items():
            if type(v) is Link:
                pk = keys.get(v.node)
                if pk is None:
                    return None
                links[name] = f"{pk}:{v.output}"  # link_key, inlined: hot path
            else:
                literals[name] = v
        code = self.codes.get(nt.name)
        if code is None:
            code = self.codes[nt.name] = nt.code.digest()
        return node_key(nt, literals, links, self.settings, self.extra, code)

    def usable_hit(self, nid: str, key: str,
                   nt: NodeType) -> tuple[tuple, dict | None, Said] | None:  # fmt: skip
        """The cached (values, ui, warnings) under `key`, unless the node's `reuse` hook refuses it for
        this run (SaveImage: its files no longer hold what it saved, or its prefix names
        other files now); a refused ui is handed to the node's run (`Context.earlier_ui`)."""
        hit = self.cache.get(key)
        if hit is None or nt.reuse is None:
            return hit
        inputs = {**self.type_defaults(nt), **self.graph.nodes[nid].inputs}
        literals = {name: v for name, v in inputs.items() if type(v) is not Link}
        if nt.reuse(hit[1], literals, self.settings):
            return hit
        self.refused[nid] = hit[1]
        return None

    # --- 3. decide ---------------------------------------------------------------------

    def decide(self) -> None:
        """From the targets backwards: what is served from the cache, what must run."""
        plan, keys = self.planned, self.key_of
        parents, types = plan.parents, plan.types
        values, uis = self.values, self.uis
        needed = set(self.retain)
        to_run: set[str] = set()
        cached: list[str] = []
        for nid in reversed(plan.order):
            if nid not in needed:
                continue
            key = keys[nid]
            if key is not None:
                hit = self.usable_hit(nid, key, types[nid])
                if hit is not None:
                    values[nid], uis[nid], said = hit
                    if said:
                        self.said[nid] = said
                    cached.append(nid)
                    continue
            to_run.add(nid)
            needed.update(parents[nid])
        cached.reverse()
        self.result.cached = cached
        if self.emit:
            self.emit(NodesCached(self.run_id, nodes=list(cached)))
        for nid in cached:
            self.replay(nid)
            if self.emit and types[nid].output_node:
                self.emit(NodeFinished(self.run_id, node_id=nid, node_type=types[nid].name,
                                       cached=True, summary=_summary(types[nid], values[nid]),
                                       ui=uis[nid]))  # fmt: skip

        # Every node needed here is retained or a parent of a node to run: its value is held
        # until the last of those has run.
        remaining: dict[str, int] = {}
        for nid in to_run:
            for p in parents[nid]:
                remaining[p] = remaining.get(p, 0) + 1
        self.remaining = remaining
        self.to_run = [nid for nid in plan.order if nid in to_run]

    # --- 4. execute --------------------------------------------------------------------

    def execute(self) -> None:
        """Run the nodes in order, releasing each value after its last consumer; a failure
        skips exactly its dependants."""
        parents, types = self.planned.parents, self.planned.types
        values, remaining, retain = self.values, self.remaining, self.retain
        skipped = self.result.skipped
        bad: set[str] = set()  # failed or skipped: their dependants are skipped
        order, cancel, execute_node = self.to_run, self.cancel, self.execute_node
        for i, nid in enumerate(order):
            if cancel.cancelled:  # between two nodes: none was cut short
                self.stopped = True
                skipped.extend(order[i:])
                break
            if any(p in bad for p in parents[nid]):
                bad.add(nid)
                skipped.append(nid)
            else:
                outcome = execute_node(nid, types[nid])
                if outcome is NodeOutcome.INTERRUPTED:
                    self.stopped, self.interrupted = True, nid
                    skipped.extend(order[i + 1 :])
                    break
                if outcome is NodeOutcome.FAILED:
                    bad.add(nid)
            for p in parents[nid]:
                remaining[p] -= 1
                if remaining[p] == 0 and p not in retain:
                    values.pop(p, None)

    def execute_node(self, nid: str, nt: NodeType) -> NodeOutcome:
        """Run (or late-hit) one node."""
        node = self.graph.nodes[nid]
        values = self.values
        kwargs = dict(self.type_defaults(nt))
        try:
            for name, v in node.inputs.items():
                kwargs[name] = values[v.node][v.output] if type(v) is Link else v
        except (KeyError, IndexError) as exc:
            return self.fail(nid, nt, exc, {})
        if not nt.builtin:  # a plugin changing an input in place must not change the cache's
            for name, v in kwargs.items():
                kwargs[name] = handed_out(v)

        keys, uis, emit, run_id = self.key_of, self.uis, self.emit, self.run_id
        key = keys.get(nid)
        if nt.deterministic and key is None:  # downstream of a non-deterministic node
            key = keys[nid] = self.node_key(node.inputs, nt)
            self.node_at.clear()  # `speakers` reads the keys again, this one too
            hit = self.usable_hit(nid, key, nt) if key is not None else None
            if hit is not None:
                values[nid], uis[nid], said = hit
                if said:
                    self.said[nid] = said
                self.result.cached.append(nid)
                self.replay(nid)
                if emit:
                    emit(NodeFinished(run_id, node_id=nid, node_type=nt.name, cached=True,
                                      summary=_summary(nt, hit[0]), ui=hit[1]))  # fmt: skip
                return NodeOutcome.CACHED

        ctx = self.context(nid, nt)
        started = time.perf_counter()
        try:
            vals, ui = normalize(nt, nt.fn(ctx, **kwargs))
            check_returned(nt, vals, self.settings)
        except Cancelled:
            return NodeOutcome.INTERRUPTED
        except Exception as exc:
            return self.fail(nid, nt, exc, kwargs)
        seconds = time.perf_counter() - started
        del kwargs

        if not ctx.cacheable or any(type(v) is Link and v.node in self.uncached
                                    for v in node.inputs.values()):  # fmt: skip
            self.uncached.add(nid)
        elif nt.deterministic:
            if key is not None:
                self.cache.put(key, vals, ui, self.behind(nid))
        else:
            digests = [value_digest(v) for v in vals]
            if all(d is not None for d in digests):
                keys[nid] = content_key(digests)  # type: ignore[arg-type]
                self.node_at.clear()  # `speakers` reads the keys again, this one too
            # else its key stays None: what uses it runs again each time and is never stored
            self.behind(nid)
        values[nid] = vals
        uis[nid] = ui
        self.result.executed.append(nid)
        if emit:
            emit(NodeFinished(run_id, node_id=nid, node_type=nt.name, seconds=seconds,
                              summary=_summary(nt, vals), ui=ui))  # fmt: skip
        return NodeOutcome.OK

    def context(self, nid: str, nt: NodeType) -> Context:
        """The Context a node function receives: settings, cancellation, progress, warnings."""
        emit, run_id, result = self.emit, self.run_id, self.result
        if emit:
            self.at = nid
            emit(NodeStarted(run_id, node_id=nid, node_type=nt.name))
            last = [-math.inf]  # the first step is always sent

            def progress(value: int, total: int, preview: Any = None) -> None:
                now = time.monotonic()
                if value >= total or now - last[0] >= PROGRESS_INTERVAL:
                    last[0] = now
                    image = preview() if preview is not None else None  # built only when sent
                    callback(NodeProgress(run_id, node_id=nid, value=value, max=total,
                                          preview=image))  # fmt: skip
        else:
            progress = None  # type: ignore[assignment]

        def callback(event: Event) -> None:
            """`on_event` called from inside the node's code: what it raises is the caller's,
            raised out of `Scheduler.run` as its other events' is, not the node's failure."""
            try:
                emit(event)  # type: ignore[misc]
            except Exception as exc:
                raise _CallbackRaised(exc) from None

        def warn(message: str) -> None:
            self.own.setdefault(nid, []).append(message)  # kept behind its values either way
            if (nid, message) in self.heard:  # said this run already: from a cached value
                return  # computed from this node's (`replay`), before this node had to run
            self.heard.add((nid, message))
            w = NodeWarning(run_id, node_id=nid, node_type=nt.name, message=message)
            result.warnings.append(w)
            if emit:
                callback(w)

        return Context(nid, nt.name, self.settings, self.cancel, emit_progress=progress,
                       emit_warning=warn, extra=self.extra,
                       earlier_ui=self.refused.pop(nid, None))  # fmt: skip

    # --- warnings behind cached values -------------------------------------------------

    def behind(self, nid: str) -> Said:
        """The warnings behind the values `nid` just computed, kept with them in the cache: its
        inputs' (in input order), then its own (under its key), each once."""
        said: dict[tuple[str | None, str], None] = {}
        for v in self.graph.nodes[nid].inputs.values():
            if type(v) is Link:
                said.update(dict.fromkeys(self.said.get(v.node, ())))
        origin = self.key_of.get(nid)
        said.update(dict.fromkeys((origin, m) for m in self.own.pop(nid, ())))
        if said:
            self.said[nid] = tuple(said)
        return tuple(said)

    def replay(self, nid: str) -> None:
        """Say again, as `NodeWarning` events and in the result, the warnings behind the values
        `nid` was served from the cache: each at every node that said it (`speakers`), once
        per run (a warning said this run is not said again)."""
        for origin, message in self.said.get(nid, ()):
            for speaker in self.speakers(nid, origin):
                if (speaker, message) in self.heard:
                    continue
                self.heard.add((speaker, message))
                w = NodeWarning(self.run_id, node_id=speaker, node_type=self.type_of(speaker),
                                message=message)  # fmt: skip
                self.result.warnings.append(w)
                if self.emit:
                    self.emit(w)

    def type_of(self, nid: str | None) -> str:
        """The type of the node `nid` (events carry it), "" for none (a warning about no node)."""
        node = self.graph.nodes.get(nid) if nid is not None else None
        return node.type if node is not None else ""

    def speakers(self, nid: str, origin: str | None) -> list[str]:
        """The nodes that said, computing `nid`'s values, a warning kept under the cache key
        `origin`: those of this run with that key among `nid` and the nodes its values come
        from, in order (two identical nodes share a key and each said it, each on its own
        path); `nid` itself when none is known."""
        if origin is None:
            return [nid]
        if not self.node_at:  # first asked, or a key was found since (`execute_node` clears it)
            for n, k in self.key_of.items():
                if k is not None:
                    self.node_at.setdefault(k, []).append(n)
        found = self.node_at.get(origin, [])
        if len(found) > 1:  # only then is a walk upstream needed to tell them apart
            upstream = self.upstream(nid)
            found = [n for n in found if n in upstream]
        return found or [nid]

    def upstream(self, nid: str) -> set[str]:
        """`nid` and every node its values are computed from."""
        parents, seen, todo = self.planned.parents, {nid}, [nid]
        while todo:
            for p in parents[todo.pop()]:
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return seen

    def fail(self, nid: str, nt: NodeType, exc: Exception, kwargs: dict) -> NodeOutcome:
        user_error = isinstance(exc, InputError)
        lines = [] if user_error else traceback.format_exception(type(exc), exc, exc.__traceback__)
        message = str(exc) or type(exc).__name__
        if user_error and f"node {nid!r}" not in message:  # a plugin's own text, unnamed
            where = refusing_node(nt.name, nid, exc.input_name)  # type: ignore[attr-defined]
            message = f"{where}: {message}"
        event = NodeFailed(
            self.run_id,
            node_id=nid,
            node_type=nt.name,
            message=message,
            exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}"
            if type(exc).__module__ != "builtins"
            else type(exc).__qualname__,
            traceback=lines,
            inputs={k: reported(v) for k, v in kwargs.items()},
            user_error=user_error,
            input_name=exc.input_name if isinstance(exc, InputError) else None,
        )
        exc.__traceback__ = None  # frames hold input values: let them go
        self.result.failures.append(event)
        if self.emit:
            self.emit(event)
        return NodeOutcome.FAILED

    # --- the result --------------------------------------------------------------------

    def give_up(self, start: float) -> None:
        """The run left at once by what is no node's failure (`run`'s second Ctrl-C, a
        KeyboardInterrupt): its events still end with RunFinished, status interrupted, the
        node it cut short the one that had started and not ended (none when it came between
        two nodes, as `execute`'s stop between nodes), the nodes not started skipped, so their
        reader (`run --json`'s) learns how it ended. What `on_event` raises here is dropped:
        the exception leaving the run is the one that stopped it."""
        if not self.announced:
            return
        result = self.result
        done = {*result.executed, *result.cached, *result.skipped,
                *(f.node_id for f in result.failures)}  # fmt: skip
        left = [nid for nid in self.to_run if nid not in done]
        self.stopped = True
        self.interrupted = left[0] if left and left[0] == self.at else None
        result.skipped.extend(left[1:] if self.interrupted else left)
        try:
            self.finish(start)
        except Exception:  # noqa: BLE001 - e.g. the renderer's stdout closed meanwhile
            pass

    def finish(self, start: float) -> RunResult:
        result, interrupted = self.result, self.interrupted
        shown = [nid for nid in self.planned.targets + self.keep if nid in self.values]
        ran = {*result.executed, *result.cached}
        gone = {*result.skipped, *(f.node_id for f in result.failures), interrupted}
        result.outputs = Outputs({nid: self.values[nid] for nid in shown}, ran=ran,
                                 nodes=self.graph.nodes, unneeded={
                                     nid for nid in self.planned.order
                                     if nid not in ran and nid not in gone})  # fmt: skip
        for nid in shown:  # copies: a caller changing one leaves the cache's as it was
            if self.uis.get(nid) is not None:
                result.ui[nid] = handed_out(self.uis[nid])
        if self.stopped:
            result.status = "interrupted"
            result.interrupted_node = interrupted
        elif result.failures:
            result.status = "failed"
        result.seconds = time.perf_counter() - start
        if self.emit:
            stopped = [] if interrupted is None else [interrupted]
            self.emit(RunFinished(self.run_id, status=result.status,
                                  executed=list(result.executed), cached=list(result.cached),
                                  failed=[f.node_id for f in result.failures],
                                  interrupted=stopped, skipped=list(result.skipped),
                                  seconds=result.seconds, interrupted_node=interrupted))  # fmt: skip
        return result
