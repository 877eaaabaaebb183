"""Where POST /prompt checks a body: a small one on the event loop (the hop to the submit
thread and back cost more than its check), a large one on the submit thread, so that a big
prompt never holds up other requests. Both answer the same way."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

from latentgraph.server import app as app_mod
from latentgraph.server.config import ServerConfig
from latentgraph.server.state import INLINE_BODY_BYTES, ServerState
from latentgraph.server.workers import WorkerSetup

from .conftest import chain
from .plugin.toy_nodes import toy_registry


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def client_and_checks(tmp_path, monkeypatch):
    """A test client, and for each prompt checked: whether its check ran on the event loop."""
    checks: list[bool] = []
    check = ServerState._check_and_add

    def recording(self, body, prompt_text=None):
        checks.append(_on_event_loop())
        return check(self, body, prompt_text)

    monkeypatch.setattr(ServerState, "_check_and_add", recording)
    config = ServerConfig(data_dir=tmp_path, disk_cache=False, load_nodes=False, editor=False)
    app = app_mod.create_app(config, workers=WorkerSetup(registry=toy_registry))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, checks


def test_a_small_body_is_checked_on_the_loop_and_a_large_one_on_the_submit_thread(
    client_and_checks,
):
    client, checks = client_and_checks
    small = {"prompt": chain(3)}
    large = {"prompt": chain(4, prefix="x" * (INLINE_BODY_BYTES + 1))}
    for body in (small, large):
        answer = client.post("/prompt", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["node_errors"] == {}
    assert checks == [True, False]


def test_a_small_refused_body_is_answered_as_from_the_submit_thread(client_and_checks):
    client, checks = client_and_checks
    for prefix in ("", "x" * (INLINE_BODY_BYTES + 1)):
        bad = chain(5, prefix=prefix)
        bad["2"]["inputs"]["a"] = ["404", 0]  # a link to no node
        answer = client.post("/prompt", json={"prompt": bad})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["type"] == "prompt_outputs_failed_validation"
    assert checks == [True, False]
