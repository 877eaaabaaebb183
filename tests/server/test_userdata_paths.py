"""/userdata paths the filesystem would refuse (a name too long, a file where a folder should
be): 400s naming the path, never a 500 carrying the server's absolute path. The routes read only
the config, so they are mounted alone with the real error handlers."""

from __future__ import annotations

import os
from types import SimpleNamespace
from urllib.parse import quote

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


@pytest.mark.parametrize("name", ["workflows%2F" + "c" * 250 + ".json", "u" * 251 + ".css",
                                  "workflows%2F" + "%C3%A9" * 125 + ".json"])  # fmt: skip
def test_a_name_of_255_bytes_is_saved(client, config, name):
    """A name of 234 to 255 bytes passed the check and was a 500 "File name too long": the
    temp file written first added 22 bytes to it."""
    r = client.post(f"/userdata/{name}", content=b"{}")
    assert r.status_code == 200, r.text
    assert client.get(f"/userdata/{name}").content == b"{}"
    assert len(r.json().split("/")[-1].encode()) == 255


def test_a_saved_user_css_is_served_as_a_stylesheet(client):
    """The editor's page links /api/userdata/user.css; as application/octet-stream a browser
    refused to apply it (strict MIME checking under nosniff), a console error each load."""
    assert client.post("/userdata/user.css", content=b"body { color: red; }").status_code == 200
    r = client.get("/userdata/user.css")
    assert r.headers["content-type"].startswith("text/css")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.text == "body { color: red; }"


def test_a_dot_dot_inside_the_user_folder_is_folded_as_the_editor_means_it(client, config):
    """Save As `../escape` from `workflows/sub/` sends `workflows/sub/../escape.json`: it was a
    400, and the tab kept that path, so no later save from it worked."""
    (config.user_dir / "workflows" / "sub").mkdir()
    r = client.post("/userdata/workflows%2Fsub%2F..%2Fescape.json?full_info=true", content=b"1")
    assert (r.status_code, r.json()["path"]) == (200, "workflows/escape.json")
    assert (config.user_dir / "workflows" / "escape.json").read_bytes() == b"1"
    assert client.get("/userdata/workflows%2Fsub%2F..%2Fescape.json").content == b"1"
    moved = client.post("/userdata/workflows%2Fescape.json/move/workflows%2Fsub%2F..%2Fm.json")
    assert (moved.status_code, moved.json()) == (200, "workflows/m.json")
    for escaping in ("workflows%2F..%2F..%2Fx.json", "workflows%2Fsub%2F..%2F..%2F..%2Fx.json"):
        r = client.post(f"/userdata/{escaping}", content=b"1")
        assert (r.status_code, r.json()["error"]["type"]) == (400, "invalid_path")
    assert not (config.data_dir / "users" / "x.json").exists()


@pytest.mark.parametrize("name", ["tab\there", "bidi\u202etxt", "zw\u200bj", "esc\x1bx"])
def test_a_name_that_would_not_show_as_it_is_is_refused(client, config, name):
    """As an upload's: `bidi<U+202E>txt.json` was saved and listed by the editor as
    `biditxt`."""
    encoded = quote(f"workflows/{name}.json", safe="")
    r = client.post(f"/userdata/{encoded}", content=b"{}")
    assert (r.status_code, r.json()["error"]["type"]) == (400, "invalid_path"), r.text
    assert "userdata path" in r.json()["error"]["message"]
    moved = client.post(f"/userdata/workflows%2Ftest.json/move/{encoded}")
    assert moved.status_code == 400
    assert sorted(os.listdir(config.user_dir / "workflows")) == ["test.json"]


def test_a_backslash_is_part_of_a_workflow_name(client, config):
    """As ComfyUI keeps it on Linux: `a\\b` was saved as `workflows/a/b.json`, a new folder,
    while the editor's tab called it `a\\b.json`."""
    r = client.post("/userdata/workflows%2Fa%5Cb.json", content=b"{}")
    assert (r.status_code, r.json()) == (200, "workflows/a\\b.json")
    assert sorted(os.listdir(config.user_dir / "workflows")) == ["a\\b.json", "test.json"]
    listed = client.get("/userdata", params={"dir": "workflows"}).json()
    assert sorted(listed) == ["a\\b.json", "test.json"]
    assert client.get("/userdata/workflows%2Fa%5Cb.json").content == b"{}"


def test_the_sidebar_bookmarks_are_answered_empty_until_saved(client, config):
    """The workflows sidebar reads `workflows/.index.json`: a 404, a console error each time."""
    r = client.get("/userdata/workflows%2F.index.json")
    assert (r.status_code, r.json()) == (200, {"favorites": []})
    saved = {"favorites": ["workflows/test.json"]}
    assert client.post("/userdata/workflows%2F.index.json", json=saved).status_code == 200
    assert client.get("/userdata/workflows%2F.index.json").json() == saved
    assert client.get("/userdata", params={"dir": "workflows"}).json() == ["test.json"]


@pytest.mark.parametrize("dst, named", [("workflows", "the editor's folder 'workflows'"),
                                        ("sub", "a folder"), ("%2E", "the user folder itself"),
                                        ("sub%2F..", "the user folder itself")])  # fmt: skip
def test_a_move_onto_a_folder_is_a_400_naming_it(client, config, dst, named):
    """The editor's rename onto a folder (overwrite=true) was a 500 IsADirectoryError, onto
    the user folder itself (`move/.`) a 500 OSError, each with a traceback in the log."""
    (config.user_dir / "sub").mkdir()
    (config.user_dir / "m.json").write_text("1")
    r = client.post(f"/userdata/m.json/move/{dst}?overwrite=true")
    assert r.status_code == 400, r.text
    shown = dst.replace("%2E", ".").replace("%2F", "/")
    error = r.json()["error"]
    assert (error["type"], error["message"]) == ("invalid_path", f"userdata path '{shown}' "
                                                 f"names {named}; a file path is expected")  # fmt: skip
    assert (config.user_dir / "m.json").read_text() == "1"
    assert (config.user_dir / "workflows" / "test.json").read_text() == "{}"
    assert sorted(os.listdir(config.user_dir / "sub")) == []


@pytest.mark.parametrize("folder", api_user.EDITOR_FOLDERS)
def test_no_file_takes_the_place_of_an_editor_folder_not_made_yet(tmp_path, folder):
    """A move (or a save) to `workflows` before the first workflow was saved made a file of
    that name, and every later save into `workflows/` was refused as `not_a_folder`."""
    config = ServerConfig(data_dir=tmp_path / "data")
    config.ensure_dirs()
    (config.user_dir / "x.json").write_text("1")
    with user_api(config) as client:
        for r in (client.post(f"/userdata/x.json/move/{folder}?overwrite=true"),
                  client.post(f"/userdata/{folder}", content=b"1")):  # fmt: skip
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"] == (f"userdata path '{folder}' names the "
                                                    f"editor's folder '{folder}'; a file path "
                                                    "is expected")  # fmt: skip
        assert not (config.user_dir / folder).exists()
        saved = client.post(f"/userdata/{folder}%2Fa.json", content=b"{}")
        assert (saved.status_code, saved.json()) == (200, f"{folder}/a.json")
    assert (config.user_dir / "x.json").read_text() == "1"
