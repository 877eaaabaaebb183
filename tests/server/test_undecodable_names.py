"""A file whose name is not UTF-8 (a Latin-1 zip unpacked on Linux: `l\\xe9.safetensors`) in a
models folder, the input folder or the user's workflows folder: Python reads it as lone
surrogates, which no JSON answer can encode, so every listing holding it was a 500
(/object_info, /models/loras, /internal/files/input, /userdata, POST /prompt's "not one of").
The listings leave it out (`graph.paths.listed_names`) and warn once per folder, the name shown
as the shell shows it. The routes are mounted alone over the real declarations."""

from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import latentgraph.nodes  # noqa: F401 - registers the nodes
from latentgraph.graph import Settings, default_registry
from latentgraph.nodes.input_files import image_names
from latentgraph.nodes.models_dirs import list_files
from latentgraph.server import api_files, api_info
from latentgraph.server.config import ServerConfig
from latentgraph.server.errors import exception_handlers
from latentgraph.server.prompts import PromptRejected, check_prompt

from .conftest import user_api


def _bad(folder, name: bytes) -> None:
    """A file named by bytes that are not UTF-8, in `folder`."""
    with open(os.path.join(os.fsencode(folder), name), "wb") as f:
        f.write(b"x")


@pytest.fixture
def config(tmp_path) -> ServerConfig:
    config = ServerConfig(data_dir=tmp_path / "data", models_dirs=[tmp_path / "models"])
    config.ensure_dirs()
    loras = tmp_path / "models" / "loras"
    loras.mkdir(parents=True)
    (loras / "ok.safetensors").write_bytes(b"")
    _bad(loras, b"l\xe9 bad.safetensors")
    os.mkdir(os.path.join(os.fsencode(loras), b"sub\xe9"))  # a folder too: its files unnamed
    (config.input_dir / "cat.png").write_bytes(b"")
    _bad(config.input_dir, b"img\xe9.png")
    return config


@pytest.fixture
def client(config):
    app = Starlette(routes=api_info.routes + api_files.routes,
                    exception_handlers=exception_handlers)  # fmt: skip
    settings = Settings(models_dirs=config.models_dirs, input_dir=config.input_dir)
    app.state.lg = SimpleNamespace(config=config, registry=default_registry, settings=settings)
    app.state.model_folders = {"loras": ("loras",)}
    with TestClient(app, base_url="http://127.0.0.1:8188", raise_server_exceptions=False) as c:
        yield c


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "latentgraph.paths" and r.levelno == logging.WARNING]  # fmt: skip


def test_a_non_utf8_model_name_is_left_out_of_the_listings(client, config, caplog):
    caplog.set_level(logging.WARNING, "latentgraph.paths")
    r = client.get("/models/loras")
    assert r.status_code == 200, r.text
    assert [n for n in r.json() if not n.startswith("builtin:")] == ["ok.safetensors"]
    r = client.get("/object_info")
    assert r.status_code == 200, r.text
    assert "ok.safetensors" in r.json()["LoraLoader"]["input"]["required"]["lora_name"][0]
    assert list_files("loras", config.models_dirs) == ["ok.safetensors"]  # the CLI's choices
    loras = config.models_dirs[0] / "loras"
    said = [w for w in _warnings(caplog) if w.startswith(str(loras))]
    assert said == [  # once per folder, however often it is listed
        f"{loras}: a name that is not UTF-8 is left out of its listing (no workflow or request "
        "can name it): 'l\\xe9 bad.safetensors', 'sub\\xe9'; rename it to UTF-8 (a Latin-1 "
        "name: convmv -f latin1 -t utf-8)"]  # fmt: skip


def test_a_non_utf8_input_image_is_left_out_of_loadimage_and_the_files_tab(client, config):
    assert image_names(Settings(input_dir=config.input_dir)) == ["cat.png", "example.png"]
    r = client.get("/object_info/LoadImage")
    assert r.status_code == 200, r.text
    assert r.json()["LoadImage"]["input"]["required"]["image"][0] == ["cat.png", "example.png"]
    r = client.get("/internal/files/input")
    assert r.status_code == 200 and r.json() == ["cat.png"], r.text


def test_a_prompt_naming_a_missing_image_is_refused_with_the_listable_choices(config):
    """Its 400 lists the choices (`extra_info.input_config`): the bad name made it a 500."""
    settings = Settings(input_dir=config.input_dir)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "nope.png"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}  # fmt: skip
    with pytest.raises(PromptRejected) as caught:
        check_prompt(prompt, default_registry, settings)
    [error] = caught.value.body["node_errors"]["1"]["errors"]
    assert error["extra_info"]["input_config"][0] == ["cat.png", "example.png"]
    json.dumps(caught.value.body).encode("utf-8")  # what the route sends


def test_a_non_utf8_saved_workflow_is_left_out_of_the_userdata_listing(config, caplog):
    caplog.set_level(logging.WARNING, "latentgraph.paths")
    workflows = config.user_dir / "workflows"
    workflows.mkdir()
    (workflows / "portrait.json").write_text("{}")
    _bad(workflows, b"w\xe9.json")
    with user_api(config) as c:
        for _ in range(2):
            r = c.get("/userdata?dir=workflows")
            assert r.status_code == 200 and r.json() == ["portrait.json"], r.text
    assert [w for w in _warnings(caplog) if "'w\\xe9.json'" in w] == [
        f"{workflows}: a name that is not UTF-8 is left out of its listing (no workflow or "
        "request can name it): 'w\\xe9.json'; rename it to UTF-8 (a Latin-1 name: convmv -f "
        "latin1 -t utf-8)"]  # fmt: skip
