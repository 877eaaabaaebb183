"""Running a fixed batch of jobs on a `WorkerPool` without a server: `latentgraph run --ray
... --sweep` spreads a sweep's runs over the pool's workers this way.

Each idle worker takes the next job; events of the job a worker runs reach `on_event`; a job
whose worker dies goes back to the front, `pool.redispatch_after_death` times (its nodes
already computed are disk-cache hits), then fails with the death's reason.
"""

from __future__ import annotations

import queue
from collections import Counter, deque
from collections.abc import Callable

from latentgraph.graph.events import Event

from .workers import Died, Done, Job, Ready, RunError, RunEvent, WorkerMessage, WorkerPool


def run_batch(pool: WorkerPool, jobs: list[Job],
              on_event: Callable[[str, Event], None] | None = None) -> list[Done]:  # fmt: skip
    """Run `jobs` on the (not yet started) pool; their `Done`s in the jobs' order. The pool is
    left running (the caller stops it)."""
    inbox: queue.Queue[tuple[int, WorkerMessage]] = queue.Queue()
    pool.start(lambda worker, message: inbox.put((worker, message)))
    pending = deque(jobs)
    running: dict[int, Job] = {}
    idle: set[int] = set()
    deaths: Counter[str] = Counter()
    errors: dict[str, str] = {}
    results: dict[str, Done] = {}
    while len(results) < len(jobs):
        worker, message = inbox.get()
        job = running.get(worker)
        if isinstance(message, Ready):
            idle.add(worker)
        elif isinstance(message, RunEvent):
            if on_event is not None and job is not None and job.prompt_id == message.prompt_id:
                on_event(message.prompt_id, message.event)
        elif isinstance(message, RunError):
            errors[message.prompt_id] = message.message
        elif isinstance(message, Done):
            if job is not None and job.prompt_id == message.prompt_id:
                del running[worker]
                error = message.error or errors.get(message.prompt_id)
                results[message.prompt_id] = Done(message.prompt_id, message.status,
                                                  message.ui, error)  # fmt: skip
            idle.add(worker)
        elif isinstance(message, Died):
            idle.discard(worker)
            if job is not None:
                del running[worker]
                deaths[job.prompt_id] += 1
                if deaths[job.prompt_id] <= pool.redispatch_after_death:
                    pending.appendleft(job)
                else:
                    results[job.prompt_id] = Done(job.prompt_id, "failed", {}, message.reason)
        while idle and pending:
            worker, job = idle.pop(), pending.popleft()
            running[worker] = job
            pool.submit(worker, job)
    return [results[job.prompt_id] for job in jobs]
