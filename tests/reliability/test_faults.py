"""Faults the server survives: a node that raises, out-of-memory in the UNet, an interrupt in
the middle of a real denoise, a client that leaves mid-run, a full or read-only output folder,
and a corrupt queue database at start. After each, the next prompt runs."""

from __future__ import annotations

import errno
import logging
import os
import time
import uuid

import pytest

from ..server.conftest import RunningServer, WsClient, chain, free_port
from ..server.plugin.toy_nodes import register
from .conftest import partial, snapshot
from .corpus_server import SD
from .test_server_corpus import full_registry


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    import torch

    from latentgraph.nodes import free_models
    from latentgraph.server.config import ServerConfig

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("faults")
    config = ServerConfig(data_dir=root / "data", port=free_port(), disk_cache=False,
                          load_nodes=False, editor=False)  # fmt: skip
    running = RunningServer(config, full_registry(), free_models).start()
    yield running
    running.stop()


def queue(server: RunningServer, prompt: dict, client_id: str = "faults") -> str:
    r = server.post_prompt(prompt, client_id)
    assert r.status_code == 200, r.text
    return r.json()["prompt_id"]


def wait(server: RunningServer, prompt_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = server.http.get(f"/history/{prompt_id}").json()
        if entry:
            return entry[prompt_id]
        time.sleep(0.05)
    raise AssertionError(f"prompt {prompt_id} never finished")


def messages(entry: dict, kind: str) -> list[dict]:
    return [data for t, data in entry["status"]["messages"] if t == kind]


def sd_prompt(seed: int, steps: int = 2, prefix: str = "faults") -> dict:
    import json

    p = json.loads(json.dumps(SD))
    p["7"]["inputs"].update(seed=seed, steps=steps)
    p["10"]["inputs"]["filename_prefix"] = prefix
    return p


def pngs(server: RunningServer) -> set[str]:
    return {p.name for p in server.config.output_dir.rglob("*.png")}


def test_node_that_raises_then_next_prompt_runs(srv):
    failed = wait(srv, queue(srv, chain(3, fail=True)))
    assert failed["status"]["status_str"] == "error"
    err = messages(failed, "execution_error")[0]
    assert err["node_id"] == "4" and err["exception_message"] == "toy failure"
    ok = wait(srv, queue(srv, chain(4, prefix="after-fail")))
    assert ok["status"]["status_str"] == "success"


def test_out_of_memory_in_the_unet_frees_models_and_recovers(srv, monkeypatch):
    import torch
    from diffusers import UNet2DConditionModel

    from latentgraph.nodes.model_manager import manager

    assert wait(srv, queue(srv, sd_prompt(1)))["status"]["status_str"] == "success"
    assert manager().keys(), "the model should be loaded after a successful run"
    before = pngs(srv)

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(UNet2DConditionModel, "forward", oom)
    entry = wait(srv, queue(srv, sd_prompt(2, prefix="oom")))
    assert entry["status"]["status_str"] == "error"
    err = messages(entry, "execution_error")[0]
    assert err["node_id"] == "7" and "out of memory" in err["exception_message"].lower()
    assert err["exception_type"].endswith("OutOfMemoryError")
    assert manager().keys() == [], "models must be unloaded after an out-of-memory failure"
    assert pngs(srv) == before

    monkeypatch.undo()
    again = wait(srv, queue(srv, sd_prompt(2, prefix="after-oom")))
    assert again["status"]["status_str"] == "success"
    assert any(n.startswith("after-oom") for n in pngs(srv) - before)


def test_interrupt_during_real_denoise_stops_within_a_step(srv):
    assert wait(srv, queue(srv, sd_prompt(5)))["status"]["status_str"] == "success"  # warm
    client = WsClient(srv, uuid.uuid4().hex)
    try:
        before_files = snapshot(srv.config.output_dir)
        pid = queue(srv, sd_prompt(6, steps=400, prefix="interrupted"), client.client_id)
        seen = 0
        while seen < 3:
            msg = client.recv(60)
            if msg["type"] == "progress" and msg["data"]["node"] == "7":
                seen = msg["data"]["value"]
        assert srv.http.post("/interrupt", json={"prompt_id": pid}).status_code == 200
        at_interrupt = seen
        rest = client.until_done(pid, timeout=60)
    finally:
        client.close()
    steps_after = [m["data"]["value"] for m in rest if m["type"] == "progress"
                   and m["data"]["prompt_id"] == pid]  # fmt: skip
    # Messages already in flight when /interrupt answered may still arrive; the loop itself
    # checks before every step, so at most one more step completes after the flag is seen.
    assert max(steps_after, default=at_interrupt) <= at_interrupt + 2, steps_after
    assert max(steps_after, default=at_interrupt) < 400
    types = [m["type"] for m in rest]
    assert "execution_interrupted" in types and "execution_success" not in types
    assert wait(srv, pid)["status"]["status_str"] == "error"
    after = snapshot(srv.config.output_dir)
    assert set(after) == set(before_files), "nothing may be saved by an interrupted run"
    assert not partial(list(after))
    assert wait(srv, queue(srv, sd_prompt(7, prefix="after-interrupt")))["status"][
        "status_str"] == "success"  # fmt: skip


def test_client_that_disconnects_mid_run(srv):
    client = WsClient(srv, uuid.uuid4().hex)
    pid = queue(srv, chain(9, slow_steps=30, delay=0.02, prefix="gone"), client.client_id)
    while True:
        msg = client.recv(30)
        if msg["type"] == "progress":
            break
    client.close()
    entry = wait(srv, pid)
    assert entry["status"]["status_str"] == "success"
    assert entry["outputs"]["9"]["images"][0]["filename"] == "gone_18.png"
    assert (srv.config.output_dir / "gone_18.png").is_file()


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"), (errno.EACCES, "permission")],
)  # fmt: skip
def test_output_folder_full_or_read_only(srv, monkeypatch, code, words):
    """Simulated (tests may run as root, where chmod does not stop writes): the final link
    of SaveImage fails the way the OS would, naming the paths."""
    assert wait(srv, queue(srv, sd_prompt(11)))["status"]["status_str"] == "success"  # warm
    real_link = os.link
    before = snapshot(srv.config.output_dir)

    def failing_link(src, dst, *a, **kw):
        raise OSError(code, os.strerror(code), str(src), None, str(dst))

    monkeypatch.setattr(os, "link", failing_link)
    prefix = f"full{code}"
    entry = wait(srv, queue(srv, sd_prompt(11, prefix=prefix)))
    assert entry["status"]["status_str"] == "error"
    err = messages(entry, "execution_error")[0]
    assert err["node_id"] == "10"
    assert words in err["exception_message"].lower()
    assert str(srv.config.output_dir.resolve()) in err["exception_message"]
    after = snapshot(srv.config.output_dir)
    assert set(after) == set(before) and not partial(list(after))
    monkeypatch.setattr(os, "link", real_link)
    entry = wait(srv, queue(srv, sd_prompt(11, prefix=prefix)))
    assert entry["status"]["status_str"] == "success"
    assert any(n.startswith(prefix) for n in pngs(srv))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_database_at_start(tmp_path, caplog, damage):
    from starlette.testclient import TestClient

    from latentgraph.graph import Registry
    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.store import PromptRecord, Store

    config = ServerConfig(data_dir=tmp_path, disk_cache=False, load_nodes=False, editor=False)
    if damage == "garbage":
        config.db_path.write_bytes(os.urandom(8192))
    else:
        store = Store(config.db_path)
        for i in range(200):
            store.add(PromptRecord(id=f"p{i}", number=None, prompt={"x": "y" * 500}))
        store.close()
        data = config.db_path.read_bytes()
        config.db_path.write_bytes(data[:4096] + os.urandom(len(data) // 2))
    original = config.db_path.read_bytes()
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        app = create_app(config, registry=register(Registry()))
    with TestClient(app, base_url="http://127.0.0.1:8188") as client:
        assert client.get("/queue").json() == {"queue_running": [], "queue_pending": []}
        r = client.post("/prompt", json={"prompt": chain(2)})
        assert r.status_code == 200
    backups = list(tmp_path.glob("server.sqlite3.corrupt-*"))
    assert [b.read_bytes() for b in backups if not b.name.endswith(("-wal", "-shm"))] == [
        original]  # fmt: skip
    assert any("moved to" in r.getMessage() and "could not be read" in r.getMessage()
               for r in caplog.records)  # fmt: skip
