"""The editor's settings file (`users/default/comfy.settings.json`) when it cannot be read: it
used to be read as {} and replaced by the next save, the user's settings gone with no copy and
no log line. Now it is moved aside, named in one warning, and the editor carries on from {}.
The routes read only the config, so they are mounted alone with the real error handlers.
Also what the routes answer for a setting the user has not set (`api_user.SETTING_DEFAULTS`)."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
from pathlib import Path

import pytest

from latentgraph.server import api_user
from latentgraph.server.config import ServerConfig

from .conftest import user_api

CORRUPT = {
    "truncated": b'{"Comfy.ColorPalette": "dark", "Comfy.Locale": "e',
    "binary junk": b"\x89PNG\r\n\x1a\n\x00\xff\xfe junk",
    "a list": b'["Comfy.ColorPalette", "dark"]',
    "null": b"null",
    "nested too deep": b"[" * 100_000,
}


@pytest.fixture
def config(tmp_path) -> ServerConfig:
    config = ServerConfig(data_dir=tmp_path / "data")
    config.ensure_dirs()
    return config


@pytest.fixture
def client(config):
    with user_api(config) as c:
        yield c


def _copies(config: ServerConfig) -> list:
    return sorted(config.user_dir.glob(f"{api_user.SETTINGS_FILE}.corrupt-*"))


@pytest.mark.parametrize("save", ["/settings", "/settings/Comfy.Locale"])
@pytest.mark.parametrize("damage", list(CORRUPT))
def test_a_corrupt_settings_file_is_kept_aside_and_named_in_the_log(client, config, caplog,
                                                                    damage, save):  # fmt: skip
    settings = config.user_dir / api_user.SETTINGS_FILE
    settings.write_bytes(CORRUPT[damage])
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        r = client.get("/settings")
    assert (r.status_code, r.json()) == (200, api_user.SETTING_DEFAULTS)
    [copy] = _copies(config)
    assert copy.read_bytes() == CORRUPT[damage]
    [said] = [rec.getMessage() for rec in caplog.records]
    assert said.startswith(f"the editor's settings file {settings} cannot be read (")
    assert said.endswith(f"); it was moved to {copy} and the editor starts from its default "
                         "settings")  # fmt: skip
    body = {"Comfy.Locale": "en"} if save == "/settings" else "en"
    assert client.post(save, json=body).status_code == 200
    assert copy.read_bytes() == CORRUPT[damage] and _copies(config) == [copy]
    assert json.loads(settings.read_bytes()) == {"Comfy.Locale": "en"}


def test_a_second_corrupt_file_is_kept_beside_the_first(client, config):
    settings = config.user_dir / api_user.SETTINGS_FILE
    for junk in (b"{", b"[]"):
        settings.write_bytes(junk)
        assert client.get("/settings/Comfy.Locale").status_code == 200
    assert sorted(p.read_bytes() for p in _copies(config)) == [b"[]", b"{"]


def test_missing_and_readable_settings_files_are_not_moved(client, config, caplog):
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        assert client.get("/settings").json() == api_user.SETTING_DEFAULTS
        (config.user_dir / api_user.SETTINGS_FILE).write_bytes(b'\xef\xbb\xbf{"Comfy.A": 1}')
        with_bom = client.get("/settings").json()  # a BOM is no damage
        assert with_bom == {**api_user.SETTING_DEFAULTS, "Comfy.A": 1}
    assert caplog.records == [] and _copies(config) == []


SAVED = {"Comfy.ColorPalette": "dark", "Comfy.Locale": "fr"}
UNREADABLE = ("the settings file users/default/comfy.settings.json in the server's data folder "
              "cannot be read: {why}; no setting is saved until it can be, so the settings it "
              "holds are kept")  # fmt: skip


def _not_permitted(monkeypatch, path: Path) -> None:
    """Reading `path` fails as a file the server's user may not read (chmod 000 stops no root,
    and the tests may run as root)."""
    read_bytes = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)


@pytest.mark.parametrize("save", ["/settings", "/settings/Comfy.Locale"])
def test_a_settings_file_that_cannot_be_read_is_refused_not_replaced(client, config, caplog,
                                                                     monkeypatch, save):  # fmt: skip
    """It was answered as {} and the next save replaced it with the one setting saved: the
    user's other settings gone. Now every settings route answers 500 naming it and why, and
    no save writes over it."""
    settings = config.user_dir / api_user.SETTINGS_FILE
    kept = json.dumps(SAVED).encode()
    settings.write_bytes(kept)
    _not_permitted(monkeypatch, settings)
    body = {"Comfy.Locale": "en"} if save == "/settings" else "en"
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        answers = [client.get("/settings"), client.get("/settings/Comfy.Locale"),
                   client.post(save, json=body)]  # fmt: skip
    why = "no permission to read it (Permission denied)"
    for r in answers:
        assert r.status_code == 500
        assert r.json()["error"]["type"] == "settings_unreadable"
        assert r.json()["error"]["message"] == UNREADABLE.format(why=why)
    assert str(settings) in caplog.records[0].getMessage()  # the log has the full path
    monkeypatch.undo()  # readable again: every setting is there, no copy made
    assert settings.read_bytes() == kept and _copies(config) == []
    assert client.get("/settings").json() == {**api_user.SETTING_DEFAULTS, **SAVED}


def test_a_folder_in_place_of_the_settings_file_is_refused(client, config):
    (config.user_dir / api_user.SETTINGS_FILE).mkdir()
    r = client.get("/settings")
    assert r.status_code == 500
    assert r.json()["error"]["message"] == UNREADABLE.format(why="Is a directory")
    assert (config.user_dir / api_user.SETTINGS_FILE).is_dir() and _copies(config) == []


RELEASE_CHECK = "Comfy.Notification.ShowVersionUpdates"


def test_the_editors_release_check_is_off_until_the_user_turns_it_on(client, config):
    """The editor's check for ComfyUI releases (on by its own default) asked api.comfy.org on
    every page load, sending the ComfyUI version latentgraph reports. A user who has not set
    it reads it off; a user's choice, saved by the editor, wins; the settings file holds only
    what was saved (test_browser.py: no request to api.comfy.org on load)."""
    assert client.get("/settings").json() == {RELEASE_CHECK: False}
    assert client.get(f"/settings/{RELEASE_CHECK}").json() is False
    assert client.post("/settings", json={"Comfy.Locale": "fr"}).status_code == 200
    settings = config.user_dir / api_user.SETTINGS_FILE
    assert json.loads(settings.read_bytes()) == {"Comfy.Locale": "fr"}
    assert client.post(f"/settings/{RELEASE_CHECK}", json=True).status_code == 200
    assert client.get("/settings").json() == {"Comfy.Locale": "fr", RELEASE_CHECK: True}
    assert client.get(f"/settings/{RELEASE_CHECK}").json() is True
    assert client.post("/settings", json={RELEASE_CHECK: False}).status_code == 200
    assert json.loads(settings.read_bytes()) == {"Comfy.Locale": "fr", RELEASE_CHECK: False}


LIMIT = ServerConfig().max_settings_bytes
OVER = ("the editor's settings would be {size:,} bytes, more than the server's settings limit "
        f"of {LIMIT:,} (ServerConfig.max_settings_bytes); nothing was saved")  # fmt: skip


def test_settings_that_would_pass_the_limit_are_refused_and_nothing_written(client, config):
    """Each POST under the body limit added a value: five of 60 MB made a 300 MB file that
    every page load of the editor parsed, on the event loop, 5 s each, every other request
    waiting. A save that would take the stored file over `max_settings_bytes` is a 413 naming
    the limit, and the file stays as it was."""
    settings = config.user_dir / api_user.SETTINGS_FILE
    third = "x" * (LIMIT // 3)
    for key in ("a", "b"):
        assert client.post("/settings", json={key: third}).status_code == 200
    kept = settings.read_bytes()
    size = len(json.dumps({"a": third, "b": third, "c": third}, indent=2).encode())
    answers = [client.post("/settings", json={"c": third}), client.post("/settings/c", json=third)]
    for r in answers:
        assert r.status_code == 413, r.text
        error = r.json()["error"]
        assert (error["type"], error["message"]) == ("too_large", OVER.format(size=size))
    assert settings.read_bytes() == kept
    replaced = client.post("/settings", json={"a": "short", "c": third})  # a smaller value fits
    assert replaced.status_code == 200
    assert json.loads(settings.read_bytes()) == {"a": "short", "b": third, "c": third}


def test_a_settings_file_over_the_limit_is_kept_aside_not_parsed(client, config, caplog):
    """A file an older version let grow (or one written through /userdata) is not read on every
    page load: it is moved aside as a damaged one is, named in one warning with its size."""
    settings = config.user_dir / api_user.SETTINGS_FILE
    big = json.dumps({"Comfy.Locale": "fr", "junk": "x" * LIMIT}).encode()
    settings.write_bytes(big)
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        assert client.get("/settings").json() == api_user.SETTING_DEFAULTS
    [copy] = _copies(config)
    assert copy.read_bytes() == big and not settings.exists()
    [said] = [rec.getMessage() for rec in caplog.records]
    assert f"cannot be read (it is {len(big):,} bytes, more than the server's settings " in said


def test_user_files_are_read_and_written_off_the_event_loop(client, config, monkeypatch):
    """Reading and writing the settings, saving and moving a user file (up to --max-body-mb)
    ran in the async routes themselves: a 300 MB settings file held every request for 5 s.
    Each read and replace of a file now runs where no event loop is running."""
    on_loop: list[str] = []

    def watch(owner, name: str) -> None:
        real = getattr(owner, name)

        def call(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                on_loop.append(name)
            except RuntimeError:  # a worker thread: no loop running there
                pass
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)

    watch(Path, "read_bytes")
    watch(os, "replace")
    assert client.post("/settings", json={"Comfy.Locale": "fr"}).status_code == 200
    assert client.post("/settings/Comfy.A", json=1).status_code == 200
    assert client.get("/settings").json()["Comfy.Locale"] == "fr"
    assert client.get("/settings/Comfy.A").json() == 1
    assert client.post("/userdata/workflows%2Fa.json", content=b"{}").status_code == 200
    assert client.post("/userdata/workflows%2Fa.json/move/workflows%2Fb.json").status_code == 200
    assert on_loop == []
