"""SIGKILL mid-run, restart: the killed prompt is failed in history, the queued ones run. SIGTERM
to the whole process group (systemd's stop, `kill -- -PGID`) is an orderly shutdown, not a
worker crash."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from .conftest import WsClient, chain, free_port, server_process, stop_server_process

PLUGIN_DIR = Path(__file__).parent / "plugin"
LAUNCH = (
    "import json, sys\n"
    "from latentgraph.server.config import ServerConfig\n"
    "from latentgraph.server.run import serve\n"
    "serve(ServerConfig(**json.loads(sys.argv[1])), log_level='warning')\n"
)


def start(config: dict, env: dict, *, own_group: bool = False) -> tuple[subprocess.Popen,
                                                                       httpx.Client]:  # fmt: skip
    return server_process(LAUNCH, [json.dumps(config)], config["port"], env, own_group=own_group)


def config_and_env(tmp_path: Path) -> tuple[dict, dict]:
    """A toy-node server's config (a free port, its data under `tmp_path`) and environment."""
    config = {"data_dir": str(tmp_path / "data"), "port": free_port(), "disk_cache": False,
              "load_nodes": False, "editor": False, "nodes_dirs": [str(PLUGIN_DIR)]}  # fmt: skip
    env = {**os.environ, "LATENTGRAPH_TOY_PLUGIN": "1",
           "LATENTGRAPH_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    return config, env


def post_slow(http: httpx.Client) -> str:
    """Queue an 18-second prompt; its id."""
    return http.post("/prompt", json={"prompt": chain(1, slow_steps=900, delay=0.02),
                                      "client_id": "c"}).json()["prompt_id"]  # fmt: skip


def wait_running(http: httpx.Client, prompt_id: str) -> None:
    """Until `prompt_id` is the one running, then a moment more (well inside its slow node)."""
    deadline = time.monotonic() + 20
    while [item[1] for item in http.get("/queue").json()["queue_running"]] != [prompt_id]:
        assert time.monotonic() < deadline, f"{prompt_id} never started"
        time.sleep(0.05)
    time.sleep(0.3)


def test_sigkill_during_first_prompt_then_restart(tmp_path):
    config, env = config_and_env(tmp_path)
    proc, http = start(config, env)
    try:
        slow, rest = running_and_two_queued(http, 20, prefix="after")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        http.close()
        if proc.poll() is None:
            proc.kill()
    proc, http = start(config, env)
    try:
        deadline = time.monotonic() + 30
        while True:
            history = http.get("/history").json()
            if all(pid in history for pid in rest):
                break
            assert time.monotonic() < deadline, "the queued prompts did not run after restart"
            time.sleep(0.1)
        first = history[slow]
        assert first["status"]["status_str"] == "error" and first["status"]["completed"] is False
        assert "shutdown" in json.dumps(first["status"]["messages"])
        for pid in rest:
            assert history[pid]["status"]["status_str"] == "success"
        assert http.get(f"/jobs/{slow}").json()["status"] == "failed"
        assert http.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    finally:
        stop_server_process(proc, http)


def test_sigterm_to_the_process_group_is_a_shutdown_not_a_worker_crash(tmp_path):
    config, env = config_and_env(tmp_path)
    proc, http = start(config, env, own_group=True)
    try:
        slow = post_slow(http)
        wait_running(http, slow)
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker, as systemd stops it
        proc.wait(30)
        log = proc.stderr.read().decode()
    finally:
        http.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "worker process died" not in log, log[-2000:]
    proc, http = start(config, env)
    try:
        status = http.get(f"/history/{slow}").json()[slow]["status"]
        messages = json.dumps(status["messages"])
        assert status["status_str"] == "error" and "interrupted by shutdown" in messages
        assert "WorkerDied" not in messages and "signal 15" not in messages
    finally:
        stop_server_process(proc, http)


def running_and_two_queued(http: httpx.Client, first: int,
                           **chain_args: Any) -> tuple[str, list[str]]:  # fmt: skip
    """A slow prompt running (`post_slow`) and two queued behind it (chains `first`, `first` +
    1, with `chain_args`): their ids, once the slow one runs."""
    slow = post_slow(http)
    rest = [http.post("/prompt", json={"prompt": chain(first + i, **chain_args)}).json()[
        "prompt_id"] for i in range(2)]  # fmt: skip
    wait_running(http, slow)
    return slow, rest


def _row(db: Path, prompt_id: str) -> dict:
    """A prompt's row as the database file holds it (no server reading it)."""
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute("SELECT * FROM prompts WHERE id = ?", (prompt_id,)).fetchone())


def test_sigterm_records_the_running_prompt_before_any_restart(tmp_path):
    """An orderly shutdown writes the running prompt's end itself: the database is right
    without a restart (it used to stay `running` until the next start's recover)."""
    config, env = config_and_env(tmp_path)
    proc, http = start(config, env)
    try:
        slow, rest = running_and_two_queued(http, 30)
        proc.terminate()
        proc.wait(30)
        log = proc.stderr.read().decode()
    finally:
        http.close()
        if proc.poll() is None:
            proc.kill()
    row = _row(Path(config["data_dir"]) / "server.sqlite3", slow)
    assert (row["status"], row["error"]) == ("error", "interrupted by shutdown")
    assert row["finished_ms"] is not None
    messages = json.loads(row["messages"])
    (_, began), (kind, error) = messages[0], messages[-1]
    assert began["prompt_id"] == slow and kind == "execution_error"
    assert (error["exception_type"], error["exception_message"]) == (
        "Shutdown", "interrupted by shutdown")  # fmt: skip
    for pid in rest:  # queued prompts stay queued, to run after a restart
        assert _row(Path(config["data_dir"]) / "server.sqlite3", pid)["status"] == "pending"
    assert "recorded 1 running prompt(s) as interrupted by shutdown" in log, log[-2000:]


def test_sigterm_mid_run_records_the_nodes_that_finished(tmp_path):
    """A prompt a shutdown ended said `executed: []` in /history though nodes had finished
    before the one running: its error lists them, as a failed run's does."""
    config, env = config_and_env(tmp_path)
    proc, http = start(config, env)
    try:
        ws = WsClient(SimpleNamespace(ws_url=f"ws://127.0.0.1:{config['port']}/ws"), "c")
        slow = post_slow(http)  # Number (1) -> Add (2) -> Slow (3) -> Show (9)
        while ws.until("executing", slow)["data"]["node"] != "3":
            pass  # 1 and 2 finished
        ws.close()
        proc.terminate()
        proc.wait(30)
    finally:
        http.close()
        if proc.poll() is None:
            proc.kill()
    proc, http = start(config, env)
    try:
        kind, error = http.get(f"/history/{slow}").json()[slow]["status"]["messages"][-1]
        assert (kind, error["exception_type"]) == ("execution_error", "Shutdown")
        assert (error["node_id"], error["node_type"]) == ("3", "Slow")
        assert error["executed"] == ["1", "2"]
    finally:
        stop_server_process(proc, http)


CLI = "import sys\nfrom latentgraph.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def test_a_second_server_on_the_same_data_dir_is_refused_and_the_first_goes_on(tmp_path):
    """Two servers on one --data-dir: the second marked the first's running prompt failed
    ("interrupted by shutdown") and ran its queued prompts, whose rows the first then
    overwrote, its /queue listing them pending forever. The second is now refused."""
    config, env = config_and_env(tmp_path)
    db = Path(config["data_dir"]) / "server.sqlite3"
    proc, http = start(config, env)
    try:
        slow, rest = running_and_two_queued(http, 40)
        other = subprocess.run([sys.executable, "-c", CLI, "serve", "--data-dir",
                                config["data_dir"], "--port", str(free_port()), "--no-cache",
                                "--nodes-dir", str(PLUGIN_DIR)],
                               capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
        assert other.returncode == 2, other.stderr
        assert other.stderr.endswith(
            f"latentgraph: error: the queue database {db} cannot be opened (another latentgraph "
            f"server, pid {proc.pid}, is using it: stop that server first, or give this one "
            "another --data-dir)\n"), other.stderr  # fmt: skip
        assert "Traceback" not in other.stderr
        # The first one is untouched: its prompt still runs, the others still wait.
        assert _row(db, slow)["status"] == "running"
        queue = http.get("/queue").json()
        assert [item[1] for item in queue["queue_running"]] == [slow]
        assert sorted(item[1] for item in queue["queue_pending"]) == sorted(rest)
        http.post("/interrupt")
        deadline = time.monotonic() + 30
        while http.get("/queue").json() != {"queue_running": [], "queue_pending": []}:
            assert time.monotonic() < deadline, "the first server's queue did not run"
            time.sleep(0.1)
        history = http.get("/history").json()
        assert history[slow]["status"]["status_str"] == "error"  # interrupted, by its client
        assert "execution_interrupted" in json.dumps(history[slow]["status"]["messages"])
        for pid in rest:
            assert history[pid]["status"]["status_str"] == "success"
    finally:
        stop_server_process(proc, http)


def test_serve_refuses_a_data_dir_in_use_before_binding_its_port(tmp_path, monkeypatch):
    from latentgraph.server import run
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.store import Store, StoreInUse

    config = ServerConfig(data_dir=tmp_path / "data", port=free_port(), load_nodes=False,
                          editor=False)  # fmt: skip
    config.data_dir.mkdir()
    bound: list = []
    monkeypatch.setattr(run, "listen", lambda *a: bound.append(a) or 1 / 0)
    store = Store(config.db_path)  # another server's
    try:
        with pytest.raises(StoreInUse, match=f"pid {os.getpid()}, is using it"):
            run.serve(config)
    finally:
        store.close()
    assert bound == []
    with pytest.raises(ZeroDivisionError):  # free again: it went on to bind the port
        run.serve(config)
    Store(config.db_path).close()  # and let the lock go when that failed
