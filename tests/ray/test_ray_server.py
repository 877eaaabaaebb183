"""The server on Ray actors (a local runtime, two CPU actors running the real tiny model):
prompts from several clients, an actor killed mid-denoise, model affinity."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter

import pytest

from tests.server.conftest import RunningServer, WsClient, free_port
from tests.server.test_workers import tiny_prompt


@pytest.fixture(scope="module")
def ray_server(ray_runtime, tiny_folder, tmp_path_factory):
    from latentgraph.server.config import ServerConfig
    from latentgraph.wiring import worker_setup

    config = ServerConfig(data_dir=tmp_path_factory.mktemp("ray-server"), port=free_port(),
                          ray="local", ray_workers=2, editor=False)  # fmt: skip
    running = RunningServer(config, worker_setup()).start()
    dispatcher = running.app.state.lg.dispatcher
    deadline = time.monotonic() + 180
    while not all(dispatcher.worker_pids()):  # both actors imported torch and said Ready
        assert time.monotonic() < deadline, dispatcher.worker_pids()
        time.sleep(0.1)
    yield running
    running.stop()


def _post(server: RunningServer, prompt: dict, client: WsClient) -> str:
    answer = server.post_prompt(prompt, client.client_id)
    assert answer.status_code == 200, answer.text
    return answer.json()["prompt_id"]


def _run_messages(client: WsClient, prompt_ids: set[str], timeout: float = 240,
                  already: list[dict] = ()) -> dict:  # fmt: skip
    """Each prompt's messages (`already` read, then more), until every one of them ended."""
    by_prompt: dict[str, list[dict]] = {p: [] for p in prompt_ids}
    ended: set[str] = set()
    deadline = time.monotonic() + timeout
    pending = list(already)
    while ended != prompt_ids:
        msg = pending.pop(0) if pending else client.recv(max(0.1, deadline - time.monotonic()))
        data = msg.get("data")
        if not isinstance(data, dict) or "prompt_id" not in data:
            continue  # status broadcasts, binary previews
        assert data["prompt_id"] in prompt_ids, f"another client's message: {msg}"
        by_prompt[data["prompt_id"]].append(msg)
        if msg["type"] == "executing" and data["node"] is None:
            ended.add(data["prompt_id"])
    return by_prompt


def test_eight_prompts_from_two_clients_all_complete_each_client_hears_only_its_own(ray_server):
    clients = [WsClient(ray_server), WsClient(ray_server)]
    try:
        ids = [set(), set()]
        for seed in range(8):  # interleaved: the clients' prompts share the queue
            owner = seed % 2
            prompt = tiny_prompt(1000 + seed, prefix=f"ray-{owner}")
            ids[owner].add(_post(ray_server, prompt, clients[owner]))
        for client, mine in zip(clients, ids, strict=True):
            for prompt_id, messages in _run_messages(client, mine).items():
                kinds = [m["type"] for m in messages]
                assert kinds[0] == "execution_start" and kinds[-1] == "executing", kinds
                assert "execution_success" in kinds and "execution_error" not in kinds
                executed = [m["data"]["node"] for m in messages if m["type"] == "executing"]
                assert executed[-1] is None and "9" in executed
                entry = ray_server.http.get(f"/history/{prompt_id}").json()[prompt_id]
                assert entry["status"]["status_str"] == "success"
        for owner in (0, 1):  # made in the actors, saved in the server's output folder
            assert len(list(ray_server.config.output_dir.glob(f"ray-{owner}_*.png"))) == 4
        # both actors ran prompts and report the model they hold (model affinity's input)
        resident = ray_server.app.state.lg.dispatcher.resident()
        assert len(resident) == 2 and all(resident), resident
    finally:
        for client in clients:
            client.close()


def test_an_actor_killed_mid_denoise_is_restarted_and_every_prompt_completes(ray_server):
    """SIGKILL of the actor's process during a 400-step denoise: Ray restarts the actor, the
    prompt goes back to the queue and completes; the nodes it had finished are cache hits
    (executed once), only the interrupted sampler runs again."""
    dispatcher = ray_server.app.state.lg.dispatcher
    client = WsClient(ray_server)
    try:
        word = uuid.uuid4().hex[:8]  # nothing of this prompt is cached yet
        killed = tiny_prompt(7, size=72, prefix="ray-killed")  # a latent size of its own
        killed["6"]["inputs"]["text"] = f"a fox {word}"
        killed["7"]["inputs"]["steps"] = 400
        killed_id = _post(ray_server, killed, client)
        others = {_post(ray_server, tiny_prompt(2000 + i, prefix="ray-after"), client)
                  for i in range(3)}  # fmt: skip
        seen = []
        while True:  # until the sampler has made progress
            msg = client.recv(120)
            seen.append(msg)
            if msg["type"] == "progress" and msg["data"]["prompt_id"] == killed_id:
                break
        worker = dispatcher.worker_of(killed_id)
        pid = dispatcher.worker_pids()[worker]
        os.kill(pid, signal.SIGKILL)
        runs = _run_messages(client, {killed_id, *others}, already=seen)
        messages = runs[killed_id]
        kinds = [m["type"] for m in messages]
        assert "execution_error" not in kinds and "execution_success" in kinds, kinds
        assert kinds.count("execution_start") == 2  # the first attempt and the re-dispatch
        executed = Counter(m["data"]["node"] for m in messages if m["type"] == "executing")
        # 5 (empty latent) and 6 (text encode) ran once: the second attempt found them cached
        assert executed["5"] == 1 and executed["6"] == 1, executed
        assert executed["7"] == 2 and executed["8"] == 1 and executed["9"] == 1, executed
        retry_cached = [m["data"]["nodes"] for m in messages if m["type"] == "execution_cached"]
        assert len(retry_cached) == 2 and {"5", "6"} <= set(retry_cached[1]), retry_cached
        for prompt_id in (killed_id, *others):
            entry = ray_server.http.get(f"/history/{prompt_id}").json()[prompt_id]
            assert entry["status"]["status_str"] == "success"
        deadline = time.monotonic() + 120
        while not (all(dispatcher.worker_pids()) and pid not in dispatcher.worker_pids()):
            assert time.monotonic() < deadline, dispatcher.worker_pids()
            time.sleep(0.1)  # the restarted actor is a new process, and ready
        assert len(list(ray_server.config.output_dir.glob("ray-killed_*.png"))) == 1
    finally:
        client.close()
