"""A queued prompt starts at once, but its client hears of it only once its POST /prompt answer
is sent (the editor needs the answer before the run's messages to show their images); a lost
release never keeps the messages back for long."""

import threading
import time

import pytest

from .conftest import chain


@pytest.fixture
def released(server):
    """Every (prompt id, grace) the server releases during the test."""
    worker = server.app.state.lg.dispatcher
    calls: list[tuple[str, float]] = []
    original = worker.release

    def record(prompt_id: str, grace: float = 0.0) -> None:
        calls.append((prompt_id, grace))
        original(prompt_id, grace)

    worker.release = record
    yield calls
    del worker.release


def test_prompt_runs_at_once_and_its_messages_wait_for_its_answer(server, ws):
    worker = server.app.state.lg.dispatcher
    deadline = time.monotonic() + 60
    while not any(worker.worker_pids()):  # started: the run ends well within the 2 s hold
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.05)
    worker.release = lambda prompt_id, grace=0.0: None  # the answer's release never comes
    try:
        client = ws()
        pid = server.post_prompt(chain(7), client.client_id).json()["prompt_id"]
        deadline = time.monotonic() + 30
        while not server.http.get(f"/history/{pid}").json() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.http.get(f"/history/{pid}").json()[pid]["status"]["completed"]  # it ran
        while True:  # ... and its client heard nothing of it (status broadcasts only)
            try:
                message = client.recv(timeout=0.2)
            except TimeoutError:
                break
            assert message["type"] == "status", message
    finally:
        del worker.release
    started = time.monotonic()
    messages = client.until_done(pid, timeout=30)  # sent once the hold expires
    assert time.monotonic() - started < 10
    mine = [m["type"] for m in messages if m["type"] != "status"]
    assert mine[0] == "execution_start" and "execution_success" in mine  # all of it, in order
    assert mine.index("execution_success") < len(mine) - 1  # the final `executing` last


def test_the_answer_releases_its_prompt(server, ws, released):
    client = ws()
    pid = server.post_prompt(chain(8), client.client_id).json()["prompt_id"]
    messages = client.until_done(pid, timeout=30)
    assert released == [(pid, 0.0)]  # an API client: no grace
    assert any(m["type"] == "execution_success" for m in messages)


def test_an_editor_client_gets_a_moment_to_handle_the_answer(server, ws, released):
    from latentgraph.server.dispatch import EDITOR_GRACE

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


def test_the_release_runs_on_the_event_loop_not_a_threadpool_thread(server, ws):
    """The answer's release is an async task: Starlette runs a plain function's task on a
    threadpool thread, a hop for every prompt."""
    worker = server.app.state.lg.dispatcher
    threads: list[int] = []
    original = worker.release

    def record(prompt_id: str, grace: float = 0.0) -> None:
        threads.append(threading.get_ident())
        original(prompt_id, grace)

    worker.release = record
    try:
        client = ws()
        pid = server.post_prompt(chain(10), client.client_id).json()["prompt_id"]
        client.until_done(pid, timeout=30)
    finally:
        del worker.release
    assert threads == [server.thread.ident]  # uvicorn's loop runs on the server's thread
