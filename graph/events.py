"""Typed events of one run.

The scheduler emits these to a single callback; the CLI draws progress bars from them, `--json`
prints them one per line, and the server translates them into ComfyUI websocket messages.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RunStatus = Literal["success", "failed", "interrupted"]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Event:
    run_id: str
    timestamp: int = field(default_factory=now_ms, kw_only=True)

    kind = "event"

    def to_json(self) -> dict[str, Any]:
        """The event as the dict `run --json` prints on its line (`JsonLines`: that line is
        `json.dumps(event.to_json(), default=str)`), `event` first; a preview left out."""
        data = {"event": self.kind}
        data.update({JSON_KEYS.get(k, k): v for k, v in asdict(self).items() if k != "preview"})
        return data


# The fields a JSON line names otherwise: an input is `input` there, as a problem's is in
# `workflow_invalid` and `validate --json` (`problems.problem_row`).
JSON_KEYS = {"input_name": "input"}


@dataclass
class RunStarted(Event):
    """Emitted once; `nodes` are the ids the run's targets depend on, in order: each ends up
    run, served from the cache, failed, interrupted or skipped (`RunFinished`), or not needed
    (in none of those: what it feeds was served from the cache)."""

    nodes: list[str] = field(default_factory=list)
    kind = "run_started"


@dataclass
class NodesCached(Event):
    """Nodes whose outputs came from the cache without running (sent before any node runs)."""

    nodes: list[str] = field(default_factory=list)
    kind = "nodes_cached"


@dataclass
class NodeStarted(Event):
    node_id: str = ""
    node_type: str = ""
    kind = "node_started"


@dataclass
class NodeProgress(Event):
    """Step `value` of `max`. `preview` (optional) is a PIL image; it is not serialized."""

    node_id: str = ""
    value: int = 0
    max: int = 0
    preview: Any = None
    kind = "node_progress"


@dataclass
class NodeWarning(Event):
    """What a node's code said (`Context.warn`), or a validation warning about the node (the
    unused node, the input it ignores: `input_name`). `message` names neither the node nor its
    place: whoever shows it does (the CLI at the node's place, as `problem_line` prints)."""

    node_id: str = ""
    node_type: str = ""
    message: str = ""
    input_name: str | None = None  # the input a validation warning is about
    kind = "node_warning"


@dataclass
class NodeFinished(Event):
    """A node produced its outputs (`cached` is True for output nodes served from cache).

    `summary` describes each output in a line of text; `ui` is the node's user-facing output
    (e.g. {"images": [{"filename", "subfolder", "type"}]}).
    """

    node_id: str = ""
    node_type: str = ""
    cached: bool = False
    seconds: float = 0.0
    summary: list[str] = field(default_factory=list)
    ui: dict[str, Any] | None = None
    kind = "node_finished"


@dataclass
class NodeFailed(Event):
    node_id: str = ""
    node_type: str = ""
    message: str = ""
    exception_type: str = ""
    # traceback.format_exception's lines, as --json carries them ("".join: the text printed);
    # none for a user error
    traceback: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)  # as reported (`scheduler.reported`)
    # A node refused the user's value (`problems.InputError`): the user's to fix, not a bug.
    user_error: bool = False
    input_name: str | None = None  # the refused input, when the node named it
    kind = "node_failed"


def input_errors_only(failures: list[NodeFailed]) -> bool:
    """True when a run failed only because nodes refused their input (`user_error`): the
    user's to fix, exit code 2 for `latentgraph run` and `submit` alike (1 for a crash)."""
    return bool(failures) and all(f.user_error for f in failures)


@dataclass
class RunFinished(Event):
    """The run ended."""

    status: RunStatus = "success"
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # The node the interrupt cut short while it ran, also `interrupted_node` (none, and None,
    # when the run stopped between two nodes: the node running when the stop came, checking no
    # step, finished first; the nodes not started are in `skipped`). With the lists above and
    # `skipped`, every node of the run is in one list at most: one in none was not needed, as
    # what it feeds was served from the cache (the summary counts them: `RichProgress`).
    interrupted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted_node: str | None = None
    kind = "run_finished"
