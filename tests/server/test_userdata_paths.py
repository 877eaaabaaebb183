"""/userdata paths the filesystem would refuse (a name too long, a file where a folder should
be): 400s naming the path, never a 500 carrying the server's absolute path. The routes read only
the config, so they are mounted alone with the real error handlers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from latentgraph.server import api_user
from latentgraph.server.config import ServerConfig
from latentgraph.server.errors import exception_handlers

from .conftest import user_api


@pytest.fixture
def config(tmp_path) -> ServerConfig:
    config = ServerConfig(data_dir=tmp_path / "data")
    config.ensure_dirs()
    (config.user_dir / "workflows").mkdir()
    (config.user_dir / "workflows" / "test.json").write_text("{}")
    return config


@pytest.fixture
def client(config):
    with user_api(config) as c:
        yield c


@pytest.mark.parametrize(
    "url, type_, message",
    [("/userdata/workflows%2Ftest.json%2Fx.json", "not_a_folder", "userdata path "
      "'workflows/test.json/x.json': 'workflows/test.json' is a file, not a folder"),
     ("/userdata/workflows%2Ftest.json/move/workflows%2Ftest.json%2Fy.json", "not_a_folder",
      "userdata path 'workflows/test.json/y.json': 'workflows/test.json' is a file, not a folder"),
     ("/userdata/" + "w" * 300 + ".json", "name_too_long",
      f"userdata path {'w' * 60 + '...'!r}: a name is 305 bytes long; at most 255 are allowed")],
)  # fmt: skip
def test_userdata_paths_the_disk_would_refuse_are_400s(client, config, url, type_, message):
    r = client.post(url, content=b"{}")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["type"], error["message"]) == (type_, message)
    assert str(config.data_dir) not in r.text
    assert (config.user_dir / "workflows" / "test.json").read_text() == "{}"


def test_a_relative_data_dir_saves_and_moves_workflows(tmp_path, monkeypatch):
    """`serve --data-dir data` (relative): saving and renaming a workflow answered 500 after
    writing the file, comparing a resolved path with the relative folder."""
    monkeypatch.chdir(tmp_path)
    config = ServerConfig(data_dir="data")
    config.ensure_dirs()
    app = Starlette(routes=api_user.routes, exception_handlers=exception_handlers)
    app.state.lg = SimpleNamespace(config=config)
    with TestClient(app, base_url="http://127.0.0.1:8188", raise_server_exceptions=False) as c:
        saved = c.post("/userdata/workflows%2Fmy%20flow.json", content=b"{}")
        assert (saved.status_code, saved.json()) == (200, "workflows/my flow.json")
        moved = c.post("/userdata/workflows%2Fmy%20flow.json/move/workflows%2Fb.json")
        assert (moved.status_code, moved.json()) == (200, "workflows/b.json")
    assert (tmp_path / "data" / "users" / "default" / "workflows" / "b.json").read_text() == "{}"
