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
