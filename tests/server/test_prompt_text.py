"""The server holds a prompt as its JSON text, never as parsed objects: queued, running or in
recent history, a large prompt is one string the cyclic collector never walks (its full passes
hold the GIL, so every request would wait for them). Answers embed that text as it is."""

from __future__ import annotations

import gc
import json
import time
import uuid

from .conftest import chain


def _dicts_holding(marker: str) -> int:
    """GC-tracked dicts of this process (the server's) whose `prefix` input is `marker`."""
    return sum(1 for o in gc.get_objects() if type(o) is dict and o.get("prefix") == marker)


def _outputs_holding(marker: str) -> int:
    """GC-tracked output dicts ({"images": [...]}) of this process naming a `marker` file."""
    return sum(1 for o in gc.get_objects() if type(o) is dict and any(
        isinstance(i, dict) and str(i.get("filename", "")).startswith(marker)
        for i in o.get("images") or []))  # fmt: skip


def test_a_prompt_is_kept_as_text_from_its_post_to_its_history(server, ws):
    marker = f"text-{uuid.uuid4().hex}"
    client = ws()
    prompt = chain(7, slow_steps=3, prefix=marker)
    body = json.dumps({"prompt": prompt, "client_id": client.client_id}).encode()
    del prompt  # this test's own copy: what is left in the process is the server's
    r = server.http.post("/prompt", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    pid = r.json()["prompt_id"]
    assert _dicts_holding(marker) == 0  # queued (or running): text only
    client.until_done(pid)
    client.messages.clear()  # this test's own copies of the run's messages
    assert _dicts_holding(marker) == 0  # finished, in recent history: text only
    # The outputs too: text, and what /jobs shows of them. (The worker's parsed copy lives
    # until the dispatcher has handled its end, just after the final message went out.)
    deadline = time.monotonic() + 10
    while _outputs_holding(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _outputs_holding(marker) == 0

    entry = server.http.get(f"/history/{pid}").json()[pid]
    assert entry["prompt"][2]["9"]["inputs"]["prefix"] == marker
    assert entry["prompt"][2]["3"]["inputs"] == {"x": ["2", 0], "steps": 3, "delay": 0.01}
    assert entry["outputs"] == {"9": {"images": [
        {"filename": f"{marker}_14.png", "subfolder": "", "type": "output"}]}}  # fmt: skip
    assert entry["meta"]["9"]["node_id"] == "9"
    job = server.http.get(f"/jobs/{pid}").json()
    assert job["workflow"]["prompt"]["9"]["inputs"]["prefix"] == marker
    assert job["execution_status"]["completed"] is True
    assert job["outputs"] == entry["outputs"]
    assert (job["outputs_count"], job["previewable_outputs_count"]) == (1, 1)
    assert job["preview_output"] == {"filename": f"{marker}_14.png", "subfolder": "",
                                     "type": "output", "nodeId": "9", "mediaType": "images"}  # fmt: skip


def test_a_prompt_is_stored_as_the_text_it_came_as(server, ws):
    client = ws()
    prompt = chain(3, slow_steps=2, prefix="as sent")
    text = json.dumps({"client_id": client.client_id, "prompt": prompt}, indent=1)
    r = server.http.post("/prompt", content=text.encode(),
                         headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 200, r.text
    pid = r.json()["prompt_id"]
    stored = server.app.state.lg.store.get(pid).prompt_json
    start = text.index("{", text.index('"prompt"'))
    assert stored == text[start : start + len(stored)]  # as sent, indentation and all
    assert json.loads(stored) == prompt
    client.until_done(pid)
    assert server.http.get(f"/history/{pid}").json()[pid]["prompt"][2] == prompt
