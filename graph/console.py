"""Showing a run's events in a terminal: rich progress bars, or one JSON object per line.

Both renderers are plain callables taking an `Event`, so the scheduler (local runs) and the
websocket client of `latentgraph submit` (remote runs) drive the same display.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

from rich.markup import escape

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
from .files import WRITE_FAILED, file_records, record_path
from .model import Graph, Location
from .problems import EditorLocation, Problem, node_name, printable, problem_line


class Renderer(Protocol):
    """What both renderers are: called with each event; `note`, a line for people said now
    (what Ctrl-C will do); `close` once the run is over."""

    def __call__(self, event: Event) -> None: ...

    def note(self, text: str) -> None: ...

    def close(self) -> None: ...


class NodeLines:
    """What a run says of a node, its warning or its failure, as the problem whose line
    (`problem_line`: `error: PLACE: ...`) both renderers print on stderr (README: one rule,
    with `--json` too), placed where `graph` (the run's, when at hand) wrote the node or the
    input it is about, and the node named as problems name it."""

    def __init__(self, graph: Graph | None = None) -> None:
        self._graph = graph

    def node_name(self, node_id: str, node_type: str | None = None) -> str:
        """A node as problems name it (`node_name`): with its type, and the title the user gave
        it in an editor file, when the run's graph is at hand."""
        node = self._graph.nodes.get(node_id) if self._graph is not None else None
        where = node.location if node is not None else None
        title = where.title if isinstance(where, EditorLocation) else None
        return node_name(node_id, node_type or (node.type if node is not None else None), title)

    def place(self, node_id: str, input_name: str | None = None) -> Location | None:
        """Where a node (or its input) was written, when the run's graph is at hand."""
        node = self._graph.nodes.get(node_id) if self._graph is not None else None
        if node is None:
            return None
        return node.input_locations.get(input_name or "") or node.location

    def warning(self, event: NodeWarning) -> Problem:
        """A node's warning, at the node (or the input it is about)."""
        about = f" input {event.input_name!r}" if event.input_name else ""
        return Problem("node_warning", f"{self.node_name(event.node_id)}{about}: {event.message}",
                       location=self.place(event.node_id, event.input_name),
                       severity="warning")  # fmt: skip

    def failure(self, event: NodeFailed) -> Problem:
        """A node's failure as a problem, placed at the node (a user error at the input it
        refused, the place validation names): a user error's message names the node and input
        itself; a crash is named with its node and exception class, a bug's first clue; a file
        the machine would not let it write (a full disk) with what it says, no class: no code
        is at fault."""
        if event.user_error:
            return Problem("node_failed", event.message,
                           location=self.place(event.node_id, event.input_name))  # fmt: skip
        shown = "" if event.exception_type == WRITE_FAILED else f"{event.exception_type}: "
        if not event.node_id:  # the server's failure outside any node: a worker died first
            return Problem("node_failed", f"{shown}{event.message}")
        message = f"{self.node_name(event.node_id, event.node_type)}: {shown}{event.message}"
        return Problem("node_failed", message, location=self.place(event.node_id))


class JsonLines:
    """Prints every event as one JSON object per line (for scripts: `--json`), and what the
    run says of a node (its warning, unless `quiet`, its failure) as its line on stderr too,
    as the text renderer does (`NodeLines`): a log keeping stderr has the reason a run failed
    in words, as it has a refused workflow's."""

    def __init__(self, stream: TextIO | None = None, graph: Graph | None = None,
                 quiet: bool = False) -> None:  # fmt: skip
        self.stream = stream or sys.stdout
        self._lines = NodeLines(graph)
        self._quiet = quiet

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps(event.to_json(), default=str) + "\n")
        self.stream.flush()
        if isinstance(event, NodeFailed):
            self.note(problem_line(self._lines.failure(event)))
        elif isinstance(event, NodeWarning) and not self._quiet:
            self.note(problem_line(self._lines.warning(event)))

    def note(self, text: str) -> None:
        """A line for people, on stderr: stdout holds only the JSON lines."""
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """Progress bars for people: one bar for the run, one per node that reports steps."""

    def __init__(self, quiet: bool = False, dirs: dict[str, Path] | None = None,
                 graph: Graph | None = None, on_server: bool = False,
                 debug: bool = False) -> None:  # fmt: skip
        """`graph`, when the run's is at hand, places a node's user error at its file:line.
        `on_server`: the run is a server's (`submit`), its files are named as the server saved
        them, "saved on the server: output/x.png" (submit names the local copies it downloads).
        `debug` (`latentgraph --debug`): a node's crash is followed by its traceback."""
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True)
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=quiet,
        )
        self._run_task: Any = None
        self._planned: list[str] = []  # the run's nodes, as RunStarted lists them
        self._node_tasks: dict[str, Any] = {}
        self._started = False
        self._dirs = dirs or {}
        self._lines = NodeLines(graph)
        self._where = " on the server:" if on_server else ""
        self._debug = debug
        # the node that ran last, (id, type): a stop between two nodes came after it
        self._ended: tuple[str, str] | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.progress.start()
            self._started = True
            self._ended = None
            self._planned = list(event.nodes)
            self._run_task = self.progress.add_task("run", total=len(event.nodes))
        elif isinstance(event, NodesCached):
            if event.nodes:
                self._print(f"[dim]cached: {escape(', '.join(map(printable, event.nodes)))}[/dim]")
            self.progress.advance(self._run_task, len(event.nodes))
        elif isinstance(event, NodeStarted):
            self.progress.update(self._run_task, description=escape(
                f"{printable(event.node_id)} ({printable(event.node_type)})"))  # fmt: skip
        elif isinstance(event, NodeProgress):
            task = self._node_tasks.get(event.node_id)
            if task is None:
                task = self._node_tasks[event.node_id] = self.progress.add_task(
                    f"  {escape(printable(event.node_id))}"
                )
            self.progress.update(task, completed=event.value, total=event.max)
        elif isinstance(event, NodeWarning):
            if not self.quiet:
                self._say(self._lines.warning(event))
        elif isinstance(event, NodeFinished):
            task = self._node_tasks.pop(event.node_id, None)
            if task is not None:
                self.progress.remove_task(task)
            if not event.cached:
                self._ended = (event.node_id, event.node_type)
                self.progress.advance(self._run_task)
                # its outputs (none: the line ends at its time, a save's too)
                detail = f" {'; '.join(event.summary)}" if event.summary else ""
                self._print(
                    "[green]done[/green] "
                    + escape(
                        f"{printable(event.node_id)} ({printable(event.node_type)}) "
                        f"{event.seconds:.2f}s{detail}"
                    )
                )
            self._show_ui(event.node_id, event.ui or {}, event.cached)
        elif isinstance(event, NodeFailed):
            self._ended = (event.node_id, event.node_type) if event.node_id else self._ended
            self._say(self._lines.failure(event))
            if self._debug and event.traceback:  # a crash's (a user error has none)
                self.console.print(escape("".join(event.traceback).rstrip()), highlight=False,
                                   soft_wrap=True)  # fmt: skip
        elif isinstance(event, RunFinished):
            self.close()
            colour = {"success": "green", "failed": "red"}.get(event.status, "yellow")
            stopped = (f"{len(event.interrupted)} interrupted ({self._named(event.interrupted)}), "
                       if event.interrupted else "")  # fmt: skip
            unneeded = self._not_needed(event)
            spared = f"{len(unneeded)} not needed, " if unneeded else ""
            self._print(
                f"[{colour}]{event.status}[/{colour}]: {len(event.executed)} ran, "
                f"{len(event.cached)} cached, {spared}{len(event.failed)} failed, {stopped}"
                f"{len(event.skipped)} skipped in {event.seconds:.2f}s{self._stopped_at(event)}"
            )

    def _not_needed(self, event: RunFinished) -> list[str]:
        """The run's nodes in none of its lists: not needed, as what they feed came from the
        cache (a cached save's model and prompts are never looked up), or, in a prompt sent to
        a server, as no output needs them. Counted, so that the summary's counts add up to the
        run's nodes. A server counts the first kind as cached (ComfyUI's `execution_cached`
        lists every node that did not run), so `submit` shows them so."""
        told = {*event.executed, *event.cached, *event.failed, *event.interrupted,
                *event.skipped}  # fmt: skip
        return [nid for nid in self._planned if nid not in told]

    def _stopped_at(self, event: RunFinished) -> str:
        """Where a run interrupted between two nodes stopped, no node cut short (the one running
        when Ctrl-C came checks no step and finished first): "; stopped after node 'slow'
        (Sleeper)", or "; stopped before any node ran"; "" otherwise (the summary names the
        node interrupted)."""
        if event.status != "interrupted" or event.interrupted:
            return ""
        if self._ended is None:
            return "; stopped before any node ran"
        return f"; stopped after {escape(self._lines.node_name(*self._ended))}"

    def _named(self, node_ids: list[str]) -> str:
        """Nodes as "node 'model' (LoadModel)", their types when the run's graph is at hand:
        the summary names what an interrupt stopped, in a log too (the progress bar that
        showed it running is gone by then, and never drawn off a terminal)."""
        return ", ".join(self._lines.node_name(n) for n in node_ids)

    def note(self, text: str) -> None:
        """A line said now, above the progress bars (quiet or not): what Ctrl-C will do."""
        self.console.print(text, highlight=False, soft_wrap=True, markup=False)

    def _say(self, problem: Problem) -> None:
        """A problem's line (`problem_line`: `error: PLACE: ...`, as validation prints one),
        its label coloured; never broken mid-word (a path in a log), nothing highlighted."""
        line = problem_line(problem)
        label, rest = line.split(":", 1)
        colour = "red" if label == "error" else "yellow"
        self.console.print(f"[{colour}]{label}[/{colour}]:" + escape(rest), highlight=False,
                           soft_wrap=True)  # fmt: skip

    def _show_ui(self, node_id: str, ui: dict[str, Any], cached: bool) -> None:
        """What an output node produced: the files it saved or previewed, of every kind
        (images, checkpoints, ...: `file_records`), and preview text. A cached node's files
        are an earlier run's, still there unchanged: "kept", not "saved" (nothing was written),
        as is a file a save that ran again left in place (its record marked `kept`: the others
        of a batch one file of which was deleted)."""
        for record in file_records(ui):
            kept = cached or record.get("kept") is True
            verb = "preview" if record.get("type") == "temp" else "kept" if kept else "saved"
            path = escape(str(record_path(record, self._dirs)))
            self._print(f"[bold]{verb}[/bold]{self._where} {path}")
        for text in ui.get("text", []):
            self._print(f"[bold]{escape(printable(node_id))}[/bold]: {escape(str(text))}")

    def _print(self, text: str) -> None:
        """One line per message, never broken at the console's width ("done m (LoadModel)
        ... vae: VAEModel;" then "scheduler: ..." unindented): a terminal wraps it as it
        shows it, a log keeps it whole."""
        if not self.quiet:
            self.console.print(text, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False
