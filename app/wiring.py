"""How the program is put together: which node types are registered, and which of the nodes'
functions the server is handed. Only the composition root (`latentgraph.cli`, the facade in
`latentgraph.api`) and tests call this; the engine and the server are handed the result.

The built-in nodes are a plugin pack like any other: pyproject.toml declares `latentgraph.nodes`
in the `latentgraph.nodes` entry-point group, so loading the entry-point plugins registers them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from latentgraph.graph.declare import Registry, default_registry

if TYPE_CHECKING:  # the plugin loader and the server config are imported when used (--help)
    from latentgraph.graph.plugins import PluginFailure
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

BUILTIN_PACK = "latentgraph.nodes"


class InstallError(RuntimeError):
    """latentgraph's own install is incomplete (its entry points are missing)."""


def node_registry(
    nodes_dirs: Iterable[Path] = (), *, errors: list[PluginFailure] | None = None
) -> Registry:
    """The process registry with every entry-point pack (the built-in nodes among them) and
    the plugins in `nodes_dirs`; failures go to `errors` (else warnings)."""
    from latentgraph.graph.plugins import ENTRY_POINT_GROUP, installed_entry_points, load_plugins

    if not any(e.value == BUILTIN_PACK for e in installed_entry_points()):
        raise InstallError(
            f"the built-in nodes are not installed as a {ENTRY_POINT_GROUP!r} entry point; "
            "reinstall latentgraph (pip install -e . in a checkout)"
        )
    load_plugins(list(nodes_dirs), errors=errors)
    return default_registry


def worker_registry(nodes_dirs: Iterable[Path] = ()) -> Registry:
    """`node_registry` as each server worker builds it (its process's own default registry):
    the same packs and folders the server's process loaded (`prepare_server`) and reported the
    failures of, so a worker does not warn about them again (`serve --nodes-dir /nonexistent`
    said it once per worker); its own are the registry's `plugin_failures`, to name when a
    prompt needs a node type it lacks."""
    return node_registry(nodes_dirs, errors=[])


def worker_setup(nodes_dirs: Iterable[Path] = ()) -> WorkerSetup:
    """How each server worker process builds the same registry (the entry-point packs and
    `nodes_dirs`, the plugins failing to load there kept on it) and reaches the built-in nodes'
    model functions: unload every model (POST /free, after out of memory) and list the loaded
    ones (model affinity). All are pickled by reference and called inside the worker: the
    server process never imports torch. The models folder kinds the nodes read are handed
    over too (the server's /models routes)."""
    from latentgraph.nodes import free_models, resident_models
    from latentgraph.nodes.models_dirs import FOLDERS
    from latentgraph.server.workers import WorkerSetup

    build = partial(worker_registry, tuple(Path(d) for d in nodes_dirs))
    return WorkerSetup(registry=build, free_models=free_models, resident_models=resident_models,
                       model_folders=dict(FOLDERS))  # fmt: skip


def prepare_server(config: ServerConfig, *, errors: list[PluginFailure] | None = None) -> Registry:
    """The registry a server runs with, example.png in its input folder (for the editor's
    preview), and the previews earlier starts left in its temp folder removed, where that
    folder is latentgraph's (`nodes.temp_folder`; a line on stderr when previews are left).
    The nodes read their folders from the server's Settings: nothing to configure."""
    from latentgraph.nodes import temp_folder, write_example

    registry = node_registry(config.nodes_dirs, errors=errors)
    write_example(Path(config.input_dir))
    left = temp_folder.remove_previews(config.temp_dir, (config.output_dir, config.input_dir))
    if left:
        print(f"latentgraph: note: {left}", file=sys.stderr)
    return registry
