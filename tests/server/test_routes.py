"""The editor's other routes: userdata, settings, queue/history management, info routes."""

from __future__ import annotations

import pytest

from .conftest import chain


def test_page_load_routes_answer_json(server):
    for path in ("/api/features", "/api/users", "/api/system_stats", "/api/settings",
                 "/api/i18n", "/api/extensions", "/api/embeddings", "/api/object_info",
                 "/api/global_subgraphs", "/api/experiment/models",
                 "/api/jobs?status=in_progress,pending&limit=200&offset=0",
                 "/api/userdata?dir=workflows&recurse=true&split=false&full_info=true"):  # fmt: skip
        r = server.http.get(path)
        assert r.status_code == 200, (path, r.text)
        r.json()
    assert server.http.get("/api/users").json() == {"storage": "server", "migrated": True}
    info = server.http.get("/object_info").json()
    assert info["Show"]["output_node"] is True and "Number" in info
    assert list(server.http.get("/object_info/Slow").json()) == ["Slow"]
    # an unknown class is 200 {}, as ComfyUI answers it: clients ask "is it installed?" with
    # `name in answer` (a 404 made comfy-api-simplified's get_object_info raise)
    for path in ("/object_info/Nope", "/api/object_info/Nope"):
        r = server.http.get(path)
        assert (r.status_code, r.json()) == (200, {}), path
    assert list(server.http.get("/api/object_info/Slow").json()) == ["Slow"]
    stats = server.http.get("/system_stats").json()
    assert stats["devices"][0]["type"] == "cpu" and stats["system"]["ram_total"] > 0
    # the ComfyUI release whose protocol we follow, which the editor prints as the current
    # ComfyUI beside missing core nodes (latentgraph's own 0.1.0 read as an old ComfyUI)
    assert stats["system"]["comfyui_version"] == "0.38.1"


def test_settings_roundtrip(server):
    assert server.http.post("/api/settings", json={"Comfy.A": 1, "Comfy.B": "x"}).status_code == 200
    assert server.http.post("/api/settings/Comfy.C", json=[1, 2]).status_code == 200
    settings = server.http.get("/api/settings").json()
    assert settings["Comfy.A"] == 1 and settings["Comfy.C"] == [1, 2]
    assert server.http.get("/api/settings/Comfy.B").json() == "x"


def test_userdata_workflows(server):
    doc = b'{"nodes": [], "links": []}'
    r = server.http.post("/api/userdata/workflows%2Fmy%20flow.json?overwrite=true&full_info=true",
                         content=doc)  # fmt: skip
    assert r.status_code == 200 and r.json()["path"] == "workflows/my flow.json"
    assert (server.config.user_dir / "workflows" / "my flow.json").read_bytes() == doc
    again = server.http.post(
        "/api/userdata/workflows%2Fmy%20flow.json?overwrite=false", content=doc
    )
    assert again.status_code == 409
    listing = server.http.get("/api/userdata", params={"dir": "workflows", "recurse": "true",
                                                       "full_info": "true"}).json()  # fmt: skip
    assert [e["path"] for e in listing] == ["my flow.json"] and listing[0]["size"] == len(doc)
    assert server.http.get("/api/userdata/workflows%2Fmy%20flow.json").content == doc
    moved = server.http.post("/api/userdata/workflows%2Fmy%20flow.json/move/workflows%2Fb.json")
    assert moved.status_code == 200, moved.text
    assert server.http.get("/api/userdata?dir=workflows").json() == ["b.json"]
    assert server.http.delete("/api/userdata/workflows%2Fb.json").status_code == 204
    assert server.http.get("/api/userdata/workflows%2Fb.json").status_code == 404


def test_queue_and_history_management(server, ws):
    client = ws()
    blocker = server.post_prompt(chain(1, slow_steps=200, delay=0.01, prefix="blk"),
                                 client.client_id).json()["prompt_id"]  # fmt: skip
    client.until("execution_start", blocker)  # so the blocker is running, not pending
    pending = [server.post_prompt(chain(40 + i, prefix="pend"), client.client_id).json()["prompt_id"]
               for i in range(3)]  # fmt: skip
    front = server.post_prompt(chain(50, prefix="front"), client.client_id, front=True).json()
    queue = server.http.get("/queue").json()
    pending_ids = [item[1] for item in queue["queue_pending"]]
    assert pending_ids[0] == front["prompt_id"] and set(pending) <= set(pending_ids)
    assert [item[1] for item in queue["queue_running"]] == [blocker]
    assert server.http.get("/prompt").json()["exec_info"]["queue_remaining"] >= 4
    jobs = server.http.get("/api/jobs", params={"status": "pending", "limit": 2}).json()
    assert len(jobs["jobs"]) == 2 and jobs["pagination"]["total"] >= 4
    assert jobs["pagination"]["has_more"] is True
    assert server.http.post("/queue", json={"delete": [pending[0]]}).json() == {"deleted": 1}
    cancel = server.http.post(f"/api/jobs/{front['prompt_id']}/cancel").json()
    assert cancel == {"cancelled": True}
    assert server.http.get(f"/api/jobs/{front['prompt_id']}").status_code == 404
    server.http.post("/interrupt", json={})
    client.until_done(blocker)
    client.until_done(pending[2])
    history = server.http.get("/history").json()
    assert pending[0] not in history and pending[1] in history
    page = server.http.get("/history", params={"max_items": 1}).json()
    assert len(page) == 1
    assert server.http.post("/history", json={"delete": [pending[1]]}).json() == {"deleted": 1}
    assert server.http.get(f"/history/{pending[1]}").json() == {}


def test_front_prompts_take_distinct_negative_numbers_and_run_first(server, ws):
    """As ComfyUI numbers them: a front prompt takes the negative of the counter, so the latest
    runs first and no number repeats. Was one below the lowest queued: with prompt 5 running,
    4, neither negative nor unused (a finished prompt had it)."""
    client = ws()
    for i in range(2):  # numbers a finished prompt holds
        done = server.post_prompt(chain(60 + i, prefix="done"), client.client_id).json()
        client.until_done(done["prompt_id"])
    blocker = server.post_prompt(chain(1, slow_steps=200, delay=0.01, prefix="blk2"),
                                 client.client_id).json()  # fmt: skip
    client.until("execution_start", blocker["prompt_id"])
    back = server.post_prompt(chain(70, prefix="back"), client.client_id).json()
    first = server.post_prompt(chain(71, prefix="f1"), client.client_id, front=True).json()
    second = server.post_prompt(chain(72, prefix="f2"), client.client_id, front=True).json()
    assert 0 > first["number"] > second["number"]
    assert -first["number"] > blocker["number"] >= 2  # from the one counter: none repeats
    pending = server.http.get("/queue").json()["queue_pending"]
    assert [(item[0], item[1]) for item in pending] == [
        (second["number"], second["prompt_id"]), (first["number"], first["prompt_id"]),
        (back["number"], back["prompt_id"])]  # fmt: skip
    after = server.post_prompt(chain(73, prefix="after"), client.client_id).json()
    assert after["number"] > -second["number"]
    server.http.post("/queue", json={"clear": True})
    server.http.post("/interrupt", json={})
    client.until_done(blocker["prompt_id"])


def test_free(server):
    assert server.http.post("/free", json={"unload_models": True, "free_memory": True}).json() == {}


def test_openapi_document(server):
    doc = server.http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/latentgraph/run" in doc["paths"] and "/prompt" in doc["paths"]
    assert {"/models", "/models/{folder}"} <= set(doc["paths"])


def test_mask_editor_round_trip_under_api(server):
    """What the editor's mask editor does: read the image's colour and alpha, save a mask."""
    import io
    import json

    from PIL import Image

    def png(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    photo = Image.new("RGBA", (8, 6), (200, 100, 50, 255))
    up = server.http.post("/api/upload/image", files={"image": ("mask-photo.png", png(photo))},
                          data={"type": "input", "overwrite": "true"})  # fmt: skip
    assert up.status_code == 200, up.text
    view = {"filename": "mask-photo.png", "type": "input", "subfolder": ""}
    rgb = server.http.get("/api/view", params={**view, "channel": "rgb"})
    assert Image.open(io.BytesIO(rgb.content)).mode == "RGB"
    alpha = server.http.get("/api/view", params={**view, "channel": "a"})
    assert Image.open(io.BytesIO(alpha.content)).getchannel("A").getextrema() == (255, 255)
    mask = Image.new("RGBA", (8, 6))
    mask.putalpha(Image.linear_gradient("L").resize((8, 6)))
    saved = server.http.post("/api/upload/mask",
                             files={"image": ("clipspace-mask-9.png", png(mask))},
                             data={"type": "input", "subfolder": "clipspace", "overwrite": "true",
                                   "original_ref": json.dumps(view)})  # fmt: skip
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"name": "clipspace-mask-9.png", "subfolder": "clipspace",
                            "type": "input"}  # fmt: skip
    stored = server.http.get("/api/view", params={"filename": "clipspace-mask-9.png",
                                                  "subfolder": "clipspace", "type": "input"})  # fmt: skip
    with Image.open(io.BytesIO(stored.content)) as img:
        assert img.getchannel("A").tobytes() == mask.getchannel("A").tobytes()
        assert img.convert("RGB").getpixel((0, 0)) == (200, 100, 50)


def test_queue_and_history_items_carry_the_client_id_in_extra_data(server, ws):
    """ComfyUI's POST /prompt copies the body's client_id into the item's extra_data (index 3
    of a /queue and /history item); ours kept it only in its own column."""
    client = ws()
    body = {"prompt": chain(1, slow_steps=100, delay=0.01, prefix="cid"),
            "client_id": client.client_id, "extra_data": {"preview_method": "none"}}  # fmt: skip
    pid = server.http.post("/prompt", json=body).json()["prompt_id"]
    client.until("execution_start", pid)
    running = server.http.get("/queue").json()["queue_running"]
    item = next(i for i in running if i[1] == pid)
    assert item[3] == {"preview_method": "none", "client_id": client.client_id}
    server.http.post("/interrupt", json={})
    client.until_done(pid)
    kept = server.http.get(f"/history/{pid}").json()[pid]
    assert kept["prompt"][3] == {"preview_method": "none", "client_id": client.client_id}
    job = server.http.get(f"/api/jobs/{pid}").json()
    assert job["workflow"]["extra_data"] == item[3] and job["id"] == pid
    bare = server.http.post("/prompt", json={"prompt": chain(2, prefix="nocid")}).json()
    queued = server.http.get(f"/api/jobs/{bare['prompt_id']}").json()
    assert "client_id" not in queued["workflow"]["extra_data"]


@pytest.mark.parametrize(("path", "method", "bodies"), [
    ("/history", "delete_history", [{"delete": ["nobody"]}, {"clear": True}]),
    ("/queue", "delete_pending", [{"delete": ["nobody"]}, {"clear": True}]),
    ("/api/jobs/cancel", "delete_pending", [{"job_ids": ["nobody"]}]),
])  # fmt: skip
def test_deletes_run_off_the_event_loop(server, monkeypatch, path, method, bodies):
    """A large delete reads the rows' pages and gives their space back to the filesystem
    (`Store.delete_history`, `Store.delete_pending`): in the threadpool, not on the event loop
    the server answers on. POST /queue's ran on it, and gave nothing back."""
    import threading

    store = server.app.state.lg.store
    threads: list[threading.Thread] = []
    real = getattr(store, method)

    def recording(ids=None):
        threads.append(threading.current_thread())
        return real(ids)

    monkeypatch.setattr(store, method, recording)
    for body in bodies:
        assert server.http.post(path, json=body).status_code == 200
    assert len(threads) == len(bodies) and server.thread not in threads
