"""The editor's settings file (`users/default/comfy.settings.json`) when it cannot be read: it
used to be read as {} and replaced by the next save, the user's settings gone with no copy and
no log line. Now it is moved aside, named in one warning, and the editor carries on from {}.
The routes read only the config, so they are mounted alone with the real error handlers."""

from __future__ import annotations

import json
import logging

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
    assert (r.status_code, r.json()) == (200, {})
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
        assert client.get("/settings").json() == {}
        (config.user_dir / api_user.SETTINGS_FILE).write_bytes(b'\xef\xbb\xbf{"Comfy.A": 1}')
        assert client.get("/settings").json() == {"Comfy.A": 1}  # a BOM is no damage
    assert caplog.records == [] and _copies(config) == []
