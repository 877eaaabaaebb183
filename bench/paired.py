"""Two versions of the server side by side: alternated runs, and each one's CPU per run.

On a shared two-core machine two runs a minute apart can differ by more than the change under
test. So each version serves from its own checkout, and this client alternates between them
run by run; the answer is the median of the per-pair differences. Start each server first
(each checkout with its own environment):

    python -m bench.server --serve PORT DATA_DIR

then, from either checkout:

    python -m bench.paired chain 100 --runs 300 PORT_A PORT_B   # B - A, paired
    python -m bench.paired fan 100 --runs 300 --cpu PORT        # CPU per run, per process

`--cpu` runs one version over one kept websocket and reports each process's CPU per run
(client, server, worker; every thread's /proc schedstat) beside the wall time: how busy the
two cores are. Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import time
import uuid
from pathlib import Path

from bench.server import SHAPES, Poster, is_final, process_cpu_seconds, server_run


async def alternate(shape: str, n: int, runs: int, ports: list[int]) -> None:
    """`runs` runs on each server, one after the other in turn (the order flips each round)."""
    posters = [Poster(port) for port in ports]
    times: list[list[float]] = [[] for _ in ports]
    for i in range(runs):
        for k in range(len(ports)) if i % 2 == 0 else reversed(range(len(ports))):
            result = await server_run(posters[k], f"ws://127.0.0.1:{ports[k]}/ws",
                                       SHAPES[shape](n, uuid.uuid4().hex), os.getpid(),
                                       poll=False)  # fmt: skip
            times[k].append(result["seconds"] * 1e3)
    for poster in posters:
        poster.close()
    for port, measured in zip(ports, times, strict=True):
        print(f"{port} {shape} {n}: median {statistics.median(measured):.2f} ms, "
              f"best {min(measured):.2f} ms")  # fmt: skip
    for port, measured in zip(ports[1:], times[1:], strict=True):
        pairs = [b - a for a, b in zip(times[0], measured, strict=True)]
        print(f"paired ({port} - {ports[0]}): median {statistics.median(pairs):+.2f} ms")


def _server_pid(port: int) -> int:
    """The `python -m bench.server --serve PORT ...` process serving `port`."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--serve" in argv and str(port).encode() in argv:
            return int(cmdline.parent.name)
    raise SystemExit(f"no `python -m bench.server --serve {port} ...` process found")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def cpu(shape: str, n: int, runs: int, port: int) -> None:
    """Wall time and each process's CPU per run, over one kept websocket."""
    from websockets.asyncio.client import connect

    server = _server_pid(port)
    processes = {"client": os.getpid(), "server": server, "worker": _children(server)[-1]}
    poster, cid = Poster(port), uuid.uuid4().hex
    bodies = [json.dumps({"prompt": SHAPES[shape](n, uuid.uuid4().hex), "client_id": cid})
              .encode() for _ in range(runs)]  # fmt: skip
    async with connect(f"ws://127.0.0.1:{port}/ws?clientId={cid}", max_queue=None,
                       max_size=None) as ws:  # fmt: skip
        await ws.recv()  # status on connect
        poster.connect()
        before = {name: process_cpu_seconds(pid) for name, pid in processes.items()}
        t0 = time.perf_counter()
        for body in bodies:
            prompt_id = json.loads(poster.post(body)[1])["prompt_id"]
            while True:
                raw = await ws.recv()
                if isinstance(raw, bytes):
                    continue
                if is_final(json.loads(raw), prompt_id):
                    break
        wall = time.perf_counter() - t0
        used = {name: process_cpu_seconds(pid) - before[name] for name, pid in processes.items()}
    poster.close()
    per_run = ", ".join(f"{name} {seconds / runs * 1e3:.2f}" for name, seconds in used.items())
    print(f"{port} {shape} {n}, per run (ms): wall {wall / runs * 1e3:.2f}, {per_run}, "
          f"CPU in all {sum(used.values()) / runs * 1e3:.2f}")  # fmt: skip


def refuse_closed_ports(ports: list[int]) -> None:
    """One line for a port nothing listens on, and how to start what should, not the
    connection's traceback from the first run."""
    for port in ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except OSError as exc:
            raise SystemExit(f"no server on port {port} ({exc.strerror or exc}): start one with "
                             f"`python -m bench.server --serve {port} DATA_DIR`") from None  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.paired", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("size", type=int)
    parser.add_argument("ports", type=int, nargs="+")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cpu", action="store_true", help="CPU per run of one server")
    args = parser.parse_args(argv)
    refuse_closed_ports(args.ports)
    if args.cpu:
        for port in args.ports:
            asyncio.run(cpu(args.shape, args.size, args.runs, port))
    else:
        asyncio.run(alternate(args.shape, args.size, args.runs, args.ports))


if __name__ == "__main__":
    main()
