"""`latentgraph serve` as an operator runs it (the console script's entry, a real process):
what its log says at start, how it ends on Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from .conftest import free_port, server_process
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
