"""GET /history paged as ComfyUI pages it, and GET /models, /models/{folder}: the routes mounted
alone over a real store and config (no worker processes)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from latentgraph.server import api_info, api_queue
from latentgraph.server import store as st
from latentgraph.server.config import ServerConfig
from latentgraph.server.errors import exception_handlers


@pytest.fixture
def config(tmp_path) -> ServerConfig:
    root = tmp_path / "models"
    for name in ("checkpoints/sd15/b.safetensors", "checkpoints/A.sft", "checkpoints/old.ckpt",
                 "loras/x.safetensors"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    (root / "vae").mkdir()
    config = ServerConfig(data_dir=tmp_path / "data", models_dirs=[root])
    config.ensure_dirs()
    return config


@pytest.fixture
def client(config):
    store = st.Store(config.data_dir / "db.sqlite3")
    for i in range(5):
        store.add(st.PromptRecord(id=f"p{i}", number=None, prompt_json="{}"))
        store.finish(f"p{i}", st.SUCCESS)
    app = Starlette(routes=api_queue.routes + api_info.routes,
                    exception_handlers=exception_handlers)  # fmt: skip
    app.state.lg = SimpleNamespace(config=config, store=store)  # what get_state reads
    with TestClient(app, base_url="http://127.0.0.1:8188", raise_server_exceptions=False) as c:
        yield c
    store.close()


@pytest.mark.parametrize(
    "query, ids",
    [("", ["p0", "p1", "p2", "p3", "p4"]), ("max_items=2", ["p3", "p4"]),
     ("max_items=2&offset=-1", ["p3", "p4"]), ("max_items=2&offset=-7", ["p3", "p4"]),
     ("max_items=2&offset=1", ["p1", "p2"]), ("offset=3", ["p3", "p4"]),
     ("max_items=9&offset=4", ["p4"]), ("max_items=2&offset=5", []), ("max_items=0", [])],
)  # fmt: skip
def test_history_offset_skips_the_oldest_and_a_negative_one_means_the_newest(client, query, ids):
    r = client.get(f"/history?{query}")
    assert r.status_code == 200, r.text
    assert list(r.json()) == ids


def test_history_paging_refusals(client):
    r = client.get("/history?max_items=-1")
    assert r.status_code == 400 and "'max_items' must be between 0" in r.json()["error"]["message"]
    assert client.get("/history?offset=x").status_code == 400


def test_models_lists_the_folders_and_models_folder_its_files(client):
    assert client.get("/models").json() == ["checkpoints", "loras", "vae"]
    assert client.get("/models/checkpoints").json() == ["A.sft", "sd15/b.safetensors"]
    assert client.get("/models/vae").json() == []
    r = client.get("/models/nothing")
    assert r.status_code == 404 and r.json()["error"]["message"] == "no model folder 'nothing'"
