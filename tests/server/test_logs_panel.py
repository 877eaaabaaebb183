"""The editor's Logs terminal panel: GET /internal/logs/raw answers the server's recent log
lines as ComfyUI's entries, PATCH /internal/logs/subscribe is accepted (no streaming)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from latentgraph.server import api_info
from latentgraph.server.errors import exception_handlers


@pytest.fixture
def logs():
    return api_info.RecentLogs(keep=3, max_chars=40)


@pytest.fixture
def client(logs):
    app = Starlette(routes=api_info.routes, exception_handlers=exception_handlers)
    app.state.lg = SimpleNamespace()
    app.state.logs = logs
    with TestClient(app, base_url="http://127.0.0.1:8188", raise_server_exceptions=False) as c:
        yield c


def _logger(logs) -> logging.Logger:
    logger = logging.getLogger("latentgraph.test_logs_panel")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.handlers = [logs]
    return logger


def test_raw_logs_answer_the_last_lines_kept(client, logs):
    logger = _logger(logs)
    for i in range(5):
        logger.info("line %d", i)
    body = client.get("/internal/logs/raw").json()
    assert [e["m"] for e in body["entries"]] == [
        f"INFO latentgraph.test_logs_panel: line {i}\n" for i in (2, 3, 4)
    ]
    assert all(e["t"][:2] == "20" and "T" in e["t"] for e in body["entries"])
    assert set(body["size"]) == {"cols", "rows"} and body["size"]["cols"] > 0


def test_a_long_line_is_cut(client, logs):
    _logger(logs).warning("x" * 1000)
    (entry,) = client.get("/internal/logs/raw").json()["entries"]
    assert len(entry["m"]) == 41 and entry["m"].endswith("x\n")


def test_raw_logs_with_nothing_logged(client):
    assert client.get("/internal/logs/raw").json()["entries"] == []


def test_the_error_reports_logs_are_the_kept_lines_as_one_text(client, logs):
    """GET /internal/logs, which the editor's error dialog fetches for its report, was a 404:
    every error dialog came with a second, "Failed to fetch server logs". It answers as
    ComfyUI's does, a JSON string: the kept lines joined, each `TIME - LINE`."""
    assert client.get("/internal/logs").json() == ""
    logger = _logger(logs)
    for i in range(4):
        logger.info("line %d", i)
    text = client.get("/internal/logs").json()
    entries = client.get("/internal/logs/raw").json()["entries"]
    assert text == "".join(f"{e['t']} - {e['m']}" for e in entries)
    assert [line.split(" - ", 1)[1] for line in text.splitlines()] == [
        f"INFO latentgraph.test_logs_panel: line {i}" for i in (1, 2, 3)
    ]


@pytest.mark.parametrize("enabled", [True, False])
def test_subscribe_is_accepted(client, enabled):
    r = client.patch("/internal/logs/subscribe", json={"clientId": "c1", "enabled": enabled})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body", [{}, {"clientId": "c1"}, {"clientId": 1, "enabled": True},
                                  {"clientId": "c1", "enabled": "yes"}, []])  # fmt: skip
def test_subscribe_refuses_another_shape(client, body):
    r = client.patch("/internal/logs/subscribe", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "expected a JSON object {clientId: string, enabled: boolean}"
    )


def test_the_running_server_keeps_its_log_lines(server):
    logging.getLogger("latentgraph.server").warning("a line for the logs panel")
    for path in ("/internal/logs/raw", "/api/internal/logs/raw"):
        entries = server.http.get(path).json()["entries"]
        assert "WARNING latentgraph.server: a line for the logs panel\n" in [
            e["m"] for e in entries
        ]
    for path in ("/internal/logs", "/api/internal/logs"):
        assert (
            " - WARNING latentgraph.server: a line for the logs panel\n"
            in server.http.get(path).json()
        )
    r = server.http.patch("/api/internal/logs/subscribe", json={"clientId": "c", "enabled": True})
    assert r.status_code == 200


def test_the_panel_holds_the_requests_a_refused_prompt_and_a_failed_run(server):
    """What the server prints reaches the panel: uvicorn's request lines (its loggers do not
    pass them to the root logger), a refused prompt and a failed run."""
    from .conftest import chain

    access = logging.getLogger("uvicorn.access")
    level = access.level
    access.setLevel(logging.INFO)  # as `latentgraph serve` prints them (these tests: warnings)
    try:
        server.http.get("/system_stats")
    finally:
        access.setLevel(level)
    refused = server.post_prompt({"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert refused.status_code == 400
    failed = server.post_prompt(chain(1, fail=True)).json()["prompt_id"]
    deadline = time.monotonic() + 30
    while failed not in server.http.get(f"/history/{failed}").json():
        assert time.monotonic() < deadline, "the failing prompt did not end"
        time.sleep(0.05)
    lines = [e["m"] for e in server.http.get("/internal/logs/raw").json()["entries"]]
    assert any(m.startswith("INFO uvicorn.access: 127.0.0.1:") and '"GET /system_stats HTTP/1.1" 200'
               in m for m in lines), lines  # fmt: skip
    assert ("WARNING latentgraph.server: prompt refused (missing_node_type): Cannot execute "
            "because node 'NoSuchNode' does not exist.\n") in lines  # fmt: skip
    [line] = [m for m in lines if m.startswith(f"ERROR latentgraph.server: prompt {failed} ")]
    assert line.startswith(f"ERROR latentgraph.server: prompt {failed} failed at node '4' (Fail): ")
    assert "toy failure" in line
    # the crash's traceback follows, as ComfyUI's console prints it
    assert "\nTraceback (most recent call last):\n" in line
    assert "raise ValueError(why)" in line and line.rstrip().endswith("ValueError: toy failure")


def test_a_user_errors_log_line_has_no_traceback(caplog):
    """A node refusing the user's value (`InputError`) is no crash: its line stays one line
    (its `execution_error` carries no traceback; should one come, it is not printed)."""
    from latentgraph.server.dispatch import _log_failure

    error = {"node_id": "3", "node_type": "LoadImage", "exception_message": "no such file",
             "traceback": ["Traceback (most recent call last):\n"], "user_error": True}  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        _log_failure("p1", error, None)
    assert [r.getMessage() for r in caplog.records] == [
        "prompt p1 failed at node '3' (LoadImage): no such file"]  # fmt: skip


def test_a_failure_at_no_node_names_no_node_in_its_log_line(caplog):
    """A worker that died before any node started: its `execution_error` says node_id "" (the
    editor's job list requires a string), and its line names no node."""
    from latentgraph.server.dispatch import _log_failure
    from latentgraph.server.messages import RunError, execution_error

    data = execution_error("p1", RunError("signal 9", "WorkerDied"), node_type="", executed=[])
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        _log_failure("p1", data, None)
    assert [r.getMessage() for r in caplog.records] == ["prompt p1 failed: signal 9"]


def test_a_full_disks_log_line_has_no_traceback(tmp_path, monkeypatch, caplog):
    """A file the disk refused (`FileWriteError`: a full disk) is no bug: its line is one line
    naming the file, as `run` prints it (docs/reliability.md); a crash's keeps its traceback."""
    import errno
    from pathlib import Path

    from latentgraph.graph import Graph, Registry, Settings, node
    from latentgraph.graph.files import write_atomic
    from latentgraph.graph.model import Node
    from latentgraph.graph.scheduler import Scheduler
    from latentgraph.server.dispatch import _log_failure
    from latentgraph.server.messages import execution_error

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    registry = Registry()

    @node("Keep", output_node=True, registry=registry)
    def keep(ctx):
        write_atomic(tmp_path / "kept.png", b"png")

    graph = Graph()
    graph.add(Node("9", "Keep", {}))
    monkeypatch.setattr(Path, "write_bytes", full)
    [failed] = Scheduler(registry, settings=Settings()).run(graph).failures
    assert failed.traceback  # the run's event keeps it (`--debug`, `--json`): the log does not
    data = execution_error("p1", failed, node_type="Keep", executed=[])
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        _log_failure("p1", data, None)
    assert [r.getMessage() for r in caplog.records] == [
        f"prompt p1 failed at node '9' (Keep): cannot write {tmp_path / 'kept.png'}: the disk is "
        "full (No space left on device)"]  # fmt: skip


# A client's node type and node ids holding a newline (a forged log line after it) and escape
# sequences (a terminal title, a screen clear, a colour): the refusals printed them as sent.
FORGED = "\n2026-12-03 17:00:00,000 INFO latentgraph.server: worker 0 is ready FORGED"
ESCAPES = "\x1b]0;pwned-title\x07\x1b[2J\x1b[31mRED"


@pytest.mark.parametrize("prompt", [
    {"1": {"class_type": "Nope" + FORGED, "inputs": {}}},  # missing_node_type
    {"1": {"class_type": "X" + ESCAPES, "inputs": {}}},
    {"n" + FORGED: {"inputs": {}}},  # no class_type
    {"n" + FORGED: {"class_type": "PreviewAny", "inputs": {"source": ["n" + FORGED, 0]}}},
    {"n" + ESCAPES: {"class_type": "PreviewAny", "inputs": {"source": ["zz", 0]}}},
])  # fmt: skip
def test_a_refused_prompts_log_line_shows_the_clients_names_escaped(prompt, caplog):
    """`prompt refused (missing_node_type): Cannot execute because node Nope` and then the
    client's own line; ESC sequences reached the operator's terminal: one line now, each name
    shown as `quoted` shows it."""
    from latentgraph.graph import Settings
    from latentgraph.server.prompts import PromptRejected, check_prompt, log_refusal
    from latentgraph.wiring import node_registry

    with pytest.raises(PromptRejected) as refused:
        check_prompt(prompt, node_registry(), Settings())
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        log_refusal(refused.value)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.isprintable(), line  # no newline, ESC or BEL
    assert "\\n2026-12-03" in line or "\\u001b]0;pwned-title\\u0007\\u001b[2J" in line


def test_a_failed_runs_log_line_shows_its_node_id_escaped(caplog):
    """The node id a client gave a node that then failed or warned: `prompt p1 failed at node
    n` and the client's line after it."""
    from latentgraph.server.dispatch import _log_failure

    error = {"node_id": "n" + FORGED, "node_type": "LoadImage", "user_error": True,
             "exception_message": "no such file"}  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        _log_failure("p1", error, None)
    assert [r.getMessage() for r in caplog.records] == [
        "prompt p1 failed at node 'n\\n2026-12-03 17:00:00,000 INFO latentgraph.server: worker 0 "
        "is ready FORGED' (LoadImage): no such file"]  # fmt: skip
