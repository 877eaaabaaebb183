"""The Python facade for notebooks and scripts: load any workflow format, override params, run,
sweep. `import latentgraph` exposes `run`, `load`, `sweep` and `RunResult` from here.

    import latentgraph
    result = latentgraph.run("workflows/txt2img.yaml", seed=7, keep=["decode"])
    image = result.outputs["decode"][0]  # kept: by default only the targets' outputs are
    results = latentgraph.sweep("workflows/txt2img.yaml", "seed", [1, 2, 3])
    result = latentgraph.run(prompt_dict, nodes_dirs=["my_nodes"])  # as --nodes-dir loads

A workflow is a file's path, a document already in memory as a dict (a ComfyUI API prompt,
an editor workflow or ours: what the file would hold), a loaded `Workflow` or a `Graph`.
Keywords that are not options of the call are workflow params (`params={...}` says the same
and reaches a param named like an option). A message about a value given here names it as
given here (`param seed='abc' ($seed at my.yaml:7:8): ...`, `sweep seed=...`), never by the
CLI's flags. Every format the CLI reads is read here, through the same table
(`latentgraph.graph.formats`). Without a `registry` the built-in nodes, the installed plugin
packs and the plugin folders of `nodes_dirs` are registered. A workflow that cannot run
raises `WorkflowError` (every problem in it); a node that fails does not raise: the run ends
with status "failed" and the failure in `RunResult.failures`. Runs in one process share one
cache (memory + the user's disk store) unless given another, so re-running a cell only runs
what changed.
"""

from __future__ import annotations

import json
import numbers
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import replace
from functools import partial
from os import PathLike
from pathlib import Path
from typing import Any

from latentgraph.graph.cache import Cache, default_cache
from latentgraph.graph.context import CancelToken, Settings
from latentgraph.graph.declare import Registry
from latentgraph.graph.events import Event
from latentgraph.graph.files import file_records, record_path
from latentgraph.graph.formats import embedded, load_file, load_text, reload
from latentgraph.graph.model import Graph, Location
from latentgraph.graph.problems import Problem, WorkflowError, closest, with_article
from latentgraph.graph.scheduler import RunResult, Scheduler, node_ids, run_problems
from latentgraph.graph.workflow import (
    DATA_SOURCE,
    Workflow,
    given_by,
    given_name,
    unknown_override,
)

from .wiring import node_registry

# How values given to these functions are named in messages (the CLI names its flags).
GIVEN_AS, SWEPT_AS = "param", "sweep"

_shared: Cache | None = None
_shared_lock = threading.Lock()


def shared_cache() -> Cache:
    """The process-wide cache used when none is given (created on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = default_cache(disk=True)
        return _shared


def free(cache: Cache | None = None) -> None:
    """Give back the memory runs in this process hold, as the server's POST /free does (the
    same function, `cache.release_memory`): every loaded model unloaded (they are held
    process-wide, between runs) and the memory tier of the process-wide cache emptied, and of
    `cache` too when given (a `Cache` passed to `run`); the disk store is kept. The next run
    loads what it needs again."""
    from latentgraph.graph.cache import release_memory
    from latentgraph.nodes import free_models

    check_options(cache=cache)
    with _shared_lock:
        caches = [c for c in (_shared, cache) if c is not None]
    release_memory(free_models, caches)


# where a problem in a workflow given as a dict is placed: by key path (`<workflow dict>
# nodes.decode.samples`)
DICT_SOURCE = DATA_SOURCE


def load(
    path: str | PathLike | dict,
    *,
    params: dict | None = None,
    registry: Registry | None = None,
    nodes_dirs: Iterable[str | PathLike] | None = None,
    **more_params: Any,
) -> Workflow:
    """Read a workflow file in any format (our YAML/JSON, ComfyUI API or editor JSON, a PNG
    with a workflow), or such a document given as a dict, with params overriding the file's
    own (ComfyUI: `node.input` keys). The format is told as for a file (`graph.formats`).
    `nodes_dirs`: plugin folders to load first, as `latentgraph --nodes-dir` does. A keyword
    that is no param and looks like an option is refused as `run` refuses it (`keyword_params`:
    `nodes_dir=`, or `settings=`, which is run's)."""
    registry = plugin_registry(registry, nodes_dirs)
    registry = registry if registry is not None else node_registry()
    return keyword_params(partial(_read, path, registry=registry),
                          merged_params(params, more_params), more_params, "load")  # fmt: skip


def _read(path: str | PathLike | dict, params: dict, registry: Registry) -> Workflow:
    """The workflow at `path` (or in the dict) read with `params`: `load`, once its keywords
    are checked (`keyword_params`)."""
    source = DICT_SOURCE if isinstance(path, dict) else str(path)
    params = data_params(params, GIVEN_AS, source)
    if isinstance(path, dict):
        try:
            text = json.dumps(path)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"a workflow dict holds JSON data (what its file would hold): {exc}"
                            ) from None  # fmt: skip
        return load_text(text, DICT_SOURCE, params, registry, GIVEN_AS)
    refusal = _text_refusal(path)
    if refusal:
        raise TypeError(refusal)
    return load_file(Path(path), params, registry, GIVEN_AS)


# what run, load and sweep take as a workflow, named when given something else
ACCEPTED = "a workflow file's path, a dict holding what such a file holds, a Workflow or a Graph"


def _text_refusal(path: Any) -> str | None:
    """Why a str given as a workflow is a document's text, not a file's path (it would be read
    as a file name, echoed whole in 'No such file'): JSON text (it starts with { or [) or
    several lines (YAML); None for anything else. Text is not read: the dict it holds is."""
    if not isinstance(path, str):
        return None
    if path.lstrip().startswith(("{", "[")):  # no file name people write
        given, parse = f"JSON text ({len(path)} characters)", "json.loads(text)"
    elif "\n" in path.strip():
        given, parse = f"text of {len(path.strip().splitlines())} lines", "yaml.safe_load(text)"
    else:
        return None
    return (f"a workflow given as {given}, not a file's path: pass the dict it holds ({parse}), "
            f"or the file's path (accepted: {ACCEPTED})")  # fmt: skip


def plugin_registry(registry: Registry | None,
                    nodes_dirs: Iterable[str | PathLike] | None) -> Registry | None:  # fmt: skip
    """`registry`, or with `nodes_dirs` the registry with the node plugins in those folders
    loaded (as `--nodes-dir` loads them; a plugin file that fails to import is a
    `PluginWarning`, the others load). A folder that is not there is a ValueError."""
    if nodes_dirs is None:
        return registry
    if isinstance(nodes_dirs, (str, bytes, PathLike)):
        raise ValueError(f"nodes_dirs: expected a list of folders, got {nodes_dirs!r}; "
                         f"write [{nodes_dirs!r}]")  # fmt: skip
    if registry is not None:
        raise TypeError("nodes_dirs= loads plugin folders into latentgraph's registry; with "
                        "registry= given, load them into yours (graph.plugins.load_plugins)")  # fmt: skip
    folders = [Path(d) for d in nodes_dirs]
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"nodes_dirs: {folder} is not a folder")
    return node_registry(folders)


def with_params(
    workflow_or_path: Any, params: dict, registry: Registry | None = None
) -> Workflow | Graph:
    """What to run with `params`: the Workflow from a path or a dict (`load`), a Workflow
    (read again when given params), or a Graph as it is."""
    if isinstance(workflow_or_path, Graph):
        if params:
            raise TypeError("params need a workflow (a path or a loaded Workflow), not a Graph")
        return workflow_or_path
    if isinstance(workflow_or_path, (str, PathLike, dict)):
        return load(workflow_or_path, params=params, registry=registry)
    if not isinstance(workflow_or_path, Workflow):
        raise TypeError(f"expected {ACCEPTED}, got {type(workflow_or_path).__name__}")
    wf = workflow_or_path
    if params:  # params are substituted at load time: read the same document again
        params = data_params(params, GIVEN_AS, wf.graph.source)
        wf = reload(wf, params, registry if registry is not None else node_registry(), GIVEN_AS)
    return wf


# what a value given for a param may be, named when given something else
DATA = "a number, a bool, text, None, or a list or dict of them (what a workflow file holds)"


def data_value(value: Any) -> Any:
    """`value`, given from Python for a param, as the JSON data a workflow file holds: NumPy's
    numbers and text (`np.int64(7)`, `np.float32(0.5)`: any `numbers.Real`; `np.bool_`,
    `np.str_`) as Python's, in a list, tuple or dict too, so they are saved and keyed as the
    values they are (numpy itself is not imported). Raises TypeError naming what else it is (a
    tensor, an object)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, str):  # NumPy's str_ too
        return str(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):
        return bool(value)
    if isinstance(value, (list, tuple)):
        return type(value)(data_value(v) for v in value)
    if isinstance(value, dict):
        if not all(type(k) is str for k in value):
            raise TypeError("a dict with a key that is no text")
        return {k: data_value(v) for k, v in value.items()}
    raise TypeError(with_article(type(value).__name__))


def data_params(params: dict, given_as: str, source: str) -> dict:
    """`params` given from Python, each value as `data_value` makes it; a value that is no
    such data is a WorkflowError naming the param, what it takes and what it was given
    (`given_as`: `param`, or `sweep` for a swept value), every such param at once."""
    data, problems = {}, []
    for name, value in params.items():
        try:
            data[name] = data_value(value)
        except TypeError as exc:
            problems.append(Problem("invalid_value", f"{given_name(given_as, name)}: expected {DATA}, "
                                    f"got {exc}", location=Location(source)))  # fmt: skip
    if problems:
        raise WorkflowError(problems)
    return data


def sweep_workflows(
    workflow_or_path: Any,
    name: str,
    values: Iterable,
    *,
    params: dict | None = None,
    registry: Registry | None = None,
    given_as: tuple[str, str] = (GIVEN_AS, SWEPT_AS),
) -> Iterator[Workflow]:
    """The workflow once per value of param `name` (on top of `params`), each read when
    needed: the CLI's `--sweep` and `sweep` below both iterate this. `given_as`: how the
    caller was given `params` and the swept values, named in messages (the CLI: `--set`,
    `--sweep`)."""
    params = dict(params or {})
    base = workflow_or_path
    if isinstance(base, (str, PathLike, dict)):
        base = load(base, params=params, registry=registry)
    if not isinstance(base, Workflow):
        raise TypeError(f"a sweep needs a workflow (a path, a dict or a loaded Workflow), not a "
                        f"{type(base).__name__}")  # fmt: skip
    registry = registry if registry is not None else node_registry()
    refuse_unknown_sweep(base, name, given_as[1], registry)
    source = base.graph.source
    params = data_params(params, given_as[0], source)
    values = [data_params({name: v}, given_as[1], source)[name] for v in values]  # before any run
    for value in values:
        yield _swept(base, name, value, params, registry, given_as)


def checked_sweep(
    workflow_or_path: Any,
    name: str,
    values: list,
    *,
    params: dict | None = None,
    registry: Registry,
    settings: Settings,
    given_as: tuple[str, str] = (GIVEN_AS, SWEPT_AS),
    targets: list[str] | None = None,
    keep: list[str] | None = None,
) -> list[Workflow]:
    """The workflow once per value (`sweep_workflows`), every one read and checked as its run
    will check it (`run_problems`, with the runs' `settings`, `targets` and `keep`) before the
    first runs: `latentgraph run --sweep`'s and `sweep`'s rule. A bad value is refused with the
    other values' problems before any image is made, so a sweep never stops half way over a
    value it could have refused. Raises WorkflowError, each problem said once (`said_once`)."""
    if isinstance(workflow_or_path, (str, PathLike, dict)):  # read once, not once per value
        workflow_or_path = load(workflow_or_path, params=params, registry=registry)
    workflows, problems = [], []
    for value in values:
        try:
            [workflow] = sweep_workflows(workflow_or_path, name, [value], params=params,
                                         registry=registry, given_as=given_as)  # fmt: skip
        except WorkflowError as exc:
            problems += exc.problems
            continue
        problems += [p for p in run_problems(workflow.graph, registry, settings, targets, keep)
                     if p.severity == "error"]  # fmt: skip
        workflows.append(workflow)
    if problems:
        raise WorkflowError(said_once(problems, name, given_as[1]))
    return workflows


def said_once(problems: list[Problem], name: str, swept_as: str) -> list[Problem]:
    """A sweep's problems, each said once: a given param's is every value's, and so is one
    about the swept name itself (an input its node lacks, `--sweep noise.sed=1,2`), placed at
    `--sweep noise.sed` (`swept_as`: how the caller named the swept values)."""
    said: dict[str, Problem] = {}
    for p in problems:
        if p.code == "unknown_input" and f"{p.node_id}.{p.input_name}" == name:
            p = replace(p, location=Location(given_name(swept_as, name)))
        said.setdefault(str(p), p)
    return list(said.values())


def unknown_param(workflow: Workflow, name: str, given_as: str) -> str | None:
    """Why `name` can be neither set nor swept, or None: it is what a param override takes
    (the loader's rule, `unknown_override`), a param of ours or `<node id>.<input>` of a
    ComfyUI file."""
    params = workflow.params if workflow.format == "yaml" else None
    return unknown_override(given_as, name, params, workflow.graph.nodes)


def refuse_unknown_sweep(workflow: Workflow, name: str, swept_as: str,
                         registry: Registry) -> None:  # fmt: skip
    """A swept name that is no param (`unknown_param`) refused as the loader refuses it given to
    `--set`: its `unknown_param` problem, placed where the loader places it (our format: the
    file's `params:`), so `--sweep sed=...` reads as `--set sed=...` does."""
    unknown = unknown_param(workflow, name, swept_as)
    if unknown:
        reload(workflow, {name: None}, registry, swept_as)  # raises the loader's problem
        raise WorkflowError([Problem("unknown_param", unknown,
                                     location=Location(workflow.graph.source))])  # fmt: skip


def _swept(base: Workflow, name: str, value: Any, params: dict, registry: Registry,
           given_as: tuple[str, str]) -> Workflow:  # fmt: skip
    """`base` with param `name` set to `value`: a bad value is placed at `sweep name=value`
    (`--sweep` from the CLI: `given_by`), in the problems loading finds and in the graph's
    locations, which checking it and running it report."""
    params_as, swept_as = given_as

    def swept(location):
        return given_by(swept_as, name, location)

    try:
        workflow = reload(base, {**params, name: value}, registry, params_as)
    except WorkflowError as exc:
        raise WorkflowError([replace(p, location=swept(p.location))
                             for p in exc.problems]) from None  # fmt: skip
    for node in workflow.graph:
        node.input_locations = {key: swept(at) for key, at in node.input_locations.items()}
    return workflow


def _scheduler(given: Any, registry: Registry | None, cache: Cache | None,
               settings: Settings | None,
               nodes_dirs: Iterable[str | PathLike] | None) -> Scheduler:  # fmt: skip
    """The `scheduler=` given, or one on the shared cache; without a registry, the installed
    node packs and `nodes_dirs`' plugins (`plugin_registry`; they read their folders from
    `settings`). A Scheduler runs with its own registry, cache and settings: one of them given
    beside it is refused (it was silently ignored). A workflow param is often named
    `scheduler` (the sampler's): given as a keyword, it lands here and is named as such."""
    if given is not None and not isinstance(given, Scheduler):
        raise TypeError(f"scheduler= takes the engine Scheduler to run with, not {given!r}; "
                        f"to set the workflow's param 'scheduler', pass "
                        f"params={{'scheduler': {given!r}}}")  # fmt: skip
    plugins = plugin_registry(registry, nodes_dirs)
    if given is None:
        registry = plugins if plugins is not None else node_registry()
        cache = cache if cache is not None else shared_cache()
        return Scheduler(registry, cache, settings=settings)
    for option, value in (("settings", settings), ("cache", cache), ("registry", registry)):
        if value is not None:
            raise TypeError(f"scheduler= and {option}= are both given: the Scheduler runs with "
                            f"its own {option} (scheduler.{option}), and {option}= would be "
                            f"ignored; give one of them")  # fmt: skip
    return given


def run(
    workflow_or_path: Any,
    *,
    params: dict | None = None,
    settings: Settings | None = None,
    cache: Cache | None = None,
    on_event: Callable[[Event], None] | None = None,
    registry: Registry | None = None,
    scheduler: Scheduler | None = None,
    targets: str | list[str] | None = None,
    keep: str | list[str] | None = None,
    cancel: CancelToken | None = None,
    extra: dict | None = None,
    nodes_dirs: Iterable[str | PathLike] | None = None,
    **more_params: Any,
) -> RunResult:
    """Load (if needed: a path or a dict, as `load` reads them) and run a workflow; node code
    sees the params as ctx.extra["params"], and its saved files carry the workflow as the
    CLI's do (`formats.embedded`). `targets`, `keep` (node ids: a list, or one as a str),
    `on_event`, `cancel` and `extra` go to `Scheduler.run`; `nodes_dirs` are plugin folders to
    load first (`--nodes-dir`). docs/python.md describes them all.

    Returns a `RunResult`: a node that fails does not raise, the result's `status` is
    "failed" and `failures` says why. A workflow that cannot run (unreadable, unknown node
    types, bad values) raises `WorkflowError` before any node runs."""
    check_options(settings=settings, cache=cache, on_event=on_event, registry=registry,
                  cancel=cancel, extra=extra)  # fmt: skip
    scheduler = _scheduler(scheduler, registry, cache, settings, nodes_dirs)
    _check_settings(scheduler.settings)
    runnable = keyword_params(partial(with_params, workflow_or_path, registry=scheduler.registry),
                              merged_params(params, more_params), more_params)  # fmt: skip
    # what its saved files carry (as `latentgraph run` embeds it): load() reads them back
    documents = embedded(runnable)
    if isinstance(runnable, Workflow) and runnable.params:
        documents["params"] = dict(runnable.params)
    graph = runnable if isinstance(runnable, Graph) else runnable.graph
    result = scheduler.run(graph, on_event=on_event, extra={**documents, **(extra or {})},
                           targets=targets, keep=keep, cancel=cancel)  # fmt: skip
    _add_paths(result, scheduler.settings)
    return result


def _add_paths(result: RunResult, settings: Settings) -> None:
    """Each file record in `result.ui` (the run's copy) given its file's full `path`, a str:
    the record names it by `filename`, `subfolder` and the folder of its `type`, which only
    `settings` knows (`record_path`, as `latentgraph run` prints it)."""
    folders = {"output": settings.output_dir, "temp": settings.temp_dir,
               "input": settings.input_dir}  # fmt: skip
    for ui in result.ui.values():
        for record in file_records(ui):
            record["path"] = str(record_path(record, folders).absolute())


def keyword_params(read: Callable[[dict], Workflow | Graph], params: dict,
                   keywords: Collection[str], command: str = "run"
                   ) -> Workflow | Graph:  # fmt: skip
    """What `read` makes of `params` (`run`'s and `sweep`'s `with_params`, `load`'s reading),
    a keyword (of `keywords`, the ones given as keywords, not in `params=`) that is no param of
    the workflow and looks like an option of `run` refused first, as the typo it is
    (`option_typo`: `on_evnt=print`, `kep="decode"`, `load(wf, setings=s)`), not as a bad
    param. The one keyword check of `command` (run, sweep, load)."""
    options = sorted(_RUN_OPTIONS)
    suspects = [k for k in keywords if closest(k, options, cutoff=OPTION_TYPO)]
    if not suspects:
        return read(params)
    runnable = read({k: v for k, v in params.items() if k not in suspects})  # to learn its params
    for name in suspects:
        if isinstance(runnable, Graph) or unknown_param(runnable, name, GIVEN_AS):
            raise TypeError(option_typo(name, command))
    return read(params)  # params after all: read with them


def option_typo(name: str, command: str) -> str:
    """What a keyword `name` that is no param and looks like an option of `run` is said to be:
    the option of `command` it mistypes, or, `load` taking only some of them (`load(wf,
    settings=s)`), the `run` option it names and that it is run's."""
    option = closest(name, sorted(_RUN_OPTIONS), cutoff=OPTION_TYPO)[0]
    said = f"{name}= is no option of {command} and no param of the workflow"
    if command != "load" or option in _LOAD_OPTIONS:
        return f"{said}; did you mean {option}=?"
    return (
        f"{said}; {option}= is an option of run, which loads and runs the workflow: "
        f"latentgraph.run(workflow, {option}=...)"
    )


# how alike a keyword and an option's name are for the keyword to be said to be its typo
# (difflib's ratio): on_evnt/on_event 0.93, kep/keep 0.86, setting/settings 0.93
OPTION_TYPO = 0.75


# what each option of `run` takes (None: its default), named when given something else
OPTION_TYPES: dict[str, tuple[type | None, str]] = {
    "settings": (Settings, "a latentgraph.Settings"),
    "cache": (Cache, "a latentgraph.Cache"),
    "registry": (Registry, "a latentgraph.graph.Registry"),
    "cancel": (CancelToken, "a latentgraph.CancelToken"),
    "extra": (dict, "a dict"),
    "on_event": (None, "a function, called with each event"),  # None: any callable
}


def check_options(**options: Any) -> None:
    """Refuse an option of `run` or `sweep` of the wrong type, naming the keyword and what it
    takes, before any work: deep in the engine `cancel=True` was an AttributeError ('bool'
    object has no attribute 'cancelled'), `settings={...}` another."""
    for name, value in options.items():
        kind, expected = OPTION_TYPES[name]
        if value is None or (callable(value) if kind is None else isinstance(value, kind)):
            continue
        hint = ""
        if name == "settings" and isinstance(value, dict):
            hint = "; make one of the dict: settings=latentgraph.Settings(**settings)"
        raise TypeError(f"{name}= takes {expected}, not {_shown(value)}{hint}")


def merged_params(params: Any, more_params: dict) -> dict:
    """The params given as `params=` and as keywords, a param given both ways refused: one of
    them silently won."""
    if params is None:
        return dict(more_params)
    if not isinstance(params, dict):
        raise TypeError(f"params= takes a dict of param name to value, not {_shown(params)}")
    both = [name for name in params if name in more_params]
    if both:
        raise TypeError(f"param {both[0]!r} is given twice, in params= and as the keyword "
                        f"{both[0]}=: give it once")  # fmt: skip
    return {**params, **more_params}


def _shown(value: Any) -> str:
    """A value given in the wrong place, for messages: a short scalar as written, else its
    type ("a dict")."""
    if (
        value is None
        or type(value) in (bool, int, float)
        or (isinstance(value, str) and len(value) <= 60)
    ):
        return repr(value)
    return with_article(type(value).__name__)


def _check_settings(settings: Settings) -> None:
    """Refuse, before any node runs, an output folder or device the run could not use
    (app/preflight.py, as `latentgraph run` does)."""
    from .preflight import device_problem, folder_problem

    problem = folder_problem(settings.output_dir)
    if problem:
        raise ValueError(f"settings.output_dir {settings.output_dir}: {problem}")
    for field, folder in (("input_dir", settings.input_dir), ("temp_dir", settings.temp_dir)):
        problem = folder_problem(folder, written=False)  # only LoadImage's, PreviewImage's
        if problem:
            raise ValueError(f"settings.{field} {folder}: {problem}")
    problem = device_problem(settings)
    if problem:
        raise ValueError(f"settings.device: {problem}")


def sweep(workflow_or_path: Any, name: str, values: Iterable, **kw: Any) -> SweepResults:
    """One run per value of param `name`, sharing one scheduler and cache, so everything that
    does not depend on the swept param is computed once. Other keywords are as for `run`.
    Stops at the first run that fails (or is interrupted), as `latentgraph run --sweep` does:
    the values after it are not run, and the result's `not_run` names them.
    `values`: at least one value, in a list or any iterable (a tuple, a range, a NumPy array;
    a str, a dict or an empty one is a ValueError, what is no iterable a TypeError)."""
    expected = f"sweep {name!r}: expected a list of at least one value (or another iterable)"
    if isinstance(values, (str, bytes, Mapping)):
        raise ValueError(f"{expected}, got {values!r}")
    if not isinstance(values, Iterable):
        raise TypeError(f"{expected}, got {with_article(type(values).__name__)}")
    values = list(values)  # never truth-tested: a NumPy array's truth is ambiguous
    if not values:
        raise ValueError(f"{expected}, got none")
    check_options(**{k: kw[k] for k in OPTION_TYPES if k in kw})
    more = {k: kw.pop(k) for k in list(kw) if k not in _RUN_OPTIONS}
    params = merged_params(kw.pop("params", None), more)
    if name in params:
        raise TypeError(f"sweep {name!r}: param {name!r} is given too ({name}="
                        f"{_shown(params[name])}), and the sweep sets it: give it once")  # fmt: skip
    scheduler = _scheduler(kw.pop("scheduler", None), kw.pop("registry", None),
                           kw.pop("cache", None), kw.pop("settings", None),
                           kw.pop("nodes_dirs", None))  # fmt: skip
    base = keyword_params(partial(with_params, workflow_or_path, registry=scheduler.registry),
                          params, more)  # fmt: skip
    # every value read and checked before the first run: a bad one is refused before any
    # image is made
    workflows = checked_sweep(base, name, values, params=params, registry=scheduler.registry,
                              settings=scheduler.settings,
                              targets=node_ids(kw.get("targets"), "targets"),
                              keep=node_ids(kw.get("keep"), "keep"))  # fmt: skip
    results, _ = runs_in_turn(workflows, lambda wf: run(wf, scheduler=scheduler, **kw))
    return SweepResults(results, values[len(results) :])


class SweepResults(list):
    """What `sweep` returns: the runs' `RunResult`s in the order of the values, and
    `not_run`, the values (as given) after a run that did not succeed, which the sweep stopped
    at (`runs_in_turn`); empty when every value ran."""

    def __init__(self, results: Iterable[RunResult], not_run: Iterable[Any] = ()) -> None:
        super().__init__(results)
        self.not_run = list(not_run)


def runs_in_turn(runs: list, run_one: Callable[[Any], RunResult]) -> tuple[list[RunResult], list]:
    """Each of `runs` run in turn by `run_one`, stopping at the first that does not succeed:
    the one rule for a sweep's runs, `latentgraph run --sweep`'s and `sweep`'s (README: a
    sweep stops at its first run that fails; one interrupted stops it too). Returns the
    results and the runs after the one it stopped at, not run."""
    results: list[RunResult] = []
    for i, item in enumerate(runs):
        results.append(run_one(item))
        if results[-1].status != "success":
            return results, runs[i + 1 :]
    return results, []


_RUN_OPTIONS = frozenset({"params", "settings", "cache", "on_event", "registry", "scheduler",
                          "targets", "keep", "cancel", "extra", "nodes_dirs"})  # fmt: skip
_LOAD_OPTIONS = frozenset({"params", "registry", "nodes_dirs"})
