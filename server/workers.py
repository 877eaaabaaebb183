"""The worker layer's interface: what the server needs from whatever runs its prompts.

The HTTP process never runs a model. It hands jobs to a `WorkerPool`, whose workers (local
processes in `local_workers.py`; a distributed executor can plug in beside it) run the real
Scheduler and report back through one channel per worker: `WorkerMessage`s carrying the engine's
own events, in order. The pool replaces a worker that dies and says so (`Died`), then (`Ready`)
when the replacement can take work. Everything here crosses a process boundary: plain,
picklable data.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from latentgraph.graph.declare import Registry
from latentgraph.graph.events import Event, RunStatus
from latentgraph.graph.model import Graph

# Socket types whose values are loaded models: the nodes producing them from literals alone are
# a prompt's model loaders, the keys of model affinity.
MODEL_SOCKETS = frozenset({"MODEL", "CLIP", "VAE"})


@dataclass(frozen=True)
class WorkerSetup:
    """How a worker process builds what it runs with. Each callable is a module-level function
    (or a functools.partial of one): it is pickled by reference and called in the worker, so
    the server never imports the node packs' model code.

    `registry` builds the node registry (None: the default registry with the server config's
    plugin packs); `free_models` unloads every model (POST /free, after out of memory);
    `resident_models` lists the loaded models' keys (empty: the worker holds no model)."""

    registry: Callable[[], Registry] | None = None
    free_models: Callable[[], None] | None = None
    resident_models: Callable[[], list[str]] | None = None


@dataclass(frozen=True)
class Job:
    """One prompt for a worker."""

    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    targets: list[str] | None
    previews: bool  # encode previews (JPEG bytes ride on NodeProgress.preview)
    graph: Graph | None = None  # converted and validated by POST /prompt, when still at hand


# --- what workers send back ---------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The worker can take a job. `resident`: model keys (see `model_keys`) it holds."""

    pid: int
    resident: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RunEvent:
    """An engine event of the running prompt."""

    prompt_id: str
    event: Event


@dataclass(frozen=True)
class RunError:
    """The prompt failed outside a node (unreadable graph, a bug in the runner)."""

    prompt_id: str
    message: str
    exception_type: str
    node_id: str | None = None
    node_type: str | None = None
    traceback: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Done:
    """The prompt ended; the worker is idle again."""

    prompt_id: str
    status: RunStatus
    ui: dict[str, Any]
    error: str | None
    resident: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Freed:
    """POST /free was carried out."""

    resident: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Died:
    """The worker process is gone (and is being replaced): `reason` says how."""

    reason: str


WorkerMessage = Ready | RunEvent | RunError | Done | Freed | Died


@dataclass(frozen=True)
class WorkerInfo:
    """What the dispatcher may know of one worker."""

    id: int
    name: str
    device: str
    pid: int | None


class WorkerPool(ABC):
    """A fixed set of workers, each running one job at a time.

    `start(deliver)` starts them; every message from worker `i` reaches `deliver(i, message)`
    in the order the worker sent it (from a pool thread). A worker that dies is reported as
    `Died` and replaced; the replacement sends `Ready`. A prompt whose worker died goes back
    to the queue `redispatch_after_death` times (0: it fails, unless it had not begun)."""

    redispatch_after_death: int = 0

    @abstractmethod
    def start(self, deliver: Callable[[int, WorkerMessage], None]) -> None: ...

    @abstractmethod
    def stop(self, timeout: float = 2.0) -> None: ...

    @abstractmethod
    def workers(self) -> list[WorkerInfo]: ...

    @abstractmethod
    def submit(self, worker_id: int, job: Job) -> None: ...

    @abstractmethod
    def cancel(self, worker_id: int, prompt_id: str) -> None:
        """Ask the worker to stop the prompt at its next cancellation check."""

    @abstractmethod
    def kill(self, worker_id: int) -> None:
        """End the worker now (it is reported as `Died` and replaced)."""

    @abstractmethod
    def free(self, worker_id: int, unload_models: bool, free_memory: bool) -> None:
        """Free memory between jobs (answered by `Freed`)."""


def model_keys(prompt: dict[str, Any], registry: Registry) -> frozenset[str]:
    """A prompt's model loaders, as keys: each node whose outputs include a model socket and
    whose inputs are all literals, by its class and inputs. Two prompts loading the same
    weights the same way share a key, which is what model affinity matches on."""
    keys = set()
    for spec in prompt.values():
        if not isinstance(spec, dict):
            continue
        node_type = registry.get(str(spec.get("class_type", "")))
        if node_type is None or not any(o.type in MODEL_SOCKETS for o in node_type.outputs):
            continue
        inputs = spec.get("inputs") or {}
        if any(isinstance(v, list) and len(v) == 2 and type(v[1]) is int for v in inputs.values()):
            continue  # fed by another node: not a loader
        keys.add(json.dumps([node_type.name, inputs], sort_keys=True, default=str))
    return frozenset(keys)
