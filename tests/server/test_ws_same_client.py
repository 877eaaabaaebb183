"""Two websockets with one clientId over a real server: the editor reconnects reusing its id,
so the older socket is left open (no close frame) and the newest gets the prompt's messages,
also after the older one closes."""

from __future__ import annotations

from .conftest import WsClient, chain


def test_a_second_socket_with_the_same_client_id_leaves_the_first_open(server):
    first = WsClient(server, "shared-id")
    second = WsClient(server, "shared-id")
    try:
        prompt_id = server.post_prompt(chain(2), "shared-id").json()["prompt_id"]
        done = second.until_done(prompt_id)
        assert any(m["type"] == "execution_success" for m in done)
        first.ws.ping().wait(5)  # still open: a closed socket raises here
        while True:  # the first got broadcasts only (status), none of the prompt's messages
            try:
                msg = first.recv(0.3)
            except TimeoutError:
                break
            assert msg["type"] == "status", msg

        first.close()  # closing the older one later does not unregister the newer one
        prompt_id = server.post_prompt(chain(3), "shared-id").json()["prompt_id"]
        assert any(m["type"] == "execution_success" for m in second.until_done(prompt_id))
    finally:
        second.close()


def test_a_client_reconnecting_during_its_run_is_told_the_node_running_now(server):
    """ComfyUI tells a socket reconnecting with the clientId of the running prompt which node
    runs, right after `status`: a reloaded editor marks it again at once (a model load or a
    VAE decode sends nothing more till it ends). No other socket is told."""
    first = WsClient(server, "reconnecting-id")
    pid = server.post_prompt(chain(4, slow_steps=500, delay=0.02), "reconnecting-id").json()[
        "prompt_id"
    ]
    try:
        first.until("progress", pid)  # node 3 (Slow) is running
        first.close()
        again = WsClient(server, "reconnecting-id")  # its first message, status, is read
        observer = WsClient(server, "someone-else")
    finally:
        server.http.post("/interrupt", json={"prompt_id": pid})
    try:
        assert again.recv() == {"type": "executing", "data": {
            "node": "3", "display_node": "3", "prompt_id": pid}}  # fmt: skip
        again.until_done(pid)
        while True:  # the other client got status only
            try:
                msg = observer.recv(0.3)
            except TimeoutError:
                break
            assert msg["type"] == "status", msg
    finally:
        again.close()
        observer.close()
