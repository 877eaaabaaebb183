"""Running a fixed batch of jobs on a `WorkerPool` without a server: `latentgraph run --ray
... --sweep` spreads a sweep's runs over the pool's workers this way.

Jobs are handed out once every worker is ready (or `READY_WAIT` seconds after the first is),
so a worker that loads its libraries faster does not take the whole batch. Each idle worker
takes the next job; the websocket messages of the job a worker runs (JSON texts, as the
server would send them) reach `on_message`, and each job's end reaches `on_finished` as it
ends (so a sweep can show each run then, not all of them once the last ends); a job
whose worker dies goes back to the front, `pool.redispatch_after_death` times (its nodes
already computed are disk-cache hits), then fails with the death's reason; a pool that lost every worker (`Lost`: a Ray cluster
gone) fails every job left with its reason. Ctrl-C ends the
batch: what finished is kept, the jobs running are "interrupted", those not handed out yet
"interrupted" and not `started`.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from .workers import (
    Died,
    Done,
    Job,
    Lost,
    Ready,
    RunMessages,
    Warned,
    WarnedOnce,
    WorkerMessage,
    WorkerPool,
)

log = logging.getLogger("latentgraph.worker")
READY_WAIT = 30.0


@dataclass(frozen=True)
class Finished:
    """How a job ended, and on which worker (its name: `WorkerInfo.name`; "" for a job Ctrl-C
    stopped before it was handed out, `started` False)."""

    done: Done
    worker: str
    started: bool = True


def run_batch(pool: WorkerPool, jobs: list[Job],
              on_message: Callable[[str, str], None] | None = None,
              on_finished: Callable[[Finished], None] | None = None) -> list[Finished]:  # fmt: skip
    """Run `jobs` on the (not yet started) pool; how each ended, in the jobs' order (after a
    Ctrl-C too: `Batches.run`). The pool is left running (the caller stops it)."""
    return Batches(pool).run(jobs, on_message, on_finished)


class Batches:
    """Batches of jobs, one after another, on one pool (started here)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.names = [w.name for w in pool.workers()]
        self.inbox: queue.Queue[tuple[int, WorkerMessage]] = queue.Queue()
        self.idle: set[int] = set()
        self.ready: set[int] = set()  # workers that said Ready at least once
        self.hand_out_at = float("inf")  # monotonic time from which jobs are handed out
        self.warned = WarnedOnce(log)  # the workers' warnings (a full disk cache), each once
        pool.start(lambda worker, message: self.inbox.put((worker, message)))

    def run(self, jobs: list[Job], on_message: Callable[[str, str], None] | None = None,
            on_finished: Callable[[Finished], None] | None = None) -> list[Finished]:  # fmt: skip
        """Run `jobs`; how each ended, in their order. `on_message(prompt_id, json_text)`;
        `on_finished(finished)` once per job, in the order they end (after a Ctrl-C, those
        left in the jobs' order). A
        Ctrl-C (KeyboardInterrupt) ends the batch at once, not the caller: the jobs running
        then are "interrupted" (their workers are still at them: stop the pool), those not
        handed out yet too, not `started`."""
        self.on_message, self.on_finished = on_message, on_finished
        self.pending = deque(jobs)
        self.running: dict[int, Job] = {}  # worker -> its job
        self.deaths: Counter[str] = Counter()
        self.results: dict[str, Finished] = {}
        try:
            self._hand_out(len(jobs))
        except KeyboardInterrupt:
            at = {job.prompt_id: worker for worker, job in self.running.items()}
            for pid in (job.prompt_id for job in jobs if job.prompt_id not in self.results):
                if pid in at:
                    self._finish(Done(pid, "interrupted", {}, "interrupted by Ctrl-C"), at[pid])
                else:
                    self._ended(Finished(Done(pid, "interrupted", {}, "not started"), "",
                                         started=False))  # fmt: skip
        return [self.results[job.prompt_id] for job in jobs]

    def _hand_out(self, count: int) -> None:
        """Until `count` jobs have ended: what the workers say, and an idle worker the next."""
        while len(self.results) < count:
            wait = self.hand_out_at - time.monotonic()
            try:
                self._on(*self.inbox.get(timeout=min(wait, 1.0) if wait > 0 else 1.0))
            except queue.Empty:
                pass
            while self.idle and self.pending and time.monotonic() >= self.hand_out_at:
                worker, job = self.idle.pop(), self.pending.popleft()
                self.running[worker] = job
                self.pool.submit(worker, job)

    def _on(self, worker: int, message: WorkerMessage) -> None:
        job = self.running.get(worker)
        if isinstance(message, Ready):
            self.idle.add(worker)
            self.ready.add(worker)
            everyone = len(self.ready) == len(self.names)
            first = time.monotonic() + READY_WAIT
            self.hand_out_at = 0.0 if everyone else min(self.hand_out_at, first)
        elif isinstance(message, RunMessages):
            if (
                self.on_message is not None
                and job is not None
                and job.prompt_id == message.prompt_id
            ):
                for _type, text in message.messages:
                    if isinstance(text, str):  # previews are not printed
                        self.on_message(message.prompt_id, text)
        elif isinstance(message, Done):
            if job is not None and job.prompt_id == message.prompt_id:
                del self.running[worker]
                self._finish(message, worker)
            self.idle.add(worker)
        elif isinstance(message, Warned):
            self.warned(message)
        elif isinstance(message, Lost):  # no worker comes back: every job left fails
            self.idle.clear()
            for at, running in list(self.running.items()):
                del self.running[at]
                self._finish(Done(running.prompt_id, "failed", {}, message.reason), at)
            while self.pending:
                done = Done(self.pending.popleft().prompt_id, "failed", {}, message.reason)
                self._ended(Finished(done, "", started=False))
        elif isinstance(message, Died):
            self.idle.discard(worker)
            if job is not None:
                del self.running[worker]
                self.deaths[job.prompt_id] += 1
                if self.deaths[job.prompt_id] <= self.pool.redispatch_after_death:
                    self.pending.appendleft(job)
                else:
                    self._finish(Done(job.prompt_id, "failed", {}, message.reason), worker)

    def _finish(self, done: Done, worker: int) -> None:
        self._ended(Finished(done, self.names[worker]))

    def _ended(self, finished: Finished) -> None:
        self.results[finished.done.prompt_id] = finished
        if self.on_finished is not None:
            self.on_finished(finished)
