"""Server under load: 50 websocket clients, 100 tiny prompts queued at once.

Checks that every client receives the latest `status` (the server coalesces a burst of queue
changes into its first and latest value, at most one per 50 ms) and every submitter its full
message sequence, and reports the time from POST /prompt to `execution_start` and to the final
`executing` (node: null) message.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import tempfile
import threading
import time

from bench._common import row as _row

CLIENTS = 50
PROMPTS = 100


def _registry():
    from latentgraph.graph import Int, NodeResult, Output, Registry, Socket, node

    reg = Registry()

    @node("BenchNumber", inputs=[Int("value", 0)], outputs=[Output("n", "NUM")], registry=reg)
    def number(ctx, value):
        return value

    @node("BenchOut", inputs=[Socket("x", "NUM")], output_node=True, registry=reg)
    def out(ctx, x):
        return NodeResult((), ui={"text": [str(x)]})

    return reg


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prompt(i: int) -> dict:
    return {"1": {"class_type": "BenchNumber", "inputs": {"value": i}},
            "2": {"class_type": "BenchOut", "inputs": {"x": ["1", 0]}}}  # fmt: skip


async def _drive(base: str, ws_base: str, clients: int, prompts: int) -> dict:
    import httpx
    from websockets.asyncio.client import connect

    sockets = [await connect(f"{ws_base}?clientId=c{i}", max_queue=None) for i in range(clients)]
    received: list[list[tuple[float, dict]]] = [[] for _ in range(clients)]
    done = asyncio.Event()
    finals: dict[str, float] = {}
    final_times: dict[str, float] = {}
    starts: dict[str, float] = {}
    owner: dict[str, int] = {}

    async def reader(i: int) -> None:
        async for raw in sockets[i]:
            msg = json.loads(raw)
            now = time.perf_counter()
            received[i].append((now, msg))
            pid = msg["data"].get("prompt_id")
            if msg["type"] == "execution_start":
                starts[pid] = now
            if msg["type"] == "executing" and msg["data"]["node"] is None:
                finals[pid] = now
                final_times[pid] = now
                if len(finals) == prompts:
                    done.set()

    tasks = [asyncio.create_task(reader(i)) for i in range(clients)]
    posted: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:

        async def post(k: int) -> None:
            t = time.perf_counter()
            r = await http.post(
                "/prompt", json={"prompt": _prompt(k), "client_id": f"c{k % clients}"}
            )
            pid = r.json()["prompt_id"]
            posted[pid] = t
            owner[pid] = k % clients

        t0 = time.perf_counter()
        await asyncio.gather(*(post(k) for k in range(prompts)))
        await asyncio.wait_for(done.wait(), 120)
        total = time.perf_counter() - t0
        # One prompt on the now idle server: the latency without queueing.
        done.clear()
        finals.clear()
        t = time.perf_counter()
        r = await http.post("/prompt", json={"prompt": _prompt(10**6), "client_id": "c0"})
        idle_pid = r.json()["prompt_id"]
        while idle_pid not in finals:
            await asyncio.sleep(0.001)
        idle_start, idle_final = starts[idle_pid] - t, finals[idle_pid] - t
    await asyncio.sleep(0.5)  # let the last status broadcasts land
    for s in sockets:
        await s.close()
    for t in tasks:
        t.cancel()
    statuses = [sum(1 for _, m in r if m["type"] == "status") for r in received]
    last = [[m for _, m in r if m["type"] == "status"][-1:] for r in received]
    latest = sum(
        1 for m in last if m and m[0]["data"]["status"]["exec_info"]["queue_remaining"] == 0
    )
    complete = 0
    for pid, i in owner.items():
        kinds = [m["type"] for _, m in received[i] if m["data"].get("prompt_id") == pid]
        if kinds[:1] == ["execution_start"] and kinds[-2:] == ["execution_success", "executing"]:
            complete += 1
    to_start = [starts[p] - posted[p] for p in posted]
    to_final = [final_times[p] - posted[p] for p in posted]
    return {
        "clients": clients,
        "prompts": prompts,
        "total_s": total,
        "full_sequences": complete,
        "status_min": min(statuses),
        "status_max": max(statuses),
        "status_changes": 1 + 2 * (prompts + 1),  # connect + each queue change, uncoalesced
        "latest_status_clients": latest,
        "to_start_ms_p50": statistics.median(to_start) * 1000,
        "to_start_ms_max": max(to_start) * 1000,
        "to_final_ms_p50": statistics.median(to_final) * 1000,
        "to_final_ms_max": max(to_final) * 1000,
        "idle_to_start_ms": idle_start * 1000,
        "idle_to_final_ms": idle_final * 1000,
    }


def run(quick: bool) -> list[dict]:
    import uvicorn

    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.workers import WorkerSetup

    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(data_dir=tmp, port=_port(), disk_cache=False, load_nodes=False,
                              editor=False, client_queue_size=1024)  # fmt: skip
        app = create_app(config, workers=WorkerSetup(registry=_registry))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port,
                                               ws="websockets", log_level="warning"))  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            n_clients, n_prompts = (10, 20) if quick else (CLIENTS, PROMPTS)
            row = asyncio.run(_drive(f"http://127.0.0.1:{config.port}",
                                     f"ws://127.0.0.1:{config.port}/ws", n_clients, n_prompts))  # fmt: skip
        finally:
            server.should_exit = True
            thread.join(15)
    d = row
    complete = d["full_sequences"] == d["prompts"]
    statuses = d["latest_status_clients"] == d["clients"]
    case = f"{d['clients']} ws clients, {d['prompts']} prompts"
    return [
        {**_row("server", f"{case}: complete message sequences", d["full_sequences"], "prompts",
                f"= {d['prompts']}", complete, f"status messages per client {d['status_min']}-"
                f"{d['status_max']} for {d['status_changes']} queue changes (coalesced)"), **d},
        _row("server", f"{case}: POST to final message, p50", round(d["to_final_ms_p50"], 1),
             "ms", note=f"max {d['to_final_ms_max']:.0f} ms; to execution_start p50 "
             f"{d['to_start_ms_p50']:.1f} ms; idle queue {d['idle_to_final_ms']:.1f} ms"),
        _row("server", f"{case}: latest status delivered", f"{d['latest_status_clients']}",
             "clients", f"= {d['clients']}", statuses, f"queue_remaining 0 last; total "
             f"{d['total_s']:.2f} s"),
    ]  # fmt: skip


if __name__ == "__main__":
    for r in run(quick=False):
        print(json.dumps(r, indent=2))
