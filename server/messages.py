"""ComfyUI's websocket messages: made from engine run events, encoded, shown to web clients.

One `RunTranslator` per prompt. It turns each `graph.events` event into zero or more
(type, data) messages in the protocol's order, and keeps the entries history stores: the
subset ComfyUI stores (`execution_start`, `execution_cached`, and the terminal message), a
node's warning (`node_warning`), which has no message since ComfyUI has none, and each node's
failure (`node_error`: ComfyUI's one `execution_error` names the first). A prompt asking for
latentgraph's own messages (`LATENTGRAPH_MESSAGES`) is also sent those two, and each node's
outputs as `latentgraph run` describes them (`node_finished`).

Traffic stays linear in the number of nodes: per-node messages (`executing`, `executed`,
`progress`) are small, and the one message whose size grows with the run, `progress_state`,
is coalesced and bounded by `ProgressStates`.

Also here: the server's paths as a web client is shown them (`user_folders`, `shown_paths`,
`shown_error`: a folder by the name the client knows it by, another absolute path by its file
name, a value the client sent as sent; POST /prompt's refusals follow the same rule), a
message's JSON text as it goes out (`encode_message`), and images on the websocket
(`encode_preview`, a worker's JPEG; `preview_frame`, ComfyUI's binary frames, types 1 and 4).
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from latentgraph.graph import events as ev
from latentgraph.graph.comfy_api import is_link
from latentgraph.graph.events import now_ms
from latentgraph.graph.paths import KindFolder, cache_dir, data_dir, models_roots

# The messages that end a run, and with the start and cache report, those history keeps.
TERMINAL_TYPES = frozenset({"execution_success", "execution_error", "execution_interrupted"})
HISTORY_TYPES = TERMINAL_TYPES | {"execution_start", "execution_cached"}
# A prompt whose extra_data holds this key, true, is sent latentgraph's own messages below
# (POST /latentgraph/run's, so `latentgraph submit`'s, and `run --ray`'s): what `latentgraph
# run` prints and ComfyUI has no message for. Not the editor's prompts: it logs every message
# type it does not know as an error.
LATENTGRAPH_MESSAGES = "latentgraph_messages"
# A node's warning (the CLI prints it): no ComfyUI message, as ComfyUI has none (its nodes
# print such things to its console). Kept in history's status messages; the server logs it.
NODE_WARNING = "node_warning"
# A node's failure, each of them: the engine runs on past a failed node (what does not depend on
# it still runs), and ComfyUI's one `execution_error`, the run's end, names only the first.
# History keeps one entry per failed node (an `execution_error`'s fields, `executed` the nodes
# that ran before it).
NODE_ERROR = "node_error"
# A node that ran (no cache hit) finished: its time and its outputs described as `latentgraph
# run` prints them (`NodeFinished.summary`, the scheduler's). A message only, never in history.
NODE_FINISHED = "node_finished"

# A binary frame's header: its event type, then (type 1) the image's format, as ComfyUI numbers
# them: previews are JPEG, SaveImageWebsocket's full-size images PNG.
PREVIEW_IMAGE = 1
PREVIEW_WITH_METADATA = 4
JPEG = 1
PNG = 2
_MEDIA_TYPES = {JPEG: "image/jpeg", PNG: "image/png"}  # in a type 4 frame's JSON header

# Room in one node's `executed` output for all but its text (`ui_chars_limit`): a batch's file
# records, a few kB.
_UI_ROOM = 1024 * 1024


def ui_chars_limit(max_string_chars: int) -> int:
    """The most characters of JSON one node's `executed` output (its ui) may take, sent to the
    prompt's clients and kept in the history: the longest text a node may return (the run's
    `max_string_chars`), each character escaped as a surrogate pair (12 characters), and
    `_UI_ROOM` for the rest. PreviewAny shows any text a node may return; a plugin's node
    showing 200 MB made a 200 MB history entry every later /history answered."""
    return 12 * max_string_chars + _UI_ROOM


# How many nodes' outputs at `ui_chars_limit` one prompt's outputs may come to together
# (`prompt_ui_chars_limit`).
_PROMPT_UI_NODES = 4


def prompt_ui_chars_limit(max_string_chars: int) -> int:
    """The most characters of JSON all of one prompt's `executed` outputs may take together,
    sent to its clients and kept in its history: `_PROMPT_UI_NODES` nodes at `ui_chars_limit`
    (9 MB at the default 100,000). The per-node cap alone let 300 PreviewAny nodes showing one
    99,000-character text make a 31 MB history entry of a 120 KB prompt (2,000 nodes, 200 MB),
    each under it. Counted as the JSON kept: a file record is about 70 characters, so a
    2,000-image batch (140 kB) is far inside it; the text nodes show is what it bounds."""
    return _PROMPT_UI_NODES * ui_chars_limit(max_string_chars)


# `progress_state` goes out at most this often per run (and once more at its end) ...
PROGRESS_STATE_INTERVAL = 0.1
# ... carrying at most this many nodes: the most recently changed ones.
PROGRESS_STATE_NODES = 128

Schedule = Callable[[float, Callable[[], None]], None]


class ProgressStates:
    """The node states of one run, sent as coalesced, bounded `progress_state` messages.

    ComfyUI re-sends the whole map on every state change: on a 10,000-node graph that is
    quadratic traffic and JSON encoding. The editor replaces its map with each message and
    draws from it what is running (outline, progress bar) and, in the minimap, what finished.
    So a message carries the `limit` most recently changed nodes (a running node is always
    among them: it changed last), and a change waits at most `interval`: it leaves with a
    later change, or from the timer `schedule` arms when the run goes quiet (a long node).
    A change is only appended to a log (a node runs in microseconds on a large graph); the
    bounded map is built from it when a message leaves. `set` runs on the run's thread and the
    timer on another: the log is taken with a length read first, so an append meanwhile stays
    for the next message, and sending holds the lock.
    """

    def __init__(self, prompt_id: str, send: Callable[[str, dict[str, Any]], None],
                 schedule: Schedule | None = None, *, interval: float = PROGRESS_STATE_INTERVAL,
                 limit: int = PROGRESS_STATE_NODES) -> None:  # fmt: skip
        self.prompt_id = prompt_id
        self.interval = interval
        self.limit = max(1, limit)
        self._send = send
        self._schedule = schedule
        self._sent: dict[str, tuple[str, float, float]] = {}  # the last message's, in order
        self._log: list[tuple[str, tuple[str, float, float]]] = []  # changes since, in order
        self._lock = threading.Lock()
        self._timer = False
        self._closed = False
        self._last = -float("inf")

    def set(self, node_id: str, state: str, value: float, max_: float) -> None:
        self._log.append((node_id, (state, value, max_)))
        now = time.monotonic()
        if now - self._last >= self.interval:
            with self._lock:
                if self._log:  # (the timer may have just sent it)
                    self._send_locked(now)
        elif not self._timer and self._schedule is not None:
            with self._lock:
                if self._timer or self._closed:
                    return
                self._timer = True
            self._schedule(self._last + self.interval - now, self._due)

    def close(self) -> None:
        """Send what is left; later timers send nothing (the run has ended)."""
        with self._lock:
            if self._log and not self._closed:
                self._send_locked(time.monotonic())
            self._closed = True

    def _due(self) -> None:
        with self._lock:
            self._timer = False
            if self._log and not self._closed:
                self._send_locked(time.monotonic())

    def _send_locked(self, now: float) -> None:
        log = self._log
        taken = len(log)
        changes = log[:taken]
        del log[:taken]  # what was appended meanwhile stays
        latest: dict[str, tuple[str, float, float]] = {}  # newest first, each node once
        for node_id, state in reversed(changes):
            if node_id not in latest:
                latest[node_id] = state
                if len(latest) == self.limit:
                    break
        room = self.limit - len(latest)
        kept = [(nid, v) for nid, v in self._sent.items() if nid not in latest] if room else []
        self._sent = dict(kept[max(0, len(kept) - room) :])
        self._sent.update(reversed(latest.items()))
        self._last = now
        pid = self.prompt_id
        nodes = {
            nid: {"value": value, "max": top, "state": state, "node_id": nid, "prompt_id": pid,
                  "display_node_id": nid, "parent_node_id": None, "real_node_id": nid}
            for nid, (state, value, top) in self._sent.items()
        }  # fmt: skip
        self._send("progress_state", {"prompt_id": pid, "nodes": nodes})


@dataclass(frozen=True)
class RunError:
    """A failure that is no node's `NodeFailed` event (a prompt that does not convert, a
    crash outside the engine, a worker that died, a shutdown), with the fields an
    `execution_error` reads of either: `node_id` None when no node was running (the message
    says ""), `node_type` None for the prompt's class_type of `node_id`."""

    message: str
    exception_type: str
    node_id: str | None = None
    node_type: str | None = None
    traceback: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    user_error: bool = False
    input_name: str | None = None


class RunTranslator:
    """Builds the protocol messages of one prompt from its run events."""

    def __init__(
        self,
        prompt_id: str,
        node_types: Mapping[str, str],
        send: Callable[[str, dict[str, Any]], None],
        send_preview: Callable[[Any, str], None] | None = None,
        parents: Mapping[str, list[str]] | None = None,
        targets: list[str] | None = None,
        schedule: Schedule | None = None,
        note: Callable[[str, dict[str, Any]], None] | None = None,
        own_messages: bool = False,
        ui_limit: int | None = None,
        prompt_ui_limit: int | None = None,
    ) -> None:
        """`note`: where a history entry that is no message goes too (a worker's outbox);
        `own_messages`: latentgraph's own messages are sent too (`LATENTGRAPH_MESSAGES`);
        `ui_limit`: the most characters of JSON a node's `executed` output may take
        (`ui_chars_limit`), `prompt_ui_limit` all of the prompt's together
        (`prompt_ui_chars_limit`): an output past either is neither sent nor kept
        (`kept_ui`), and said as a node's warning."""
        self.prompt_id = prompt_id
        self._ui_limit = ui_limit
        self._prompt_ui_limit = prompt_ui_limit
        self._ui_total = 0  # characters of JSON of the outputs sent so far
        self.withheld: set[str] = set()  # the nodes whose output was over a limit
        self._past_total = False  # an output was past `prompt_ui_limit` (its node warned)
        self._note = note
        self._own_messages = own_messages
        self.node_types = node_types  # node id -> class_type, for error messages
        self._send = send
        self._send_preview = send_preview
        self.history: list[list[Any]] = []
        self.ui: dict[str, Any] = {}
        self.executed: list[str] = []
        self.failure: ev.NodeFailed | None = None
        self.finished = False
        # `send`, not `self.emit` (history keeps no progress_state): a bound method here would
        # make each run's translator a reference cycle, left for the collector's full passes.
        self._states = ProgressStates(prompt_id, send, schedule)
        self._progress: dict[str, tuple[float, float]] = {}  # node -> its last (value, max)
        self._parents = parents or {}
        self._targets = list(targets or [])
        self._plan: list[str] = []

    def not_running(self, cached: list[str]) -> list[str]:
        """Plan nodes that will not run: cache hits and what only they needed.

        The scheduler reports only the hits it fetched; ComfyUI clients expect every node whose
        result is reused, so walk from the plan's ends through nodes that must run.
        """
        if not self._plan or not cached:
            return list(cached)  # no hit: every planned node runs
        plan = set(self._plan)
        hit = set(cached)
        consumed = {p for n in self._plan for p in self._parents.get(n, ()) if p in plan}
        stack = [n for n in self._plan if n not in consumed] + [
            t for t in self._targets if t in plan
        ]
        run: set[str] = set()
        while stack:
            nid = stack.pop()
            if nid in run or nid in hit:
                continue
            run.add(nid)
            stack.extend(p for p in self._parents.get(nid, ()) if p in plan)
        return [n for n in self._plan if n not in run]

    def _keep_own(self, type_: str, data: dict[str, Any]) -> None:
        """An entry ComfyUI has no message for (`node_warning`, `node_error`): kept in history,
        handed to `note`, and sent only to a prompt asking for latentgraph's own messages."""
        self.history.append([type_, data])
        if self._note is not None:
            self._note(type_, data)
        if self._own_messages:
            self._send(type_, data)

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        if type_ in HISTORY_TYPES:
            self.history.append([type_, data])
            if type_ in TERMINAL_TYPES:
                self.finished = True
        self._send(type_, data)

    def start_if_needed(self) -> None:
        """Send `execution_start` unless it was sent: before an error that came before the
        engine started the run (an unreadable graph, a worker that died)."""
        if not any(m[0] == "execution_start" for m in self.history):
            self.emit("execution_start", {"prompt_id": self.prompt_id, "timestamp": now_ms()})

    def relayed(self, history: list[list[Any]], executed: list[str]) -> None:
        """Take note of messages a worker translated and sent (the server's copy of its
        translator: what history keeps, which nodes ran), so that the server can end the run
        itself if the worker dies."""
        self.history.extend(history)
        self.executed.extend(executed)
        if any(m[0] in TERMINAL_TYPES for m in history):
            self.finished = True

    def handle(self, event: ev.Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _run_started(self, event: ev.RunStarted) -> None:
        self._plan = list(event.nodes)
        self.emit("execution_start", {"prompt_id": self.prompt_id, "timestamp": event.timestamp})

    def _nodes_cached(self, event: ev.NodesCached) -> None:
        data = {
            "nodes": self.not_running(list(event.nodes)),
            "prompt_id": self.prompt_id,
            "timestamp": event.timestamp,
        }
        self.emit("execution_cached", data)

    def _node_started(self, event: ev.NodeStarted) -> None:
        self._send("executing", {"node": event.node_id, "display_node": event.node_id,
                                 "prompt_id": self.prompt_id})  # fmt: skip
        self._states.set(event.node_id, "running", 0, 1)

    def _node_progress(self, event: ev.NodeProgress) -> None:
        self._send("progress", {"value": event.value, "max": event.max,
                                "prompt_id": self.prompt_id, "node": event.node_id})  # fmt: skip
        if event.preview is not None and self._send_preview is not None:
            self._send_preview(event.preview, event.node_id)  # right after its step
        self._progress[event.node_id] = (event.value, event.max)
        self._states.set(event.node_id, "running", event.value, event.max)

    def _node_finished(self, event: ev.NodeFinished) -> None:
        node_id = event.node_id
        if not event.cached:
            self.executed.append(node_id)
            top = self._progress.pop(node_id, (0, 1))[1]
            self._states.set(node_id, "finished", top, top)
        if event.ui and self._ui_fits(event):
            self.ui[node_id] = event.ui
            self._send("executed", {"node": node_id, "display_node": node_id,
                                    "output": event.ui, "prompt_id": self.prompt_id})  # fmt: skip
        if self._own_messages and not event.cached:  # after its files: its `done` line
            self._send(NODE_FINISHED, {"prompt_id": self.prompt_id, "node_id": node_id,
                                       "node_type": event.node_type, "seconds": event.seconds,
                                       "summary": list(event.summary)})  # fmt: skip

    def _ui_fits(self, event: ev.NodeFinished) -> bool:
        """Whether the node's ui is within `ui_limit` as JSON, and within what is left of
        `prompt_ui_limit`; one that is not is withheld, said as the node's warning (in the
        history, the server's log, `submit`'s output): each node over its own limit, and the
        first node past the prompt's (one warning per prompt: a warning per node would grow
        with the prompt again). A later output that still fits is sent."""
        if self._ui_limit is None and self._prompt_ui_limit is None:
            return True
        size = len(_ENCODER.encode(event.ui))  # ASCII: characters are bytes
        if self._ui_limit is not None and size > self._ui_limit:
            self._withhold(event, (
                f"its output for the editor is {size} characters of JSON, more than the "
                f"limit of {self._ui_limit} (from --max-string-chars): not sent, nor kept in "
                "the history"))  # fmt: skip
            return False
        total = self._prompt_ui_limit
        if total is not None and self._ui_total + size > total:
            if not self._past_total:
                self._past_total = True
                self._withhold(event, (
                    f"its output for the editor ({size} characters of JSON) would bring the "
                    f"prompt's outputs past the limit of {total} for one prompt (from "
                    "--max-string-chars): not sent, nor kept in the history, nor any later "
                    "node's that does not fit"))  # fmt: skip
            self.withheld.add(event.node_id)
            return False
        self._ui_total += size
        return True

    def _withhold(self, event: ev.NodeFinished, message: str) -> None:
        self.withheld.add(event.node_id)
        self._node_warning(ev.NodeWarning(event.run_id, node_id=event.node_id, message=message))

    def kept_ui(self, ui: dict[str, Any]) -> dict[str, Any]:
        """A run's outputs by node (`RunResult.ui`) as the history keeps them: without those
        withheld (`withheld`), as they were not sent."""
        return {nid: out for nid, out in ui.items() if nid not in self.withheld}

    def _node_warning(self, event: ev.NodeWarning) -> None:
        data = {"prompt_id": self.prompt_id, "node_id": event.node_id,
                "node_type": self.node_types.get(event.node_id, ""), "message": event.message,
                "input_name": event.input_name, "timestamp": event.timestamp}  # fmt: skip
        self._keep_own(NODE_WARNING, data)

    def _node_failed(self, event: ev.NodeFailed) -> None:
        if self.failure is None:
            self.failure = event
        value, top = self._progress.get(event.node_id, (0, 1))
        self._states.set(event.node_id, "error", value, top)
        data = execution_error(self.prompt_id, event, executed=self.executed,
                               node_type=event.node_type or self.node_types.get(event.node_id, ""))  # fmt: skip
        self._keep_own(NODE_ERROR, data)

    def finish(self, event: ev.RunFinished) -> None:
        """Send the terminal message (success, error or interrupted)."""
        if self.finished:
            return
        self.finished = True
        self._states.close()
        pid = self.prompt_id
        executed = list(event.executed) or list(self.executed)
        if event.status == "success":
            self.emit("execution_success", {"prompt_id": pid, "timestamp": event.timestamp})
        elif event.status == "interrupted":
            node_id = event.interrupted_node
            self.emit("execution_interrupted", {
                "prompt_id": pid, "node_id": node_id,
                "node_type": self.node_types.get(node_id or "", ""), "executed": executed,
                "timestamp": event.timestamp})  # fmt: skip
        else:
            self.error(self.failure or RunError("the run failed", "RuntimeError"), executed)

    def error(self, failure: ev.NodeFailed | RunError, executed: list[str] | None = None) -> None:
        """End the run with an `execution_error` saying `failure` (the first node's that
        failed, or a `RunError`); `executed`: the nodes that ran, else those this saw finish."""
        self.finished = True
        self._states.close()
        node_type = failure.node_type or self.node_types.get(failure.node_id or "", "")
        self.emit("execution_error", execution_error(
            self.prompt_id, failure, node_type=node_type,
            executed=executed if executed is not None else self.executed))  # fmt: skip


def execution_error(prompt_id: str, failure: ev.NodeFailed | RunError, *, node_type: str,
                    executed: list[str]) -> dict[str, Any]:  # fmt: skip
    """The data of an `execution_error` message, every field ComfyUI's has: a run's failure,
    and a prompt a shutdown ended (`Store.recover`), which no translator saw end. Plus
    `user_error`: the node refused the user's value (`NodeFailed.user_error`), no crash, so a
    client (`latentgraph submit`, `run --ray`) can say so and exit as `run` does, and
    `input_name`, the input it refused, so the client can place the error where that value was
    written (a `--set`); ComfyUI's clients ignore fields they do not know. `node_id` is a
    string, "" when no node was running: the editor refuses /api/jobs whole over a null one.
    `current_inputs` is ComfyUI's shape: per input name a list of its values (ComfyUI runs a
    node once per item of a list input; ours run once), each as the failure reports it."""
    return {"prompt_id": prompt_id, "node_id": failure.node_id or "", "node_type": node_type,
            "executed": list(executed), "exception_message": failure.message,
            "exception_type": failure.exception_type, "traceback": list(failure.traceback),
            "current_inputs": {name: [value] for name, value in failure.inputs.items()},
            "current_outputs": {},
            "timestamp": now_ms(), "user_error": failure.user_error,
            "input_name": failure.input_name}  # fmt: skip


def reported_inputs(current_inputs: Any) -> dict[str, Any]:
    """A failed node's inputs as its `NodeFailed.inputs` reported them, read back from an
    `execution_error`'s (or `node_error`'s) `current_inputs` (`latentgraph submit`, `run
    --ray`): each input's one value out of the list `execution_error` puts it in; a list of
    another length (ComfyUI's list run) as it is, and no inputs for anything but a dict."""
    if not isinstance(current_inputs, dict):
        return {}
    return {str(name): values[0] if isinstance(values, list) and len(values) == 1 else values
            for name, values in current_inputs.items()}  # fmt: skip


# The events a translator turns into messages or history entries, each by its method. The
# per-node ones send through `_send` directly: history keeps none of them but a warning.
_HANDLERS: dict[type, Callable[[RunTranslator, Any], None]] = {
    ev.RunStarted: RunTranslator._run_started,
    ev.NodesCached: RunTranslator._nodes_cached,
    ev.NodeStarted: RunTranslator._node_started,
    ev.NodeProgress: RunTranslator._node_progress,
    ev.NodeFinished: RunTranslator._node_finished,
    ev.NodeWarning: RunTranslator._node_warning,
    ev.NodeFailed: RunTranslator._node_failed,
    ev.RunFinished: RunTranslator.finish,
}


class PromptTypes(Mapping[str, str]):
    """Node id -> class_type of an API-format prompt, looked up when asked: a run needs a
    node's type only for an error message, so a 100,000-node prompt is not walked for it."""

    def __init__(self, prompt: dict[str, Any]) -> None:
        self._prompt = prompt

    def __getitem__(self, node_id: str) -> str:
        spec = self._prompt[node_id]
        return str(spec.get("class_type", "")) if isinstance(spec, dict) else ""

    def __iter__(self) -> Iterator[str]:
        return iter(self._prompt)

    def __len__(self) -> int:
        return len(self._prompt)


class PromptText(Mapping[str, Any]):
    """An API-format prompt held as its JSON text (`PromptRecord.prompt_json`), parsed the first
    time a node is looked up: the server's copy of a run's translator needs node types only
    when the worker dies under the run."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._parsed: dict[str, Any] | None = None

    def _prompt(self) -> dict[str, Any]:
        if self._parsed is None:
            self._parsed = json.loads(self._text)
        return self._parsed

    def __getitem__(self, node_id: str) -> Any:
        return self._prompt()[node_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prompt())

    def __len__(self) -> int:
        return len(self._prompt())


_ENCODER = json.JSONEncoder(default=str)  # one, not one per message as json.dumps(default=)
_EXECUTING_KEYS = ["node", "display_node", "prompt_id"]
_EXECUTED_KEYS = ["node", "display_node", "output", "prompt_id"]
_PROGRESS_STATE_KEYS = ["prompt_id", "nodes"]
_NODE_STATE_KEYS = ["value", "max", "state", "node_id", "prompt_id", "display_node_id",
                    "parent_node_id", "real_node_id"]  # fmt: skip


def user_folders(settings: Any) -> dict[str, str]:
    """The server's folders a message may name, by their absolute path: what `shown_paths`
    replaces. Those a web client knows map to their name ("input", "models", ...): every
    models root searched is "models" (`graph.paths.models_roots`: the settings', the
    environment's, the data folder's), a folder an extra_model_paths.yaml names its entry
    (`a111.checkpoints`, as the CLI's warnings name it; one given otherwise "models/<kind>");
    a name two folders would share is the second's with "-2" (and so on: "models-2",
    "a111.loras-2"), so "looked in" never names two folders alike. The server's own folders
    no client knows (`_server_folders`: home, cache, data, Python's, temp) map to "": a path
    in one is shown by its file name, and where it begins is known as spelled, not guessed
    from its shape ("/home/Jane O'Neil", "C:\\Program Files (x86)")."""
    kind_folders = [d for d in settings.models_dirs if isinstance(d, KindFolder)]
    named = [("input", settings.input_dir), ("output", settings.output_dir),
             ("temp", settings.temp_dir),
             *(("models", root) for root in models_roots(settings.models_dirs)),
             *((d.entry or f"models/{d.kind}", d.path) for d in kind_folders)]  # fmt: skip
    folders: dict[str, str] = {}
    taken: dict[str, int] = {}
    for name, folder in named:
        spellings = _spellings(folder)
        shown = next((folders[s] for s in spellings if s in folders), None)  # named already
        if shown is None:
            taken[name] = taken.get(name, 0) + 1
            shown = name if taken[name] == 1 else f"{name}-{taken[name]}"
        for spelling in spellings:
            folders.setdefault(spelling, shown)
    for folder in _server_folders():
        for spelling in _spellings(folder):
            if Path(spelling).parent != Path(spelling):  # never "/" (a service's HOME=/)
                folders.setdefault(spelling, "")
    return folders


def _spellings(folder: Path | str) -> list[str]:
    """How a message may spell `folder`: as given made absolute, and with links resolved."""
    return [str(Path(folder).absolute()), str(Path(folder).resolve())]


def _server_folders() -> list[Path]:
    """The server's own folders a message may name and no web client knows by a name: the
    home folder, latentgraph's cache and data folders (the built-in models' builds are in the
    cache), Python's (a library's file) and the temp folder. One that cannot be known here
    (no home, a `$LATENTGRAPH_CACHE_DIR` of no user) is left out: the server refused to start
    on it already, and its paths are then read by their shape."""
    found = [Path(sys.prefix), Path(sys.base_prefix), Path(tempfile.gettempdir())]
    for known in (Path.home, cache_dir, data_dir):
        try:
            found.append(known())
        except (RuntimeError, ValueError, OSError):
            continue
    return found


# How an absolute path no known folder begins is read from its shape in free text. It begins
# at a root ("/", a drive's "C:\\") not inside a word, a URL or a relative path, nor just
# after a bracket. Quoted (an OSError's '...', a traceback's "..."), it is all of it up to the
# closing quote. Else it is folders, each "name/", then a file name: a name is words, a word
# any run of characters but blanks, quotes, separators, ";" and unpaired brackets ("(1)",
# "(x86)", "[old]" and "Stable-Diffusion," are words; "(see" is not). A folder's name may be
# several words a blank apart ("My Stable Diffusion/", "OneDrive - Contoso Ltd/"), the file
# name is one word ("/srv/my cat.png" shows "my cat.png"). Never past ": " (a message's own
# colon: "cannot read /a/b file: out/c") nor into "word:/" (a URL). Where the shape cannot
# tell words of the message from a folder's ("/a/b and c/d"), it reads a folder: a message
# losing words is better than one showing the server's layout. The server's own folders are
# known as spelled (`user_folders`), so their names are never read this way.
_NOT_AFTER = r"(?<![\w/\\.:~)\]-])"
_ROOT = r"(?:/|[A-Za-z]:\\)"
_CHAR = r"""[^\s'"/\\;()\[\]]"""
_WORD = rf"(?:{_CHAR}|\({_CHAR}*\)|\[{_CHAR}*\]|(?<=\w)'(?=\w))+"
_FOLDER = rf"{_WORD}(?:(?<!:)[\x20\t]+{_WORD})*(?<!:)[/\\]"
_REST = rf"(?:{_FOLDER})*(?:{_WORD})?"


@functools.lru_cache(maxsize=16)
def _absolute_path(known: tuple[str, ...]) -> re.Pattern[str]:
    """An absolute path in a message (above), beginning at a root or at one of the `known`
    folders (longest first), matched as it is spelled, blanks, quotes and brackets and all."""
    begin = (f"(?:{'|'.join(map(re.escape, known))})(?![\\w.-])" if known
             else "(?!)")  # fmt: skip
    return re.compile(rf"""
        (?<=')(?:{begin}|{_ROOT})[^'\n]*(?=')
      | (?<=")(?:{begin}|{_ROOT})[^"\n]*(?=")
      | {_NOT_AFTER}(?: {begin}(?:[/\\]{_REST})? | {_ROOT}{_REST} )
    """, re.VERBOSE)  # fmt: skip


def shown_paths(text: str, folders: Mapping[str, str], sent: Iterable[str] = ()) -> str:
    """`text` (an error as web clients see it: a run's, or POST /prompt's refusal) with the
    server's paths named as a client knows them: a path in one of its `folders` (absolute
    path -> the name a client knows it by, `user_folders`) by that name ("/srv/lg/input/cat.png
    not found" -> "input/cat.png not found"), any other absolute path (a link's missing
    target, a library's file, one in a folder named "") by its file name alone. A value the
    client `sent` (the node's inputs as the prompt gave them) is left as it is wherever the
    text quotes it: a message never names a value the client did not send. The server's log
    keeps the full paths."""
    kept = {v for v in sent if v and _rewritten(v, folders) != v}
    pieces, end = [], 0
    for start, stop in _spans_sent(text, kept):
        pieces += [_rewritten(text[end:start], folders), text[start:stop]]
        end = stop
    return "".join([*pieces, _rewritten(text[end:], folders)])


# What may continue a path: a sent value found followed (or preceded) by one is part of a
# longer path, not the value.
_PATH_CHAR = re.compile(r"[\w./\\-]")


def _spans_sent(text: str, sent: set[str]) -> list[tuple[int, int]]:
    """Where `text` quotes a value of `sent`, in order, not overlapping: the whole value
    standing alone, or its beginning cut short with "..." (a long value shortened)."""
    spans = []
    for value in sent:
        at = text.find(value[:4])
        while at != -1:
            n = len(os.path.commonprefix([text[at:][: len(value)], value]))
            alone = not (_PATH_CHAR.match(text[at + n :][:1]) or _PATH_CHAR.match(text[:at][-1:]))
            if n == len(value) and alone:
                spans.append((at, at + n))
            elif n and text.startswith("...", at + n):
                spans.append((at, at + n + 3))
            at = text.find(value[:4], at + 1)
    kept: list[tuple[int, int]] = []
    for start, stop in sorted(spans, key=lambda s: (s[0], -s[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, stop))
    return kept


def _rewritten(text: str, folders: Mapping[str, str]) -> str:
    if "/" not in text and "\\" not in text:
        return text
    longest_first = sorted(folders, key=len, reverse=True)  # a folder inside another first
    for path in longest_first:
        if folders[path] and path in text:  # the exact string, blanks and all
            text = re.sub(re.escape(path) + r"(?![\w.-])", lambda _, n=folders[path]: n, text)
    known = tuple(path for path in longest_first if not folders[path])
    return _absolute_path(known).sub(_file_name, text)


def _file_name(path: re.Match[str]) -> str:
    """An absolute path's file name (the path itself for a root alone)."""
    text = path[0]
    return (PureWindowsPath(text).name if ":" in text[:2] else PurePosixPath(text).name) or text


def sent_to(prompt: Mapping[str, Any], node_id: Any) -> list[str]:
    """The strings node `node_id` of an API `prompt` was sent with (links and other values
    left out; none for no such node, or None): what `shown_paths` leaves as sent."""
    spec = prompt.get(str(node_id)) if node_id is not None else None
    inputs = spec.get("inputs") if isinstance(spec, dict) else None
    return [v for v in inputs.values() if isinstance(v, str)] if isinstance(inputs, dict) else []


def shown_error(data: dict[str, Any], folders: Mapping[str, str],
                sent: Iterable[str] = ()) -> dict[str, Any]:  # fmt: skip
    """An `execution_error`'s data as web clients see it: its message and traceback through
    `shown_paths`, `sent` the failed node's inputs as the client sent them."""
    sent = list(sent)
    return {**data, "exception_message": shown_paths(str(data.get("exception_message", "")),
                                                     folders, sent),
            "traceback": [shown_paths(str(line), folders, sent)
                          for line in data.get("traceback") or []]}  # fmt: skip


def encode_message(type_: str, data: dict[str, Any]) -> str:
    """A websocket message as it goes to the client: JSON {type, data}. The two messages sent
    per node, and `progress_state` (up to 128 nodes, at least once per run), are written from
    their parts (what the encoder's walk of the whole message would give, 3-4x faster); every
    other message and shape takes the encoder's walk."""
    if type_ == "executing" and list(data) == _EXECUTING_KEYS:
        return _executing_text(data["node"], data["display_node"], data["prompt_id"])
    if type_ == "executed" and list(data) == _EXECUTED_KEYS:
        return (
            f'{{"type": "executed", "data": {{{_node_fields(data["node"], data["display_node"])}, '
            f'"output": {_ENCODER.encode(data["output"])}, '
            f'"prompt_id": {_string_text(data["prompt_id"])}}}}}'
        )
    if type_ == "progress_state" and list(data) == _PROGRESS_STATE_KEYS:
        text = _progress_state_text(data["prompt_id"], data["nodes"])
        if text is not None:
            return text
    return _ENCODER.encode({"type": type_, "data": data})


def _progress_state_text(prompt_id: str | None, nodes: Any) -> str | None:
    """`progress_state` as `_ENCODER` writes it, or None for a shape `ProgressStates` does not
    send (the caller then takes the encoder's walk). Each node's id and the prompt id are
    escaped once, however many fields repeat them; what is not as `ProgressStates` makes it
    (a float, another id) goes through `_ENCODER`."""
    if type(nodes) is not dict:
        return None
    pid = _string_text(prompt_id)
    text = _ENCODER.encode
    parts = []
    for key, fields in nodes.items():
        if type(key) is not str or type(fields) is not dict or list(fields) != _NODE_STATE_KEYS:
            return None
        value, top, state, node_id, of_prompt, display, parent, real = fields.values()
        q = encode_basestring_ascii(key)
        parts.append(
            f'{q}: {{"value": {value if type(value) is int else text(value)}, '
            f'"max": {top if type(top) is int else text(top)}, "state": {text(state)}, '
            f'"node_id": {q if node_id is key else text(node_id)}, '
            f'"prompt_id": {pid if of_prompt is prompt_id else text(of_prompt)}, '
            f'"display_node_id": {q if display is key else text(display)}, '
            f'"parent_node_id": {"null" if parent is None else text(parent)}, '
            f'"real_node_id": {q if real is key else text(real)}}}'
        )
    return (
        f'{{"type": "progress_state", "data": {{"prompt_id": {pid}, '
        f'"nodes": {{{", ".join(parts)}}}}}}}'
    )


def _executing_text(node: str | None, display_node: str | None, prompt_id: str | None) -> str:
    """`executing`, one per node of a run, as `_ENCODER` writes it."""
    return (
        f'{{"type": "executing", "data": {{{_node_fields(node, display_node)}, '
        f'"prompt_id": {_string_text(prompt_id)}}}}}'
    )


def _node_fields(node: str | None, display_node: str | None) -> str:
    """`"node": ..., "display_node": ...` as `_ENCODER` writes them (encoded once when the
    display node is the node itself, as it is for every node we run)."""
    node_text = _string_text(node)
    display_text = node_text if display_node is node else _string_text(display_node)
    return f'"node": {node_text}, "display_node": {display_text}'


def _string_text(value: str | None) -> str:
    """A node id or prompt id as `_ENCODER` writes it: null, or the string through json's own
    escaper (the one the encoder calls for a bare string, without its dispatch); anything else
    through the encoder."""
    if value is None:
        return "null"
    if type(value) is str:
        return encode_basestring_ascii(value)
    return _ENCODER.encode(value)


class PromptParents(Mapping[str, list[str]]):
    """Node id -> the node ids its inputs link to, of an API-format prompt, looked up when
    asked: only a run with cache hits needs them (`RunTranslator.not_running`), so a cold
    100,000-node run does not walk the prompt for them before it starts."""

    def __init__(self, prompt: dict[str, Any]) -> None:
        self._prompt = prompt

    def __getitem__(self, node_id: str) -> list[str]:
        spec = self._prompt[node_id]
        inputs = spec.get("inputs") if isinstance(spec, dict) else None
        return [v[0] for v in (inputs.values() if isinstance(inputs, dict) else ()) if is_link(v)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prompt)

    def __len__(self) -> int:
        return len(self._prompt)


def encode_preview(image: Any) -> bytes:
    """A preview image (PIL) as JPEG bytes: what crosses from a worker to the server."""
    buf = io.BytesIO()
    img = image if image.mode == "RGB" else image.convert("RGB")
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def preview_frame(data: bytes, *, image_format: int = JPEG,
                  metadata: dict[str, Any] | None = None) -> bytes:  # fmt: skip
    """A binary image frame as ComfyUI sends it: type 1 then `image_format` (JPEG for a
    preview, PNG for a SaveImageWebsocket image), or, with `metadata` (for a client announcing
    supports_preview_metadata), type 4 then a JSON header naming the node and the media type."""
    if metadata is None:
        return struct.pack(">II", PREVIEW_IMAGE, image_format) + data
    header = json.dumps({**metadata, "image_type": _MEDIA_TYPES[image_format]}).encode()
    return struct.pack(">II", PREVIEW_WITH_METADATA, len(header)) + header + data
