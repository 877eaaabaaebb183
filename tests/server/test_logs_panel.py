"""The editor's Logs terminal panel: GET /internal/logs/raw answers the server's recent log
lines as ComfyUI's entries, PATCH /internal/logs/subscribe is accepted (no streaming)."""

from __future__ import annotations

import logging
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
    r = server.http.patch("/api/internal/logs/subscribe", json={"clientId": "c", "enabled": True})
    assert r.status_code == 200
