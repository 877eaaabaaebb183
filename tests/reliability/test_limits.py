"""Size limits checked at POST /prompt before any work, and memory bounded by bytes: a 50 MB
text tied the worker up for minutes, 30 MB of extra_data per prompt stayed resident for good
and made /history?max_items=64 answer 300 MB."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from ..server.conftest import chain
from ..server.plugin.toy_nodes import toy_registry


@pytest.fixture
def limited(tmp_path):
    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    config = ServerConfig(data_dir=tmp_path, disk_cache=False, load_nodes=False, editor=False,
                          max_string_chars=100, max_extra_data_bytes=1000,
                          max_queue_bytes=30_000)  # fmt: skip
    app = create_app(config, workers=WorkerSetup(registry=toy_registry))
    with TestClient(app, base_url="http://127.0.0.1:8188") as client:
        client.state = app.state.lg
        yield client


def test_long_string_refused_naming_node_and_input(limited, monkeypatch):
    from latentgraph.server import state as state_mod

    checked: list = []
    real = state_mod.check_prompt
    monkeypatch.setattr(
        state_mod, "check_prompt", lambda *a, **k: checked.append(1) or real(*a, **k)
    )
    prompt = chain(1, prefix="p" * 101)
    r = limited.post("/prompt", json={"prompt": prompt})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    [(node, entry)] = body["node_errors"].items()
    assert node == "9" and entry["class_type"] == "Show"
    error = entry["errors"][0]
    assert error["type"] == "custom_validation_failed"  # ComfyUI's type; ours kept beside it
    assert error["extra_info"]["input_name"] == "prefix"
    assert error["extra_info"]["latentgraph_type"] == "value_too_long"
    assert "101 characters" in error["message"] and "limit is 100" in error["message"]
    assert checked == []  # refused before the prompt is converted or validated
    assert limited.post("/prompt", json={"prompt": chain(1, prefix="p" * 100)}).status_code == 200


def test_extra_data_limit_comes_before_any_work(limited):
    """An over-size extra_data is refused even when the prompt itself is invalid: nothing is
    converted or validated for it."""
    big = {"extra_pnginfo": {"workflow": {"nodes": ["n" * 1000]}}}
    r = limited.post("/prompt", json={"prompt": {"1": {"class_type": "Nope"}}, "extra_data": big})
    assert r.status_code == 413 and r.json()["error"]["type"] == "too_large"
    assert "extra_data" in r.json()["error"]["message"]
    small = {"extra_pnginfo": {"workflow": {"nodes": ["n" * 500]}}}
    assert (
        limited.post("/prompt", json={"prompt": chain(1), "extra_data": small}).status_code == 200
    )


def test_queue_bounded_by_bytes(limited):
    """Pending prompts are kept in memory: past `max_queue_bytes` a POST answers 429."""
    state = limited.state
    state.dispatcher.stop()  # nothing runs: the queue only grows
    extra = {"extra_pnginfo": {"workflow": {"nodes": ["n" * 900]}}}
    codes = [limited.post("/prompt", json={"prompt": chain(i), "extra_data": extra}).status_code
             for i in range(40)]  # fmt: skip
    assert 200 in codes and codes[-1] == 429
    assert state.store.memory_bytes()[0] <= 30_000
    first_refused = codes.index(429)
    assert set(codes[first_refused:]) == {429}
    assert len(limited.get("/queue").json()["queue_pending"]) == first_refused
    refused = limited.post("/prompt", json={"prompt": chain(1), "extra_data": extra,
                                            "prompt_id": "refused"})  # fmt: skip
    assert refused.status_code == 429
    assert "refused" not in state.dispatcher._prepared  # what POST noted for the run is forgotten
    assert "refused" not in state.dispatcher._held
    limited.post("/queue", json={"clear": True})
    assert state.store.memory_bytes()[0] == 0
    assert limited.post("/prompt", json={"prompt": chain(1)}).status_code == 200


def test_history_memory_bounded_by_bytes(tmp_path):
    """The recent history kept in memory holds at most `history_bytes` of JSON; older entries
    are still answered, from SQLite."""
    from latentgraph.server.store import SUCCESS, PromptRecord, Store

    store = Store(tmp_path / "db.sqlite3", history_bytes=50_000)
    for i in range(30):
        store.add(PromptRecord(id=f"p{i}", number=None, prompt_json=json.dumps({"1": {"t": "x" * 5000}}),
                               extra_data={"w": "y" * 5000}))  # fmt: skip
        store.finish(f"p{i}", SUCCESS)
    assert 0 < store.memory_bytes()[1] <= 50_000
    assert store.recent_history(30) is None  # not all of it in memory
    assert [r.id for r in store.history(30)] == [f"p{i}" for i in range(30)]
    assert [r.id for r in store.history(3)] == ["p27", "p28", "p29"]
    store.close()
    reopened = Store(tmp_path / "db.sqlite3", history_bytes=50_000)
    assert 0 < reopened.memory_bytes()[1] <= 50_000
    assert [r.id for r in reopened.history(30)] == [f"p{i}" for i in range(30)]


def test_serve_size_flags(monkeypatch, tmp_path):
    from .test_security import serve_cli

    code, _err, started = serve_cli(monkeypatch, ["--max-string-chars", "5000",
                                                  "--max-extra-data-mb", "2",
                                                  "--data-dir", str(tmp_path)])  # fmt: skip
    assert code == 0
    assert (started[0].max_string_chars, started[0].max_extra_data_bytes) == (5000, 2 * 2**20)


@pytest.mark.parametrize(
    "body",
    [b'{"prompt": {"1": {"class_type": "\\ud800"}}}',  # an escape
     b'{"prompt": {"1": {"class_type": "\xed\xa0\x80"}}}'],  # raw bytes json.loads lets through
    ids=["escape", "raw-bytes"],
)  # fmt: skip
def test_lone_surrogate_refused_however_it_is_written(limited, body):
    answer = limited.post("/prompt", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert "surrogate" in answer.json()["error"]["message"]
