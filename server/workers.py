"""The worker layer's interface: what the server needs from whatever runs its prompts.

The HTTP process never runs a model. It hands jobs to a `WorkerPool`, whose workers (local
processes in `local_workers.py`; a distributed executor can plug in beside it) run the real
Scheduler and report back through one channel per worker: `WorkerMessage`s carrying the engine's
own protocol messages, translated and encoded by the worker and sent in batches, in order. The pool replaces a worker that dies and says so (`Died`), then (`Ready`)
when the replacement can take work. Everything here crosses a process boundary: plain,
picklable data.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from latentgraph.graph.comfy_api import is_link
from latentgraph.graph.declare import Registry
from latentgraph.graph.events import RunStatus

# Socket types whose values are loaded models: the nodes producing them from literals alone are
# a prompt's model loaders, the keys of model affinity.
MODEL_SOCKETS = frozenset({"MODEL", "CLIP", "VAE"})


@dataclass(frozen=True)
class WorkerSetup:
    """How a worker process builds what it runs with. Each callable is a module-level function
    (or a functools.partial of one): it is pickled by reference and called in the worker, so
    the server never imports the node packs' model code.

    `registry` builds the node registry (None: the default registry with the server config's
    plugin packs), the worker's own (a new one, or its process's default registry): the
    plugins failing to load into it are its `plugin_failures` (`plugins.load_plugins`), which
    the worker keeps as it starts, to name when a prompt needs a node type they would have
    declared. `free_models` unloads every model (POST /free, after out of memory);
    `resident_models` lists the loaded models' keys (empty: the worker holds no model).
    `model_folders`: each models folder kind the nodes read (ComfyUI's model types) with the
    sub-folder names searched for it under each models root, for the server's /models routes."""

    registry: Callable[[], Registry] | None = None
    free_models: Callable[[], None] | None = None
    resident_models: Callable[[], list[str]] | None = None
    model_folders: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """One prompt for a worker."""

    prompt_id: str
    prompt_json: str  # the API-format prompt as JSON text (parsed in the worker)
    extra_data: dict[str, Any]
    targets: list[str] | None
    previews: bool  # encode previews (JPEG bytes ride on NodeProgress.preview)
    checked: bool = False  # validated by POST /prompt in this server: convert, do not validate


# --- what workers send back ---------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A device a worker runs on, with the fields of ComfyUI's /system_stats `devices`
    (bytes; for the CPU, the machine's RAM)."""

    name: str
    type: str  # "cpu", "cuda", "mps"
    index: int | None
    vram_total: int
    vram_free: int
    torch_vram_total: int
    torch_vram_free: int


@dataclass(frozen=True)
class Ready:
    """The worker can take a job (sent when it starts, and after a free: a run ends in `Done`).
    `resident`: model keys (see `model_keys`) it holds; `devices`: what it runs on, now;
    `host`: the machine it runs on (a Ray actor's may not be the server's);
    `plugin_failures`: the node plugins that failed as it started, as each failure reads (the
    server logs those its own process did not have when the worker starts)."""

    pid: int
    resident: frozenset[str] = frozenset()
    devices: tuple[Device, ...] = ()
    host: str = ""
    plugin_failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preview:
    """A preview image of a running node (JPEG): the server frames it per client."""

    node_id: str
    jpeg: bytes


@dataclass(frozen=True)
class SentImage:
    """A full-size image a running node sends to the prompt's client (SaveImageWebsocket; PNG):
    the server frames it per client, and never drops it."""

    node_id: str
    png: bytes


@dataclass(frozen=True)
class RunMessages:
    """A batch of the running prompt's websocket messages, in order, built by the worker's
    RunTranslator: (type, JSON text as the client receives it), ("preview", Preview) or
    ("image", SentImage).
    `history`: the [type, data] of those history keeps; `executed`: the nodes that ran (not
    from cache); `node`: the node running at the batch's end (None: no node started in it).
    The server forwards the texts as they are and keeps the rest, to end the run itself if
    the worker dies."""

    prompt_id: str
    messages: list[tuple[str, str | Preview]]
    history: list[list[Any]] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    node: str | None = None


@dataclass(frozen=True)
class Done:
    """The prompt ended; the worker is idle again (what a `Ready` would say comes with it:
    `resident`, and `devices` when the worker read them)."""

    prompt_id: str
    status: RunStatus
    ui: dict[str, Any]
    error: str | None
    resident: frozenset[str] = frozenset()
    devices: tuple[Device, ...] | None = None


@dataclass(frozen=True)
class Freed:
    """POST /free was carried out."""

    resident: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Died:
    """The worker process is gone (and is being replaced): `reason` says how; `node`, the
    node it was running then, when the pool can tell (a local worker's `RunningNode`)."""

    reason: str
    node: str | None = None


@dataclass(frozen=True)
class Warned:
    """A warning about the worker's machine, not a run (the disk cache it cannot write): for
    the server's log, where it is said once however many workers find it (`WarnedOnce`)."""

    text: str


@dataclass(frozen=True)
class Lost:
    """Every worker is gone for good and the pool cannot replace them (a Ray pool's cluster
    stopped answering): the server stops in order, its queued and running prompts kept for
    its next start. Said once, for the whole pool (delivered as worker 0's)."""

    reason: str


WorkerMessage = Ready | RunMessages | Done | Freed | Died | Warned | Lost


class WarnedOnce:
    """The workers' warnings as a server (or a pool's batch) logs them: each text once, not
    once per worker (`serve --workers 2` on a full cache disk said it twice)."""

    def __init__(self, log: logging.Logger) -> None:
        self._log, self._said = log, set[str]()

    def __call__(self, warned: Warned) -> None:
        if warned.text not in self._said:
            self._said.add(warned.text)
            self._log.warning("%s", warned.text)


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
    `Died` and replaced; the replacement sends `Ready`; a pool that can replace none any
    more says `Lost`. A prompt whose worker died goes back
    to the queue `redispatch_after_death` times (0: it fails, unless it had not begun)."""

    redispatch_after_death: int = 0

    @abstractmethod
    def start(self, deliver: Callable[[int, WorkerMessage], None]) -> None: ...

    def shutting_down(self) -> None:  # noqa: B027 - optional: Ray's actors get no signal of ours
        """The server was told to stop (SIGTERM, Ctrl-C) and will `stop` the pool: workers
        that die meanwhile of the same signal are not crashes to report or replace."""

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

    @abstractmethod
    def convert_ahead(self, worker_id: int, prompt_id: str, prompt_json: str) -> None:
        """A hint: the idle worker's next job is likely this prompt, still being checked; it
        may parse and convert it meanwhile. A job that does not follow costs only the work."""


def model_keys(prompt: dict[str, Any], registry: Registry) -> frozenset[str]:
    """A prompt's model loaders, as keys: each node whose outputs include a model socket and
    whose inputs are all literals, by its class and inputs. Two prompts loading the same
    weights the same way share a key, which is what model affinity matches on."""
    keys = set()
    loaders: dict[str, Any] = {}  # class_type -> its NodeType if it outputs a model, else None
    for spec in prompt.values():
        if not isinstance(spec, dict):
            continue
        class_type = str(spec.get("class_type", ""))
        if class_type not in loaders:
            node_type = registry.get(class_type)
            loaders[class_type] = node_type if node_type is not None and any(
                o.type in MODEL_SOCKETS for o in node_type.outputs) else None  # fmt: skip
        node_type = loaders[class_type]
        if node_type is None:
            continue
        inputs = spec.get("inputs") or {}
        if not isinstance(inputs, dict):
            continue  # not a prompt the check lets through
        if any(is_link(v) for v in inputs.values()):
            continue  # fed by another node: not a loader
        keys.add(json.dumps([node_type.name, inputs], sort_keys=True, default=str))
    return frozenset(keys)
