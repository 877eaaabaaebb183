"""`latentgraph serve` as an operator runs it (the console script's entry, a real process):
what its log says at start, how it ends on Ctrl-C and SIGTERM, and what `submit` says when
the server stops under a prompt it queued."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import chain, free_port, server_process
from .test_dispatch import RecordingPool

PLUGIN_DIR = Path(__file__).parent / "plugin"
ENTRY = "from latentgraph.cli import entry\nentry()\n"  # what the `latentgraph` script runs


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "LATENTGRAPH_TOY_PLUGIN": "1",
           "LATENTGRAPH_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    env.pop("LATENTGRAPH_AUTH_TOKEN", None)
    return env


class _Log:
    """A server's stderr read as it comes (its access log, a line per request, would fill the
    pipe and stop the server), kept for the test."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.decode())

    def text(self) -> str:
        self.thread.join(30)
        return "".join(self.lines)


def _serve(tmp_path: Path, port: int, script: str = ENTRY):
    """`latentgraph serve` on `port` over the toy nodes, one CPU worker, its data in
    tmp_path/data: the process, a client once it answers, and its log."""
    proc, http = server_process(script, ["serve", "--port", str(port), "--data-dir",
                                        str(tmp_path / "data"), "--nodes-dir", str(PLUGIN_DIR),
                                        "--no-cache", "--device", "cpu", "--workers", "1"],
                                port, _env(tmp_path), cwd=tmp_path, wait=120)  # fmt: skip
    return proc, http, _Log(proc)


def _stopped(proc: subprocess.Popen, log: _Log, sig: int) -> tuple[int, str]:
    """Send `sig` to the server and wait for its end: its return code and its log."""
    try:
        proc.send_signal(sig)
        code = proc.wait(60)
        return code, log.text()
    finally:
        if proc.poll() is None:
            proc.kill()


# A shell starting a job with `&` starts it with SIGINT ignored.
IGNORING_SIGINT = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" + ENTRY


@pytest.mark.parametrize(("sig", "script"), [(signal.SIGINT, ENTRY),
                                             (signal.SIGINT, IGNORING_SIGINT),
                                             (signal.SIGTERM, ENTRY)],
                         ids=["SIGINT", "SIGINT-the-shell-ignores", "SIGTERM"])  # fmt: skip
def test_ctrl_c_and_sigterm_end_serve_by_that_signal_after_its_orderly_shutdown(tmp_path, sig,
                                                                                script):  # fmt: skip
    """SIGTERM ended the process by the signal (143 in the shell) while SIGINT exited 0 where
    the shell ignores it (a job started with `&`), or 130 through a KeyboardInterrupt, saying
    "interrupted": systemd counts a death by SIGTERM or SIGINT as a clean stop, an exit status
    130 as a failure. Both now shut down in order, then end by the signal itself."""
    proc, http, log = _serve(tmp_path, free_port(), script)
    http.close()
    code, log = _stopped(proc, log, sig)
    assert code == -sig, log[-3000:]
    assert "Finished server process" in log and "Traceback" not in log, log[-3000:]
    assert "latentgraph: interrupted" not in log


def _wait_queue(http, running: int, pending: int) -> list[str]:
    """Until the server runs `running` prompts with `pending` waiting: their ids, in order."""
    deadline = time.monotonic() + 60
    while True:
        queue = http.get("/queue").json()
        ids = [item[1] for item in queue["queue_running"] + queue["queue_pending"]]
        if (len(queue["queue_running"]), len(queue["queue_pending"])) == (running, pending):
            return ids
        assert time.monotonic() < deadline, queue
        time.sleep(0.05)


def test_submit_says_the_prompt_it_queued_when_the_server_stops_under_it(tmp_path):
    """`submit` while the server was stopped mid-run said "lost the connection to the server:
    received 1012 (service restart)..." and exited 3, which says the workflow was not queued:
    it was, and no prompt id was printed. Now it names the prompt, whether it was running or
    queued and where its history is, and exits 1, as a submit that stopped watching does.
    The restarted server's log says how many pending prompts it restored, and its workers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp_path / "slow.json").write_text(json.dumps(chain(1, slow_steps=900, delay=0.05)))
    (tmp_path / "quick.json").write_text(json.dumps(chain(2)))
    proc, http, log = _serve(tmp_path, port)
    submits = []
    try:
        for name, (running, pending), shown in (("slow.json", (1, 0), "--json"),
                                                ("quick.json", (1, 1), "-q")):  # fmt: skip
            submits.append(subprocess.Popen(
                [sys.executable, "-c", ENTRY, "submit", name, "--server", url, shown],
                cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))  # fmt: skip
            slow, *queued = _wait_queue(http, running, pending)
        time.sleep(0.5)  # well inside the slow node
        http.close()
        _, log = _stopped(proc, log, signal.SIGTERM)
        ends = [(p.wait(60), p.stderr.read(), p.stdout.read()) for p in submits]
    finally:
        for p in submits:
            p.kill()
    assert ends[0][0] == 1 and ends[1][0] == 1, (ends, log[-3000:])
    stopped = f"latentgraph: error: the server at {url} stopped (received 1012 (service restart)"
    assert ends[0][1].startswith(stopped), ends[0][1]
    assert ends[0][1].endswith(
        f") while prompt {slow} was running; how it ended is in the server's history: "
        f"{url}/history/{slow}\n"), ends[0][1]  # fmt: skip
    assert ends[1][1].startswith(stopped), ends[1][1]
    assert ends[1][1].endswith(
        f") while prompt {queued[0]} was queued; it stays queued there, and runs when the "
        f"server starts again: {url}/history/{queued[0]}\n"), ends[1][1]  # fmt: skip
    # `--json`: its stream ends with a line saying so (it ended at a `node_progress` line)
    last = json.loads(ends[0][2].splitlines()[-1])
    assert (last["event"], last["reason"], last["prompt_id"], last["history"]) == (
        "submit_stopped", "lost", slow, f"{url}/history/{slow}"), last  # fmt: skip
    assert ends[0][1] == f"latentgraph: error: {last['message']}\n"

    proc, http, log = _serve(tmp_path, port)  # as it said: the queued one runs, the other ended
    try:
        deadline = time.monotonic() + 60
        while queued[0] not in (history := http.get("/history").json()):
            assert time.monotonic() < deadline, history
            time.sleep(0.1)
        assert history[queued[0]]["status"]["status_str"] == "success"
        assert "interrupted by shutdown" in json.dumps(history[slow]["status"]["messages"])
        http.close()
    finally:
        _, log = _stopped(proc, log, signal.SIGTERM)
    assert "INFO latentgraph.server: 1 worker process on cpu\n" in log, log[-3000:]
    assert re.search(r"INFO latentgraph.server: worker 0 \(pid \d+\) is ready on cpu\n", log)
    assert "INFO latentgraph.server: 1 pending prompt(s) restored from the queue database\n" in log
    assert f"folders: data {tmp_path / 'data'} (the queue database)" in log
    assert "INFO latentgraph.server: auth token: not required\n" in log


def test_the_start_summary_says_a_token_is_required_and_never_shows_it(tmp_path, caplog):
    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig

    token = "a-token-nobody-may-read-in-the-log"
    config = ServerConfig(data_dir=tmp_path / "data", auth_token=token, disk_cache=False,
                          load_nodes=False, editor=False)  # fmt: skip
    with caplog.at_level("INFO", logger="latentgraph.server"):
        app = create_app(config, pool=RecordingPool([frozenset(), frozenset()]))
    app.state.lg.store.close()
    said = [r.getMessage() for r in caplog.records if r.name == "latentgraph.server"]
    assert "2 worker processes on cpu, cpu" in said
    assert "auth token: required" in said
    assert "disk cache: none (--no-cache)" in said
    assert "0 pending prompt(s) restored from the queue database" in said
    assert not any(token in line for line in said)
