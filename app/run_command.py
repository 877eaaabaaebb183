"""`latentgraph run` and `validate`: a workflow (or a `--sweep`'s runs) read, checked and run
in this process, or on Ray actors with `--ray` (ray_run.py); `validate` stops after the check."""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .arguments import (
    add_cache_bound_args,
    add_device_args,
    add_limit_args,
    add_ray_args,
    add_workflow_args,
    cache_bounds,
    check_cache_folders,
    check_devices,
    check_folders,
    check_ray_args,
    command_line_text,
    default_folder,
    limit_values,
    load_nodes,
    models_dirs,
    parse_assignments,
    read_options,
    require_ray,
)
from .exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    StdoutClosed,
    UserError,
    verdict_text,
)
from .stopping import StopNow, Stopper
from .workflow_input import (
    CheckedFile,
    print_files_json,
    print_problems,
    read_workflow,
    refuse_run,
    refuse_stdin_twice,
    workflow_name,
)

if TYPE_CHECKING:
    from latentgraph.graph.console import Renderer
    from latentgraph.graph.context import Settings
    from latentgraph.graph.declare import Registry
    from latentgraph.graph.events import NodeFailed, RunStatus
    from latentgraph.graph.scheduler import RunResult
    from latentgraph.graph.workflow import Workflow

    from .ray_run import RayRunResult


def add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `run` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("run", help="run a workflow and save its outputs")
    add_workflow_args(p)
    _add_run_args(p)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", type=Path, default=default_folder("--output-dir"),
                   help="default: ./output")  # fmt: skip
    p.add_argument("--input-dir", type=Path, default=default_folder("--input-dir"),
                   help="default: ./input")  # fmt: skip
    p.add_argument("--temp-dir", type=Path, default=default_folder("--temp-dir"),
                   help="previews (default: ./temp, as serve's)")  # fmt: skip
    add_device_args(p)
    add_limit_args(p)
    p.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")
    p.add_argument("--cache-dir", type=Path, help="disk cache folder (default: user cache dir)")
    add_cache_bound_args(p)
    p.add_argument(
        "--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
        help="run once per value of a param, sharing everything upstream of it; values are "
        'comma-separated, a value holding a comma is quoted: prompt="a cat, sitting","a dog" '
        "(one --sweep per run)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print events as JSON lines on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_ray_args(p, "runs (a sweep's spread over the actors)")


def add_validate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `validate` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("validate", help="check workflows without running them (exit 0 or 2)")
    add_workflow_args(p, several=True)
    p.add_argument("--json", action="store_true",
                   help="print problems as JSON (several files: one object per file)")  # fmt: skip
    p.add_argument("--input-dir", type=Path, default=default_folder("--input-dir"),
                   help="default: ./input")  # fmt: skip
    add_limit_args(p)


def cmd_validate(args: argparse.Namespace) -> int:
    """Check each workflow named, printing each one's problems as it is checked (`--json`:
    one document at the end); the exit code is the worst: 2 when any has an error."""
    from latentgraph.graph.context import LIMIT_FLAGS, Settings

    refuse_stdin_twice(args.workflow)
    registry = load_nodes(args.nodes_dir)
    # dropdowns are checked against the folders a run with these options reads
    settings = Settings(input_dir=args.input_dir, models_dirs=models_dirs(args),
                        **limit_values(args), limit_labels=LIMIT_FLAGS)  # fmt: skip
    overrides = parse_assignments(args.overrides, "--set")
    several = len(args.workflow) > 1
    files = []
    for path_text in args.workflow:
        files.append(_checked(path_text, overrides, registry, settings))
        if not args.json:
            with verdict_text():  # a reader gone leaves the exit code 0 or 2
                _print_checked(files[-1])
    bad = sum(1 for f in files if f.errors)
    with verdict_text():  # a reader gone (`--json | head -1`) leaves the exit code 0 or 2
        if args.json and several:
            print_files_json(files)
        elif args.json:
            print_problems(files[0].problems, as_json=True)
        elif several and bad:
            print(f"{len(files)} workflows: {bad} with errors", file=sys.stderr)
        elif several:
            print(f"{len(files)} workflows: ok")
    return EXIT_USAGE if bad else EXIT_OK


def _checked(path_text: str, overrides: dict[str, Any], registry: Registry,
             settings: Settings) -> CheckedFile:  # fmt: skip
    """One workflow read and validated: every problem found, none raised."""
    from latentgraph.graph.problems import WorkflowError
    from latentgraph.graph.validate import validate

    nodes = None
    try:
        graph = read_workflow(path_text, overrides, registry).graph
        nodes = len(graph)
        problems = validate(graph, registry, settings)
    except WorkflowError as e:
        problems = e.problems
    return CheckedFile(workflow_name(path_text), nodes, problems)


def _print_checked(checked: CheckedFile) -> None:
    """A file's problems on stderr (each placed in its file), then its verdict: `NAME: N
    error(s)` (stderr) or `NAME: ok (N nodes)` (stdout)."""
    print_problems(checked.problems, as_json=False)
    if checked.errors:
        print(f"{checked.name}: {checked.errors} error(s)", file=sys.stderr)
    else:
        print(f"{checked.name}: ok ({checked.nodes} nodes)")


def _settings(args: argparse.Namespace):
    from latentgraph.graph.context import LIMIT_FLAGS, Settings

    options = read_options(args.options)
    return Settings(
        output_dir=args.output_dir,
        input_dir=args.input_dir,
        temp_dir=args.temp_dir,
        models_dirs=models_dirs(args),
        device=args.device,
        dtype=args.dtype,
        options=options,
        **limit_values(args),
        limit_labels=LIMIT_FLAGS,  # messages name the flags, not the Settings fields
    )


def cmd_run(args: argparse.Namespace) -> int:
    from latentgraph.graph.cache import Cache, disk_store_dir
    from latentgraph.graph.context import CancelToken
    from latentgraph.graph.formats import embedded
    from latentgraph.graph.problems import WorkflowError
    from latentgraph.graph.scheduler import Scheduler

    from .api import runs_in_turn

    check_ray_args(args)
    registry = load_nodes(args.nodes_dir)
    settings = _settings(args)
    overrides = parse_assignments(args.overrides, "--set")
    check_folders([("--output-dir", args.output_dir)])
    check_cache_folders(args.cache_dir)
    # used only by a workflow's LoadImage or PreviewImage: not written to here, but a file
    # there failed those nodes after the whole graph had run
    check_folders([("--input-dir", args.input_dir), ("--temp-dir", args.temp_dir)],
                  written=False)  # fmt: skip
    if args.ray:
        return _run_on_ray(args, registry, settings, overrides)
    check_devices("--device", [settings.device])
    memory_bytes, disk_bytes = cache_bounds(args)
    cache = Cache(memory_bytes, None if args.no_cache else disk_store_dir(args.cache_dir),
                  disk_bytes, on_disk_error=_warn)  # fmt: skip
    scheduler = Scheduler(registry, cache=cache, settings=settings)
    stop = Stopper(CancelToken(), cached=not args.no_cache)  # Ctrl-C or SIGTERM: stop at a step
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def run_one(run: tuple[Swept | None, Workflow]) -> RunResult:
        swept, workflow = run
        if swept and args.json:  # which value the run's event lines that follow are for
            print(json.dumps(swept.event()), flush=True)
        elif swept and not args.quiet:
            print(swept.label(), file=sys.stderr, flush=True)
        extra = embedded(workflow)  # what its saved files carry, to reload them
        renderer = _renderer(args, settings, workflow.graph)
        try:
            return scheduler.run(workflow.graph, on_event=stop.watch(renderer),
                                 cancel=stop.cancel, extra=extra)  # fmt: skip
        finally:
            renderer.close()

    try:
        runs = _workflows(args, overrides, registry, settings)
        results, not_run = runs_in_turn(runs, run_one)  # a sweep's stop rule: the API's
        status, failures = results[-1].status, results[-1].failures
        if status == "failed" and not_run:  # said: the rest did not run
            swept = runs[len(results) - 1][0]
            assert swept is not None  # only a sweep has runs after the first
            _say_sweep_stopped(args, swept, [s.value for s, _ in not_run if s])
    except WorkflowError as e:
        return refuse_run(e.problems, args.json)
    except BrokenPipeError:  # --json's reader went away: the run stops (exit 1, cli.main)
        raise StdoutClosed(stop.stdout_closed()) from None
    except StopNow:
        print(stop.stopped_line(), file=sys.stderr)
        return stop.code()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # The run's status decides its exit code (`run_exit_code`, as `--ray`'s): a signal that
    # came once nothing was left to stop (the last node, a save in C code checking no step,
    # finished) stopped nothing: every output was made, the run succeeded, exit 0.
    if status == "interrupted":  # only a signal interrupts a run here: the code says which
        print(f"latentgraph: interrupted by {stop.name()}", file=sys.stderr)
        return stop.code()
    if stop.signals and status == "success":
        print(f"latentgraph: note: {stop.name()} came during the last node, which finished: "
              "the run succeeded, nothing was stopped", file=sys.stderr)  # fmt: skip
    return run_exit_code(status, failures)


def _say_sweep_stopped(args: argparse.Namespace, swept: Swept, not_run: list[str]) -> None:
    """A sweep stops at its first failed run: said, so a script reading the output knows the
    values after it never ran (`--json`: a `sweep_stopped` line after that run's
    `run_finished`, `not_run` the values as typed; else a line on stderr)."""
    if args.json:
        print(json.dumps({"event": "sweep_stopped", "name": swept.name, "index": swept.index,
                          "of": swept.of, "not_run": not_run}), flush=True)  # fmt: skip
    else:
        print(f"latentgraph: error: sweep stopped after run {swept.index} of {swept.of} failed: "
              f"{len(not_run)} not run", file=sys.stderr, flush=True)  # fmt: skip


def _warn(message: str) -> None:
    """A warning on stderr (the disk cache's, once per run command: `Cache.on_disk_error`)."""
    print(f"latentgraph: warning: {message}", file=sys.stderr, flush=True)


def run_exit_code(status: RunStatus, failures: list[NodeFailed]) -> int:
    """A run's exit code by how it ended, the one rule for a run in this process and on Ray
    (`--ray`): 2 when it failed only because nodes refused their input (README), 1 for any
    other failure, 130 interrupted, 0 success."""
    from latentgraph.graph.events import input_errors_only

    if status == "failed" and input_errors_only(failures):
        return EXIT_USAGE
    return {"success": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(status, EXIT_FAILED)


def _run_on_ray(args: argparse.Namespace, registry: Registry, settings,
                overrides: dict[str, Any]) -> int:  # fmt: skip
    """`run --ray`: the runs (one, or the sweep's) on Ray actors, as many at once as there are
    actors; with --json each run's messages as the server sends them (the websocket protocol,
    one JSON object per line), a sweep's `sweep` lines first (each with its run's
    `prompt_id`), else each run as it ends (`_show_ray_result`). The exit code is the first
    run's (in sweep order) that did not succeed, by `run_exit_code`, as an in-process sweep
    stops at that run. After Ctrl-C or SIGTERM: each run's line says whether it finished (its
    files) or was interrupted (the node, in its summary) or never started; exit code 130 or
    143. A --json reader that goes away stops the runs as it stops an in-process run
    (`StdoutClosed`, said by the same `Stopper`, from the runs' events)."""
    from latentgraph.graph.context import CancelToken
    from latentgraph.graph.files import FileWriteError
    from latentgraph.server.ray_connect import RayUnavailable

    from .ray_run import RayRun, prompt_id, run_on_ray

    require_ray()
    plan = RayRun(args.ray, args.ray_workers, settings, disk_cache=not args.no_cache,
                  cache_dir=args.cache_dir, cache_bounds=cache_bounds(args),
                  nodes_dirs=tuple(args.nodes_dir), cpus_per_actor=args.ray_cpus_per_actor,
                  gpus_per_actor=args.ray_gpus_per_actor)  # fmt: skip
    runs = _workflows(args, overrides, registry, settings)
    # Ctrl-C is the batch's (pool_batch), SIGTERM made the same (`batch_signal`): this Stopper
    # follows the runs' events, for what a closed stdout stopped, and which signals came
    stop = Stopper(CancelToken(), cached=not args.no_cache)

    def show(index: int, result: RayRunResult) -> None:
        _show_ray_result(args, settings, stop, runs[index], result)

    # set before `ray.init`, which puts it back after installing Ray's own (`_sigterm_kept`)
    previous = signal.signal(signal.SIGTERM, stop.batch_signal)
    try:
        if args.json:  # the runs' messages interleave: each sweep value named with its prompt id
            for i, (swept, _) in enumerate(runs):
                if swept is not None:
                    print(json.dumps({**swept.event(), "prompt_id": prompt_id(i)}), flush=True)
        results = run_on_ray(plan, [workflow for _, workflow in runs], registry,
                             on_message=(lambda _run, text: print(text, flush=True))
                             if args.json else None,
                             on_result=None if args.json else show, on_event=stop.seen)  # fmt: skip
    except (RayUnavailable, FileWriteError) as exc:  # the cluster, or a shared folder's disk
        raise UserError(str(exc)) from None  # refusing the pool's start-up marker: before any run
    except BrokenPipeError:  # --json's reader went away: the runs stop (exit 1, cli.main)
        raise StdoutClosed(stop.stdout_closed()) from None
    except KeyboardInterrupt:  # while the actors started: no run began
        if not stop.terminated:
            raise  # cli.main's "latentgraph: interrupted", as before any run
        print("latentgraph: interrupted by SIGTERM: no run had started", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)
    if any(not r.finished.started or r.finished.done.status == "interrupted" for r in results):
        finished = sum(r.finished.done.status != "interrupted" for r in results)
        print(stop.interrupted_line(finished, len(results)), file=sys.stderr)
        return stop.code()
    codes = [run_exit_code(r.finished.done.status, r.failures) for r in results]
    return next((code for code in codes if code != EXIT_OK), EXIT_OK)


def _show_ray_result(args: argparse.Namespace, settings, stop: Stopper,
                     run: tuple[Swept | None, Workflow], result: RayRunResult) -> None:  # fmt: skip
    """One `run --ray` run's lines on stderr, printed as it ends (not once the whole sweep
    has): a line naming its actor, status and files (or why it never started), then what an
    in-process run shows (its nodes, error, summary)."""
    from latentgraph.graph.files import file_records

    (swept, workflow), done = run, result.finished.done
    name = swept.label() if swept else "run"
    if not result.finished.started:
        why = stop.name() if done.status == "interrupted" else done.error  # or a lost cluster
        print(f"{name}: not started ({why})", file=sys.stderr, flush=True)
        return
    if not args.quiet:
        files = [f["filename"] for out in done.ui.values() for f in file_records(out)]
        stopped = done.status == "interrupted"  # only a signal stops a run here: which
        print(f"{name} on {result.finished.worker}: "
              + (f"interrupted by {stop.name()}" if stopped else done.status)
              + (f": {done.error}" if done.error and not result.failures and not stopped
                 else "")
              + (f" ({', '.join(files)})" if files else ""), file=sys.stderr, flush=True)  # fmt: skip
    renderer = _renderer(args, settings, workflow.graph)
    try:
        for event in result.events:
            renderer(event)
    finally:
        renderer.close()


class Swept(NamedTuple):
    """Which value of `--sweep NAME=V1,V2,...` a run is for: the value as typed, `index` of
    `of` (from 1)."""

    name: str
    value: str
    index: int
    of: int

    def label(self) -> str:
        """The line printed before its run: "sweep 2/3: seed=11" (a line break in the value
        shown `\\n`, not breaking the line)."""
        from latentgraph.graph.problems import printable

        return f"sweep {self.index}/{self.of}: {self.name}={printable(self.value)}"

    def event(self) -> dict[str, Any]:
        """`run --json`'s line before its run's events: {"event": "sweep", "name": "seed",
        "value": "11", "index": 2, "of": 3}."""
        return {"event": "sweep", **self._asdict()}


def _workflows(args: argparse.Namespace, overrides: dict[str, Any], registry: Registry,
               settings) -> list[tuple[Swept | None, Workflow]]:  # fmt: skip
    """The workflow to run, or one per value of `--sweep NAME=V1,V2,...`, every one read and
    validated before the first runs (`api.checked_sweep`, `sweep`'s rule too): a bad value is
    refused with the others' problems before any image is made. Each with the value it is for
    (`Swept`; None for a single run)."""
    from .api import checked_sweep, refuse_unknown_sweep

    if not args.sweep:
        return [(None, read_workflow(args.workflow, overrides, registry))]
    name, values = _sweep(args.sweep)
    if name in overrides:
        raise UserError(f"--sweep {args.sweep[0]} and --set {name}={overrides[name]} both set "
                        f"{name!r}: give one of them")  # fmt: skip
    base = read_workflow(args.workflow, overrides, registry)
    refuse_unknown_sweep(base, name, "--sweep", registry)  # as --set's: a workflow_invalid
    workflows = checked_sweep(base, name, values, params=overrides, registry=registry,
                              settings=settings, given_as=("--set", "--sweep"))  # fmt: skip
    return [(Swept(name, value, i, len(values)), workflow)
            for i, (value, workflow) in enumerate(zip(values, workflows, strict=True), 1)]  # fmt: skip


def _sweep(items: list[str]) -> tuple[str, list[str]]:
    """`--sweep NAME=V1,V2,...` as the name and its values, read as one CSV row: a value
    holding a comma is quoted ("a cat, sitting"), the quotes are not part of it. Each value is
    typed by what it sets, as `--set` values are. One --sweep per run: a second is refused,
    not silently preferred."""
    from latentgraph.graph.problems import quoted

    if len(items) > 1:
        raise UserError(f"--sweep given {len(items)} times ({', '.join(items)}): a run sweeps "
                        "one param; run once per value of the other")  # fmt: skip
    text = command_line_text(items[0], "--sweep")
    name, sep, values_text = text.partition("=")
    name = name.strip()
    if not sep or not name or not values_text:
        raise UserError(f"--sweep {quoted(text)}: expected NAME=V1,V2,...")
    try:
        (values,) = csv.reader([values_text], strict=True)
    except csv.Error as exc:
        # csv's own words for a line break ask about a file's newline mode
        why = "a line break outside quotes" if {"\n", "\r"} & set(values_text) else exc
        raise UserError(f"--sweep {name}: cannot read the values ({why}); write V1,V2,... "
                        'with "..." around a value holding a comma, a quote or a line break') from None  # fmt: skip
    return name, values


def _renderer(args: argparse.Namespace, settings, graph) -> Renderer:
    from latentgraph.graph.console import JsonLines, RichProgress

    if args.json:  # what it says of a node on stderr too, placed in `graph`
        return JsonLines(graph=graph, quiet=args.quiet)
    return RichProgress(quiet=args.quiet, dirs={"output": settings.output_dir,
                                                "temp": settings.temp_dir}, graph=graph,
                        debug=args.debug)  # fmt: skip
