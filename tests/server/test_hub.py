"""Status messages are coalesced: the first goes out at once, a burst ends with its latest."""

from __future__ import annotations

import asyncio
import json
import threading

from latentgraph.server import hub as hub_mod


def _status(n: int) -> dict:
    return {"status": {"exec_info": {"queue_remaining": n}}}


def test_status_burst_sends_first_and_latest_only_and_keeps_run_message_order():
    async def scenario() -> list[dict]:
        hub = hub_mod.Hub()
        hub.bind(asyncio.get_running_loop())
        client = hub.connect(websocket=None, sid="a")

        def worker() -> None:  # the worker thread: 100 queue changes, then a run message
            for n in range(100):
                hub.broadcast("status", _status(n))
            hub.send("a", "executing", {"node": None, "prompt_id": "p"})

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        await asyncio.sleep(0)  # the hops run: the first status goes out, the rest wait
        assert len(client.outbox) == 2 and hub._status_timer is not None
        for _ in range(500):  # the held status is sent, then the hub is quiet again
            if hub._status_timer is None:
                break
            await asyncio.sleep(0.01)
        assert hub._status_timer is None
        hub.broadcast("status", _status(7))  # quiet again: sent at once
        await asyncio.sleep(0)
        out = []
        while client.outbox:
            out.append(json.loads(client.outbox.popleft()))
        return out

    msgs = asyncio.run(scenario())
    kinds = [(m["type"], m["data"].get("status", {}).get("exec_info", {}).get("queue_remaining"))
             for m in msgs]  # fmt: skip
    assert kinds == [("status", 0), ("executing", None), ("status", 99), ("status", 7)]
