"""Failures on Ray actors (toy nodes, two actors): a node error fails its prompt once, on the
healthy actor; a prompt that kills every actor it runs on fails after the re-dispatches, and
the queue goes on; an interrupt that the node never checks ends with `ray.kill`."""

from __future__ import annotations

import logging
import time

import pytest

from latentgraph.server.workers import WorkerSetup
from tests.server.conftest import RunningServer, WsClient, chain, free_port
from tests.server.test_workers import block_chain

from .toy_faults import fault_registry


@pytest.fixture(scope="module")
def toy_ray_server(ray_runtime, tmp_path_factory):
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("ray-faults"), port=free_port(),
                          ray="local", ray_workers=2, editor=False, load_nodes=False,
                          disk_cache=False, interrupt_grace_seconds=0.5)  # fmt: skip
    running = RunningServer(config, WorkerSetup(registry=fault_registry)).start()
    _ready(running)
    yield running
    running.stop()


def _ready(server: RunningServer, but_not: tuple = (), timeout: float = 120) -> list[int]:
    """The actors' pids once both are ready (and none of them is in `but_not`)."""
    dispatcher = server.app.state.lg.dispatcher
    deadline = time.monotonic() + timeout
    while True:
        pids = dispatcher.worker_pids()
        if all(pids) and not set(pids) & set(but_not):
            return pids
        assert time.monotonic() < deadline, pids
        time.sleep(0.05)


def _run(server: RunningServer, client: WsClient, prompt: dict, timeout: float = 90) -> tuple:
    prompt_id = server.post_prompt(prompt, client.client_id).json()["prompt_id"]
    kinds = [m["type"] for m in client.until_done(prompt_id, timeout)]
    entry = server.http.get(f"/history/{prompt_id}").json()[prompt_id]
    return kinds, entry


def test_a_node_error_on_a_healthy_actor_fails_the_prompt_once(toy_ray_server):
    client = WsClient(toy_ray_server)
    try:
        pids = _ready(toy_ray_server)
        kinds, entry = _run(toy_ray_server, client, chain(4, fail=True))
        assert kinds.count("execution_start") == 1 and kinds.count("execution_error") == 1
        assert entry["status"]["status_str"] == "error"
        assert "toy failure" in str(entry["status"]["messages"])
        assert _ready(toy_ray_server) == pids  # no actor died
    finally:
        client.close()


def test_a_prompt_killing_every_actor_it_runs_on_fails_after_its_redispatches(toy_ray_server,
                                                                               caplog):  # fmt: skip
    from latentgraph.server.ray_workers import RayWorkerPool

    client = WsClient(toy_ray_server)
    try:
        pids = _ready(toy_ray_server)
        deadly = chain(5)
        deadly["9"] = {"class_type": "KillsItsWorker", "inputs": {"x": ["2", 0]}}
        with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
            kinds, entry = _run(toy_ray_server, client, deadly, timeout=120)
        requeued = [r for r in caplog.records if "goes back to the queue" in r.getMessage()]
        assert len(requeued) == RayWorkerPool.redispatch_after_death
        assert kinds.count("execution_error") == 1 and "execution_success" not in kinds
        assert entry["status"]["status_str"] == "error"
        assert "Ray worker latentgraph-" in str(entry["status"]["messages"])
        kinds, entry = _run(toy_ray_server, client, chain(6))  # the queue goes on
        assert entry["status"]["status_str"] == "success"
        assert _ready(toy_ray_server) != pids  # the actors it killed were restarted
    finally:
        client.close()


def test_an_interrupt_the_node_never_checks_ends_with_ray_kill(toy_ray_server):
    client = WsClient(toy_ray_server)
    try:
        _ready(toy_ray_server)
        prompt_id = toy_ray_server.post_prompt(block_chain(60), client.client_id).json()[
            "prompt_id"
        ]
        while client.recv()["data"].get("node") != "3":  # the blocking node is running
            pass
        dispatcher = toy_ray_server.app.state.lg.dispatcher
        pid = dispatcher.worker_pids()[dispatcher.worker_of(prompt_id)]
        toy_ray_server.http.post("/interrupt", json={"prompt_id": prompt_id})
        messages = client.until_done(prompt_id, timeout=30)
        ends = [m["type"] for m in messages if m["type"].startswith("execution_")]
        assert ends == ["execution_interrupted"]  # interrupted, not re-dispatched
        assert pid not in _ready(toy_ray_server)  # the actor was killed and restarted
    finally:
        client.close()
