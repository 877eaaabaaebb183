"""Load and soak: many websocket clients, many queued prompts, nothing lost or misrouted.

`load`: N websocket clients connect, P prompts are queued at once (client k % N owns prompt
k). Every run message carrying a prompt_id must reach its owner and nobody else, and every
owner must see the full sequence (execution_start ... execution_success, executing null).
Meanwhile a poller on its own connection (another user, as the editor would be) times what
ComfyUI clients call, GET /queue and GET /history?max_items=64, every 50 ms, and the server's
RSS is sampled. Full size: 50 clients, 200 prompts on the built-in tiny model (64x64, 2
steps); quick: toy nodes, 10 clients, 30 prompts.

The server (uvicorn in a thread, the worker running torch) is this process; the clients run
in a child process, as real clients would: in the same process their websocket and JSON
work competed with the server for the GIL and was counted in the server's latency.

`soak`: 1,000 tiny (toy-node) prompts one after another through the same server; RSS after a
warm-up of 100 and at the end, against a stated bound (SOAK_RSS_BOUND_MB).

Run: `python -m bench --only load` (add --quick for the short variant).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CLIENTS, PROMPTS, SOAK = 50, 200, 1000
SOAK_RSS_BOUND_MB = 50.0  # growth allowed between prompt 100 and prompt 1,000
LATENCY_BOUND_MS = 100.0
RUN_TYPES = {"execution_start", "execution_cached", "executing", "progress", "progress_state",
             "executed", "execution_success", "execution_error", "execution_interrupted"}  # fmt: skip


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def toy_registry():
    from latentgraph.graph import Int, NodeResult, Output, Registry, Socket, node

    reg = Registry()

    @node("LoadNumber", inputs=[Int("value", 0)], outputs=[Output("n", "NUM")], registry=reg)
    def number(ctx, value):
        return value

    @node("LoadOut", inputs=[Socket("x", "NUM")], output_node=True, registry=reg)
    def out(ctx, x):
        ctx.progress(1, 1)
        return NodeResult((), ui={"text": [str(x)]})

    return reg


def tiny_registry():
    """The real node types, in a registry of their own."""
    import latentgraph.nodes  # noqa: F401 - the real node types
    from latentgraph.graph import Registry
    from latentgraph.graph.declare import default_registry

    registry = Registry()
    for node_type in default_registry:
        registry.add(node_type)
    return registry


def toy_prompt(i: int) -> dict:
    return {"1": {"class_type": "LoadNumber", "inputs": {"value": i}},
            "2": {"class_type": "LoadOut", "inputs": {"x": ["1", 0]}}}  # fmt: skip


def tiny_prompt(i: int) -> dict:
    """The classic graph on the built-in tiny model; seed i makes every prompt run its sampler."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64,
                                                           "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": i, "steps": 2,
              "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "positive": ["6", 0],
              "negative": ["6", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0],
                                                    "filename_prefix": "load"}},
    }  # fmt: skip


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a thread on a free port, over a temporary data dir; `build_registry` is how
    its worker processes (`workers` of them) build their nodes; `config`: more ServerConfig
    fields (e.g. `ray="local", ray_workers=2`)."""

    def __init__(self, build_registry: Any, data_dir: str, workers: int = 1,
                 **config: Any) -> None:  # fmt: skip
        import uvicorn

        from latentgraph.server.app import create_app
        from latentgraph.server.config import ServerConfig
        from latentgraph.server.run import uvicorn_options
        from latentgraph.server.workers import WorkerSetup

        self.config = ServerConfig(data_dir=data_dir, port=_port(), disk_cache=False,
                                   load_nodes=False, editor=False,
                                   max_queue=10_000, workers=workers, **config)  # fmt: skip
        app = create_app(self.config, workers=WorkerSetup(registry=build_registry))
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.config.port,
                                                    log_level="warning",
                                                    **uvicorn_options(self.config)))  # fmt: skip
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = f"http://127.0.0.1:{self.config.port}"
        self.ws = f"ws://127.0.0.1:{self.config.port}/ws"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@dataclass
class LoadResult:
    clients: int
    prompts: int
    seconds: float = 0.0
    complete: int = 0  # owners that saw the full sequence
    lost: int = 0  # prompts whose owner missed part of the sequence
    misrouted: int = 0  # run messages delivered to a socket that does not own the prompt
    failed: int = 0  # prompts that did not end in execution_success
    queue_ms: list[float] = field(default_factory=list)
    history_ms: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    poll_at: list[float] = field(default_factory=list)  # seconds since the first POST
    t0: float = 0.0  # time.monotonic() of the first POST
    t_end: float = 0.0  # time.monotonic() when every prompt had ended

    def row(self, case: str) -> dict[str, Any]:
        def p(values: list[float], q: float) -> float:
            return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else 0.0

        return {
            "suite": "load", "case": case, "clients": self.clients, "prompts": self.prompts,
            "seconds": self.seconds, "complete": self.complete, "lost": self.lost,
            "misrouted": self.misrouted, "failed": self.failed,
            "queue_ms_p50": statistics.median(self.queue_ms) if self.queue_ms else 0.0,
            "queue_ms_p99": p(self.queue_ms, 0.99),
            "queue_ms_max": max(self.queue_ms, default=0.0),
            "history_ms_p99": p(self.history_ms, 0.99),
            "history_ms_max": max(self.history_ms, default=0.0),
            "polls": len(self.queue_ms),
            "polls_over_100ms": sum(1 for q, h in zip(self.queue_ms, self.history_ms, strict=True)
                                    if max(q, h) >= LATENCY_BOUND_MS),
            "first_slow_poll_s": next((round(t, 1) for t, q, h in zip(self.poll_at, self.queue_ms,
                                       self.history_ms, strict=True)
                                       if max(q, h) >= LATENCY_BOUND_MS), None),
            "last_slow_poll_s": next((round(t, 1) for t, q, h in reversed(list(zip(
                self.poll_at, self.queue_ms, self.history_ms, strict=True)))
                if max(q, h) >= LATENCY_BOUND_MS), None),
            "rss_mb_start": self.rss_mb[0] if self.rss_mb else 0.0,
            "rss_mb_max": max(self.rss_mb, default=0.0),
            "ok": self.lost == 0 and self.misrouted == 0 and self.failed == 0
            and self.complete == self.prompts,
        }  # fmt: skip


async def poll(base: str, stop: asyncio.Event, server_pid: int | str = "self",
               ready: Any = None) -> list[list[float]]:  # fmt: skip
    """Every 50 ms until `stop`: [time.monotonic(), /queue ms, /history?max_items=64 ms, RSS];
    `ready()` called once the first poll is answered."""
    import httpx

    samples: list[list[float]] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        while not stop.is_set():
            start = time.monotonic()
            t = time.perf_counter()
            assert (await http.get("/queue")).status_code == 200
            queue_ms = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            r = await http.get("/history", params={"max_items": 64})
            assert r.status_code == 200
            history_ms = (time.perf_counter() - t) * 1000
            samples.append([start, queue_ms, history_ms, rss_mb(server_pid)])
            if ready is not None and len(samples) == 1:
                ready()
            await asyncio.sleep(0.05)
    return samples


def _take_polls(result: LoadResult, samples: list[list[float]], t0: float, t_end: float) -> None:
    """Keep the polls that started between the first POST and the last prompt's end."""
    for at, queue_ms, history_ms, rss in samples:
        if t0 <= at <= t_end:
            result.poll_at.append(at - t0)
            result.queue_ms.append(queue_ms)
            result.history_ms.append(history_ms)
            result.rss_mb.append(rss)


async def drive(base: str, ws_base: str, clients: int, prompts: int, make_prompt,
                timeout: float = 1800, poll_here: bool = True) -> LoadResult:  # fmt: skip
    """Connect `clients` sockets, queue `prompts` at once, check delivery; with `poll_here`,
    also time the polls (in this event loop, on their own connection)."""
    import httpx
    from websockets.asyncio.client import connect

    result = LoadResult(clients, prompts)
    sockets = [await connect(f"{ws_base}?clientId=load{i}", max_queue=None)
               for i in range(clients)]  # fmt: skip
    received: list[list[dict]] = [[] for _ in range(clients)]
    finished: set[str] = set()
    all_done = asyncio.Event()
    owner: dict[str, int] = {}

    async def reader(i: int) -> None:
        async for raw in sockets[i]:
            if isinstance(raw, bytes):
                continue
            msg = json.loads(raw)
            received[i].append(msg)
            pid = (msg.get("data") or {}).get("prompt_id")
            if msg["type"] == "executing" and msg["data"].get("node") is None and pid:
                finished.add(pid)
                if len(finished) >= prompts:
                    all_done.set()

    readers = [asyncio.create_task(reader(i)) for i in range(clients)]
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        stop = asyncio.Event()
        result.t0 = time.monotonic()
        poller = asyncio.create_task(poll(base, stop)) if poll_here else None

        async def post(k: int) -> None:
            r = await http.post("/prompt", json={"prompt": make_prompt(k),
                                                 "client_id": f"load{k % clients}"})  # fmt: skip
            r.raise_for_status()
            owner[r.json()["prompt_id"]] = k % clients

        await asyncio.gather(*(post(k) for k in range(prompts)))
        await asyncio.wait_for(all_done.wait(), timeout)
        result.t_end = time.monotonic()
        result.seconds = result.t_end - result.t0
        stop.set()
        if poller is not None:
            _take_polls(result, await poller, result.t0, result.t_end)
    await asyncio.sleep(0.3)  # late messages (there should be none) still get counted
    for s in sockets:
        await s.close()
    for t in readers:
        t.cancel()
    for i, msgs in enumerate(received):
        for m in msgs:
            pid = (m.get("data") or {}).get("prompt_id")
            if m["type"] in RUN_TYPES and pid in owner and owner[pid] != i:
                result.misrouted += 1
    for pid, i in owner.items():
        kinds = [m["type"] for m in received[i] if (m.get("data") or {}).get("prompt_id") == pid]
        if kinds[:1] == ["execution_start"] and kinds[-1:] == ["executing"]:
            if "execution_success" in kinds:
                result.complete += 1
            else:
                result.failed += 1
        else:
            result.lost += 1
    return result


def drive_in_children(base: str, ws_base: str, clients: int, prompts: int,
                      kind: str) -> LoadResult:  # fmt: skip
    """The clients in one child process, the poller in another (a separate user: in the
    clients' event loop its requests waited behind the 200 POSTs being sent); this process
    is the server alone."""
    from bench._common import ROOT

    me = [sys.executable, "-m", "bench.load"]
    poller = subprocess.Popen([*me, "--poll", base, str(os.getpid())], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        # the clients start once the poller polls: a quick run (30 toy prompts) used to end
        # while the poller was still starting, and its rows said "yes" of 0 polls
        assert poller.stdout is not None and poller.stdout.readline() == "polling\n"
        args = [*me, "--drive", base, ws_base, str(clients), str(prompts), kind]
        out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    finally:
        polled, _ = poller.communicate("", timeout=60)  # stdin closed: the poller stops
    result = LoadResult(**json.loads(out.strip().splitlines()[-1]))
    _take_polls(result, json.loads(polled.strip().splitlines()[-1]), result.t0, result.t_end)
    return result


async def _poll_until_stdin_closes(base: str, server_pid: int) -> list[list[float]]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)),
                     daemon=True).start()  # fmt: skip
    return await poll(base, stop, server_pid, ready=lambda: print("polling", flush=True))


def load(quick: bool, separate: bool = True) -> dict[str, Any]:
    """`separate=False` runs the clients in this process (how the bench first measured)."""
    clients, prompts = (10, 30) if quick else (CLIENTS, PROMPTS)
    if quick:
        registry, make = toy_registry, toy_prompt
    else:
        from latentgraph.nodes.tiny_model import ensure_tiny_sd

        registry, make = tiny_registry, tiny_prompt
        # Write the tiny model's files first, as a real model's files exist before a server
        # starts; generating them (a one-off of this bench) would otherwise fall in the run.
        # Loading the model is still part of the run.
        ensure_tiny_sd()
    kind = "toy" if quick else "tiny-model"
    with tempfile.TemporaryDirectory() as tmp, Server(registry, tmp) as srv:
        if separate:
            result = drive_in_children(srv.base, srv.ws, clients, prompts, kind)
        else:
            result = asyncio.run(drive(srv.base, srv.ws, clients, prompts, make))
    row = result.row(kind)
    row["clients_process"] = "child" if separate else "server's"
    row["latency_ok"] = row["queue_ms_max"] < LATENCY_BOUND_MS and \
        row["history_ms_max"] < LATENCY_BOUND_MS  # fmt: skip
    return row


def soak(count: int) -> dict[str, Any]:
    import httpx

    warm = min(100, count // 10)
    with tempfile.TemporaryDirectory() as tmp, Server(toy_registry, tmp) as srv:
        http = httpx.Client(base_url=srv.base, timeout=60)
        t0 = time.perf_counter()
        start_rss = 0.0
        last = ""
        for k in range(count):
            if k == warm:
                start_rss = rss_mb()
            last = http.post("/prompt", json={"prompt": toy_prompt(k)}).json()["prompt_id"]
            if k % 50 == 49:  # keep the queue short, like a steady stream of users
                while http.get(f"/history/{last}").json() == {}:
                    time.sleep(0.005)
        while http.get(f"/history/{last}").json() == {}:
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
        end_rss = rss_mb()
        history = len(http.get("/history").json())
        http.close()
    growth = end_rss - start_rss
    return {"suite": "load", "case": "soak", "prompts": count, "seconds": seconds,
            "history": history, "rss_mb_start": start_rss, "rss_mb_end": end_rss,
            "rss_growth_mb": growth, "rss_bound_mb": SOAK_RSS_BOUND_MB,
            "ok": history == count and growth < SOAK_RSS_BOUND_MB}  # fmt: skip


def rows(load_row: dict[str, Any], soak_row: dict[str, Any]) -> list[dict[str, Any]]:
    """The standard bench rows (bench/_common.row); the full measurements ride along in JSON."""
    from bench._common import row

    lr, sr = load_row, soak_row
    case = f"{lr['clients']} clients x {lr['prompts']} prompts ({lr['case']})"
    polled = [
        row("load", "GET /queue p99 under load", round(lr["queue_ms_p99"], 1), "ms", "< 100 ms",
            lr["queue_ms_p99"] < LATENCY_BOUND_MS, f"p50 {lr['queue_ms_p50']:.1f}, max "
            f"{lr['queue_ms_max']:.0f}; {lr['polls_over_100ms']} of {lr['polls']} polls >= 100"),
        row("load", "GET /history p99 under load", round(lr["history_ms_p99"], 1), "ms",
            "< 100 ms", lr["history_ms_p99"] < LATENCY_BOUND_MS,
            f"max {lr['history_ms_max']:.0f}"),
        row("load", "RSS max under load", round(lr["rss_mb_max"]), "MB", "", None,
            f"start {lr['rss_mb_start']:.0f} MB, server process; clients: {lr['clients_process']}"),
    ]  # fmt: skip
    if not lr["polls"]:  # a 0 of 0 polls is no measurement, and meets no bound
        polled = [unmeasured(r, f"no samples: no poll fell within the {lr['seconds']:.2f} s run")
                  for r in polled]  # fmt: skip
    out = [
        row("load", f"delivery, {case}", f"{lr['complete']}/{lr['prompts']}", "complete",
            "0 lost, 0 misrouted", lr["ok"], f"lost {lr['lost']}, misrouted {lr['misrouted']}, "
            f"failed {lr['failed']}, {lr['seconds']:.0f} s"),
        *polled,
        row("load", f"soak RSS growth, {sr['prompts']} prompts", round(sr["rss_growth_mb"], 2),
            "MB", f"< {SOAK_RSS_BOUND_MB:.0f} MB", sr["ok"],
            f"{sr['history']} in history, {sr['seconds']:.1f} s"),
    ]  # fmt: skip
    out[0]["detail"] = lr
    out[-1]["detail"] = sr
    return out


def unmeasured(measured: dict[str, Any], why: str) -> dict[str, Any]:
    """A row that took no samples, saying so: no value, met "n/a", never "yes"."""
    return {**measured, "value": None, "met": "n/a", "note": why}


def run(quick: bool) -> list[dict[str, Any]]:
    from bench._common import isolate_cache_dir

    isolate_cache_dir()  # the tiny model is built in a private cache, never the user's
    return rows(load(quick), soak(200 if quick else SOAK))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--drive"]:  # the clients of `load`, in their own process
        base, ws_base, n_clients, n_prompts, kind = sys.argv[2:7]
        make = toy_prompt if kind == "toy" else tiny_prompt
        res = asyncio.run(drive(base, ws_base, int(n_clients), int(n_prompts), make,
                                poll_here=False))  # fmt: skip
        print(json.dumps(asdict(res)))
    elif sys.argv[1:2] == ["--poll"]:  # the poller of `load`, in its own process
        print(json.dumps(asyncio.run(_poll_until_stdin_closes(sys.argv[2], int(sys.argv[3])))))
    else:  # the suite; the two modes above are its own child processes
        from bench._common import suite_main

        suite_main("bench.load", __doc__, run)
