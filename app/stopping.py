"""How `latentgraph run` stops on Ctrl-C or SIGTERM: the first signal at the current node's
next step, a second at once (`StopNow`), a third by ending the process; `run --ray`'s batch
by a KeyboardInterrupt, a second signal ending the process (`Stopper.batch_signal`); and what
it says when its stdout closed midway (`Stopper.stdout_closed`)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .exits import EXIT_INTERRUPTED, EXIT_TERMINATED, end_process

if TYPE_CHECKING:
    from latentgraph.graph.console import Renderer
    from latentgraph.graph.events import Event


class StopNow(BaseException):
    """A second Ctrl-C or SIGTERM during `run`, raised into whatever the run is doing (a node
    that checks no step, a sleep, a save): the run is given up at once. Not an `Exception`, so
    neither the scheduler nor a node's `except Exception` takes it for the node's failure;
    `finally` blocks run on the way out (a temp file being written is removed), and what had
    finished is already in the cache."""


class Stopper:
    """`run`'s Ctrl-C and SIGTERM handler. The first stops the run at the current node's next
    step (`cancel`); a second ends it at once (`StopNow`), and `stopped_line` names the node
    it did not wait for; a third, should node code have swallowed that, ends the process
    there and then. `watch` wraps a renderer to know which node is running. `cached`: the
    run has a disk cache (not --no-cache), so what finished outlives the process."""

    def __init__(self, cancel, cached: bool = True) -> None:
        self.cancel = cancel
        self.cached = cached
        self.signals: list[int] = []
        # the node each run is at: run id -> (node id, node type) (`run --ray` runs several)
        self.running: dict[str, tuple[str, str]] = {}
        self.saved: list[str] = []  # the output files the run's nodes saved, as they report
        # the node(s) running when a second signal came, named by `stopped_line` (the run
        # given up still reports its end, after which none is running)
        self.abandoned: str | None = None
        self.renderer: Renderer | None = None

    def __call__(self, signum: int, _frame) -> None:
        self.signals.append(signum)
        if len(self.signals) > 1:
            self.abandoned = self._running()
        if len(self.signals) == 1:
            self.cancel.cancel()
            self.say(self.stopping_line())
        elif len(self.signals) == 2:
            raise StopNow
        else:
            print(self.stopped_line(), file=sys.stderr, flush=True)
            end_process(self.code(), at_once=True)

    def batch_signal(self, signum: int, _frame: object) -> None:
        """`run --ray`'s SIGTERM handler: the Ray batch stops at a KeyboardInterrupt, as after
        Ctrl-C (`pool_batch`: its running jobs interrupted, the rest not started); a second
        signal, should stopping the actors hang, ends the process at once."""
        self.signals.append(signum)
        if len(self.signals) > 1:
            end_process(self.code(), at_once=True)
        raise KeyboardInterrupt

    def _running(self) -> str | None:
        """The node running, as messages name one (`node 'sample' (KSampler)`; several runs'
        nodes joined by ", "), or None."""
        from latentgraph.graph.problems import node_name

        return ", ".join(node_name(*node) for node in self.running.values()) or None

    def stopping_line(self) -> str:
        """What the first signal does, said at once (a node loading a model for seconds
        checks no step: the run seemed deaf): "latentgraph: Ctrl-C: stopping after node 'model'
        (LoadModel) finishes or reaches its next step; press Ctrl-C again to stop now"."""
        term = self.signals[-1] == signal.SIGTERM
        running = self._running()
        what = (f"after {running} finishes or reaches its next step" if running
                else "before the next node")  # fmt: skip
        name, again = (
            ("SIGTERM", "send SIGTERM again") if term else ("Ctrl-C", "press Ctrl-C again")
        )
        return f"latentgraph: {name}: stopping {what}; {again} to stop now"

    def say(self, text: str) -> None:
        """`text` on stderr now, above the progress display when there is one; a line that
        cannot be written never stops the run from stopping."""
        try:
            if self.renderer is not None:
                self.renderer.note(text)
            else:
                print(text, file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - e.g. stderr closed, a reentrant write
            pass

    def watch(self, renderer: Renderer) -> Callable[[Event], None]:
        """`renderer`, each event `seen` first."""
        self.renderer = renderer

        def on_event(event: Event) -> None:
            self.seen(event)
            renderer(event)

        return on_event

    def seen(self, event: Event) -> None:
        """Which node each run is at, and the files its nodes saved, from its events (what
        the lines above say); `run --ray` hands its runs' rebuilt events here."""
        from latentgraph.graph.events import NodeFailed, NodeFinished, NodeStarted, RunFinished
        from latentgraph.graph.files import file_records

        if isinstance(event, NodeStarted):
            self.running[event.run_id] = (event.node_id, event.node_type)
        elif isinstance(event, RunFinished) or (
            isinstance(event, (NodeFinished, NodeFailed))
            and self.running.get(event.run_id, ("",))[0] == event.node_id
        ):  # (a cached output node's files, reported meanwhile, leave the running one be)
            self.running.pop(event.run_id, None)
        if isinstance(event, NodeFinished) and not event.cached:
            self.saved += [str(Path(r.get("subfolder") or "", r["filename"]))
                           for r in file_records(event.ui)
                           if r.get("type") == "output" and r.get("filename")]  # fmt: skip

    @property
    def terminated(self) -> bool:
        return signal.SIGTERM in self.signals

    def name(self) -> str:
        """The signals' name in messages: "SIGTERM" once one came, else "Ctrl-C"."""
        return "SIGTERM" if self.terminated else "Ctrl-C"

    def code(self) -> int:
        return EXIT_TERMINATED if self.terminated else EXIT_INTERRUPTED

    def stdout_closed(self) -> str:
        """What became of a run whose stdout closed midway (`StdoutClosed`; the run is given
        up there): "the run stopped at node 'sample' (KSampler) before finishing; it had saved
        a.png; what had finished is cached"."""
        running = self._running()
        where = f" at {running}" if running else ""
        saved = f"; it had saved {', '.join(self.saved)}" if self.saved else ""
        cached = "; what had finished is cached" if self.cached else ""
        return f"the run stopped{where} before finishing{saved}{cached}"

    def interrupted_line(self, finished: int, total: int) -> str:
        """How a stopped `run --ray` ended: "latentgraph: interrupted by SIGTERM: 1 of 3
        run(s) had finished" ("interrupted (Ctrl-C)" when no SIGTERM came)."""
        how = "by SIGTERM" if self.terminated else "(Ctrl-C)"
        return f"latentgraph: interrupted {how}: {finished} of {total} run(s) had finished"

    def stopped_line(self) -> str:
        """What a second signal did: "latentgraph: interrupted again (Ctrl-C): did not wait
        for node 'n' (Sleeper) to stop; what had finished is cached" (under --no-cache, up
        to "to stop")."""
        name = "SIGTERM" if self.signals[-1] == signal.SIGTERM else "Ctrl-C"
        what = self.abandoned or "the run"
        line = f"latentgraph: interrupted again ({name}): did not wait for {what} to stop"
        return line + ("; what had finished is cached" if self.cached else "")
