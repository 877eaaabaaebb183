"""Validation: every problem of a graph at once, each naming node, input and place.

Checks, per node: known type (with "did you mean"), known inputs, required inputs present,
literal types and ranges, choices, string length, link targets and types, literal vs link
where the input allows only one; then the node type's own `check` hook; then run limits from
`Settings` (on the inputs that declare one, `Input.limit`); then the graph:
self-links, cycles (each named), no output node, and unused nodes (a warning; a node of
unknown type may be an output node, so it and what feeds it are not called unused; nor are
nodes while a link reaches no node: what it would have connected is unknown).

Everything is iterative and linear in the size of the graph (cycles are found with Kahn's
algorithm and named by walking parents), so a 100,000-node chain validates quickly and never
hits Python's recursion limit.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .context import Settings
from .declare import (
    ANY,
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
from .model import Graph, Link, Location, Node
from .paths import listed_spelling
from .plugins import PluginFailure, unloaded_plugins
from .problems import Problem, WorkflowError, closest, did_you_mean, quoted, with_article

MAX_CHOICES_SHOWN = 20
# A link to a missing node gets a "did you mean" among the node ids only in a graph of at most
# this many nodes (the hand-written ones typos are made in): each hint compares the id with
# every node's, so a 2,000-node prompt of dangling links took 6.7 s to refuse; 500, 0.23 s.
MAX_ID_HINT_NODES = 500


def output_nodes(graph: Graph, registry: Registry | None = None) -> list[str]:
    """Ids of the nodes whose type is an output node, in graph order."""
    registry = registry_or_default(registry)
    result = []
    for node in graph:
        node_type = registry.get(node.type)
        if node_type is not None and node_type.output_node:
            result.append(node.id)
    return result


def check_or_raise(
    graph: Graph, registry: Registry | None = None, settings: Settings | None = None
) -> list[Problem]:
    """Validate; raise `WorkflowError` (with warnings too) on any error, else return warnings."""
    problems = validate(graph, registry, settings)
    if any(p.severity == "error" for p in problems):
        raise WorkflowError(problems)
    return problems


def validate(
    graph: Graph,
    registry: Registry | None = None,
    settings: Settings | None = None,
    *,
    run_settings: bool = True,
    targets: Collection[str] = (),
) -> list[Problem]:
    """Every problem in `graph`, errors and warnings. Never raises for a bad graph.

    `targets`: the nodes a run was told to run besides the output nodes (`Scheduler.run`'s
    `targets` and `keep`): they and what feeds them run, so none is said to feed no output
    node.

    `run_settings=False` leaves out what only the run's settings can judge (a dropdown whose
    list comes from its folders, the nodes' `check` hooks, the limits): a workflow loader
    reports its reading problems with the rest of the graph's without settings, and must
    not judge model files by the default folders."""
    checks = _Checks(graph, registry_or_default(registry), settings or Settings())
    for node in graph.nodes.values():
        checks.check_node(node, run_settings)
    checks.check_structure(targets)
    return checks.problems


# --- one validation --------------------------------------------------------------------


def _located(graph: Graph, node: Node, input_name: str | None, of_value: bool) -> Location | None:
    """Where a problem at the node, or at its input `input_name`, is placed: where the input
    is written, or, `of_value` (the input refusing its value: type, range, choices, check,
    limits), where the value came from (`Graph.where`: a `--set`, a param's default). A
    problem with the input itself (a typo in its name) stays where it is written."""
    where = graph.where(node.id, input_name)
    if where is not None and not of_value:
        where = where.written()
    return where


@dataclass
class _Checks:
    """One validation: the graph, the registry and settings it is judged by, and the problems
    found so far, in the order they are found. Every check is a method, so none is handed
    these (in an order of its own) by the check calling it."""

    graph: Graph
    registry: Registry
    settings: Settings
    problems: list[Problem] = field(default_factory=list)

    def check_node(self, node: Node, run_settings: bool) -> None:
        """Every problem of one node: its type, inputs, defaults left out, then (with
        `run_settings`) its `check` hook and its inputs' run limits."""
        first_problem = len(self.problems)
        node_type = self.registry.get(node.type)
        if node_type is None:
            self.problems.append(unknown_type_problem(node, self.registry, self.graph.dialect))
            return
        for name in node.ignored_inputs:
            self.problems.append(self.ignored_input(node, node_type, name))
        for name, value in node.inputs.items():
            decl = node_type.input(name)
            if decl is None:
                self.problems.append(self.unknown_input(node, node_type, name, value))
            elif isinstance(value, Link):
                self.check_link(node, decl, value)
            elif run_settings or not _judged_by_settings(decl, value):
                self.check_literal(node, decl, value)
        for decl in node_type.inputs:
            if decl.required and decl.name not in node.inputs:
                message = _missing_message(decl, self.settings if run_settings else None)
                self.problems.append(
                    self.problem(node, "required_input_missing", message, decl.name)
                )
            elif run_settings and decl.default_checked_at_run and decl.name not in node.inputs:
                self.check_default(node, decl)
        if not run_settings:
            return
        if node_type.check is not None:
            self.run_check(node, node_type)
        if node_type.limits:
            self.check_limits(node, node_type, first_problem)

    # --- per input -----------------------------------------------------------------------

    def problem(
        self, node: Node, code: str, message: str, input_name: str | None = None,
        received: Any = None, *, severity: str = "error", of_value: bool = False,
    ) -> Problem:  # fmt: skip
        """A problem at the node, or at its input `input_name`, placed by `_located`."""
        return Problem(
            code,
            message,
            node.id,
            input_name,
            _located(self.graph, node, input_name, of_value),
            severity=severity,
            received=received,
            node_type=node.type,
        )

    def reporter(self, node: Node, input_name: str, of_value: bool = False) -> Any:
        """A function that records one problem about this node input (`of_value`: `problem`)."""

        def report(code: str, message: str, received: Any = None) -> None:
            self.problems.append(
                self.problem(node, code, message, input_name, received, of_value=of_value)
            )

        return report

    def unknown_input(self, node: Node, node_type: NodeType, name: str, value: Any) -> Problem:
        names = [i.name for i in node_type.inputs]
        hint = did_you_mean(name, names) or f"; its inputs are: {', '.join(names) or 'none'}"
        return self.problem(
            node,
            "unknown_input",
            f"{node_type.name} has no input {name!r}{hint}",
            name,
            _received(value),
        )

    def ignored_input(self, node: Node, node_type: NodeType, name: str) -> Problem:
        """A warning for an input an API prompt gave that the type does not declare."""
        names = [i.name for i in node_type.inputs if i.name not in node.inputs]
        hint = did_you_mean(name, names)
        return self.problem(node, "unknown_input",
                            f"{node_type.name} has no input {name!r}: it is ignored{hint}", name,
                            severity="warning")  # fmt: skip

    def check_link(self, node: Node, decl: Input, link: Link) -> None:
        graph, registry = self.graph, self.registry
        report = self.reporter(node, decl.name)
        if link.node == node.id:
            message = self_link_message(_Types(graph), registry, node.id, link.output, decl.type)
            report("cycle", message, _received(link))
            return
        source = graph.nodes.get(link.node)
        if source is None:
            hint = ""
            if isinstance(link.node, str) and len(graph.nodes) <= MAX_ID_HINT_NODES:
                hint = did_you_mean(link.node, _others(_Types(graph), node.id))
            report(
                "bad_linked_input",
                f"links to node {link.node!r}, which does not exist{hint}",
                _received(link),
            )
            return
        source_type = registry.get(source.type)
        if source_type is None:
            return  # reported on the source node
        outputs = source_type.outputs
        if not isinstance(link.output, int) or not 0 <= link.output < len(outputs):
            report(
                "bad_linked_input",
                f"links to output {link.output!r} of node {link.node!r} "
                f"({source_type.name}), which has {len(outputs)} output(s): "
                f"{', '.join(o.name for o in outputs) or 'none'}",
                _received(link),
            )
            return
        out_type = outputs[link.output].type
        if not fits(out_type, decl.type):
            report(
                "return_type_mismatch",
                f"expects {decl.type} but {link.node}.{outputs[link.output].name} is {out_type}",
                _received(link),
            )

    def check_literal(self, node: Node, decl: Input, value: Any) -> None:
        report = self.reporter(node, decl.name, of_value=True)
        if not decl.accepts_literal:
            report(
                "bad_linked_input",
                f"takes a link from {with_article(decl.type)} output, not a literal "
                f"({_show(value)}){self.link_advice(node, decl, value)}",
                value,
            )
            return
        if value is None and decl.takes_null:
            return
        kind = decl.type
        expected = None
        if kind == INT:
            if type(value) is not int:
                expected = "an integer"
        elif kind == FLOAT:
            if type(value) not in (int, float):
                expected = "a number"
            elif value != value:
                report("invalid_input_type", "expected a number, got NaN", value)
                return
            elif type(value) is int and abs(value) > sys.float_info.max:  # float() would overflow
                digits = len(str(abs(value)))
                report("invalid_input_type", f"expected a number, got an integer of {digits} "
                       f"digits, too large for {FLOAT}", value)  # fmt: skip
                return
            elif math.isinf(value) and (_finite(decl.min) or _finite(decl.max)):
                report("invalid_input_type", f"expected a finite number, got {value}", value)
                return
        elif kind == STRING:
            if type(value) is not str:
                expected = "text"
            elif decl.max_length is not None and len(value) > decl.max_length:
                report(
                    "value_bigger_than_max",
                    f"the text is {len(value)} characters long; "
                    f"at most {decl.max_length} are allowed",
                    value[:80],
                )
                return
        elif kind == BOOLEAN:
            if type(value) is not bool:
                expected = "true or false"
        elif kind == COMBO or decl.choices is not None:
            self.check_choice(node, decl, value)
            return
        if expected is not None:
            report("invalid_input_type", f"expected {expected} ({kind}), got {_show(value)}"
                   f"{self.widget_link_hint(node, decl, value)}", value)  # fmt: skip
            return
        if kind in (INT, FLOAT):
            if decl.min is not None and value < decl.min:
                report(
                    "value_smaller_than_min",
                    f"{_num(value)} is below the minimum {_num(decl.min)}",
                    value,
                )
            elif decl.max is not None and value > decl.max:
                report(
                    "value_bigger_than_max",
                    f"{_num(value)} is above the maximum {_num(decl.max)}",
                    value,
                )

    def check_default(self, node: Node, decl: Input) -> None:
        """The default of an input the workflow leaves out, judged as a value written for it: a
        dropdown's default among choices listed at run time was never checked, and its node
        got a file that was not there."""
        first = len(self.problems)
        self.check_literal(node, decl, decl.default)
        for problem in self.problems[first:]:
            problem.message = f"left out, and its default is refused: {problem.message}"

    def check_choice(self, node: Node, decl: Input, value: Any) -> None:
        settings = self.settings
        choices, failure = decl.choices_or_failure(settings)
        if failure:  # a file picker whose folder vanished: say so, don't crash
            self.problems.append(self.problem(node, "value_not_in_list", failure, decl.name,
                                              value, of_value=True))  # fmt: skip
            return
        if value in choices and isinstance(value, str | int | float):
            return
        if (
            isinstance(value, str)
            and decl.also_accepts is not None
            and decl.also_accepts(value, settings)
        ):
            return
        shown = ", ".join(quoted(c) if isinstance(c, str) else repr(c)
                          for c in choices[:MAX_CHOICES_SHOWN])  # fmt: skip
        if len(choices) > MAX_CHOICES_SHOWN:
            shown += f", ... ({len(choices)} in all)"
        hint = _choice_hint(value, [str(c) for c in choices]) if isinstance(value, str) else ""
        hint += self.widget_link_hint(node, decl, value)
        if decl.choices_hint:
            hint += f" ({decl.hint_for(value, settings)})"
        self.problems.append(
            self.problem(
                node,
                "value_not_in_list",
                f"{_show(value)} is not one of: {shown or '(no choices)'}{hint}",
                decl.name,
                value,
                of_value=True,
            )
        )

    def link_advice(self, node: Node, decl: Input, value: Any) -> str:
        """How to write a link in the graph's own form: our YAML's node.output (ComfyUI's
        `[node, output]` there as `comfy_link_advice` tells it), or a ComfyUI prompt's
        ["<node id>", <output index>], whose node id must be a string ([4, 2] is a literal list
        there, as in ComfyUI)."""
        if self.graph.dialect != "comfy":
            advice = comfy_link_advice(_Types(self.graph), self.registry, node.id, value,
                                       decl.type)  # fmt: skip
            return advice.text("; ", spelled_out=False) if advice else "; write node.output"
        if isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
            return f'; a link\'s node id is a string: write ["{value[0]}", {value[1]}]'
        return '; write a link as ["<node id>", <output index>]'

    def widget_link_hint(self, node: Node, decl: Input, value: Any) -> str:
        """For a widget input's refused literal written as a link, how our format links a
        widget: `{from: count.value}` for `steps: count.value` (a plain string there being a
        literal, a text naming a node of the graph is read as a link would be), and for
        ComfyUI's `[count, 0]` what `comfy_link_advice` tells. A list naming no node, nor
        nearly one, may be a value: nothing is said of it."""
        graph = self.graph
        if graph.dialect == "comfy":
            return ""
        advice = comfy_link_advice(_Types(graph), self.registry, node.id, value, decl.type)
        if advice is not None:
            return advice.text("; to link it, ", spelled_out=True)
        if isinstance(value, str) and (value in graph or value.rpartition(".")[0] in graph):
            return f"; to link it, write {{from: {value}}}"
        return ""

    # --- per node, with the run's settings ---------------------------------------------------

    def run_check(self, node: Node, node_type: NodeType) -> None:
        literals = {
            i.name: i.default
            for i in node_type.inputs
            if i.default is not REQUIRED and i.accepts_literal
        }
        literals.update({k: v for k, v in node.inputs.items() if not isinstance(v, Link)})
        try:
            found = node_type.check(literals, self.settings) or []
        except Exception as exc:
            self.problems.append(
                self.problem(
                    node,
                    "invalid_value",
                    f"{node_type.name} could not check its inputs: {_exception(exc)}",
                )
            )
            return
        for input_name, message in found:
            self.problems.append(
                self.problem(
                    node,
                    "invalid_value",
                    message,
                    input_name,
                    node.inputs.get(input_name) if input_name else None,
                    of_value=True,
                )
            )

    def check_limits(self, node: Node, node_type: NodeType, first_problem: int) -> None:
        """Run-wide limits on the inputs that declare them, enforced here so a huge request
        fails before any model work. Inputs sharing a limit are bounded by the product of their
        values. `first_problem`: the index in `problems` of this node's first.

        An input already reported for this node (out of range, or by the node's own check) is
        not reported again, except an input above its declared maximum whose run limit is
        lower still: that is said once, as over the limit (`_over_limit_not_max`). An input
        that breaks two limits (width 16384 of 16384x16384: --max-pixels and
        --max-batch-pixels) is said once, over the first.
        """
        problems, settings = self.problems, self.settings
        inputs = node.inputs
        mine = problems[first_problem:]
        over_limit = _over_limit_not_max(node_type, mine, settings)
        reported = {p.input_name for p in mine} - {p.input_name for p in over_limit}
        values = {**inputs, **dict.fromkeys(reported)}  # a reported input bounds nothing more
        found = node_type.limit_problems(values, settings)
        said = {name for name, _ in found}  # the first input of each limit exceeded
        for problem in over_limit:  # said by its limit's message instead
            decl = node_type.input(problem.input_name)
            if any(node_type.limits[limit][0] in said for limit in decl.limit_names):
                del problems[next(i for i, p in enumerate(problems) if p is problem)]
        first: dict[str, str] = {}
        for name, message in found:  # an input once: the first limit it breaks
            first.setdefault(name, message)
        for name, message in first.items():
            value = inputs.get(name)
            problems.append(
                self.problem(node, "limit_exceeded", message, name, value, of_value=True)
            )

    # --- the graph as a whole ------------------------------------------------------------

    def check_structure(self, targets: Collection[str] = ()) -> None:
        graph, registry, problems = self.graph, self.registry, self.problems
        nodes = graph.nodes
        parents: dict[str, list[str]] = {node_id: [] for node_id in nodes}
        children: dict[str, list[str]] = {node_id: [] for node_id in nodes}
        # The output nodes, and the nodes of unknown type (reported already): one of those may
        # be an output node, so neither "no output node" nor "feeds no output node" is said
        # for them or for what feeds them.
        # What feeds an unknown node cannot always be known (our YAML reads `clip: m.CLIP` as
        # a link only for a declared input), so with one in the graph no node is said to feed
        # none.
        outputs: list[str] = []
        unknown = False
        # A link that reaches no node (one to a missing node, a literal or nothing where a
        # link must be) leaves what it was meant to connect unconnected: "feeds no output
        # node" said of every node above it is the one error again, so it is not said.
        broken = any(self.breaks_a_link(p) for p in problems)
        for node in nodes.values():
            for value in node.inputs.values():
                if type(value) is Link and value.node in nodes and value.node != node.id:
                    parents[node.id].append(value.node)
                    children[value.node].append(node.id)
            node_type = registry.get(node.type)
            if node_type is None or node_type.output_node:
                outputs.append(node.id)
                unknown = unknown or node_type is None

        # Kahn's algorithm: the nodes it cannot order (still with an unordered parent) are the
        # cycles and what hangs below them, found in linear time.
        indegree = {node_id: len(p) for node_id, p in parents.items()}
        ready = deque(node_id for node_id, d in indegree.items() if d == 0)
        while ready:
            for child in children[ready.popleft()]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        stuck = {n for n, d in indegree.items() if d > 0}
        if stuck:
            problems.extend(cycle_problems(graph, stuck, parents))

        if not outputs:
            if nodes:
                problems.append(
                    Problem(
                        "prompt_no_outputs",
                        "the workflow has no output node (e.g. SaveImage), so nothing would run",
                        location=_file_only(graph),
                    )
                )
            else:
                problems.append(
                    Problem(
                        "prompt_no_outputs",
                        "the workflow has no nodes",
                        location=_file_only(graph),
                    )
                )
            return
        roots = [*outputs, *(t for t in targets if t in nodes)]  # a target runs, as an output
        needed = set(roots)
        stack = list(roots)
        while stack:
            for parent in parents[stack.pop()]:
                if parent not in needed:
                    needed.add(parent)
                    stack.append(parent)
        for node in nodes.values():
            if node.id not in needed and not unknown and not broken:
                problems.append(
                    self.problem(
                        node,
                        "unused_node",
                        "the node feeds no output node, so it will not run",
                        severity="warning",
                    )
                )

    def breaks_a_link(self, problem: Problem) -> bool:
        """Whether an error is a link that reaches no node: a link to a node that does not
        exist, or a socket input (a link only) given a literal or nothing, or an input its
        node's type does not have (a link input's name misspelled: `image: decode`)."""
        nodes = self.graph.nodes
        node = nodes.get(problem.node_id or "")
        if problem.severity != "error" or problem.input_name is None or node is None:
            return False
        value = node.inputs.get(problem.input_name)
        if isinstance(value, Link):
            return value.node not in nodes
        node_type = self.registry.get(node.type)
        decl = node_type.input(problem.input_name) if node_type is not None else None
        return decl is None or not decl.accepts_literal


# --- what the checks say ------------------------------------------------------------------


# How alike a ComfyUI file's unknown type and one of ours must be to be taken for a typo:
# its editor writes types itself, so one letter off (VAEDecod) is a hand edit, while
# KSamplerAdvanced -> KSampler or SaveLatent -> SaveImage would be an unrelated suggestion.
COMFY_TYPO_CUTOFF = 0.9
# Said after an unknown type close to no known one (docs/custom-nodes.md): a plugin's node,
# or a ComfyUI custom node ported to one, not loaded. `--nodes-dir` is every command's flag
# that reads a workflow, `serve`'s too, so POST /prompt's refusal says the same.
PLUGIN_HINT = "; if a plugin declares it, give its folder with --nodes-dir or install its package"


def unknown_type_problem(node: Node, registry: Registry, dialect: str) -> Problem:
    """The problem of a node whose type `registry` lacks, as validation, the scheduler (an
    unvalidated run) and convert each refuse it: one wording, hints included
    (`unknown_type_message`), so no path names it without saying what to do."""
    message = unknown_type_message(dialect, node.type, registry.names(),
                                   registry.plugin_failures)  # fmt: skip
    return Problem("unknown_node_type", message, node_id=node.id, location=node.location,
                   node_type=node.type)  # fmt: skip


def unknown_type_message(
    dialect: str, name: str, known: list[str], failures: Collection[PluginFailure] = ()
) -> str:
    """Why a node type is unknown, for a graph of `dialect` (`Graph.dialect`; the server's
    refusal of a prompt says the same). In a ComfyUI workflow it is most likely a ComfyUI core
    or custom node latentgraph lacks: say so rather than suggest an unrelated node, unless the
    name is one of ours misspelled. Either may be a plugin's node not loaded (a custom node
    ported is one): the plugins that failed to load (`failures`, the registry's) are named,
    since their import error is otherwise only in a log the user may not see; none failing,
    say how to load one."""
    failed = unloaded_plugins(failures)
    if failed:
        failed = f"; it may be declared by a plugin that did not load: {failed}"
    if dialect != "comfy":
        typo = did_you_mean(name, known)
        return f"unknown node type {quoted(name)}{typo}{failed or ('' if typo else PLUGIN_HINT)}"
    typo = did_you_mean(name, known, cutoff=COMFY_TYPO_CUTOFF)
    if typo:
        return f"unknown node type {quoted(name)}{typo}{failed}"
    return (f"unknown node type {quoted(name)}: a ComfyUI core or custom node latentgraph "
            f"does not have (docs/comfy-compat.md lists the ones it has){failed or PLUGIN_HINT}")  # fmt: skip


def _received(value: Any) -> Any:
    if isinstance(value, Link):
        return [value.node, value.output]
    return value


def _judged_by_settings(decl: Input, value: Any) -> bool:
    """Whether a literal's verdict depends on the run's settings: a dropdown listing its
    folders, or a value outside a fixed list that `also_accepts` may take."""
    if decl.choices is None or not decl.accepts_literal:
        return False
    return callable(decl.choices) or (decl.also_accepts is not None and value not in decl.choices)


def _missing_message(decl: Input, settings: Settings | None) -> str:
    """A required input left out. A dropdown with nothing to choose from is left out by the
    editor (it has no value to send), so the message then says why the list is empty (when
    the run's `settings`, which say where the list comes from, are known)."""
    how = "a value" if decl.accepts_literal else "a link"
    message = f"this required {decl.type} input is missing: give it {how}"
    if decl.choices_hint and settings is not None:
        if not decl.choices_or_failure(settings)[0]:  # a folder that vanished: empty too
            message += f"; its list of choices is empty ({decl.hint_for(None, settings)})"
    return message


def _choice_hint(value: str, choices: list[str]) -> str:
    """A listed choice `value` is in another Unicode form (`é` composed, the list's decomposed)
    is named as such: "is not one of: 'é.png'" read as impossible. Otherwise a "did you mean"."""
    spelled = listed_spelling(value, choices)
    if spelled is not None:
        return f"; it differs from {quoted(spelled)} only in Unicode form (NFC/NFD)"
    return did_you_mean(value, choices)


def _finite(bound: float | None) -> bool:
    return bound is not None and math.isfinite(bound)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else str(value)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return quoted(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, list | dict):
        return f"a {type(value).__name__}"
    return repr(value)


def _exception(exc: Exception) -> str:
    """An exception as Python shows its last line: `KeyError: 'oops'` (its message alone is
    `'oops'`, which does not say what went wrong)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _over_limit_not_max(node_type: NodeType, mine: list[Problem],
                        settings: Settings) -> list[Problem]:  # fmt: skip
    """The `value_bigger_than_max` problems of inputs whose run limit is below their declared
    maximum (steps 100000 with --max-steps 1000, max 10000): the largest value they take is
    the limit's (what /object_info shows, `NodeType.largest_allowed`), so the limit's message,
    naming its flag, says why, not "above the maximum 10000"."""
    found = []
    for p in mine:
        decl = node_type.input(p.input_name) if p.input_name else None
        if p.code != "value_bigger_than_max" or decl is None or not decl.limit_names:
            continue
        if decl.max is not None and node_type.largest_allowed(decl, settings) < decl.max:
            found.append(p)
    return found


# --- the graph as a whole ----------------------------------------------------------------


def _file_only(graph: Graph) -> Location:
    return Location(graph.source)


def cycle_problems(graph: Graph, stuck: set[str], parents: dict[str, list[str]]) -> list[Problem]:
    """A problem naming the nodes of each cycle among the nodes a topological sort could not
    order (`stuck`; the scheduler's plan of an unchecked graph reports them by this rule too).

    Every stuck node has a stuck parent, so walking first stuck parents must come back to a
    node already seen: if it was seen on this walk, the loop between is a cycle. Linear time.
    """
    problems: list[Problem] = []
    first_parent = {n: next(p for p in parents[n] if p in stuck) for n in stuck}
    done: set[str] = set()
    for start in graph.nodes:
        if start not in stuck or start in done:
            continue
        walk: dict[str, int] = {}
        current = start
        while current not in walk and current not in done:
            walk[current] = len(walk)
            current = first_parent[current]
        done.update(walk)
        if current not in walk:
            continue  # led into a cycle found before
        ring = list(walk)[walk[current] :]
        ring.reverse()  # follow links downstream: parent -> child, starting where we met it
        ring = ring[-1:] + ring[:-1]
        text = " -> ".join([*ring, ring[0]])
        node = graph.nodes[ring[0]]
        message = f"the graph has a cycle: {text}; links must not loop back"
        where = _located(graph, node, None, of_value=False)
        problems.append(Problem("cycle", message, node.id, None, where, received=ring,
                                node_type=node.type))  # fmt: skip
    return problems


# --- links written as ComfyUI writes them, or to the node holding them -------------------


class _Types(Mapping[str, str]):
    """A graph's node types by node id, as the link hints read a workflow (nothing copied)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def __getitem__(self, node_id: str) -> str:
        return self.graph.nodes[node_id].type

    def __iter__(self) -> Iterator[str]:
        return iter(self.graph.nodes)

    def __len__(self) -> int:
        return len(self.graph.nodes)


@dataclass(frozen=True)
class LinkAdvice:
    """What to tell of ComfyUI's `[node, output]` written in our format: the link to write in
    our spelling (`model.clip`), with `why` when it is not the output written (`model.<output>`
    and the outputs the node has); or no link (`link` None) and why none is."""

    link: str | None
    why: str = ""

    def text(self, lead: str, spelled_out: bool) -> str:
        """The advice after a refusal: `lead` + "write model.clip" (`{from: model.clip}` when
        `spelled_out`) and why in parentheses; or "; " + why no link is."""
        if self.link is None:
            return f"; {self.why}"
        shown = f"{{from: {self.link}}}" if spelled_out else self.link
        return f"{lead}write {shown}" + (f" ({self.why})" if self.why else "")


def comfy_link_advice(
    types: Mapping[str, str | None], registry: Registry, holder: str, written: Any, takes: str
) -> LinkAdvice | None:
    """ComfyUI's `[node id, output]` (an index or a name), written in an input of node `holder`
    taking `takes` (a type) of a workflow whose node types are `types`, as a link of ours;
    None when `written` is no such list or names no node nor nearly one. The one rule the
    loader's refusal of a socket input given one and validation's refusal of a widget's
    follow: the output by its name, only one of a type `takes` fits (`fits`); a node nearly
    named suggested (never `holder`); a link to `holder` itself called a cycle."""
    if not isinstance(written, list) or len(written) != 2:
        return None
    target, output = written
    if type(target) not in (str, int) or type(output) not in (str, int):
        return None
    target = str(target)
    if target == holder:
        return LinkAdvice(None, f"{quoted(target)} is this node, which cannot link to itself "
                          f"(a cycle){_elsewhere(types, registry, holder, output, takes)}")  # fmt: skip
    if target not in types:
        hint = (
            did_you_mean(target, _others(types, holder)) if len(types) <= MAX_ID_HINT_NODES else ""
        )
        return LinkAdvice(None, f"there is no node {quoted(target)}{hint}") if hint else None
    target_type = registry.get(types[target] or "")
    if target_type is None:  # an unknown type: validation names it; an index is a link
        return LinkAdvice(f"{target}.{output}")
    index = output_at(target_type, str(output))
    if index is not None:
        out = target_type.outputs[index]
        if fits(out.type, takes):
            return LinkAdvice(f"{target}.{out.name}")
        return LinkAdvice(None, f"{target}.{out.name} is {with_article(out.type)} output; this "
                          f"input takes {with_article(takes)} one")  # fmt: skip
    fitting = [o.name for o in target_type.outputs if fits(o.type, takes)]
    if not fitting:
        return LinkAdvice(None, f"node {quoted(target)} ({target_type.name}) has no {takes} "
                          "output, which this input takes")  # fmt: skip
    close = closest(output, fitting) if isinstance(output, str) else []
    name = close[0] if close else fitting[0] if len(fitting) == 1 else "<output>"
    return LinkAdvice(f"{target}.{name}", no_output_message(target, target_type, output))


def fits(out_type: str, in_type: str) -> bool:
    """Whether an output of `out_type` may feed an input of `in_type`: the same type, or ANY
    on either side."""
    return out_type == in_type or ANY in (out_type, in_type)


def self_link_message(
    types: Mapping[str, str | None], registry: Registry, holder: str, output: int | str | None,
    takes: str,
) -> str:  # fmt: skip
    """A link from node `holder` to its own `output`, in an input taking `takes`, a cycle: said
    so, with the other nodes' outputs of that name (`model.clip`, for `model2.clip` written in
    model2)."""
    hint = _elsewhere(types, registry, holder, output, takes)
    return f"links the node to itself (a cycle){hint}"


def _elsewhere(
    types: Mapping[str, str | None], registry: Registry, holder: str, output: int | str | None,
    takes: str,
) -> str:  # fmt: skip
    """The "; did you mean 'model.clip'?" of a link to `holder` itself, a cycle, meant from
    another node: the other nodes' outputs named as `holder`'s `output` (an index or a name)
    whose type `takes` fits, closest id first."""
    own = registry.get(types.get(holder) or "")
    index = output_at(own, str(output)) if own is not None and output is not None else None
    name = own.outputs[index].name if index is not None else output
    if not isinstance(name, str) or len(types) > MAX_ID_HINT_NODES:
        return ""
    links = []
    for node_id in _others(types, holder):
        node_type = registry.get(types[node_id] or "")
        index = node_type.output_index(name) if node_type is not None else None
        if index is not None and fits(node_type.outputs[index].type, takes):
            links.append(f"{node_id}.{name}")
    return did_you_mean(f"{holder}.{name}", links, cutoff=0)


def _others(types: Mapping[str, str | None], holder: str) -> list[str]:
    """The node ids a link in node `holder` may be meant to: all but `holder` (a cycle)."""
    return [node_id for node_id in types if node_id != holder]


def output_at(node_type: NodeType, output: str) -> int | None:
    """The index of the output a link names, by its name or its index (`model.1`), or None."""
    index = node_type.output_index(output)
    if index is None and output.isdigit() and int(output) < len(node_type.outputs):
        index = int(output)
    return index


def no_output_message(target: str, target_type: NodeType, output: str | int) -> str:
    """Why a link to `output` of node `target` links nothing: the outputs the node has, each
    with its index (a link names an output by either)."""
    listed = ", ".join(f"{o.name} ({i})" for i, o in enumerate(target_type.outputs))
    return f"node {target!r} ({target_type.name}) has no output {output!r}; outputs: " + (
        listed or "none")  # fmt: skip
