"""Loading node types: entry-point plugins and folders of Python files.

A plugin is a module that declares nodes with `@node(...)` when imported. It comes from an
installed distribution (entry point group `latentgraph.nodes`, each entry naming a module; the
built-in nodes are one such pack, declared in pyproject.toml) or
from a `.py` file / package folder in a directory given with `--nodes-dir`. Code is only ever
imported from those places. A plugin that fails to import is reported (naming its file) and
skipped; the other plugins and the built-in nodes keep working. A node type declared under a
name already registered is skipped with a warning naming who has it, and the rest of its plugin
loads (as in ComfyUI). The built-in nodes load first and keep their names: a plugin reusing one
(a pack porting ComfyUI's SaveImage or KSampler) is the one skipped, whatever order the
installed distributions are found in. One thread loads at a time (`_loading`): a plugin is
imported once, by whichever comes first, and the others find it loaded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from .declare import NameClash, NodeType, Registry, default_registry
from .plugin_files import remember_given, shown_file

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "latentgraph.nodes"
FILE_MODULE_PREFIX = "latentgraph_plugin_"  # the module names of plugins imported from files
# resolved files imported, so reloading is a no-op -> their sources as they were then
# (`_sources`): an edit since is said (`EditedPlugin`), not silently ignored
_loaded_files: dict[Path, tuple] = {}
# Held by the thread loading plugins, the whole load: two threads loading one folder at once
# both imported its files, the second's nodes clashed with the first's, and its failed load
# removed them all (`_load_whole` removes what the registry gained since it began), the file
# marked loaded: unknown node types for the rest of the process. What a load reads, which
# files are loaded and what the registry gained, is the whole registry's, so the lock is too.
# Re-entrant: a plugin's import may load plugins.
_loading = threading.RLock()


class PluginWarning(UserWarning):
    """Emitted for a plugin that failed to load (or a declaration of it skipped) when the caller
    collects no errors."""


@dataclass
class PluginFailure:
    """A plugin that could not be loaded: where it is and why."""

    origin: str  # file path or entry point "name = module"
    message: str
    traceback: str = ""
    at: str = ""  # file:line in the plugin's code where it failed (its traceback's last)
    # whether the plugin registered none of its node types (a folder not there, an import
    # error, a declaration refused): an unknown node type may be one of them
    loses_types: ClassVar[bool] = True

    def __str__(self) -> str:
        where = f" ({self.at})" if self.at else ""
        return f"node plugin {self.origin} failed to load: {self.message}{where}"


@dataclass
class SkippedNode(PluginFailure):
    """A node type a plugin declared under a name already registered: the declaration is
    skipped, the first one kept, and the rest of the plugin loads. `origin` is the file:line
    of the skipped `@node`."""

    loses_types: ClassVar[bool] = False  # the first declaration's node type is registered

    def __str__(self) -> str:
        return f"node plugin {self.origin}: {self.message}; this declaration is skipped"


@dataclass
class EditedPlugin(PluginFailure):
    """A folder plugin whose source changed since this process imported it: a module is
    imported once per process, so the code imported first stays the one that runs (a
    notebook re-running `latentgraph.run(..., nodes_dirs=[...])` after an edit), and the
    user must be told."""

    loses_types: ClassVar[bool] = False  # its node types stay, as first imported

    def __str__(self) -> str:
        return (f"node plugin {self.origin} changed since this process imported it: its node "
                "types still run the code imported first; restart Python (in a notebook, its "
                "kernel) to load the edit")  # fmt: skip


def load_plugins(
    dirs: Iterable[Path] = (),
    *,
    entry_points: bool = True,
    registry: Registry | None = None,
    errors: list[PluginFailure] | None = None,
) -> list[str]:
    """Import node plugins; return the names of those loaded (module names or file paths).

    Failures go to `errors` when given, else they are emitted as `PluginWarning`s; either way
    they are kept as the target registry's `plugin_failures`, so a node type it lacks is said
    to be maybe a failed plugin's wherever that registry is used (`unloaded_plugins`). Node
    types a plugin registers in the default registry are copied into `registry` when another
    one is given.
    """
    target = registry if registry is not None else default_registry
    failures: list[PluginFailure] = []
    with _loading:
        before = set(default_registry.names())
        with default_registry.clashes_reported(functools.partial(_on_clash, failures)):
            loaded = _from_entry_points(failures) if entry_points else []
            for folder in dirs:
                loaded += _from_folder(Path(folder), failures)
        if target is not default_registry:
            for name in default_registry.names():
                if name not in before and name not in target:
                    target.add(default_registry[name])
        target.plugin_failures = tuple(failures)
    if errors is not None:
        errors.extend(failures)
    else:
        level = _callers_stacklevel()
        for failure in failures:
            warnings.warn(str(failure), PluginWarning, stacklevel=level)
    return loaded


def unloaded_plugins(failures: Iterable[PluginFailure]) -> str:
    """The plugins of `failures` that registered none of their node types, each as its failure
    reads ("node plugin FILE failed to load: EXC (FILE:LINE)"), "" when none: why a node type
    may be missing, in one wording wherever it is said (an unknown type's problem,
    `validate.unknown_type_message`; a server worker lacking a type the server has)."""
    return "; ".join(str(failure) for failure in failures if failure.loses_types)


def _callers_stacklevel() -> int:
    """The `stacklevel` at which `load_plugins` warns: the first caller outside latentgraph
    (a notebook's `latentgraph.run(..., nodes_dirs=...)` line reaches it through `api` and
    `wiring`, and a warning placed there pointed at wiring.py). Python 3.12's
    `skip_file_prefixes` says the same; this runs on 3.11."""
    frame, level = sys._getframe(2), 2  # 0: this function, 1: load_plugins, 2: its caller
    while frame.f_back is not None and _is_ours(frame.f_globals.get("__name__", "")):
        frame, level = frame.f_back, level + 1
    return level


def _is_ours(module: str) -> bool:
    """A module of latentgraph itself (not a plugin's, `latentgraph_plugin_...`)."""
    return module == "latentgraph" or module.startswith("latentgraph.")


@functools.cache
def installed_entry_points() -> tuple[EntryPoint, ...]:
    """The installed distributions' `latentgraph.nodes` entry points, read once per process:
    reading every distribution's metadata takes 4-5 ms, and `latentgraph.run` builds its
    registry on each call. A pack installed later is seen by a new process, as Python's own
    imports are."""
    from importlib.metadata import entry_points

    return tuple(entry_points(group=ENTRY_POINT_GROUP))


def _load_order(entries: Iterable[EntryPoint]) -> list[EntryPoint]:
    """latentgraph's own packs (the built-in nodes) first, then the others as installed: they
    were loaded in the order distributions are found on sys.path, so a pack found first took
    SaveImage from the built-in node, and the warning named latentgraph's file as the one
    skipped."""
    return sorted(entries, key=lambda entry: not _is_ours(entry.module))


def _from_entry_points(failures: list[PluginFailure]) -> list[str]:
    loaded = []
    for entry in _load_order(installed_entry_points()):
        origin = f"{entry.name} = {entry.value}"
        where = functools.partial(_module_location, entry.module)
        if _load_whole(origin, where, entry.load, failures)[0]:
            loaded.append(entry.value)
        else:  # its module may have imported, its declarations refused: imported again
            _forget_module(entry.module)  # next time, it says so again
    return loaded


def _from_folder(folder: Path, failures: list[PluginFailure]) -> list[str]:
    if not folder.is_dir():
        failures.append(PluginFailure(str(folder), "not a directory"))
        return []
    loaded = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "_")):
            continue
        if path.is_dir() and (path / "__init__.py").is_file():
            file = path / "__init__.py"
        elif path.is_file() and path.suffix == ".py":
            file = path
        else:
            continue
        resolved = file.resolve()
        if resolved in _loaded_files:
            if _sources(file) != _loaded_files[resolved]:
                failures.append(EditedPlugin(str(path), "edited"))
            loaded.append(str(path))
            continue
        sources = _sources(file)  # as imported: an edit made later is told
        remember_given(path)
        declared = len(default_registry)
        module_name = _module_name(path, resolved)
        load = functools.partial(_import_file, module_name, file)
        whole, module = _load_whole(str(path), path.resolve, load, failures)
        if not whole:
            _forget_module(module_name)
            continue
        _loaded_files[resolved] = sources
        if len(default_registry) == declared and hasattr(module, "NODE_CLASS_MAPPINGS"):
            failures.append(PluginFailure(str(path), COMFY_CUSTOM_NODE))
            continue
        loaded.append(str(path))
    return loaded


def _load_whole(
    origin: str, location: Callable[[], Path | None], load: Callable[[], Any],
    failures: list[PluginFailure],
) -> tuple[bool, Any]:  # fmt: skip
    """Import one plugin (`load`), whole or not at all: its node types stay registered only
    when the import finished and none of its `@node` declarations was refused, so a failed
    plugin leaves no half of its nodes usable. A refused declaration does not stop the
    import, so all of the file's are reported in one failure, each at its file:line (then
    what stopped the import, if anything did).
    `location` is where the plugin's code is (`_failure`), looked up only for a failure.
    Whether it loaded whole, and what `load` returned."""
    before = set(default_registry.names())
    refused: list[tuple[BaseException, list[traceback.FrameSummary]]] = []
    stopped, loaded = None, None
    try:
        with default_registry.refusals_reported(
                lambda error: refused.append((error, traceback.extract_stack()))):  # fmt: skip
            loaded = load()
    except (Exception, SystemExit) as exc:  # a plugin must not take the host down
        stopped = exc
    if stopped is None and not refused:
        return True, loaded
    for name in set(default_registry.names()) - before:
        default_registry.remove(name)
    where = location()
    said = [_failure(origin, error, where, frames) for error, frames in refused]
    if stopped is not None:
        said.append(_failure(origin, stopped, where))
    if len(said) == 1:
        failures.append(said[0])
    else:
        failures.append(PluginFailure(origin, "; ".join(
            f"{one.message} ({one.at})" if one.at else one.message for one in said),
            "".join(one.traceback for one in said)))  # fmt: skip
    return False, None


def _sources(file: Path) -> tuple:
    """What a folder plugin's code is, to tell an edit: each of its `.py` files (a package's
    every one) by modification time and size."""
    files = sorted(file.parent.rglob("*.py")) if file.name == "__init__.py" else [file]
    found = []
    for one in files:
        try:
            stat = one.stat()
        except OSError:  # removed meanwhile
            continue
        found.append((str(one), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


# A `--nodes-dir` file declaring ComfyUI node classes and none of ours: it imports cleanly and
# would otherwise vanish without a word.
COMFY_CUSTOM_NODE = (
    "it is a ComfyUI custom node (NODE_CLASS_MAPPINGS) and declares no latentgraph node: "
    "ComfyUI's node classes are not loaded (docs/custom-nodes.md says how to port one)"
)


def _module_name(path: Path, resolved: Path) -> str:
    """The module name a plugin file is imported as: its name and its place, never a name
    of the user's own modules."""
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"{FILE_MODULE_PREFIX}{stem}_{digest}"


def _import_file(module_name: str, file: Path) -> ModuleType:
    # an `__init__.py` is imported as a package (its folder searched for submodules)
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        _forget_module(module_name)
        raise
    return module


def _forget_module(module_name: str) -> None:
    """Drop a plugin that failed to load from `sys.modules`, with the modules of its package
    that did import: loaded again, its files run again and declare their nodes again."""
    for name in [n for n in sys.modules if n == module_name or n.startswith(module_name + ".")]:
        del sys.modules[name]


def _failure(
    origin: str, exc: BaseException, location: Path | None,
    frames: list[traceback.FrameSummary] | None = None,
) -> PluginFailure:  # fmt: skip
    """`exc` raised while importing the plugin at `location` (its resolved file, or its
    package's folder), with the file:line of its traceback's last frame there: a declaration
    refused by `@node` points at the line of that `@node` (a refusal reported, not raised,
    has the `frames` of the stack refusing it instead). A SyntaxError in the plugin's code
    is placed at the broken file's line (its own filename and lineno: no frame of the
    traceback is in that file, and a package's is the line importing it)."""
    text = "".join(traceback.format_exception(exc)) if frames is None else ""
    message, at = f"{type(exc).__name__}: {exc}", ""
    if frames is None:
        frames = traceback.extract_tb(exc.__traceback__)
    if location is not None:
        for frame in frames:
            if _within(frame.filename, location):
                at = f"{shown_file(frame.filename)}:{frame.lineno}"
        if isinstance(exc, SyntaxError) and exc.filename and _within(exc.filename, location):
            message = f"{type(exc).__name__}: {exc.msg}"  # str(exc) adds "(b.py, line 3)"
            at = shown_file(exc.filename) + (f":{exc.lineno}" if exc.lineno else "")
    return PluginFailure(origin, message, text, at)


def _within(filename: str, location: Path) -> bool:
    """Whether `filename` is the plugin at `location` (its file) or inside it (its folder)."""
    file = Path(filename).resolve()
    return file == location or location in file.parents


def _module_location(module: str) -> Path | None:
    """Where an entry point's module lives (its file, or its package's folder), found
    without importing it; None when it cannot be found."""
    try:
        spec = importlib.util.find_spec(module)
    except (Exception, SystemExit):  # a parent package that fails to import
        return None
    if spec is None or not spec.origin:
        return None
    origin = Path(spec.origin)
    return (origin.parent if spec.submodule_search_locations else origin).resolve()


def _on_clash(failures: list[PluginFailure], clash: NameClash) -> None:
    """A node type declared under a name already registered: the later declaration is
    skipped, reported at its file:line. A built-in node's name is its own: a plugin's type
    declared before the built-in nodes were loaded (a notebook's cell, a module imported
    first) gives way to the built-in one and is the one reported skipped, whatever the
    load order."""
    if clash.new.builtin and not clash.held.builtin:
        default_registry.add(clash.new, replace=True)
        clash = NameClash(clash.new, clash.held)
    failures.append(_skipped(clash))


def _skipped(clash: NameClash) -> SkippedNode:
    """A plugin's `@node` whose name is taken: who has it (a module, or a plugin file:line),
    said at the skipped declaration's file:line."""
    new = clash.new
    message = f"node type {new.name!r} is already registered by {_declared_by(clash.held)}"
    return SkippedNode(new.declared_at or new.module, message)


def _declared_by(node_type: NodeType) -> str:
    """Who declared `node_type`, as a user knows it: a plugin file as its file:line, any other
    module by its name (latentgraph.nodes.comfy)."""
    if node_type.module.startswith(FILE_MODULE_PREFIX):
        return node_type.declared_at or node_type.module
    return node_type.module or "another declaration"
