"""`serve --user-dir DIR`: a ComfyUI user folder (what ComfyUI's --user-directory names:
DIR/default/workflows/, DIR/default/comfy.settings.json) used in place. Served as --data-dir,
its workflows were not listed (they were looked for in DIR/users/default) and the queue
database and a users/ folder were made inside the ComfyUI install."""

from __future__ import annotations

import json
import os
from pathlib import Path

from latentgraph.server import api_user
from latentgraph.server.config import ServerConfig

from .conftest import free_port, server_process, stop_server_process, user_api

PLUGIN_DIR = Path(__file__).parent / "plugin"
CLI = "import sys\nfrom latentgraph.cli import main\nsys.exit(main(sys.argv[1:]))\n"
WORKFLOW = b'{"last_node_id": 0, "nodes": [], "links": [], "version": 0.4}'
LISTING = "/userdata?dir=workflows&recurse=true&split=false&full_info=true"


def _comfy_user_folder(root: Path) -> Path:
    """A ComfyUI user/ folder: the default user's saved workflow and settings, a workflows
    folder kept in git, and a --multi-user user's folder beside the default one's."""
    default = root / "default"
    (default / "workflows" / ".git" / "objects").mkdir(parents=True)
    (default / "workflows" / ".git" / "objects" / "ab12").write_bytes(b"x")
    (default / "workflows" / "portrait.json").write_bytes(WORKFLOW)
    (default / "workflows" / ".DS_Store").write_bytes(b"\0")
    (default / api_user.SETTINGS_FILE).write_text(json.dumps({"Comfy.Locale": "fr"}))
    (root / "alice_1234" / "workflows").mkdir(parents=True)
    (root / "alice_1234" / "workflows" / "hers.json").write_bytes(WORKFLOW)
    return root


def test_serve_user_dir_shows_and_saves_a_comfy_users_workflows_in_place(tmp_path):
    user, data = _comfy_user_folder(tmp_path / "ComfyUI" / "user"), tmp_path / "data"
    before = sorted(p.relative_to(user) for p in user.rglob("*"))
    port = free_port()
    env = {**os.environ, "LATENTGRAPH_TOY_PLUGIN": "1"}
    env.pop("LATENTGRAPH_AUTH_TOKEN", None)
    proc, http = server_process(CLI, ["serve", "--port", str(port), "--data-dir", str(data),
                                      "--user-dir", str(user), "--nodes-dir", str(PLUGIN_DIR),
                                      "--no-cache", "--device", "cpu", "--workers", "1"],
                                port, env, cwd=tmp_path, wait=120)  # fmt: skip
    try:
        listed = http.get(LISTING)
        assert listed.status_code == 200, listed.text
        assert [f["path"] for f in listed.json()] == ["portrait.json"]  # no .git/, .DS_Store
        assert http.get("/userdata/workflows%2Fportrait.json").content == WORKFLOW
        for out in ("/userdata/..%2Falice_1234%2Fworkflows%2Fhers.json", "/userdata?dir=.."):
            assert http.get(out).status_code == 400, out  # another user's folder: not served
        assert http.get("/settings/Comfy.Locale").json() == "fr"
        saved = http.post("/userdata/workflows%2Fnew%20one.json", content=WORKFLOW)
        assert (saved.status_code, saved.json()) == (200, "workflows/new one.json")
        assert http.post("/settings/Comfy.ColorPalette", json="light").status_code == 200
        assert http.get("/users").json() == {"storage": "server", "migrated": True}
    finally:
        stop_server_process(proc, http)
    assert (user / "default" / "workflows" / "new one.json").read_bytes() == WORKFLOW
    settings = json.loads((user / "default" / api_user.SETTINGS_FILE).read_text())
    assert settings == {"Comfy.Locale": "fr", "Comfy.ColorPalette": "light"}
    after = sorted(p.relative_to(user) for p in user.rglob("*"))
    assert set(after) - set(before) == {Path("default/workflows/new one.json")}  # nothing else
    assert (data / "server.sqlite3").is_file() and not (data / "users").exists()


def test_a_user_dir_settings_file_that_cannot_be_read_is_named_in_that_folder(tmp_path):
    """The refusal names the file by its place in the --user-dir folder (never the server's
    full path): measured from the data folder, it was a ValueError, a 500 saying nothing."""
    config = ServerConfig(data_dir=tmp_path / "data", users_dir=tmp_path / "user")
    config.ensure_dirs()
    (config.user_dir / api_user.SETTINGS_FILE).mkdir()
    with user_api(config) as client:
        r = client.get("/settings")
    assert r.status_code == 500
    error = r.json()["error"]
    assert (error["type"], error["message"]) == ("settings_unreadable", (
        "the settings file default/comfy.settings.json in the server's --user-dir folder "
        "cannot be read: Is a directory; no setting is saved until it can be, so the settings "
        "it holds are kept"))  # fmt: skip
    assert str(tmp_path) not in r.text
