"""The `latentgraph` command.

Exit codes (also in README.md):
    0   success
    1   the run failed: a node raised (its error is printed, what was computed stays cached)
    2   user error: bad arguments, unreadable or invalid workflow (every problem is printed),
        a folder flag naming a file (run's --output-dir and --cache-dir, cache's --cache-dir,
        serve's --data-dir, --output-dir, --input-dir, --temp-dir, submit's --output-dir,
        tiny-model --addons; a
        --models-dir must exist), a file to write that cannot be (convert's DEST, tiny-model
        --single-file: a folder there, or a file where its folder would be), a --device this
        machine lacks (cuda, mps: checked before any node runs; for serve, each of --devices,
        before any worker starts), a `serve --port` in use (checked before any worker starts),
        or a run that failed only because a node refused its input (a missing or pickled
        model file, a file name leaving the output folder: `graph.problems.InputError`,
        printed like a validation problem at the input's file:line, with no traceback; on a
        server, `submit` alike), or a `submit --server` that is no http(s) URL with a host,
        or a server that wants a token `submit` was not given, or refuses the one given
    3   could not reach the server (`submit`)
    70  internal error (a bug: please report it with the output of `--debug`)
    130 interrupted (Ctrl-C); the current node stops at its next step; a second Ctrl-C (or a
        SIGTERM then) does not wait for a node that checks no step: the run ends at once,
        naming that node, with what had finished cached and no half-written file
    143 terminated (SIGTERM, e.g. from a service manager or `docker stop`): stopped as Ctrl-C
        stops a run, at the current node's next step, with what was computed cached and no
        half-written file; the code is the shell's for a SIGTERM (128 + 15)

User errors never print a Python traceback; `--debug` shows it for bug reports, and after the
error line of a node that crashed in `run` (a plugin's bug: its author's clue).
Heavy modules (torch, diffusers, rich, the server) are imported only by the commands that need
them, so `--help` and `validate` start instantly.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from latentgraph.graph.declare import Registry
    from latentgraph.graph.workflow import Workflow

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 70, 130, 143


class UserError(Exception):
    """A problem the user can fix; printed as one clear message, exit code 2."""


class _StopNow(BaseException):
    """A second Ctrl-C or SIGTERM during `run`, raised into whatever the run is doing (a node
    that checks no step, a sleep, a save): the run is given up at once. Not an `Exception`, so
    neither the scheduler nor a node's `except Exception` takes it for the node's failure;
    `finally` blocks run on the way out (a temp file being written is removed), and what had
    finished is already in the cache."""


class _Stopper:
    """`run`'s Ctrl-C and SIGTERM handler. The first stops the run at the current node's next
    step (`cancel`); a second ends it at once (`_StopNow`), and `stopped_line` names the node
    it did not wait for; a third, should node code have swallowed that, ends the process
    there and then. `watch` wraps a renderer to know which node is running. `cached`: the
    run has a disk cache (not --no-cache), so what finished outlives the process."""

    def __init__(self, cancel, cached: bool = True) -> None:
        self.cancel = cancel
        self.cached = cached
        self.signals: list[int] = []
        self.running: tuple[str, str] | None = None  # (node id, node type)
        self.renderer: Any = None

    def __call__(self, signum: int, _frame) -> None:
        self.signals.append(signum)
        if len(self.signals) == 1:
            self.cancel.cancel()
            self.say(self.stopping_line())
        elif len(self.signals) == 2:
            raise _StopNow
        else:
            print(self.stopped_line(), file=sys.stderr, flush=True)
            os._exit(self.code())

    def stopping_line(self) -> str:
        """What the first signal does, said at once (a node loading a model for seconds
        checks no step: the run seemed deaf): "latentgraph: Ctrl-C: stopping after node 'model'
        (LoadModel) finishes or reaches its next step; press Ctrl-C again to stop now"."""
        term = self.signals[-1] == signal.SIGTERM
        what = (f"after node {self.running[0]!r} ({self.running[1]}) finishes or reaches its "
                "next step" if self.running else "before the next node")  # fmt: skip
        name, again = (
            ("SIGTERM", "send SIGTERM again") if term else ("Ctrl-C", "press Ctrl-C again")
        )
        return f"latentgraph: {name}: stopping {what}; {again} to stop now"

    def say(self, text: str) -> None:
        """`text` on stderr now, above the progress display when there is one; a line that
        cannot be written never stops the run from stopping."""
        try:
            note = getattr(self.renderer, "note", None)
            if note is not None:
                note(text)
            else:
                print(text, file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - e.g. stderr closed, a reentrant write
            pass

    def watch(self, renderer):
        from latentgraph.graph.events import NodeFailed, NodeFinished, NodeStarted

        self.renderer = renderer

        def on_event(event) -> None:
            if isinstance(event, NodeStarted):
                self.running = (event.node_id, event.node_type)
            elif isinstance(event, (NodeFinished, NodeFailed)):
                self.running = None
            renderer(event)

        return on_event

    @property
    def terminated(self) -> bool:
        return signal.SIGTERM in self.signals

    def code(self) -> int:
        return EXIT_TERMINATED if self.terminated else EXIT_INTERRUPTED

    def stopped_line(self) -> str:
        """What a second signal did: "latentgraph: interrupted again (Ctrl-C): did not wait
        for node 'n' (Sleeper) to stop; what had finished is cached" (under --no-cache, up
        to "to stop")."""
        name = "SIGTERM" if self.signals[-1] == signal.SIGTERM else "Ctrl-C"
        what = (f"node {self.running[0]!r} ({self.running[1]})" if self.running
                else "the run")  # fmt: skip
        line = f"latentgraph: interrupted again ({name}): did not wait for {what} to stop"
        return line + ("; what had finished is cached" if self.cached else "")


# --- argument parsing -----------------------------------------------------------------------


def _add_workflow_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("workflow", help="workflow file: latentgraph YAML/JSON, ComfyUI JSON, or a PNG")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
        help="override a workflow param (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--nodes-dir", action="append", default=[], type=Path, metavar="DIR",
        help="also load node plugins from the .py files in DIR (repeatable)",
    )  # fmt: skip
    p.add_argument("--models-dir", type=Path, help="models folder (checkpoints/, vae/, ...)")
    p.add_argument(
        "--extra-models-dir", action="append", default=[], type=Path, metavar="DIR",
        help="another models folder to search, e.g. an existing ComfyUI install (repeatable)",
    )  # fmt: skip


def _device_arg(text: str) -> str:
    from latentgraph.graph.context import check_device

    try:
        return check_device(text)
    except ValueError as exc:  # argparse names the option: "argument --device: ..."
        raise argparse.ArgumentTypeError(str(exc)) from None


def _devices_arg(text: str) -> list[str]:
    """`--devices DEV,DEV`: each a name `--device` takes."""
    return [_device_arg(d) for d in text.split(",") if d.strip()]


def _add_device_args(p: argparse.ArgumentParser) -> None:
    """What `run` and `serve` share: where models run, in which precision, with which options
    (docs/gpu.md lists the options)."""
    p.add_argument("--device", default="auto", type=_device_arg,
                   help="auto, cpu, cuda, cuda:N or mps")  # fmt: skip
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument(
        "--option", dest="options", action="append", default=[], metavar="NAME=VALUE",
        help="runtime option for the diffusion nodes, e.g. attention_slicing=true, "
        "vae_tiling=true, cpu_offload=true, compile=true, channels_last=true, tf32=true, "
        "vae_fp32=false, vram_headroom_gb=1.5 (docs/gpu.md)",
    )  # fmt: skip


def _at_least(minimum: int, kind: type = int, *, at_most: int | None = None):
    """An argparse type: a number of `kind` (int or float, finite) no smaller than `minimum`
    (nor larger than `at_most`). A refusal says what was expected, and argparse names the
    flag: "argument --max-queue: expected an integer of at least 1, got '0'"."""
    noun = "an integer" if kind is int else "a number"
    expected = (f"{noun} from {minimum} to {at_most}" if at_most is not None
                else f"{noun} of at least {minimum}")  # fmt: skip

    def read(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < minimum or (
                at_most is not None and value > at_most):  # fmt: skip
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return read


def _add_ray_args(p: argparse.ArgumentParser, what: str) -> None:
    """`--ray` and `--ray-workers`, shared by run and serve (docs/scale-out.md)."""
    p.add_argument("--ray", metavar="local|ADDRESS",
                   help=f"{what} on Ray actors: a local Ray runtime, or the cluster at ADDRESS "
                   "(needs pip install 'latentgraph[ray]')")  # fmt: skip
    p.add_argument("--ray-workers", type=_at_least(1), metavar="N",
                   help="Ray actors (default: one per GPU the cluster offers)")  # fmt: skip
    p.add_argument("--ray-cpus-per-actor", type=_at_least(0, float), default=1.0, metavar="N",
                   help="CPUs each actor asks for (its torch threads on a CPU actor; default 1)")  # fmt: skip
    p.add_argument("--ray-gpus-per-actor", type=_at_least(0, float), default=1.0, metavar="N",
                   help="GPUs each actor asks for when the cluster has GPUs (0.5: two actors "
                   "share one; default 1)")  # fmt: skip


def _pixels(text: str) -> int:
    """`--max-pixels`: a pixel count (16777216) or WIDTHxHEIGHT (4096x4096, their product),
    at least 1 (the limit is on width x height: `Settings.max_image_pixels`)."""
    parts = text.lower().split("x")
    try:
        sides = [int(part) for part in parts] if len(parts) <= 2 else []
    except ValueError:
        sides = []
    if not sides or min(sides) < 1:
        raise argparse.ArgumentTypeError("expected a pixel count or WIDTHxHEIGHT (e.g. 1024x1024) "
                                         f"of at least 1, got {text!r}")  # fmt: skip
    return math.prod(sides)


def _add_limit_args(p: argparse.ArgumentParser) -> None:
    """The run limits `run`, `validate` and `serve` share (`Settings`; messages name these
    flags): a workflow `run --max-steps 5000` takes passes `validate --max-steps 5000`."""
    p.add_argument("--max-steps", type=_at_least(1), default=1000,
                   help="steps per sampler (default 1000)")  # fmt: skip
    p.add_argument("--max-batch", type=_at_least(1), default=64,
                   help="images per batch (default 64)")  # fmt: skip
    p.add_argument("--max-pixels", type=_pixels, default=4096 * 4096, metavar="PIXELS",
                   help="pixels per image: a count or WxH (default 4096x4096)")  # fmt: skip
    p.add_argument("--max-batch-pixels", type=_pixels, default=4096 * 4096, metavar="PIXELS",
                   help="pixels of a whole batch, width x height x images (an animation's "
                   "frames too): a count or WxH (default 4096x4096, 200 MB of float32 RGB: "
                   "SDXL 1024x1024 x 16, 2048x2048 x 4 or one 4096x4096 image pass, "
                   "4096x4096 x 64 does not)")  # fmt: skip


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", type=Path, default=Path("output"), help="default: ./output")
    p.add_argument("--input-dir", type=Path, default=Path("input"), help="default: ./input")
    p.add_argument("--temp-dir", type=Path, default=Path("temp"),
                   help="previews (default: ./temp, as serve's)")  # fmt: skip
    _add_device_args(p)
    _add_limit_args(p)
    p.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")
    p.add_argument("--cache-dir", type=Path, help="disk cache folder (default: user cache dir)")
    p.add_argument(
        "--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
        help="run once per value of a param, sharing everything upstream of it; values are "
        'comma-separated, a value holding a comma is quoted: prompt="a cat, sitting","a dog" '
        "(one --sweep per run)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print events as JSON lines on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    _add_ray_args(p, "runs (a sweep's spread over the actors)")


class _ComfyListen(argparse.Action):
    """`serve --listen [IP]`, ComfyUI's flag: refused naming latentgraph's (`--host`), never
    taken as one (ComfyUI's bare `--listen` binds every interface, which needs a token here)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        raise argparse.ArgumentError(self, "is ComfyUI's flag; latentgraph's is --host ADDRESS "
                                     "(default 127.0.0.1; --host 0.0.0.0 for every interface, "
                                     "which needs --auth-token TOKEN of at least 16 characters, "
                                     "or --insecure)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentgraph",
        description="Run diffusion node graphs from YAML/JSON workflows, headless or as a server.",
        epilog="exit codes: 0 ok, 1 run failed, 2 invalid input or usage, 3 server unreachable, "
        "70 internal error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks of internal errors and of nodes that crash")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run a workflow and save its outputs")
    _add_workflow_args(p)
    _add_run_args(p)

    p = sub.add_parser("validate", help="check a workflow without running it (exit 0 or 2)")
    _add_workflow_args(p)
    p.add_argument("--json", action="store_true", help="print problems as JSON")
    p.add_argument("--input-dir", type=Path, default=Path("input"), help="default: ./input")
    _add_limit_args(p)

    p = sub.add_parser("nodes", help="list node types, or `nodes describe NAME`")
    p.add_argument("action", nargs="?", choices=["list", "describe"], default="list")
    p.add_argument("name", nargs="?", help="node type name (for describe)")
    shown_as = p.add_mutually_exclusive_group()
    shown_as.add_argument("--json", action="store_true", help="print /object_info-style JSON")
    shown_as.add_argument(
        "--markdown", action="store_true", help="print the node reference (docs/nodes.md)"
    )
    p.add_argument("--nodes-dir", action="append", default=[], type=Path, metavar="DIR")

    p = sub.add_parser("schema", help="print the JSON Schema of the workflow format")
    p.add_argument("--nodes-dir", action="append", default=[], type=Path, metavar="DIR")

    p = sub.add_parser("convert", help="convert between latentgraph YAML and ComfyUI JSON formats")
    p.add_argument("source", help="latentgraph YAML/JSON, ComfyUI API or editor JSON, or a PNG")
    p.add_argument("dest", help="file to write ('-' for stdout)")
    p.add_argument("--to", choices=["yaml", "api", "editor"], help="default: from dest suffix")
    p.add_argument("--nodes-dir", action="append", default=[], type=Path, metavar="DIR")

    p = sub.add_parser("serve", help="start the ComfyUI-compatible server and editor")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--listen", action=_ComfyListen)
    p.add_argument("--port", type=_at_least(0, at_most=65535), default=8188,
                   help="default 8188; 0: a free port (the log says which)")  # fmt: skip
    p.add_argument("--auth-token", metavar="TOKEN", help="require this token of every client (Authorization: "
                   "Bearer TOKEN, or ?token=TOKEN once in the editor's address; at least 16 "
                   "characters on a non-loopback --host; default: $LATENTGRAPH_AUTH_TOKEN)")  # fmt: skip
    p.add_argument("--data-dir", type=Path,
                   help="the queue and history, the editor's settings and saved workflows, "
                   "nothing else: outputs, inputs and temp files go to --output-dir, --input-dir "
                   "and --temp-dir (default: the user data folder, or $LATENTGRAPH_DATA_DIR)")  # fmt: skip
    where = "relative to the working folder, not in --data-dir"
    p.add_argument("--output-dir", type=Path, default=Path("output"),
                   help=f"saved images (default: ./output, {where})")  # fmt: skip
    p.add_argument("--input-dir", type=Path, default=Path("input"),
                   help=f"uploads and LoadImage's files (default: ./input, {where})")  # fmt: skip
    p.add_argument("--temp-dir", type=Path, default=Path("temp"),
                   help=f"previews (default: ./temp, {where})")  # fmt: skip
    p.add_argument("--models-dir", type=Path)
    p.add_argument("--extra-models-dir", action="append", default=[], type=Path, metavar="DIR")
    p.add_argument("--nodes-dir", action="append", default=[], type=Path, metavar="DIR")
    _add_device_args(p)
    p.add_argument(
        "--workers", type=_at_least(1), metavar="N",
        help="worker processes running prompts (default: one per device)",
    )  # fmt: skip
    p.add_argument(
        "--devices", metavar="DEV,DEV", type=_devices_arg,
        default=[], help="devices the workers run on, e.g. cuda:0,cuda:1 (default: each visible GPU, "
        "else --device)",
    )  # fmt: skip
    _add_ray_args(p, "workers")
    p.add_argument("--previews", action="store_true", help="send denoise previews to clients")
    p.add_argument("--no-cache", action="store_true", help="do not use the disk cache")
    p.add_argument(
        "--insecure", action="store_true",
        help="allow a non-loopback --host without --auth-token (anyone who can reach the port "
        "can run workflows and read outputs)",
    )  # fmt: skip
    p.add_argument("--max-queue", type=_at_least(1), default=1000,
                   help="prompts queued or running (default 1000); one more is refused with 429")  # fmt: skip
    p.add_argument("--interrupt-grace", type=_at_least(0, float), default=10.0, metavar="SECONDS",
                   help="after an interrupt, how long a running node has to stop before its "
                   "worker is killed, models and all (default 10)")  # fmt: skip
    p.add_argument("--max-prompt-nodes", type=_at_least(1), default=250_000,
                   help="nodes per prompt; larger prompts are refused with 413 (default 250000)")  # fmt: skip
    _add_limit_args(p)
    p.add_argument("--max-body-mb", type=_at_least(1), default=64,
                   help="request and upload size (default 64 MB)")  # fmt: skip
    p.add_argument("--max-string-chars", type=_at_least(1), default=100_000,
                   help="longest string in a prompt (default 100000)")  # fmt: skip
    p.add_argument("--max-extra-data-mb", type=_at_least(0), default=8,
                   help="a prompt's extra_data, e.g. the editor's workflow; 0: none accepted "
                   "(default 8 MB)")  # fmt: skip
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests for this Host name (localhost, loopback addresses "
                   "and --host are always answered; others are refused against DNS rebinding)")  # fmt: skip

    p = sub.add_parser("submit", help="queue a workflow on a running server and show progress")
    p.add_argument("workflow", help="workflow file: latentgraph YAML/JSON or ComfyUI JSON "
                   "(read here, run there)")  # fmt: skip
    p.add_argument("--server", default="http://127.0.0.1:8188", metavar="URL",
                   help="the `latentgraph serve` to run it on (default http://127.0.0.1:8188)")  # fmt: skip
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
        help="override a workflow param (repeatable)",
    )  # fmt: skip
    p.add_argument("--output-dir", type=Path, default=Path("output"),
                   help="where to download the files the run saved (default: ./output)")  # fmt: skip
    p.add_argument("--auth-token", metavar="TOKEN", help="the token the server was started "
                   "with (default: the --server URL's ?token=, else $LATENTGRAPH_AUTH_TOKEN)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print events as JSON lines on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    from .cache_command import add_parser as add_cache_parser

    add_cache_parser(sub)

    p = sub.add_parser("tiny-model", help="build the built-in tiny model; optionally export it")
    p.add_argument("--single-file", type=Path, metavar="PATH", help="also write one .safetensors")
    p.add_argument("--addons", type=Path, metavar="MODELS_DIR",
                   help="also write tiny LoRAs (loras/), embeddings (embeddings/), "
                        "ControlNets and a T2I-Adapter (controlnet/) there; run and serve "
                        "look for models there with --models-dir MODELS_DIR (by default "
                        "they look in models/ in the user data folder, not ./models)")  # fmt: skip
    return parser


# --- helpers --------------------------------------------------------------------------------


def _parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """`NAME=VALUE` items, the names checked and the values the text as written: what each
    sets types it (`override_value`), so prompt text stays text."""
    if not items:  # the workflow module (and yaml) is not imported for nothing: serve start
        return {}
    from latentgraph.graph.workflow import parse_override

    result: dict[str, Any] = {}
    for item in items:
        name, value = parse_override(item, what)
        result[name] = value
    return result


def _options(items: list[str]) -> dict[str, Any]:
    """`--option NAME=VALUE` items, each value read by the option's declaration
    (graph/context.py `OPTIONS`): an unknown name or a bad value is refused before any work,
    naming `--option`. This is the one reading: the Settings of `run` (and of `serve`'s
    server, through `ServerConfig.options`) keep the values as read (`ParsedOptions`)."""
    from latentgraph.graph.context import parse_options

    options = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--option {item!r}: expected NAME=VALUE")
        options[name.strip()] = value.strip()
    try:
        return parse_options(options, "--option")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _check_nodes_dirs(nodes_dirs: list[Path]) -> None:
    """Each `--nodes-dir` a folder, else a usage error (exit 2) before anything loads or
    starts: the one rule for every command taking the flag (`_load_nodes`, and `serve`, whose
    registry `prepare_server` loads). A plugin file in it that fails to import is no usage
    error: each command warns (`_print_plugin_failures`) and goes on without it."""
    for d in nodes_dirs:
        if not d.is_dir():
            raise UserError(f"--nodes-dir {d}: not a folder")


def _load_nodes(nodes_dirs: list[Path]) -> Registry:
    """The registry: the built-in nodes, installed plugin packs and `--nodes-dir` folders."""
    from .wiring import node_registry

    _check_nodes_dirs(nodes_dirs)
    failures: list = []
    registry = node_registry(nodes_dirs, errors=failures)
    _print_plugin_failures(failures)
    return registry


def _print_plugin_failures(failures: list) -> None:
    for failure in failures:
        print(f"latentgraph: warning: {failure}", file=sys.stderr)


def _models_dirs(args: argparse.Namespace) -> list[Path]:
    named = [("--models-dir", args.models_dir)] if getattr(args, "models_dir", None) else []
    named += [("--extra-models-dir", d) for d in getattr(args, "extra_models_dir", []) or []]
    _check_folders(named, create=False)
    return [d for _, d in named]


def _check_folders(named: list[tuple[str, Path]], *, create: bool = True) -> None:
    """Each (flag, folder) a folder, or one the command may make (`create`): else a usage
    error (exit 2) naming the flag, before anything runs (app/preflight.py, one rule for run
    and serve): "--data-dir /tmp/x/afile: a file is there; expected a folder"."""
    from .preflight import folder_problem

    for flag, folder in named:
        problem = folder_problem(folder, create=create)
        if problem:
            raise UserError(f"{flag} {folder}: {problem}")


def _check_file(name: str, path: Path) -> None:
    """A file a command will write (`name`: its argument or flag) can be written there: else a
    usage error (exit 2) naming it, before the work that makes it (app/preflight.py, the folder
    it goes in held to the folder flags' rule): "dest /tmp: a folder is there; ..."."""
    from .preflight import file_problem

    problem = file_problem(path)
    if problem:
        raise UserError(f"{name} {path}: {problem}")


def _load(path_text: str, overrides: dict[str, Any], registry: Registry) -> Workflow:
    """Load any supported workflow format (the one table in graph/formats.py)."""
    from latentgraph.graph.formats import load_file

    return load_file(_workflow_file(path_text), overrides, registry)


def _workflow_file(path_text: str) -> Path:
    """The workflow file the user named, or a WorkflowError saying why it cannot be one (a
    problem at that path, as an unreadable file's: `run --json` readers get their
    `workflow_invalid` line for it too)."""
    from latentgraph.graph.model import Location
    from latentgraph.graph.problems import Problem, WorkflowError

    path = Path(path_text)
    if path.is_dir():
        reason = "is a folder; name a workflow file in it"
    elif not path.is_file():
        reason = "no such file"
    else:
        return path
    raise WorkflowError([Problem("invalid_value", reason, location=Location(str(path)))])


def _problem_rows(problems) -> list[dict[str, Any]]:
    """Problems as JSON objects (`validate --json`, and `run --json`'s refusal line)."""
    return [
        {
            "severity": p.severity,
            "code": p.code,
            "message": p.message,
            "node": p.node_id,
            "input": p.input_name,
            "location": str(p.location) if p.location else None,
        }
        for p in problems
    ]


def _print_problems(problems, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_problem_rows(problems), indent=2))
        return
    for p in problems:
        label = "error" if p.severity == "error" else "warning"
        print(f"{label}: {p}", file=sys.stderr)


def _refuse_run(problems, json_lines: bool) -> int:
    """A workflow `run` will not start: its problems on stderr and, for `--json` readers, one
    `workflow_invalid` event line on stdout (they read no other line then)."""
    _print_problems(problems, as_json=False)
    if json_lines:
        print(json.dumps({"event": "workflow_invalid", "problems": _problem_rows(problems)}))
    return EXIT_USAGE


# --- commands -------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from latentgraph.graph.context import LIMIT_FLAGS, Settings
    from latentgraph.graph.problems import WorkflowError
    from latentgraph.graph.validate import validate

    registry = _load_nodes(args.nodes_dir)
    # dropdowns are checked against the folders a run with these options reads
    settings = Settings(input_dir=args.input_dir, models_dirs=_models_dirs(args),
                        max_steps=args.max_steps, max_batch=args.max_batch,
                        max_image_pixels=args.max_pixels, max_batch_pixels=args.max_batch_pixels,
                        limit_labels=LIMIT_FLAGS)  # fmt: skip
    overrides = _parse_assignments(args.overrides, "--set")
    try:
        graph = _load(args.workflow, overrides, registry).graph
        problems = validate(graph, registry, settings)
    except WorkflowError as e:
        problems = e.problems
    _print_problems(problems, args.json)
    errors = [p for p in problems if p.severity == "error"]
    if not args.json:
        if errors:
            print(f"{args.workflow}: {len(errors)} error(s)", file=sys.stderr)
        else:
            print(f"{args.workflow}: ok ({len(graph)} nodes)")
    return EXIT_USAGE if errors else EXIT_OK


def _settings(args: argparse.Namespace):
    from latentgraph.graph.context import LIMIT_FLAGS, Settings

    options = _options(args.options)
    return Settings(
        output_dir=args.output_dir,
        input_dir=args.input_dir,
        temp_dir=args.temp_dir,
        models_dirs=_models_dirs(args),
        device=args.device,
        dtype=args.dtype,
        options=options,
        max_steps=args.max_steps,
        max_batch=args.max_batch,
        max_image_pixels=args.max_pixels,
        max_batch_pixels=args.max_batch_pixels,
        limit_labels=LIMIT_FLAGS,  # messages name the flags, not the Settings fields
    )


def cmd_run(args: argparse.Namespace) -> int:
    from latentgraph.graph.cache import Cache, disk_store_dir
    from latentgraph.graph.comfy_api import prompt_from_graph
    from latentgraph.graph.context import CancelToken
    from latentgraph.graph.events import input_errors_only
    from latentgraph.graph.problems import WorkflowError
    from latentgraph.graph.scheduler import Scheduler

    registry = _load_nodes(args.nodes_dir)
    settings = _settings(args)
    overrides = _parse_assignments(args.overrides, "--set")
    _check_folders([("--output-dir", args.output_dir)]
                   + ([("--cache-dir", args.cache_dir)] if args.cache_dir else []))  # fmt: skip
    if args.ray:
        return _run_on_ray(args, registry, settings, overrides)
    _check_devices("--device", [settings.device])
    cache = Cache(disk_dir=None if args.no_cache else disk_store_dir(args.cache_dir))
    scheduler = Scheduler(registry, cache=cache, settings=settings)
    stop = _Stopper(CancelToken(), cached=not args.no_cache)  # Ctrl-C or SIGTERM: stop at a step
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = "success"
    try:
        for label, workflow in _workflows(args, overrides, registry, settings):
            if label and not (args.json or args.quiet):
                print(label, file=sys.stderr, flush=True)
            extra = dict(workflow.extra)
            extra.setdefault("prompt", prompt_from_graph(workflow.graph, registry))
            renderer = _renderer(args, settings, workflow.graph)
            try:
                result = scheduler.run(workflow.graph, on_event=stop.watch(renderer),
                                       cancel=stop.cancel, extra=extra)  # fmt: skip
            finally:
                renderer.close()
            if result.status != "success":
                status = result.status
                if status == "failed" and input_errors_only(result.failures):
                    return EXIT_USAGE
                break
    except WorkflowError as e:
        return _refuse_run(e.problems, args.json)
    except _StopNow:
        print(stop.stopped_line(), file=sys.stderr)
        return stop.code()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if status in ("interrupted", "success") and stop.signals:
        # A signal during the last node (a long save in C code: no step checks it) does not
        # stop the run, but the caller asked to stop: its exit code says so, as after any stop.
        late = " (the run had reached its last node and finished it)" if status == "success" else ""
        print(f"latentgraph: interrupted by {'SIGTERM' if stop.terminated else 'Ctrl-C'}{late}",
              file=sys.stderr)  # fmt: skip
        return stop.code()
    return {"success": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(status, EXIT_FAILED)


def _check_devices(flag: str, devices: list[str], *, isolated: bool = False) -> None:
    """A device this machine lacks: a usage error (exit 2) naming `flag`, before any node runs
    or any worker starts (app/preflight.py, one rule for run and serve). `isolated`: torch is
    asked in a child process (serve's process never imports torch)."""
    from .preflight import device_problems

    for problem in device_problems(devices, isolated=isolated).values():
        raise UserError(f"{flag}: {problem}")


def _run_on_ray(args: argparse.Namespace, registry: Registry, settings,
                overrides: dict[str, Any]) -> int:  # fmt: skip
    """`run --ray`: the runs (one, or the sweep's) on Ray actors, as many at once as there are
    actors; with --json each run's messages as the server sends them (the websocket protocol,
    one JSON object per line), else one line per run as it ends."""
    from latentgraph.graph.files import file_records
    from latentgraph.server.ray_workers import RayUnavailable

    from .ray_run import RayRun, run_on_ray

    _require_ray()
    if args.cache_dir:  # the actors read the cache folder from the environment they are given
        os.environ["LATENTGRAPH_CACHE_DIR"] = str(args.cache_dir.resolve())
    plan = RayRun(args.ray, args.ray_workers, settings, disk_cache=not args.no_cache,
                  nodes_dirs=tuple(args.nodes_dir), cpus_per_actor=args.ray_cpus_per_actor,
                  gpus_per_actor=args.ray_gpus_per_actor)  # fmt: skip
    runs = _workflows(args, overrides, registry, settings)
    try:
        results = run_on_ray(plan, [workflow for _, workflow in runs], registry,
                             on_message=(lambda _run, text: print(text, flush=True))
                             if args.json else None)  # fmt: skip
    except RayUnavailable as exc:
        raise UserError(str(exc)) from None
    for (label, _), finished in zip(runs, results, strict=True):
        done = finished.done
        if not args.json and not args.quiet:
            files = [f["filename"] for out in done.ui.values() for f in file_records(out)]
            print(f"{label or 'run'} on {finished.worker}: {done.status}"
                  + (f": {done.error}" if done.error else "")
                  + (f" ({', '.join(files)})" if files else ""), file=sys.stderr)  # fmt: skip
    statuses = {finished.done.status for finished in results}
    if "failed" in statuses:
        return EXIT_FAILED
    return EXIT_INTERRUPTED if "interrupted" in statuses else EXIT_OK


def _require_ray() -> None:
    """--ray without Ray installed: a usage error naming the extra, before any work."""
    from latentgraph.server.ray_workers import RayUnavailable, import_ray

    try:
        import_ray()
    except RayUnavailable as exc:
        raise UserError(str(exc)) from None


def _workflows(args: argparse.Namespace, overrides: dict[str, Any], registry: Registry,
               settings) -> list[tuple[str, Workflow]]:  # fmt: skip
    """The workflow to run, or one per value of `--sweep NAME=V1,V2,...`, every one read and
    validated before the first runs: a bad value is refused with the others' problems before
    any image is made (it used to stop the sweep after the values before it had run). Each
    with the label printed before its run: "sweep 2/3: seed=11" ("" for a single run)."""
    from latentgraph.graph.problems import WorkflowError
    from latentgraph.graph.validate import validate

    from .api import sweep_workflows

    if not args.sweep:
        return [("", _load(args.workflow, overrides, registry))]
    name, values = _sweep(args.sweep)
    if name in overrides:
        raise UserError(f"--sweep {args.sweep[0]} and --set {name}={overrides[name]} both set "
                        f"{name!r}: give one of them")  # fmt: skip
    base = _load(args.workflow, overrides, registry)
    _check_sweep_name(base, name)
    workflows, problems = [], []
    for i, value in enumerate(values, 1):
        try:
            [workflow] = sweep_workflows(base, name, [value], params=overrides, registry=registry,
                                         given_as=("--set", "--sweep"))  # fmt: skip
        except WorkflowError as exc:
            problems += exc.problems
            continue
        problems += [p for p in validate(workflow.graph, registry, settings)
                     if p.severity == "error"]  # fmt: skip
        workflows.append((f"sweep {i}/{len(values)}: {name}={value}", workflow))
    if problems:  # a --set value's problem is every value's: said once
        raise WorkflowError(list({str(p): p for p in problems}.values()))
    return workflows


def _sweep(items: list[str]) -> tuple[str, list[str]]:
    """`--sweep NAME=V1,V2,...` as the name and its values, read as one CSV row: a value
    holding a comma is quoted ("a cat, sitting"), the quotes are not part of it. Each value is
    typed by what it sets, as `--set` values are. One --sweep per run: a second is refused,
    not silently preferred."""
    if len(items) > 1:
        raise UserError(f"--sweep given {len(items)} times ({', '.join(items)}): a run sweeps "
                        "one param; run once per value of the other")  # fmt: skip
    name, sep, values_text = items[0].partition("=")
    name = name.strip()
    if not sep or not name or not values_text:
        raise UserError(f"--sweep {items[0]!r}: expected NAME=V1,V2,...")
    try:
        (values,) = csv.reader([values_text], strict=True)
    except csv.Error as exc:
        raise UserError(f"--sweep {name}: cannot read the values ({exc}); write V1,V2,... "
                        'with "..." around a value holding a comma or a quote') from None  # fmt: skip
    return name, values


def _check_sweep_name(workflow: Workflow, name: str) -> None:
    """The swept name is what `--set` takes (`unknown_sweep`), else a usage error before any
    value is read."""
    from .api import unknown_sweep

    unknown = unknown_sweep(workflow, name, "--sweep")
    if unknown:
        raise UserError(unknown)


def _renderer(args: argparse.Namespace, settings, graph):
    from latentgraph.graph.console import JsonLines, RichProgress

    if args.json:
        return JsonLines()
    return RichProgress(quiet=args.quiet, dirs={"output": settings.output_dir,
                                                "temp": settings.temp_dir}, graph=graph,
                        debug=args.debug)  # fmt: skip


def cmd_nodes(args: argparse.Namespace) -> int:
    from latentgraph.graph.node_docs import describe, listing, markdown
    from latentgraph.graph.object_info import node_info, object_info

    registry = _load_nodes(args.nodes_dir)
    if args.action == "describe":
        if not args.name:
            raise UserError("nodes describe: give a node type name")
        node_type = registry.get(args.name)
        if node_type is None:
            from latentgraph.graph.problems import did_you_mean

            hint = did_you_mean(args.name, registry.names())
            raise UserError(f"unknown node type {args.name!r}{hint}")
        if args.json:
            print(json.dumps(node_info(node_type), indent=2))
        else:
            print(describe(node_type))
        return EXIT_OK
    if args.json:
        print(json.dumps(object_info(registry), indent=2))
    elif args.markdown:
        print(markdown(registry))
    else:
        print(listing(registry))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from latentgraph.graph.schema import workflow_schema

    registry = _load_nodes(args.nodes_dir)
    print(json.dumps(workflow_schema(registry), indent=2))
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from latentgraph.graph.convert import convert

    registry = _load_nodes(args.nodes_dir)
    source = _workflow_file(args.source)
    if args.dest != "-":
        _check_file("dest", Path(args.dest))
    convert(source, args.dest, to=args.to, registry=registry, wording="--to {}")
    return EXIT_OK


TOKEN_VARIABLE = "LATENTGRAPH_AUTH_TOKEN"


def _auth_token(
    given: str | None, carried: str | None = None, carrier: str = ""
) -> tuple[str | None, str]:
    """The token `serve` or `submit` uses and where it came from, as their messages name it:
    --auth-token when given (an empty one too: what `--auth-token "$TOKEN"` gives with TOKEN
    unset, which `serve` refuses), else the token `carrier` carries (`submit --server
    URL?token=`), else $LATENTGRAPH_AUTH_TOKEN (set but empty: no token, as unset)."""
    if given is not None:
        return given, "--auth-token"
    if carried is not None:
        return carried, carrier
    return os.environ.get(TOKEN_VARIABLE) or None, TOKEN_VARIABLE


def cmd_serve(args: argparse.Namespace) -> int:
    from latentgraph.graph.paths import data_dir
    from latentgraph.server.config import ServerConfig, auth_token_rule
    from latentgraph.server.hosts import address_problem, is_loopback_bind
    from latentgraph.server.run import serve

    from .wiring import prepare_server, worker_setup

    _check_folders([("--data-dir", args.data_dir or data_dir()), ("--output-dir", args.output_dir),
                    ("--input-dir", args.input_dir), ("--temp-dir", args.temp_dir)])  # fmt: skip
    _check_nodes_dirs(args.nodes_dir)
    loopback = is_loopback_bind(args.host)
    unusable = None if loopback else address_problem(args.host)  # a loopback one resolved
    if unusable:
        raise UserError(f"--host {args.host}: {unusable}")
    token, source = _auth_token(args.auth_token)
    refusal, warning = auth_token_rule(token, args.host, loopback=loopback,
                                       insecure=args.insecure, source=source)  # fmt: skip
    if refusal:
        raise UserError(refusal)
    if warning:
        print(f"latentgraph: WARNING: {warning}", file=sys.stderr)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        auth_token=token,
        data_dir=args.data_dir or data_dir(),
        output_dir=args.output_dir,
        input_dir=args.input_dir,
        temp_dir=args.temp_dir,
        models_dirs=_models_dirs(args),
        nodes_dirs=list(args.nodes_dir),
        device=args.device,
        dtype=args.dtype,
        workers=args.workers,
        devices=args.devices,
        ray=args.ray,
        ray_workers=args.ray_workers,
        ray_cpus_per_actor=args.ray_cpus_per_actor,
        ray_gpus_per_actor=args.ray_gpus_per_actor,
        options=_options(args.options),
        previews=args.previews,
        disk_cache=not args.no_cache,
        max_queue=args.max_queue,
        interrupt_grace_seconds=args.interrupt_grace,
        max_prompt_nodes=args.max_prompt_nodes,
        max_steps=args.max_steps,
        max_batch=args.max_batch,
        max_image_pixels=args.max_pixels,
        max_batch_pixels=args.max_batch_pixels,
        max_body_bytes=args.max_body_mb * 2**20,
        max_upload_bytes=args.max_body_mb * 2**20,
        max_string_chars=args.max_string_chars,
        max_extra_data_bytes=args.max_extra_data_mb * 2**20,
        allow_hosts=list(args.allow_host),
    )
    from latentgraph.server.ray_workers import RayUnavailable
    from latentgraph.server.run import CannotListen

    if args.ray:
        if args.workers or args.devices:
            raise UserError("--workers and --devices set local worker processes; with --ray, "
                            "give --ray-workers N (devices come from the Ray cluster)")  # fmt: skip
        _require_ray()
    else:  # on Ray the devices are the cluster's
        flag = "--devices" if args.devices else "--device"
        _check_devices(flag, args.devices or [args.device], isolated=True)
    failures: list = []
    registry = prepare_server(config, errors=failures)
    _print_plugin_failures(failures)
    try:
        serve(config, registry=registry, workers=worker_setup(config.nodes_dirs))
    except (RayUnavailable, CannotListen) as exc:  # the cluster cannot give what was asked,
        raise UserError(str(exc)) from None  # the port is taken: before any worker starts
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from latentgraph.server import submit as remote

    bad_url = remote.server_url_problem(args.server)
    if bad_url:  # a usage error, not an unreachable server
        raise UserError(f"--server {remote.shown_url(args.server)}: {bad_url}")
    token, source = _auth_token(args.auth_token, remote.url_token(args.server), remote.URL_TOKEN)
    workflow = _workflow_file(args.workflow)  # as `run` names a file that is not there
    _check_folders([("--output-dir", args.output_dir)])  # before the run, not at its download
    return remote.submit(
        workflow,
        args.server,
        overrides=_parse_assignments(args.overrides, "--set"),
        output_dir=args.output_dir,
        auth_token=token,
        token_source=source,
        as_json=args.json,
        quiet=args.quiet,
    )


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from latentgraph.nodes.tiny_model import ensure_tiny_model, write_single_file

    if args.single_file:
        _check_file("--single-file", args.single_file)
    if args.addons:
        _check_folders([("--addons", args.addons)])
    folder = ensure_tiny_model()
    print(f"built-in model: {folder}")
    if args.single_file:
        write_single_file(args.single_file)
        print(f"single-file checkpoint: {args.single_file}")
    if args.addons:
        from latentgraph.nodes.tiny_addons import write_models_folder
        from latentgraph.nodes.tiny_control import write_controlnet_folder

        for path in [*write_models_folder(args.addons), *write_controlnet_folder(args.addons)]:
            print(f"tiny add-on: {path}")
    return EXIT_OK


def cmd_cache(args: argparse.Namespace) -> int:
    from .cache_command import cmd_cache as show_or_clear

    return show_or_clear(args)


COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "nodes": cmd_nodes,
    "schema": cmd_schema,
    "convert": cmd_convert,
    "serve": cmd_serve,
    "submit": cmd_submit,
    "tiny-model": cmd_tiny_model,
    "cache": cmd_cache,
}


def _show_warning(python_show: Any, message: Warning | str, category: type[Warning],
                  filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:  # fmt: skip
    """A warning about what the user gave (`WorkflowWarning`: a workflow file's broken part
    that was passed over) as the CLI's own warning line; any other as Python shows it
    (`python_show`)."""
    from latentgraph.graph.problems import WorkflowWarning

    if issubclass(category, WorkflowWarning):
        print(f"latentgraph: warning: {message}", file=sys.stderr)
    else:
        python_show(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    from latentgraph.graph.problems import WorkflowError

    from .wiring import InstallError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
            code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`latentgraph schema | head`): stop quietly, and keep Python's
        # final flush of the dead stdout from printing an error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except UserError as e:
        print(f"latentgraph: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except InstallError as e:  # not a bug in the code: the install's metadata is stale
        print(f"latentgraph: error: {e}", file=sys.stderr)
        return EXIT_INTERNAL
    except WorkflowError as e:  # `run --ray` reads its workflows outside cmd_run's own handler
        return _refuse_run(e.problems, args.command == "run" and args.json)
    except KeyboardInterrupt:
        print("latentgraph: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (OSError, ValueError) as e:
        if args.debug:
            raise
        print(f"latentgraph: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if args.debug:
            raise
        print(
            f"latentgraph: internal error: {type(e).__name__}: {e}\n"
            "(this is a bug; run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
