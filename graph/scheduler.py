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
   dependants; cancellation is checked between nodes and inside nodes via the Context.
"""

from __future__ import annotations

import heapq
import math
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .cache import Cache, content_key, default_cache, node_key, value_digest
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
)
from .model import Graph, Link
from .problems import Problem, WorkflowError

PROGRESS_INTERVAL = 0.05  # seconds between two NodeProgress events of one node


@dataclass
class RunResult:
    """What one run produced. `outputs` holds the values of the targets and `keep` nodes."""

    run_id: str
    status: str  # "success" | "failed" | "interrupted"
    outputs: dict[str, tuple] = field(default_factory=dict)
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
        """One output value of a target node (first output by default)."""
        return self.outputs[node_id][index]


@dataclass
class _Plan:
    order: list[str]  # topological order of every node the targets depend on
    types: dict[str, NodeType]
    parents: dict[str, list[str]]  # distinct parent ids per node
    targets: list[str]


def describe(value: Any) -> str:
    """One short line about a value: type and shape for arrays, repr for small scalars."""
    summary = getattr(type(value), "summary", None)
    if callable(summary):
        try:
            text = summary(value)
            if isinstance(text, str):
                return text
        except Exception:
            pass
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
        raise TypeError(
            f"node type {node_type.name!r} returned {len(values)} value(s) but declares "
            f"{len(node_type.outputs)} output(s)"
        )
    return values, ui


def _topological(position: dict[str, int], parents: dict[str, list[str]]) -> list[str] | None:
    """Dependency order preferring written order among ready nodes; None on a cycle.

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
    return order if len(order) == len(position) else None


def _plan(graph: Graph, registry: Registry, targets: list[str] | None, keep: list[str]) -> _Plan:
    problems: list[Problem] = []
    if targets is None:
        targets = []
        for n in graph.nodes.values():
            t = registry.get(n.type)
            if t is not None and t.output_node:
                targets.append(n.id)
        if not targets:
            raise WorkflowError(
                [Problem("prompt_no_outputs", "the workflow has no output node to run")]
            )
    for t in list(targets) + list(keep):
        if t not in graph.nodes:
            problems.append(Problem("invalid_value", f"no node {t!r} to run", node_id=t))
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
            problems.append(
                Problem(
                    "unknown_node_type",
                    f"unknown node type {node.type!r}",
                    node_id=nid,
                    location=node.location,
                    node_type=node.type,
                )  # fmt: skip
            )
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
    if problems:
        raise WorkflowError(problems)

    position = {n: i for i, n in enumerate(graph.nodes) if n in seen}
    order = _topological(position, parents)
    if order is None:
        import networkx as nx

        dag = nx.DiGraph((p, n) for n, ps in parents.items() for p in ps)
        cycle = [u for u, _ in nx.find_cycle(dag)]
        raise WorkflowError(
            [
                Problem(
                    "cycle",
                    "the graph has a cycle: " + " -> ".join([*cycle, cycle[0]]),
                    node_id=cycle[0],
                )
            ]
        )
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
        self._uncached: set[str] = set()  # this run's nodes whose results must not be cached

    def _type_defaults(self, nt: NodeType) -> dict[str, Any]:
        entry = self._defaults.get(id(nt))
        if entry is None or entry[0] is not nt:
            defaults = {i.name: i.default for i in nt.inputs if i.default is not REQUIRED}
            entry = self._defaults[id(nt)] = (nt, defaults)
        return entry[1]

    def _validate(self, graph: Graph, targets: list[str] | None) -> list[Problem]:
        """Every problem at once (graph.validate); raises on errors, returns the warnings.

        With explicit targets the graph needs no output node of its own."""
        from .validate import validate

        problems = validate(graph, self.registry, self.settings)
        if targets is not None:
            problems = [p for p in problems if p.code != "prompt_no_outputs"]
        if any(p.severity == "error" for p in problems):
            raise WorkflowError(problems)
        return problems

    def run(
        self,
        graph: Graph,
        *,
        targets: list[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
        cancel: CancelToken | None = None,
        run_id: str | None = None,
        extra: dict | None = None,
        keep: list[str] | None = None,
        validate: bool = True,
    ) -> RunResult:
        """Run what `targets` (default: the output nodes) need. Raises WorkflowError on a
        graph that cannot run; node failures are reported in the result, not raised."""
        start = time.perf_counter()
        run_id = run_id or uuid.uuid4().hex
        cancel = cancel if cancel is not None else CancelToken()
        extra = extra if extra is not None else {}
        keep = list(keep or [])
        self._uncached.clear()
        problems = self._validate(graph, targets) if validate else []
        plan = _plan(graph, self.registry, targets, keep)
        emit = on_event
        result = RunResult(run_id=run_id, status="success")
        if emit:
            emit(RunStarted(run_id, nodes=list(plan.order)))
        for p in problems:
            w = NodeWarning(run_id, node_id=p.node_id or "", message=str(p))
            result.warnings.append(w)
            if emit:
                emit(w)

        nodes = graph.nodes
        types = plan.types
        parents = plan.parents
        cache = self.cache
        keys: dict[str, str | None] = {}
        for nid in plan.order:
            keys[nid] = (
                self._key(nodes[nid].inputs, types[nid], keys) if types[nid].deterministic else None
            )

        # Decide, from the targets backwards, what is served from cache and what must run.
        values: dict[str, tuple] = {}
        uis: dict[str, dict | None] = {}
        retain = set(plan.targets) | set(keep)
        needed = set(retain)
        to_run: set[str] = set()
        cached: list[str] = []
        for nid in reversed(plan.order):
            if nid not in needed:
                continue
            key = keys[nid]
            if key is not None:
                hit = cache.get(key)
                if hit is not None:
                    values[nid], uis[nid] = hit
                    cached.append(nid)
                    continue
            to_run.add(nid)
            needed.update(parents[nid])
        cached.reverse()
        result.cached = cached
        if emit:
            emit(NodesCached(run_id, nodes=list(cached)))
            for nid in cached:
                if types[nid].output_node:
                    emit(NodeFinished(run_id, node_id=nid, node_type=types[nid].name, cached=True,
                                      summary=self._summary(types[nid], values[nid]),
                                      ui=uis[nid]))  # fmt: skip

        remaining: dict[str, int] = dict.fromkeys(values, 0)
        for nid in to_run:
            remaining[nid] = remaining.get(nid, 0)
            for p in parents[nid]:
                remaining[p] = remaining.get(p, 0) + 1
        for nid, count in remaining.items():
            if count == 0 and nid not in retain:
                values.pop(nid, None)

        bad: set[str] = set()  # failed or skipped: their dependants are skipped
        interrupted = None
        order = [nid for nid in plan.order if nid in to_run]
        for i, nid in enumerate(order):
            if cancel.cancelled:
                interrupted = nid
                result.skipped.extend(order[i:])
                break
            nt = types[nid]
            if any(p in bad for p in parents[nid]):
                bad.add(nid)
                result.skipped.append(nid)
            else:
                outcome = self._execute(nid, nt, graph, keys, values, uis, cancel, extra, run_id,
                                        emit, result)  # fmt: skip
                if outcome == "interrupted":
                    interrupted = nid
                    result.skipped.extend(order[i + 1 :])
                    break
                if outcome == "failed":
                    bad.add(nid)
            for p in parents[nid]:
                remaining[p] -= 1
                if remaining[p] == 0 and p not in retain:
                    values.pop(p, None)
            if remaining[nid] == 0 and nid not in retain:
                values.pop(nid, None)

        for nid in plan.targets + keep:
            if nid in values:
                result.outputs[nid] = values[nid]
                if uis.get(nid) is not None:
                    result.ui[nid] = uis[nid]  # type: ignore[assignment]
        if interrupted is not None:
            result.status = "interrupted"
            result.interrupted_node = interrupted
        elif result.failures:
            result.status = "failed"
        result.seconds = time.perf_counter() - start
        if emit:
            emit(RunFinished(run_id, status=result.status, executed=list(result.executed),
                             cached=list(result.cached), failed=[f.node_id for f in result.failures],
                             skipped=list(result.skipped), seconds=result.seconds,
                             interrupted_node=interrupted))  # fmt: skip
        return result

    def _key(self, inputs: dict[str, Any], nt: NodeType, keys: dict[str, str | None]) -> str | None:
        """The node's cache key, or None while a parent's key is unknown."""
        literals = dict(self._type_defaults(nt))
        links: dict[str, str] = {}
        for name, v in inputs.items():
            if type(v) is Link:
                pk = keys.get(v.node)
                if pk is None:
                    return None
                links[name] = f"{pk}:{v.output}"  # link_key, inlined: hot path
            else:
                literals[name] = v
        return node_key(nt, literals, links, self.settings)

    @staticmethod
    def _summary(nt: NodeType, vals: tuple) -> list[str]:
        return [f"{o.name}: {describe(v)}" for o, v in zip(nt.outputs, vals, strict=False)]

    def _execute(self, nid, nt, graph, keys, values, uis, cancel, extra, run_id, emit, result):
        """Run (or late-hit) one node; returns "ok", "cached", "failed" or "interrupted"."""
        node = graph.nodes[nid]
        kwargs = dict(self._type_defaults(nt))
        try:
            for name, v in node.inputs.items():
                kwargs[name] = values[v.node][v.output] if type(v) is Link else v
        except (KeyError, IndexError) as exc:
            return self._fail(nid, nt, exc, {}, run_id, emit, result)

        key = keys.get(nid)
        if nt.deterministic and key is None:  # downstream of a non-deterministic node
            key = keys[nid] = self._key(node.inputs, nt, keys)
            hit = self.cache.get(key) if key is not None else None
            if hit is not None:
                values[nid], uis[nid] = hit
                result.cached.append(nid)
                if emit:
                    emit(NodeFinished(run_id, node_id=nid, node_type=nt.name, cached=True,
                                      summary=self._summary(nt, hit[0]), ui=hit[1]))  # fmt: skip
                return "cached"

        if emit:
            emit(NodeStarted(run_id, node_id=nid, node_type=nt.name))
            last = [-math.inf]  # the first step is always sent

            def progress(value: int, total: int, preview: Any = None) -> None:
                now = time.monotonic()
                if value >= total or now - last[0] >= PROGRESS_INTERVAL:
                    last[0] = now
                    image = preview() if preview is not None else None
                    emit(NodeProgress(run_id, node_id=nid, value=value, max=total, preview=image))
        else:
            progress = None  # type: ignore[assignment]

        def warn(message: str) -> None:
            w = NodeWarning(run_id, node_id=nid, message=message)
            result.warnings.append(w)
            if emit:
                emit(w)

        ctx = Context(nid, nt.name, self.settings, cancel, progress, warn, extra)
        started = time.perf_counter()
        try:
            vals, ui = normalize(nt, nt.fn(ctx, **kwargs))
        except Cancelled:
            return "interrupted"
        except Exception as exc:
            return self._fail(nid, nt, exc, kwargs, run_id, emit, result)
        seconds = time.perf_counter() - started
        del kwargs

        if not ctx.cacheable or any(type(v) is Link and v.node in self._uncached
                                    for v in node.inputs.values()):  # fmt: skip
            self._uncached.add(nid)  # a NaN result: neither it nor what is made from it
        elif nt.deterministic:
            if key is not None:
                self.cache.put(key, vals, ui)
        else:
            digests = [value_digest(v) for v in vals]
            if all(d is not None for d in digests):
                keys[nid] = content_key(digests)  # type: ignore[arg-type]
            else:
                keys[nid] = uuid.uuid4().hex + uuid.uuid4().hex  # unique: never hits downstream
        values[nid] = vals
        uis[nid] = ui
        result.executed.append(nid)
        if emit:
            emit(NodeFinished(run_id, node_id=nid, node_type=nt.name, seconds=seconds,
                              summary=self._summary(nt, vals), ui=ui))  # fmt: skip
        return "ok"

    @staticmethod
    def _fail(nid, nt, exc, kwargs, run_id, emit, result) -> str:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        event = NodeFailed(
            run_id,
            node_id=nid,
            node_type=nt.name,
            message=str(exc) or type(exc).__name__,
            exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}"
            if type(exc).__module__ != "builtins"
            else type(exc).__qualname__,
            traceback=lines,
            inputs={k: describe(v) for k, v in kwargs.items()},
        )
        exc.__traceback__ = None  # frames hold input values: let them go
        result.failures.append(event)
        if emit:
            emit(event)
        return "failed"
