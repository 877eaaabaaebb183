"""`latentgraph run FILE --ray local|ADDRESS [--sweep ...]`: the workflow's runs spread over
Ray actors (the server's workers, `latentgraph.server.ray_workers`) instead of this process.

Each run becomes a `Job` carrying the checked Graph and the same run extras as an in-process
run (the ComfyUI prompt and workflow for the PNG metadata), so the outputs are the same files
with the same pixels (the same bytes when torch computes with as many threads here as on the
actors: docs/scale-out.md); which actor made them, and in which order they finish (so the
numbers in the file names), differ. Each run's messages are turned back into engine events
(`submit`'s reading of a server's messages), so `run --ray` shows a run, and takes its exit
code from it, as an in-process run does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from latentgraph.graph.cache import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES
from latentgraph.graph.context import Settings
from latentgraph.graph.declare import Registry
from latentgraph.graph.events import Event, NodeFailed, RunFinished
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.workflow import Workflow
from latentgraph.server.config import ServerConfig
from latentgraph.server.messages import LATENTGRAPH_MESSAGES
from latentgraph.server.pool_batch import Finished, run_batch
from latentgraph.server.ray_workers import ray_pool
from latentgraph.server.submit import PromptEvents
from latentgraph.server.workers import Job

from .wiring import worker_setup


@dataclass(frozen=True)
class RayRun:
    """Where and how the runs go: `address` ("local" or a cluster's), `workers` actors."""

    address: str
    workers: int | None
    settings: Settings
    disk_cache: bool = True
    # The disk cache's folder, as `run --cache-dir` names it (None: the default store): the
    # actors keep their entries where a local run would (`ServerConfig.disk_store`).
    cache_dir: Path | None = None
    # The cache's (memory, disk) bounds in bytes (`--cache-memory-mb`, `--cache-disk-mb`).
    cache_bounds: tuple[int, int] = (DEFAULT_MEMORY_BYTES, DEFAULT_DISK_BYTES)
    nodes_dirs: tuple = ()
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 1.0


def workflow_job(index: int, workflow: Workflow, registry: Registry, settings: Settings) -> Job:
    """One run as a worker job: the graph checked here (problems point into the file; the
    worker converts the prompt without checking it again), with the prompt and workflow a
    local run would embed in its PNGs."""
    from latentgraph.graph.formats import embedded
    from latentgraph.graph.validate import validate

    problems = validate(workflow.graph, registry, settings)
    if any(p.severity == "error" for p in problems):
        raise WorkflowError(problems)
    extra = embedded(workflow)
    prompt = extra["prompt"]
    pnginfo = {"workflow": extra.get("workflow"), "latentgraph": extra.get("latentgraph")}
    return Job(prompt_id(index), json.dumps(prompt),
               {"extra_pnginfo": pnginfo, LATENTGRAPH_MESSAGES: True},  # told as `run` tells
               None, False, checked=True)  # fmt: skip


def prompt_id(index: int) -> str:
    """The prompt id of the run at `index` (from 0) among the workflows: its messages carry it,
    so `run --ray --json` readers match runs to sweep values by it."""
    return f"run-{index}"


@dataclass
class RayRunResult:
    """How one run ended on the actors (`finished`: a run Ctrl-C stopped is "interrupted",
    one it stopped before it began is not `started`) and the engine events its messages
    rebuilt: what a local run's renderer shows, its failures (`NodeFailed`) for the exit code."""

    finished: Finished
    events: list[Event]

    @property
    def failures(self) -> list[NodeFailed]:
        return [event for event in self.events if isinstance(event, NodeFailed)]


class _RunEvents:
    """One run's messages as engine events, from its first message on (the run's time too),
    each also handed to `on_event` as it is rebuilt."""

    def __init__(self, prompt_id: str, prompt: dict,
                 on_event: Callable[[Event], None] | None = None) -> None:  # fmt: skip
        self.prompt_id, self.prompt = prompt_id, prompt
        self.events: list[Event] = []
        self.reader: PromptEvents | None = None
        self.on_event = on_event

    def _read(self) -> PromptEvents:
        """The run's reader, made at its first message (its clock starts then)."""
        if self.reader is None:
            self.reader = PromptEvents(self.prompt_id, self.prompt, self._event)
        return self.reader

    def _event(self, event: Event) -> None:
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def message(self, text: str) -> None:
        message = json.loads(text)
        self._read().handle(message.get("type", ""), message.get("data") or {})

    def interrupted(self) -> None:
        """The run was stopped by Ctrl-C (its actor killed, no end message comes): it ends
        as a local run Ctrl-C stopped, naming the node it was running."""
        reader = self._read()
        reader.handle("execution_interrupted", {"node_id": reader.running})


def run_on_ray(plan: RayRun, workflows: Iterable[Workflow], registry: Registry,
               on_message: Callable[[str, str], None] | None = None,
               on_result: Callable[[int, RayRunResult], None] | None = None,
               on_event: Callable[[Event], None] | None = None,
               ) -> list[RayRunResult]:  # fmt: skip
    """Run every workflow on the actors, as many at once as there are actors; each run's
    websocket messages (JSON texts) reach `on_message`, after the engine events rebuilt from
    them reach `on_event` (so it knows the node a message that cannot be printed was about),
    and each run's result reaches `on_result(index, result)` as the run ends (`index`: its
    place among `workflows`). How each run ended, in their order; after a Ctrl-C, how each
    stood. What a callback raises stops the runs (the actors are killed) and is raised here."""
    jobs = [workflow_job(i, wf, registry, plan.settings) for i, wf in enumerate(workflows)]
    runs = {job.prompt_id: _RunEvents(job.prompt_id, json.loads(job.prompt_json), on_event)
            for job in jobs}  # fmt: skip
    index = {job.prompt_id: i for i, job in enumerate(jobs)}
    results: dict[str, RayRunResult] = {}

    def message(prompt_id: str, text: str) -> None:
        runs[prompt_id].message(text)
        if on_message is not None:
            on_message(prompt_id, text)

    def finished(end: Finished) -> None:
        pid = end.done.prompt_id
        run = runs[pid]
        if end.started and end.done.status == "interrupted" and not _ended(run.events):
            run.interrupted()
        results[pid] = RayRunResult(end, run.events)
        if on_result is not None:
            on_result(index[pid], results[pid])

    config = ServerConfig(output_dir=plan.settings.output_dir, input_dir=plan.settings.input_dir,
                          temp_dir=plan.settings.temp_dir, device=plan.settings.device,
                          ray=plan.address, ray_workers=plan.workers, disk_cache=plan.disk_cache,
                          cache_dir=plan.cache_dir, cache_memory_bytes=plan.cache_bounds[0],
                          cache_disk_bytes=plan.cache_bounds[1],
                          nodes_dirs=list(plan.nodes_dirs), ray_cpus_per_actor=plan.cpus_per_actor,
                          ray_gpus_per_actor=plan.gpus_per_actor)  # fmt: skip
    pool = ray_pool(config, worker_setup(plan.nodes_dirs), plan.settings, announce=_say)
    try:
        run_batch(pool, jobs, message, finished)
    finally:
        pool.stop()
    return [results[job.prompt_id] for job in jobs]


def _say(text: str) -> None:
    """A line on stderr while the actors start (they take seconds to be placed and checked)."""
    print(f"latentgraph: {text}", file=sys.stderr, flush=True)


def _ended(events: list[Event]) -> bool:
    return any(isinstance(event, RunFinished) for event in events)
