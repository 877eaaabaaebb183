"""GET /history paged as ComfyUI pages it, and GET /models, /models/{folder}: the routes mounted
alone over a real store and config (no worker processes)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from latentgraph.graph import Registry, Settings
from latentgraph.server import api_info, api_queue
from latentgraph.server import store as st
from latentgraph.server.config import ServerConfig
from latentgraph.server.errors import exception_handlers

# the models folder kinds as the composition root hands them over (nodes/models_dirs.FOLDERS)
FOLDERS = {"checkpoints": ("checkpoints", "Stable-diffusion"), "loras": ("loras",),
           "vae": ("vae",), "embeddings": ("embeddings",)}  # fmt: skip


@pytest.fixture
def config(tmp_path) -> ServerConfig:
    root = tmp_path / "models"
    for name in ("checkpoints/sd15/b.safetensors", "checkpoints/A.sft", "checkpoints/old.ckpt",
                 "loras/x.safetensors", "loras/y.sft"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    (root / "vae").mkdir()
    config = ServerConfig(data_dir=tmp_path / "data", models_dirs=[root])
    config.ensure_dirs()
    return config


def _client(config: ServerConfig, registry: Registry, folders: dict) -> Iterator[TestClient]:
    """The routes over a store of five finished prompts, `registry`'s nodes (whose dropdowns
    /models/{folder} lists too) and the models folder kinds `folders`."""
    store = st.Store(config.data_dir / "db.sqlite3")
    for i in range(5):
        store.add(st.PromptRecord(id=f"p{i}", number=None, prompt_json="{}"))
        store.finish(f"p{i}", st.SUCCESS)
    app = Starlette(routes=api_queue.routes + api_info.routes,
                    exception_handlers=exception_handlers)  # fmt: skip
    settings = Settings(models_dirs=config.models_dirs)  # the list itself: a test changes it
    app.state.lg = SimpleNamespace(config=config, store=store, registry=registry,
                                   settings=settings)  # what get_state reads  # fmt: skip
    app.state.model_folders = folders  # what create_app takes from WorkerSetup.model_folders
    with TestClient(app, base_url="http://127.0.0.1:8188", raise_server_exceptions=False) as c:
        yield c
    store.close()


@pytest.fixture
def client(config):
    """No nodes: /models/{folder} lists the folder's files."""
    yield from _client(config, Registry(), FOLDERS)


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
    assert client.get("/models").json() == ["checkpoints", "loras", "vae", "embeddings"]
    # .sft: listed in every folder, checkpoints/ too, as ComfyUI lists them
    assert client.get("/models/checkpoints").json() == ["A.sft", "sd15/b.safetensors"]
    assert client.get("/models/loras").json() == ["x.safetensors", "y.sft"]
    assert client.get("/models/vae").json() == []
    r = client.get("/models/nothing")
    assert r.status_code == 404 and r.json()["error"]["message"] == "no model folder 'nothing'"


def test_embeddings_answers_the_embeddings_folders_files_without_extension(client, config):
    """What a prompt's embedding:NAME names (ComfyUI's answer), from the files
    /models/embeddings lists: one walk."""
    assert client.get("/embeddings").json() == []
    root = config.models_dirs[0] / "embeddings"
    for name in ("neg.safetensors", "sub/Style.safetensors", "old.pt", ".hidden.safetensors"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    assert client.get("/models/embeddings").json() == ["neg.safetensors", "sub/Style.safetensors"]
    assert client.get("/embeddings").json() == ["neg", "sub/Style"]


def test_known_folders_are_listed_and_answer_empty_lists_on_a_fresh_server(client, config):
    config.models_dirs = [config.data_dir / "no-models-yet"]
    assert client.get("/models").json() == list(FOLDERS)
    assert client.get("/models/checkpoints").json() == []
    assert client.get("/experiment/models").json() == [
        {"name": kind, "folders": []} for kind in FOLDERS
    ]
    assert client.get("/experiment/models/loras").json() == []
    r = client.get("/models/sams")
    assert r.status_code == 404 and r.json()["error"]["message"] == "no model folder 'sams'"


def test_a_folders_other_names_are_read_as_it_and_unknown_folders_are_not_listed(client, config):
    root = config.models_dirs[0]
    (root / "Stable-diffusion").mkdir()
    (root / "Stable-diffusion" / "old.safetensors").write_bytes(b"")
    (root / "sams").mkdir()
    assert "sams" not in client.get("/models").json()
    assert client.get("/models/checkpoints").json() == [
        "A.sft", "old.safetensors", "sd15/b.safetensors"]  # fmt: skip
    (entry,) = [e for e in client.get("/experiment/models").json() if e["name"] == "checkpoints"]
    assert entry["folders"] == [str(root / "checkpoints"), str(root / "Stable-diffusion")]


def test_the_model_routes_list_the_files_the_dropdowns_list(client, config, tmp_path, monkeypatch):
    """One walk (`graph.paths.weight_files`) for /models/{folder}, /experiment/models/{folder}
    and the nodes' dropdown: hidden files and folders, other suffixes (.gguf, pickles), a
    symlinked folder and a symlink loop are treated alike by all three."""
    from latentgraph.nodes import models_dirs as md

    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "user-data"))
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    ckpt = config.models_dirs[0] / "checkpoints"
    for name in ("q.gguf", "w.bin", "notes.txt", ".hidden.safetensors", ".cache/h.safetensors",
                 "UP.SAFETENSORS", "deep/1/2/3/4/5/6/7/8/9/far.safetensors"):  # fmt: skip
        (ckpt / name).parent.mkdir(parents=True, exist_ok=True)
        (ckpt / name).write_bytes(b"")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.safetensors").write_bytes(b"")
    os.symlink(tmp_path / "elsewhere", ckpt / "linked")
    os.symlink(ckpt, ckpt / "sd15" / "loop")
    dropdown = md.list_files("checkpoints", config.models_dirs)
    assert dropdown == ["A.sft", "linked/c.safetensors", "sd15/b.safetensors", "UP.SAFETENSORS"]
    assert client.get("/models/checkpoints").json() == dropdown
    on_disk = [e for e in md.experiment_folder("checkpoints", config.models_dirs)
               if not e["name"].startswith("builtin:")]  # fmt: skip
    assert client.get("/experiment/models/checkpoints").json() == on_disk
    assert {e["name"] for e in on_disk} == set(dropdown)
    folder_paths = client.get("/internal/folder_paths").json()
    suffixes = folder_paths["checkpoints"][1]
    assert all(name.lower().endswith(tuple(suffixes)) for name in dropdown)
    assert suffixes == [".safetensors", ".sft"] == folder_paths["loras"][1]


def test_the_composition_root_hands_the_nodes_folders_to_the_server():
    from latentgraph.nodes.models_dirs import FOLDERS as NODE_FOLDERS
    from latentgraph.wiring import worker_setup

    assert worker_setup().model_folders == NODE_FOLDERS


def test_create_app_serves_the_folders_its_worker_setup_names(tmp_path):
    from latentgraph.server.app import create_app
    from latentgraph.server.workers import WorkerSetup

    from .plugin.toy_nodes import toy_registry as build

    config = ServerConfig(data_dir=tmp_path / "data", load_nodes=False, editor=False)
    app = create_app(config, workers=WorkerSetup(registry=build, model_folders={"vae": ("vae",)}))
    try:  # no lifespan: no worker process starts
        client = TestClient(app, base_url="http://127.0.0.1:8188")
        assert client.get("/api/models").json() == ["vae"]
        assert client.get("/api/models/vae").json() == []
    finally:
        app.state.lg.store.close()


def test_view_metadata_answers_a_safetensors_files_own_metadata(client, config):
    """The editor's Model Library asks /view_metadata/{folder}?filename= for each model: the
    file header's __metadata__, read without the tensors; 404 for what has none to give."""
    import numpy as np
    from safetensors.numpy import save_file

    lora = config.models_dirs[0] / "loras" / "card.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(lora), metadata={"ss_network_dim": "4"})
    assert client.get("/view_metadata/loras?filename=card.safetensors").json() == {
        "ss_network_dim": "4"}  # fmt: skip
    for url in ("/view_metadata/checkpoints?filename=old.ckpt",  # not safetensors: no header
                "/view_metadata/checkpoints?filename=sd15/b.safetensors",  # an empty file
                "/view_metadata/loras?filename=missing.safetensors",
                "/view_metadata/nothing?filename=card.safetensors"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert client.get("/view_metadata/loras?filename=../../x.safetensors").status_code == 400


def test_view_metadata_answers_every_model_the_listing_lists_links_included(
    client, config, tmp_path
):
    """A symlinked file and a file under a symlinked folder are listed (and run): their model
    card is answered too, by the listing's own rule (`graph.paths.listed_file`); a broken link
    is neither; `../` and absolute names stay refused."""
    import numpy as np
    from safetensors.numpy import save_file

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "shared").mkdir(parents=True)
    save_file({"w": np.zeros(2, np.float32)}, str(elsewhere / "real.safetensors"),
              metadata={"card": "linked"})  # fmt: skip
    save_file({"w": np.zeros(2, np.float32)}, str(elsewhere / "shared" / "x.safetensors"),
              metadata={"card": "shared"})  # fmt: skip
    root = config.models_dirs[0]
    (root / "checkpoints" / "linked.safetensors").symlink_to(elsewhere / "real.safetensors")
    (root / "loras" / "shared").symlink_to(elsewhere / "shared")
    (root / "checkpoints" / "broken.safetensors").symlink_to(elsewhere / "gone.safetensors")
    assert "linked.safetensors" in client.get("/models/checkpoints").json()
    assert "broken.safetensors" not in client.get("/models/checkpoints").json()
    assert "shared/x.safetensors" in client.get("/models/loras").json()
    for url, card in (("/view_metadata/checkpoints?filename=linked.safetensors", "linked"),
                      ("/view_metadata/loras?filename=shared/x.safetensors", "shared"),
                      ("/view_metadata/loras?filename=shared\\x.safetensors", "shared")):  # fmt: skip
        r = client.get(url)
        assert r.status_code == 200 and r.json() == {"card": card}, (url, r.text)
    assert client.get("/view_metadata/checkpoints?filename=broken.safetensors").status_code == 404
    for name in ("../../elsewhere/real.safetensors", str(elsewhere / "real.safetensors")):
        r = client.get("/view_metadata/checkpoints", params={"filename": name})
        assert r.status_code == 400, (name, r.text)


def test_the_model_routes_search_the_roots_the_dropdowns_search(client, tmp_path, monkeypatch):
    """$LATENTGRAPH_MODELS_DIRS and <data dir>/models are models roots for the nodes' dropdowns:
    the Model Library (/models/...) lists their files too (graph.paths.models_roots)."""
    extra, data = tmp_path / "env-models", tmp_path / "user-data"
    (extra / "checkpoints").mkdir(parents=True)
    (extra / "checkpoints" / "from-env.safetensors").write_bytes(b"")
    (data / "models" / "loras").mkdir(parents=True)
    (data / "models" / "loras" / "from-data.safetensors").write_bytes(b"")
    monkeypatch.setenv("LATENTGRAPH_MODELS_DIRS", str(extra))
    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(data))
    assert "from-env.safetensors" in client.get("/models/checkpoints").json()
    assert "from-data.safetensors" in client.get("/models/loras").json()


@pytest.mark.parametrize("limit", [1, 2, 100])
def test_jobs_rows_turned_unreadable_are_out_of_the_pages_and_the_total(client, config, limit):
    """Rows skipped as unreadable (bit rot after start) were counted in `total`: `jobs: []`,
    `total: 2, has_more: true`, and a client paging by the entries it got asked forever. The
    total counts the rows not read yet; `has_more` is true only while a readable one follows."""
    with closing(sqlite3.connect(config.data_dir / "db.sqlite3", isolation_level=None)) as db:
        db.execute("UPDATE prompts SET outputs = CAST(X'6F6BFF' AS TEXT)"
                   " WHERE id IN ('p1', 'p3')")  # fmt: skip
    got, offset = [], 0
    for _ in range(10):  # a client paging by the entries it got, as the editor does
        page = client.get(f"/jobs?limit={limit}&offset={offset}").json()
        got += [job["id"] for job in page["jobs"]]
        offset += len(page["jobs"])
        assert page["pagination"]["has_more"] == (offset < 3)
        if not page["pagination"]["has_more"]:
            break
    assert got == ["p4", "p2", "p0"] and page["pagination"]["total"] == 3


def test_a_sent_name_with_a_backslash_is_shown_with_one(client):
    """/models/{folder} quotes the name as sent (`graph.problems.quoted`), not doubled by
    repr."""
    r = client.get("/models/SD1.5%5Cfoo")
    assert r.status_code == 404 and r.json()["error"]["message"] == "no model folder 'SD1.5\\foo'"


def test_a_sent_job_id_or_status_with_a_backslash_is_shown_with_one(client):
    """The /api/jobs routes (here without the /api prefix) quote what was sent as sent, not
    doubled by repr."""
    r = client.get("/jobs/sub%5Cjob")
    assert r.status_code == 404 and r.json()["error"]["message"] == "no job 'sub\\job'"
    r = client.post("/jobs/sub%5Cjob/cancel")
    assert r.status_code == 404 and r.json()["error"]["message"] == "no job 'sub\\job'"
    r = client.get("/jobs?status=done%5Cx")
    assert r.status_code == 400 and "unknown job status 'done\\x';" in r.json()["error"]["message"]


def test_a_models_folder_lists_what_object_info_lists_for_its_dropdowns(config):
    """/models/checkpoints answered [] while CheckpointLoaderSimple's dropdown (object_info)
    listed the built-in models: ComfyUI's /models/{folder} is the list its loaders show."""
    import latentgraph.nodes  # noqa: F401 - registers the nodes
    from latentgraph.graph import default_registry
    from latentgraph.graph.object_info import object_info
    from latentgraph.nodes.models_dirs import FOLDERS as NODE_FOLDERS

    info = object_info(default_registry, Settings(models_dirs=config.models_dirs))
    dropdowns = {"checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
                 "loras": ("LoraLoader", "lora_name"), "vae": ("VAELoader", "vae_name"),
                 "controlnet": ("ControlNetLoader", "control_net_name"),
                 "upscale_models": ("UpscaleModelLoader", "model_name")}  # fmt: skip
    for client in _client(config, default_registry, dict(NODE_FOLDERS)):
        for kind, (node, name) in dropdowns.items():
            listed = info[node]["input"]["required"][name][0]
            assert client.get(f"/models/{kind}").json() == listed, kind
        checkpoints = client.get("/models/checkpoints").json()
        assert checkpoints[0] == "builtin:tiny-sd" and "sd15/b.safetensors" in checkpoints
        assert client.get("/models/diffusers").json() == []  # no dropdown: its files


def test_the_folders_listed_are_the_kinds_a_node_reads():
    """/models listed hypernetworks, clip_vision, configs, diffusion_models, vae_approx, which
    no node reads (and an extra_model_paths.yaml's missing folder of theirs was warned about
    on every command): the kinds are the ones the model dropdowns, the loaders' folders,
    LoadLoRA (loras, a dropdown's kind too) and `embedding:NAME` read."""
    from latentgraph.nodes import loaders
    from latentgraph.nodes.models_dirs import FOLDERS
    from latentgraph.wiring import node_registry

    dropdowns = {i.models_folder for t in node_registry() for i in t.inputs}
    read = (
        (dropdowns - {""})
        | set(loaders.MODEL_FOLDERS)
        | {"embeddings"}
        | {folder for folders in loaders.COMPONENT_FOLDERS.values() for folder in folders}
    )
    assert set(FOLDERS) == read


def test_a_dropdown_whose_choices_fail_answers_an_empty_list_not_500(config):
    """A plugin's choices function that raises (its folder gone) made /models/loras answer
    500: its dropdown lists nothing there, as in /object_info, and the folder's files are
    listed."""
    from latentgraph.graph import Choice, node

    def gone(settings):
        raise FileNotFoundError(2, "No such file or directory", "/nonexistent/folder")

    registry = Registry()

    @node("M_GoneChoices", inputs=[Choice("f", gone, None, models_folder="loras")],
          registry=registry)  # fmt: skip
    def gone_choices(ctx, f=None):
        return ()

    for client in _client(config, registry, FOLDERS):
        assert client.get("/models/loras").json() == ["x.safetensors", "y.sft"]
        info = client.get("/object_info").json()
        assert info["M_GoneChoices"]["input"]["required"]["f"] == [[], {}]
