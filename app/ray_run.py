"""`latentgraph run FILE --ray local|ADDRESS [--sweep ...]`: the workflow's runs spread over
Ray actors (the server's workers, `latentgraph.server.ray_workers`) instead of this process.

Each run becomes a `Job` carrying the checked Graph and the same run extras as an in-process
run (the ComfyUI prompt and workflow for the PNG metadata), so the outputs are the same files
with the same bytes; only which actor made them, and in which order they finish, differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from latentgraph.graph.context import Settings
from latentgraph.graph.declare import Registry
from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.workflow import Workflow
from latentgraph.server.config import ServerConfig
from latentgraph.server.pool_batch import Finished, run_batch
from latentgraph.server.ray_workers import ray_pool
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
    nodes_dirs: tuple = ()
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 1.0


def workflow_job(index: int, workflow: Workflow, registry: Registry, settings: Settings) -> Job:
    """One run as a worker job: the graph checked here (problems point into the file; the
    worker converts the prompt without checking it again), with the prompt and workflow a
    local run would embed in its PNGs."""
    from latentgraph.graph.comfy_api import prompt_from_graph
    from latentgraph.graph.validate import validate

    problems = validate(workflow.graph, registry, settings)
    if any(p.severity == "error" for p in problems):
        raise WorkflowError(problems)
    extra = workflow.extra
    prompt = extra.get("prompt") or prompt_from_graph(workflow.graph, registry)
    pnginfo = {"workflow": extra.get("workflow"), "latentgraph": extra.get("latentgraph")}
    return Job(f"run-{index}", json.dumps(prompt), {"extra_pnginfo": pnginfo}, None, False,
               checked=True)  # fmt: skip


def run_on_ray(plan: RayRun, workflows: Iterable[Workflow], registry: Registry,
               on_message: Callable[[str, str], None] | None = None) -> list[Finished]:  # fmt: skip
    """Run every workflow on the actors, as many at once as there are actors; each run's
    websocket messages (JSON texts) reach `on_message`."""
    jobs = [workflow_job(i, wf, registry, plan.settings) for i, wf in enumerate(workflows)]
    config = ServerConfig(output_dir=plan.settings.output_dir, input_dir=plan.settings.input_dir,
                          temp_dir=plan.settings.temp_dir, device=plan.settings.device,
                          ray=plan.address, ray_workers=plan.workers, disk_cache=plan.disk_cache,
                          cache_dir=plan.cache_dir,
                          nodes_dirs=list(plan.nodes_dirs), ray_cpus_per_actor=plan.cpus_per_actor,
                          ray_gpus_per_actor=plan.gpus_per_actor)  # fmt: skip
    pool = ray_pool(config, worker_setup(plan.nodes_dirs), plan.settings)
    try:
        return run_batch(pool, jobs, on_message)
    finally:
        pool.stop()
