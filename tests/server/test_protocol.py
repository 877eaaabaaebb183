"""Websocket message order and content for each kind of run, against the real server."""

from __future__ import annotations

import struct
import threading

from .conftest import WsClient, chain


def types(messages):
    return [m["type"] for m in messages]


def run_messages(messages, prompt_id):
    return [
        m for m in messages if m["type"] != "status" and m["data"].get("prompt_id") == prompt_id
    ]


def test_success_sequence_history_and_view(server, ws):
    client = ws()
    r = server.post_prompt(chain(3, slow_steps=3, prefix="succ"), client.client_id)
    assert r.status_code == 200, r.text
    body = r.json()
    pid = body["prompt_id"]
    assert body["node_errors"] == {} and isinstance(body["number"], int)
    msgs = run_messages(client.until_done(pid), pid)
    kinds = types(msgs)
    assert kinds[0] == "execution_start"
    assert kinds[1] == "execution_cached" and msgs[1]["data"]["nodes"] == []
    executing = [m["data"]["node"] for m in msgs if m["type"] == "executing"]
    assert executing == ["1", "2", "3", "9", None]
    assert "progress" in kinds and "progress_state" in kinds
    progress = [m["data"] for m in msgs if m["type"] == "progress"]
    assert all(p["node"] == "3" and p["max"] == 3 for p in progress)
    assert progress[-1]["value"] == 3
    executed = [m["data"] for m in msgs if m["type"] == "executed"]
    assert executed == [
        {
            "node": "9",
            "display_node": "9",
            "prompt_id": pid,
            "output": {"images": [{"filename": "succ_6.png", "subfolder": "", "type": "output"}]},
        }
    ]
    assert kinds[-2:] == ["execution_success", "executing"]
    assert kinds.index("executed") < kinds.index("execution_success")
    # History exists by the time the final message arrives.
    hist = server.http.get(f"/history/{pid}").json()[pid]
    assert hist["status"]["status_str"] == "success" and hist["status"]["completed"] is True
    assert hist["outputs"]["9"]["images"][0]["filename"] == "succ_6.png"
    assert hist["prompt"][1] == pid and hist["prompt"][4] == ["9"]
    assert [m[0] for m in hist["status"]["messages"]] == ["execution_start", "execution_cached",
                                                         "execution_success"]  # fmt: skip
    img = server.http.get("/view", params={"filename": "succ_6.png", "type": "output"})
    assert img.status_code == 200 and img.content.startswith(b"\x89PNG")
    webp = server.http.get("/api/view", params={"filename": "succ_6.png", "preview": "webp;90"})
    assert webp.status_code == 200 and webp.content[8:12] == b"WEBP"
    # /jobs shows it as completed with a preview.
    jobs = server.http.get("/api/jobs", params={"status": "completed", "limit": 200}).json()
    job = next(j for j in jobs["jobs"] if j["id"] == pid)
    assert job["preview_output"]["filename"] == "succ_6.png" and job["outputs_count"] == 1
    detail = server.http.get(f"/api/jobs/{pid}").json()
    assert detail["outputs"]["9"]["images"][0]["filename"] == "succ_6.png"


def test_cached_rerun(server, ws):
    client = ws()
    prompt = chain(11, prefix="cache")
    first = server.post_prompt(prompt, client.client_id).json()["prompt_id"]
    client.until_done(first)
    second = server.post_prompt(prompt, client.client_id).json()["prompt_id"]
    msgs = run_messages(client.until_done(second), second)
    cached = next(m for m in msgs if m["type"] == "execution_cached")
    assert sorted(cached["data"]["nodes"]) == ["1", "2", "9"]
    assert [m["data"]["node"] for m in msgs if m["type"] == "executing"] == [None]
    executed = [m for m in msgs if m["type"] == "executed"]
    assert len(executed) == 1 and executed[0]["data"]["node"] == "9"
    assert executed[0]["data"]["output"]["images"][0]["filename"] == "cache_22.png"
    assert types(msgs)[-2] == "execution_success"


def test_node_error_then_next_prompt_runs(server, ws):
    client = ws()
    pid = server.post_prompt(chain(5, fail=True), client.client_id).json()["prompt_id"]
    msgs = run_messages(client.until_done(pid), pid)
    assert "execution_success" not in types(msgs)
    err = next(m["data"] for m in msgs if m["type"] == "execution_error")
    assert err["node_id"] == "4" and err["node_type"] == "Fail"
    assert err["exception_type"] == "ValueError" and "toy failure" in err["exception_message"]
    assert isinstance(err["traceback"], list) and err["traceback"]
    assert set(err["executed"]) >= {"1", "2"} and "4" not in err["executed"]
    for key in ("current_outputs", "timestamp", "prompt_id"):
        assert key in err
    assert err["current_inputs"] == {"x": [10], "why": ["toy failure"]}  # ComfyUI's shape
    assert types(msgs)[-1] == "executing"
    hist = server.http.get(f"/history/{pid}").json()[pid]
    assert hist["status"]["status_str"] == "error" and hist["status"]["completed"] is False
    job = server.http.get(f"/jobs/{pid}").json()
    assert job["status"] == "failed"
    ok = server.post_prompt(chain(6, prefix="after"), client.client_id).json()["prompt_id"]
    assert "execution_success" in types(client.until_done(ok))


def test_interrupt_mid_run_stops_within_a_step(server, ws):
    client = ws()
    pid = server.post_prompt(chain(7, slow_steps=500, delay=0.02), client.client_id).json()[
        "prompt_id"
    ]
    while True:
        msg = client.recv()
        if msg["type"] == "progress" and msg["data"]["prompt_id"] == pid:
            break
    other = server.http.post("/interrupt", json={"prompt_id": "not-this-one"}).json()
    assert other == {"interrupted": False}
    assert server.http.post("/api/interrupt", json={"prompt_id": pid}).json() == {
        "interrupted": True
    }
    msgs = run_messages(client.until_done(pid, timeout=10), pid)
    kinds = types(msgs)
    assert "execution_interrupted" in kinds and "execution_success" not in kinds
    data = next(m["data"] for m in msgs if m["type"] == "execution_interrupted")
    assert data["node_id"] == "3" and data["node_type"] == "Slow"
    assert set(data["executed"]) == {"1", "2"}
    last_progress = [m["data"]["value"] for m in client.messages
                     if m["type"] == "progress" and m["data"]["prompt_id"] == pid]  # fmt: skip
    assert last_progress[-1] < 500
    hist = server.http.get(f"/history/{pid}").json()[pid]
    assert hist["status"]["status_str"] == "error" and hist["status"]["completed"] is False
    end = hist["status"]["messages"][-1]
    assert end[0] == "execution_interrupted"
    assert {"prompt_id", "node_id", "node_type", "executed", "timestamp"} <= set(end[1])
    assert server.http.get(f"/jobs/{pid}").json()["status"] == "cancelled"
    # What the editor's job list reads, as ComfyUI's /api/jobs gives an interrupted prompt:
    # among the finished ones, cancelled, with its end time and no execution_error (the
    # editor 1.58 draws a cancelled job as "Failed", as it does against ComfyUI's server).
    finished = server.http.get("/api/jobs", params={"status": "completed,failed,cancelled"})
    job = next(j for j in finished.json()["jobs"] if j["id"] == pid)
    assert job["status"] == "cancelled" and "execution_error" not in job
    assert job["execution_end_time"] >= job["execution_start_time"]


def test_two_clients_get_only_their_own_messages(server, ws):
    a, b = ws(), ws()
    ids = {}

    def submit(client, value):
        ids[client.client_id] = server.post_prompt(
            chain(value, slow_steps=3, prefix=f"two{value}"), client.client_id
        ).json()["prompt_id"]

    threads = [threading.Thread(target=submit, args=(c, v)) for c, v in ((a, 100), (b, 200))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for client in (a, b):
        mine = ids[client.client_id]
        msgs = client.until_done(mine)
        run = [m for m in msgs if m["type"] != "status"]
        assert {m["data"]["prompt_id"] for m in run} == {mine}
        assert "execution_success" in types(run)
    # Each saw the other's status broadcasts but never its run messages.
    other = {a.client_id: ids[b.client_id], b.client_id: ids[a.client_id]}
    for client in (a, b):
        assert not [
            m for m in client.messages if m["data"].get("prompt_id") == other[client.client_id]
        ]


def test_a_prompt_without_a_client_id_reaches_every_socket(server):
    """A ComfyUI script opens its websocket without a clientId, queues without a client_id and
    waits for `executing` null: ComfyUI sends such a prompt's messages to every socket (its
    send with no sid). Ours sent them to none (only `status`), so the script waited forever.
    Its previews go to every socket too, each framed as that client asked."""
    plain, editor = WsClient(server, anonymous=True), WsClient(server, anonymous=True)
    try:
        editor.send("feature_flags", {"supports_preview_metadata": True})
        while editor.recv()["type"] != "feature_flags":  # a status may come first
            pass
        prompt = chain(21)
        prompt["3"] = {"class_type": "Glimpse", "inputs": {"x": ["2", 0]}}
        prompt["9"]["inputs"]["x"] = ["3", 0]
        answer = server.http.post("/prompt", json={"prompt": prompt,
                                                   "extra_data": {"preview_method": "auto"}})  # fmt: skip
        pid = answer.json()["prompt_id"]
        for client in (plain, editor):
            msgs = run_messages(client.until_done(pid), pid)
            assert types(msgs)[0] == "execution_start" and "execution_success" in types(msgs)
            executing = [m["data"]["node"] for m in msgs if m["type"] == "executing"]
            assert executing == ["1", "2", "3", "9", None]
        [(plain_kind, _)] = [struct.unpack(">II", frame[:8]) for frame in plain.binary]
        [(editor_kind, _)] = [struct.unpack(">II", frame[:8]) for frame in editor.binary]
        assert (plain_kind, editor_kind) == (1, 4)  # ComfyUI's preview; with its metadata
    finally:
        plain.close()
        editor.close()


def test_queue_prompt_over_the_websocket(server, ws):
    client = ws()
    client.send("feature_flags", {"supports_preview_metadata": True})
    client.send("queue_prompt", {"prompt": chain(9, prefix="wsq")})
    flags = client.recv()
    while flags["type"] == "status":  # a broadcast left over from an earlier test may come first
        flags = client.recv()
    assert flags["type"] == "feature_flags" and flags["data"]["supports_preview_metadata"] is True
    queued = None
    while queued is None:
        msg = client.recv()
        if msg["type"] == "prompt_queued":
            queued = msg["data"]
    msgs = client.until_done(queued["prompt_id"])
    assert "execution_success" in types(msgs)
    client.send("queue_prompt", {"prompt": {"1": {"class_type": "Nope", "inputs": {}}}})
    while True:
        msg = client.recv()
        if msg["type"] == "prompt_error":
            assert msg["data"]["error"]["type"] == "missing_node_type"
            break


def test_status_on_connect_has_sid_and_broadcasts(server, ws):
    import json

    from websockets.sync.client import connect

    with connect(server.ws_url) as raw:
        first = json.loads(raw.recv(timeout=5))
        assert first["type"] == "status" and len(first["data"]["sid"]) >= 8
        assert first["data"]["status"]["exec_info"]["queue_remaining"] >= 0
        watcher = ws()
        pid = server.post_prompt(chain(13, prefix="bc"), watcher.client_id).json()["prompt_id"]
        watcher.until_done(pid)
        seen = []
        while True:
            msg = json.loads(raw.recv(timeout=5))
            seen.append(msg)
            if (
                msg["type"] == "status"
                and msg["data"]["status"]["exec_info"]["queue_remaining"] == 0
            ):
                break
        assert all(m["type"] == "status" for m in seen)


def test_a_finished_prompts_id_given_again_runs_and_replaces_its_history(server, ws):
    """ComfyUI queues a prompt under an id used before (a client retrying a job under its own
    key), the new history entry replacing the old; ours refused it with a 400."""
    client = ws()
    first = server.post_prompt(chain(31, prefix="again"), client.client_id, prompt_id="job-31")
    assert first.json()["prompt_id"] == "job-31"
    client.until_done("job-31")
    second = server.post_prompt(chain(32, prefix="again"), client.client_id, prompt_id="job-31")
    assert second.status_code == 200, second.text
    assert second.json()["prompt_id"] == "job-31"
    assert "execution_success" in types(run_messages(client.until_done("job-31"), "job-31"))
    entry = server.http.get("/history/job-31").json()["job-31"]
    assert entry["prompt"][2]["1"]["inputs"]["value"] == 32
    assert entry["outputs"]["9"]["images"][0]["filename"] == "again_64.png"
    jobs = server.http.get("/api/jobs", params={"limit": 1000}).json()["jobs"]
    assert [job["id"] for job in jobs].count("job-31") == 1


def test_the_id_of_a_prompt_still_queued_or_running_is_refused_in_comfyuis_shape(server, ws):
    """Two prompts of one id in the queue could not be told apart (/queue deletes, /interrupt,
    their messages): the second is refused, with the `node_errors` ComfyUI's refusals carry
    (ours had none: a client reading it raised KeyError). The first runs on untouched."""
    client = ws()
    busy = server.post_prompt(chain(33, slow_steps=400, delay=0.05), client.client_id,
                              prompt_id="job-33")  # fmt: skip
    assert busy.status_code == 200, busy.text
    client.until("progress", "job-33")  # running
    again = server.post_prompt(chain(34), client.client_id, prompt_id="job-33")
    assert again.status_code == 400
    body = again.json()
    assert body == {"error": {"type": "invalid_prompt", "message": body["error"]["message"],
                              "details": "", "extra_info": {}}, "node_errors": {}}  # fmt: skip
    assert body["error"]["message"].startswith(
        "prompt_id 'job-33' is the id of a prompt queued or running; it can be used again once "
        "that prompt has finished")  # fmt: skip
    assert server.http.post("/interrupt", json={"prompt_id": "job-33"}).json()["interrupted"]
    msgs = run_messages(client.until_done("job-33"), "job-33")
    assert "execution_interrupted" in types(msgs)
    assert server.http.get("/history/job-33").json()["job-33"]["prompt"][2]["1"]["inputs"] == {
        "value": 33}  # fmt: skip
