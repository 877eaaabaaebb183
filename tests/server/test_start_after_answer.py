"""A queued prompt starts only once its POST /prompt answer is sent (the editor needs the
answer before the run's messages to show their images); a lost release never stalls it."""

import time

import pytest

from .conftest import chain


@pytest.fixture
def released(server):
    """Every (prompt id, grace) the server releases during the test."""
    worker = server.app.state.lg.worker
    calls: list[tuple[str, float]] = []
    original = worker.release

    def record(prompt_id: str, grace: float = 0.0) -> None:
        calls.append((prompt_id, grace))
        original(prompt_id, grace)

    worker.release = record
    yield calls
    del worker.release


def test_prompt_waits_for_its_answer_then_runs(server, ws):
    worker = server.app.state.lg.worker
    worker.release = lambda prompt_id, grace=0.0: None  # the answer's release never comes
    try:
        client = ws()
        pid = server.post_prompt(chain(7), client.client_id).json()["prompt_id"]
        time.sleep(0.5)
        queue = server.http.get("/queue").json()
        assert [item[1] for item in queue["queue_pending"]] == [pid]  # held, not running
        assert server.http.get(f"/history/{pid}").json() == {}
    finally:
        del worker.release
    started = time.monotonic()
    messages = client.until_done(pid, timeout=30)  # runs once the hold expires
    assert time.monotonic() - started < 10
    assert any(m["type"] == "execution_success" for m in messages)


def test_the_answer_releases_its_prompt(server, ws, released):
    client = ws()
    pid = server.post_prompt(chain(8), client.client_id).json()["prompt_id"]
    messages = client.until_done(pid, timeout=30)
    assert released == [(pid, 0.0)]  # an API client: no grace
    assert any(m["type"] == "execution_success" for m in messages)


def test_an_editor_client_gets_a_moment_to_handle_the_answer(server, ws, released):
    from latentgraph.server.worker import EDITOR_GRACE

    client = ws()
    client.send("feature_flags", {"supports_preview_metadata": True})
    # a status broadcast left over from an earlier test on this server may come first
    reply = client.recv()
    while reply["type"] == "status":
        reply = client.recv()
    assert reply["type"] == "feature_flags"
    pid = server.post_prompt(chain(9), client.client_id).json()["prompt_id"]
    messages = client.until_done(pid, timeout=30)
    assert released == [(pid, EDITOR_GRACE)]
    assert any(m["type"] == "execution_success" for m in messages)
