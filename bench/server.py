"""The server path: many clients with tiny prompts, and deep and wide graphs.

1. Under load: 50 websocket clients, 100 tiny prompts queued at once. Checks that every client
   receives the latest `status` (the server coalesces a burst of queue changes into its first
   and latest value, at most one per 50 ms) and every submitter its full message sequence, and
   reports the time from POST /prompt to `execution_start` and to the final `executing`
   (node: null) message.
2. Graphs: a chain and a fan of string nodes at 100 to 100,000 nodes, cold, through HTTP +
   websocket (the server in its own process, one client reading as fast as it can) beside the
   same graph run by the engine in this process. Reports wall time both ways, their ratio, the
   websocket bytes per node, and how long POST /prompt takes to answer (validation included).
   From 100,000 nodes another client polls GET /prompt meanwhile and through the run
   (`Poller`), and the slowest of each is reported. The timed POST goes over a kept-alive
   connection (`Poster`). `python -m bench.server --graphs` runs only these.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench._common import ROOT, suite_parser
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
    return run_clients(quick) + run_graphs(quick)


def run_clients(quick: bool) -> list[dict]:
    import uvicorn

    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.run import uvicorn_options
    from latentgraph.server.workers import WorkerSetup

    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(data_dir=tmp, port=_port(), disk_cache=False, load_nodes=False,
                              editor=False)  # fmt: skip
        app = create_app(config, workers=WorkerSetup(registry=_registry))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port,
                                               log_level="warning", **uvicorn_options(config)))  # fmt: skip
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


# --- deep and wide graphs ---------------------------------------------------------------

GRAPH_SIZES = (100, 1_000, 10_000, 100_000)
TARGET_RATIO = 3.0  # server time / in-process engine time
TARGET_SECONDS = {("chain", 1_000): 0.05, ("chain", 10_000): 0.5, ("fan", 1_000): 0.1}
TARGET_BYTES_PER_NODE = 1000  # all websocket traffic of a run, per node
TARGET_POST_SECONDS = 2.0  # POST /prompt of a 100,000-node graph, validated
# From this many nodes a second client polls GET /prompt while the POST is checked and the
# prompt runs: where they take long enough for blocking to matter. Below it the poller would
# only compete with the run for the two cores.
POLL_NODES = 100_000
# Runs per size up to 1,000 nodes, the best kept (larger sizes: one). A 100-node run takes
# 4-10 ms, so fifteen cost a fraction of a second; the best of three moved the ratio by up to
# 0.5x between two runs of the bench on this shared machine.
SMALL_REPEATS = 15


def graph_registry():
    """The issue's ComfyUI nodes: PrimitiveString (its `value` widget fed by a link, as
    ComfyUI allows), StringConcatenate and PreviewAny (an output node; its text goes out in
    `executed`)."""
    from latentgraph.graph import Registry
    from latentgraph.nodes.comfy import comfy_registry

    reg = Registry()
    for name in ("PrimitiveString", "StringConcatenate", "PreviewAny"):
        reg.add(comfy_registry.get(name))
    return reg


def chain_prompt(n: int, source: str) -> dict:
    """n - 1 PrimitiveString, each fed by the one before, -> PreviewAny, in API format."""
    p = {"0": {"class_type": "PrimitiveString", "inputs": {"value": source}}}
    for i in range(1, n - 1):
        p[str(i)] = {"class_type": "PrimitiveString", "inputs": {"value": [str(i - 1), 0]}}
    p[str(n - 1)] = {"class_type": "PreviewAny", "inputs": {"source": [str(n - 2), 0]}}
    return p


def fan_prompt(n: int, source: str) -> dict:
    """One PrimitiveString -> n x (StringConcatenate -> PreviewAny): 2n + 1 nodes."""
    p = {"s": {"class_type": "PrimitiveString", "inputs": {"value": source}}}
    for i in range(n):
        p[f"a{i}"] = {"class_type": "StringConcatenate",
                      "inputs": {"string_a": ["s", 0], "string_b": str(i), "delimiter": "-"}}  # fmt: skip
        p[f"p{i}"] = {"class_type": "PreviewAny", "inputs": {"source": [f"a{i}", 0]}}
    return p


SHAPES = {"chain": chain_prompt, "fan": fan_prompt}


def serve_graphs(port: int, data_dir: str) -> None:
    """The server process of the graph cases (`python -m bench.server --serve PORT DIR`)."""
    import uvicorn

    from latentgraph.server.app import create_app
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.run import uvicorn_options
    from latentgraph.server.workers import WorkerSetup

    config = ServerConfig(data_dir=data_dir, port=port, disk_cache=False, load_nodes=False,
                          editor=False, preload=False)  # fmt: skip
    app = create_app(config, workers=WorkerSetup(registry=graph_registry))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options(config))


def engine_seconds(prompt: dict, reg) -> tuple[float, float]:
    """Validate and run the prompt's graph in this process, cold, with an event consumer:
    (wall seconds, CPU seconds)."""
    from latentgraph.graph.cache import Cache
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.scheduler import Scheduler

    graph = graph_from_prompt(prompt, reg)
    events = [0]

    def consumer(event) -> None:
        events[0] += 1

    t0, c0 = time.perf_counter(), time.process_time()
    result = Scheduler(reg, Cache()).run(graph, on_event=consumer)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert result.status == "success", result.failures[:1]
    return seconds, cpu


def process_cpu_seconds(pid: int) -> float:
    """CPU time of all threads of a process (Linux schedstat, nanoseconds)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that just ended
            pass
    return total / 1e9


class Poster:
    """POST /prompt over a kept-alive connection (http.client, the standard library's), as a
    browser's fetch and the httpx and requests sessions do. Its answer takes 0.4 ms of this
    client's time for a bare request where httpx's async client takes 1.4 ms (measured here):
    time that belongs to the client, not the server. `connect` opens it before the clock
    starts (the server closes a connection idle for 5 s)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def connect(self) -> None:
        self._conn.close()
        self._conn.connect()

    def post(self, body: bytes) -> tuple[int, bytes]:
        """(status, body) of the answer."""
        self._conn.request("POST", "/prompt", body, {"content-type": "application/json"})
        answer = self._conn.getresponse()
        return answer.status, answer.read()

    def close(self) -> None:
        self._conn.close()


class Poller:
    """GET /prompt every 10 ms from a thread of its own, over its own kept-alive connection,
    from before a prompt is posted until its run ends: how long other requests wait, while
    the POST is checked and while the run goes on."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._polls: list[tuple[float, float]] = []  # (when it started, how long it took)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.answered_at = float("inf")  # perf_counter time of the POST answer

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=600)
        while not self._stop.is_set():
            t = time.perf_counter()
            conn.request("GET", "/prompt")
            conn.getresponse().read()
            self._polls.append((t, time.perf_counter() - t))
            self._stop.wait(0.01)
        conn.close()

    def stop(self) -> dict[str, float]:
        """The slowest poll begun before the POST was answered, the slowest after, and how
        many took over 100 ms."""
        self._stop.set()
        self._thread.join()
        post = [d for t, d in self._polls if t < self.answered_at]
        run = [d for t, d in self._polls if t >= self.answered_at]
        return {"slowest_poll": max(post, default=0.0), "slowest_poll_run": max(run, default=0.0),
                "slow_polls": sum(1 for _, d in self._polls if d > 0.1),
                "polls": len(self._polls)}  # fmt: skip


def is_final(message: dict, prompt_id: str) -> bool:
    """The message a run is timed to, as the issue's client times it: `executing` with node
    null, of this prompt."""
    if message["type"] != "executing":
        return False
    data = message["data"]
    return data["node"] is None and data.get("prompt_id") == prompt_id


async def server_run(poster: Poster, ws_base: str, prompt: dict, pid: int, *,
                     poll: bool) -> dict:  # fmt: skip
    """POST the prompt with a websocket client reading as fast as it can. Returns seconds to
    the final message, to the POST answer, the server process's CPU seconds and websocket
    bytes; with `poll`, what a `Poller` saw meanwhile."""
    from websockets.asyncio.client import connect

    cid = uuid.uuid4().hex
    async with connect(f"{ws_base}?clientId={cid}", max_queue=None, max_size=None) as ws:
        await ws.recv()  # status on connect
        body = json.dumps({"prompt": prompt, "client_id": cid}).encode()  # before the clock
        poster.connect()
        poller = Poller(poster.port) if poll else None
        if poller is not None:
            poller.start()
        c0 = process_cpu_seconds(pid)
        t0 = time.perf_counter()
        status, answer = poster.post(body)  # the websocket's frames wait in the socket
        answered = time.perf_counter() - t0
        post_cpu = process_cpu_seconds(pid) - c0
        if poller is not None:
            poller.answered_at = t0 + answered
        assert status == 200, answer[:500]
        prompt_id = json.loads(answer)["prompt_id"]
        traffic = 0
        kinds: dict[str, int] = {}
        while True:
            raw = await ws.recv()
            traffic += len(raw)
            if isinstance(raw, bytes):
                continue
            msg = json.loads(raw)
            kinds[msg["type"]] = kinds.get(msg["type"], 0) + 1
            if is_final(msg, prompt_id):
                break
        seconds = time.perf_counter() - t0
        cpu = process_cpu_seconds(pid) - c0
        polled = poller.stop() if poller is not None else {}
    return {"seconds": seconds, "post_seconds": answered, "post_cpu_seconds": post_cpu,
            "cpu_seconds": cpu, "bytes": traffic, "messages": kinds, **polled}  # fmt: skip


def _start_server(data_dir: str) -> tuple[subprocess.Popen, int]:
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.server", "--serve", str(port), data_dir],
                            cwd=ROOT)  # fmt: skip
    return proc, port


async def _wait_up(http, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the bench server exited with {proc.returncode}")
        try:
            if (await http.get("/prompt")).status_code == 200:
                return
        except Exception:  # noqa: BLE001 - not listening yet
            await asyncio.sleep(0.1)
    raise RuntimeError("the bench server did not start")


async def _graph_cases(port: int, proc: subprocess.Popen, sizes: list[int],
                       repeats: int | None, shapes: list[str]) -> list[dict]:  # fmt: skip
    import httpx

    reg = graph_registry()
    found = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
        await _wait_up(http, proc)
        ws_base = f"ws://127.0.0.1:{port}/ws"
        poster = Poster(port)
        run = functools.partial(server_run, poster, ws_base, pid=proc.pid)
        await run(chain_prompt(10, "warm-up"), poll=False)
        for shape in shapes:
            build = SHAPES[shape]
            for n in sizes:
                server, engine = [], []
                # cold both ways: a new source string each time
                for _ in range(repeats or (SMALL_REPEATS if n <= 1_000 else 1)):
                    prompt = build(n, uuid.uuid4().hex)
                    server.append(await run(prompt, poll=len(prompt) >= POLL_NODES))
                    engine.append(engine_seconds(build(n, uuid.uuid4().hex), reg))
                best = min(server, key=lambda d: d["seconds"])
                nodes = len(build(n, ""))
                found.append({"shape": shape, "size": n, "nodes": nodes, **best,
                              "engine_seconds": min(e[0] for e in engine),
                              "engine_cpu_seconds": min(e[1] for e in engine)})  # fmt: skip
        poster.close()
    return found


def run_graphs(
    quick: bool,
    sizes: list[int] | None = None,
    shapes: list[str] | None = None,
    repeats: int | None = None,
) -> list[dict]:
    """The graph cases; `sizes`, `shapes` and `repeats` narrow them while iterating."""
    sizes = sizes or [n for n in GRAPH_SIZES if not quick or n <= 1_000]
    shapes = shapes or list(SHAPES)
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = _start_server(tmp)
        try:
            cases = asyncio.run(_graph_cases(port, proc, sizes, repeats or (1 if quick else None),
                                             shapes))  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(15)
    rows = [r for case in cases for r in _graph_rows(case)]
    if max(sizes) >= POLL_NODES:
        rows.append(history_collection_row(max(sizes)))
    return rows


def history_collection_row(n: int) -> dict:
    """A full collection of this process with one finished prompt of `n` outputs in a Store's
    recent history (the start-up objects frozen first, as the server does): the server keeps
    outputs as JSON text, so the collector has nothing of them to walk. Best of 5."""
    import gc

    from latentgraph.server import store as st

    gc.collect()
    gc.freeze()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = st.Store(Path(tmp) / "history.sqlite3")
            store.add(st.PromptRecord(id="p", number=None, prompt_json="{}"))
            store.mark_running("p")
            store.finish("p", st.SUCCESS, ui={f"p{i}": {"text": [str(i)]} for i in range(n)})
            seconds = []
            for _ in range(5):
                t = time.perf_counter()
                gc.collect()
                seconds.append(time.perf_counter() - t)
            store.close()
    finally:
        gc.unfreeze()
    return _row(
        "server",
        f"full collection, a {n:,}-output prompt in recent history",
        round(min(seconds) * 1e6),
        "us",
        note="outputs kept as JSON text; parsed, they took 26.6 ms (before d37aad8)",
    )


def _graph_rows(d: dict) -> list[dict]:
    shape, n, nodes = d["shape"], d["size"], d["nodes"]
    name = f"{shape} {n:,}" + (f" ({nodes:,} nodes)" if nodes != n else "")
    ratio = d["seconds"] / d["engine_seconds"]
    cpu_ratio = d["cpu_seconds"] / d["engine_cpu_seconds"]
    per_node = d["bytes"] / nodes
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(d["messages"].items()))
    rows = [
        {**_row("server", f"{name}: server / engine time", ratio, "x",
                f"<= {TARGET_RATIO:g}", ratio <= TARGET_RATIO,
                f"server {d['seconds']:.3f} s (POST answered in {d['post_seconds'] * 1000:.0f} "
                f"ms), engine {d['engine_seconds']:.3f} s; CPU: server process "
                f"{d['cpu_seconds']:.3f} s, engine {d['engine_cpu_seconds']:.3f} s "
                f"({cpu_ratio:.2f}x); cold"), **d},
        _row("server", f"{name}: websocket traffic", round(per_node), "B/node",
             f"<= {TARGET_BYTES_PER_NODE}", per_node <= TARGET_BYTES_PER_NODE,
             f"{d['bytes'] / 1e6:.2f} MB; {kinds}"),
    ]  # fmt: skip
    target = TARGET_SECONDS.get((shape, n))
    if target is not None:
        rows.append(_row("server", f"{name}: POST to final message, cold", round(d["seconds"], 4),
                         "s", f"< {target:g}", d["seconds"] < target))  # fmt: skip
    if nodes >= POLL_NODES:
        rows.append(_row("server", f"{name}: POST /prompt answered (validated)",
                         round(d["post_seconds"], 3), "s", f"< {TARGET_POST_SECONDS:g}",
                         d["post_seconds"] < TARGET_POST_SECONDS,
                         f"server process CPU {d['post_cpu_seconds']:.2f} s; slowest GET /prompt "
                         f"meanwhile "
                         f"{d['slowest_poll'] * 1000:.0f} ms"))  # fmt: skip
        rows.append(_row("server", f"{name}: slowest GET /prompt during the run",
                         round(d["slowest_poll_run"] * 1000), "ms",
                         note=f"{d['slow_polls']} of {d['polls']} GETs over 100 ms, POST and "
                              "run together"))  # fmt: skip
    return rows


if __name__ == "__main__":
    parser = suite_parser("bench.server", __doc__)
    parser.add_argument("--graphs", action="store_true", help="only the graph cases")
    parser.add_argument("--sizes", help="graph sizes, comma-separated (e.g. 100,1000)")
    parser.add_argument("--shapes", help="chain, fan or both (comma-separated)")
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"runs per size, best kept (default {SMALL_REPEATS} up to 1,000 nodes, else 1)",
    )
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DATA_DIR"),
                        help="only serve the graph cases' nodes on PORT until stopped (the server "
                        "bench.paired drives)")  # fmt: skip
    args = parser.parse_args()
    if args.serve:
        serve_graphs(int(args.serve[0]), args.serve[1])
    else:
        from bench.__main__ import table

        sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else None
        shapes = args.shapes.split(",") if args.shapes else None
        if args.graphs or sizes or shapes:
            rows = run_graphs(args.quick, sizes, shapes, args.repeats)
        else:
            rows = run(args.quick)
        print(table(rows))
