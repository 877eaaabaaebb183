"""A worker whose registry lacks a node type the server validated with (its plugin folder not
there on that machine, a plugin that fails to import there): the prompt fails at that node,
naming it, its type, the worker and why, and is not handed to another worker. It ran without
the node and ended `success`, the node missing from the outputs (a `serve --ray` actor without
the `--nodes-dir` folder)."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from latentgraph.graph import NodeResult, Registry, Settings, Socket, node
from latentgraph.graph.plugins import load_plugins
from latentgraph.server.worker_process import JobRunner, WorkerSpec
from latentgraph.server.workers import Done, Job, RunMessages, WorkerSetup

from .conftest import RunningServer, WsClient, chain, free_port
from .plugin.toy_nodes import NUM, toy_registry


def with_who() -> dict:
    """The toy chain and a plugin's output node beside Show (as the report's WhoAmI)."""
    prompt = chain(3)
    prompt["who"] = {"class_type": "WhoAmI", "inputs": {"x": ["2", 0]}}
    return prompt


def _add_who(registry: Registry) -> Registry:
    @node("WhoAmI", inputs=[Socket("x", NUM)], outputs=[], output_node=True, registry=registry)
    def who(ctx, x):
        return NodeResult((), ui={"pid": [os.getpid()]})

    return registry


def server_only_registry() -> Registry:
    """The toy nodes, and WhoAmI in the server's process only: a worker process (started by
    multiprocessing) lacks it, as one whose plugin did not load there."""
    registry = toy_registry()
    return _add_who(registry) if multiprocessing.parent_process() is None else registry


def toys_and_plugins(nodes_dirs: list[Path]) -> Registry:
    """The toy nodes and the plugins of `nodes_dirs`, as a worker builds its registry
    (`WorkerSetup.registry`): the plugins failing to load kept as its `plugin_failures`."""
    registry = toy_registry()
    load_plugins(nodes_dirs, entry_points=False, registry=registry, errors=[])
    return registry


def run_checked(spec: WorkerSpec, prompt: dict, setup: WorkerSetup | None = None,
                meanwhile: Callable[[], object] = lambda: None) -> tuple[Done, list]:  # fmt: skip
    """Run `prompt` as a job POST /prompt checked, in a JobRunner of the toy nodes and the
    plugins of `spec.nodes_dirs` (or of `setup`), `meanwhile` called once it has started: its
    Done and the websocket messages it sent."""
    if setup is None:
        setup = WorkerSetup(registry=partial(toys_and_plugins, spec.nodes_dirs))
    ours, theirs = multiprocessing.Pipe()
    try:
        runner = JobRunner(setup, spec, theirs)
        meanwhile()
        runner.run(Job("p1", json.dumps(prompt), {}, None, False, checked=True))
        sent: list = []
        while not any(isinstance(m, Done) for m in sent):
            sent += ours.recv()
    finally:
        ours.close()
        gc.unfreeze()  # the runner froze the session's objects
    return next(m for m in sent if isinstance(m, Done)), [
        (t, json.loads(text)["data"])
        for m in sent if isinstance(m, RunMessages) for t, text in m.messages
    ]  # fmt: skip


@pytest.mark.parametrize("plugin", ["missing", "failing"])
def test_a_checked_job_with_a_type_the_worker_lacks_fails_naming_node_worker_and_why(
        tmp_path, plugin):  # fmt: skip
    nodes_dir = tmp_path / "plug"
    said = f"node plugin {nodes_dir} failed to load: not a directory"
    if plugin == "failing":
        nodes_dir.mkdir()
        (nodes_dir / "whoami.py").write_text("import not_installed_here\n")
        said = f"node plugin {nodes_dir / 'whoami.py'} failed to load: ModuleNotFoundError"
    spec = WorkerSpec(3, Settings(output_dir=tmp_path / "out"), nodes_dirs=[nodes_dir],
                      load_nodes=False, preload=False)  # fmt: skip
    done, messages = run_checked(spec, with_who())
    assert done.status == "failed"
    error = dict(messages)["execution_error"]
    assert (error["node_id"], error["node_type"]) == ("who", "WhoAmI")
    worker = f"worker 3 (pid {os.getpid()} on {socket.gethostname()})"
    assert error["exception_message"].startswith(
        f"node 'who' (WhoAmI): node type 'WhoAmI' is not loaded in {worker}, though the server "
        f"has it: every worker needs the server's node plugins; here, {said}")  # fmt: skip
    assert "\n" not in error["exception_message"]
    assert "executed" not in dict(messages)  # Show did not run without it either


def test_a_plugin_that_failed_as_the_worker_started_is_not_imported_again_to_say_why(tmp_path):
    """The worker names the failure it kept as it started: it loaded its plugins again into
    its live registry to word the error, running a failing plugin's code once more for each
    prompt needing its node."""
    nodes_dir, imports = tmp_path / "plug", tmp_path / "imports.txt"
    nodes_dir.mkdir()
    (nodes_dir / "whoami.py").write_text(f"with open({str(imports)!r}, 'a') as f:\n"
                                         "    f.write('imported\\n')\n"
                                         "import not_installed_here\n")  # fmt: skip
    spec = WorkerSpec(0, Settings(output_dir=tmp_path / "out"), nodes_dirs=[nodes_dir],
                      load_nodes=False, preload=False)  # fmt: skip
    done, messages = run_checked(spec, with_who())
    assert done.status == "failed"
    said = f"here, node plugin {nodes_dir / 'whoami.py'} failed to load: ModuleNotFoundError"
    assert said in dict(messages)["execution_error"]["exception_message"]
    assert imports.read_text() == "imported\n"  # as the worker started, not again


@pytest.mark.parametrize("later_load", [False, True])
def test_a_served_worker_names_the_plugin_failing_in_it(tmp_path, later_load):
    """`serve`'s workers (`wiring.worker_setup`) keep their plugins' failures as they load
    them, to name when a prompt needs a node type they lack. Their registry is their process's
    default one: plugins loaded into it again later (`latentgraph.run` in that process,
    `later_load`) replace the registry's `plugin_failures`, not those the worker kept."""
    from latentgraph.wiring import node_registry, worker_setup

    nodes_dir = tmp_path / "plug"
    nodes_dir.mkdir()
    (nodes_dir / "whoami.py").write_text("raise RuntimeError('no GPU driver here')\n")
    spec = WorkerSpec(1, Settings(output_dir=tmp_path / "out"), nodes_dirs=[nodes_dir],
                      preload=False)  # fmt: skip
    prompt = {"who": {"class_type": "WhoAmI", "inputs": {}}}
    meanwhile = partial(node_registry, errors=[]) if later_load else (lambda: None)
    done, messages = run_checked(spec, prompt, worker_setup([nodes_dir]), meanwhile=meanwhile)
    assert done.status == "failed"
    said = (f"the server's node plugins; here, node plugin {nodes_dir / 'whoami.py'} failed to "
            "load: RuntimeError: no GPU driver here")  # fmt: skip
    assert said in dict(messages)["execution_error"]["exception_message"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("lacks"), port=free_port(),
                          workers=2, disk_cache=False, load_nodes=False, editor=False)  # fmt: skip
    running = RunningServer(config, WorkerSetup(registry=server_only_registry)).start()
    yield running
    running.stop()


def test_the_client_gets_the_error_at_that_node_and_no_other_worker_runs_it(server):
    client = WsClient(server)
    try:
        r = server.post_prompt(with_who(), client.client_id)
        assert r.status_code == 200, r.text  # the server has WhoAmI: it validates
        pid = r.json()["prompt_id"]
        messages = client.until_done(pid)
    finally:
        client.close()
    types = [m["type"] for m in messages]
    assert types.count("execution_start") == 1 and "execution_success" not in types
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    assert (error["node_id"], error["node_type"]) == ("who", "WhoAmI")
    assert "is not loaded in worker " in error["exception_message"]
    history = server.http.get(f"/history/{pid}").json()[pid]
    assert history["status"]["status_str"] == "error"
    assert history["outputs"] == {}


def _served_with_plugins(tmp_path: Path, nodes_dir: Path) -> RunningServer:
    """A server of the toy nodes and the plugins of `nodes_dir`, loaded by the server's process
    and by its one worker as `serve --nodes-dir` loads them (`wiring.worker_setup`)."""
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path / "data", port=free_port(), workers=1,
                          disk_cache=False, load_nodes=False, editor=False)  # fmt: skip
    setup = WorkerSetup(registry=partial(toys_and_plugins, [nodes_dir]))
    return RunningServer(config, setup).start()


def test_post_prompt_names_the_servers_plugin_that_failed_to_import(tmp_path):
    """The server's own plugin failing to import: POST /prompt's refusal of its node type names
    the failure, as a worker lacking it does. It said "give its folder with --nodes-dir"
    (the folder was given), the import error only in the server's log."""
    nodes_dir = tmp_path / "plug"
    nodes_dir.mkdir()
    plugin = nodes_dir / "whoami.py"
    plugin.write_text("import not_installed_here\n")
    server = _served_with_plugins(tmp_path, nodes_dir)
    try:
        r = server.post_prompt({"who": {"class_type": "WhoAmI", "inputs": {}}})
    finally:
        server.stop()
    assert r.status_code == 400 and r.json()["error"]["type"] == "missing_node_type"
    [error] = r.json()["node_errors"]["who"]["errors"]
    assert error["message"] == (
        "unknown node type 'WhoAmI': a ComfyUI core or custom node latentgraph does not have "
        "(docs/comfy-compat.md lists the ones it has); it may be declared by a plugin that did "
        "not load: node plugin whoami.py failed to load: ModuleNotFoundError: No module named "
        "'not_installed_here' (whoami.py:1)"
    )  # a web client is not shown the server's paths


WORKER_ONLY_FAILURE = """\
import multiprocessing
if multiprocessing.parent_process() is not None:  # a worker process, not the server's
    raise RuntimeError("no GPU driver in this worker")
"""


def test_a_worker_start_logs_each_plugin_failing_there_and_not_in_the_server(tmp_path, caplog):
    """A plugin importing in the server's process, failing in the worker's (another machine's or
    device's environment), is a warning in the server's log as that worker starts, naming the
    worker, the file and the error: it said only "worker 0 ... is ready", and nobody heard of
    it until a prompt needed its node. A plugin failing in both is the server's own warning,
    said once at its start (`serve`), not again by each worker."""
    nodes_dir = tmp_path / "plug"
    nodes_dir.mkdir()
    (nodes_dir / "both.py").write_text("import not_installed_here\n")
    worker_only = nodes_dir / "worker_only.py"
    worker_only.write_text(WORKER_ONLY_FAILURE)
    with caplog.at_level("INFO", logger="latentgraph.server"):
        server = _served_with_plugins(tmp_path, nodes_dir)
        client = WsClient(server)
        try:
            for value in (1, 2):  # a Ready again after a free (before the second): no new warning
                r = server.post_prompt(chain(value), client.client_id)
                assert r.status_code == 200, r.text
                client.until_done(r.json()["prompt_id"])
                server.http.post("/free", json={"free_memory": True})
        finally:
            client.close()
            server.stop()
    said = [r.getMessage() for r in caplog.records
            if r.name == "latentgraph.server" and r.getMessage().startswith("worker 0 ")]  # fmt: skip
    [ready] = [line for line in said if " is ready" in line]
    pid = ready.split("pid ")[1].split(")")[0]
    assert [line for line in said if "plugin" in line] == [
        f"worker 0 (pid {pid} on {socket.gethostname()}): node plugin {worker_only} failed to "
        f"load: RuntimeError: no GPU driver in this worker ({worker_only}:3)"]  # fmt: skip
