"""What the suites share: the row shape, interleaved timing, model-call timers, RSS readings.

Every row is {suite, name, value, unit, target, met, note}; `met` is "yes", "no" or "-" (no
target, or skipped). Suites run with one torch thread and time in CPU seconds of this process
(time.process_time) where they compare in-process work, so other load on a shared machine
does not skew the ratios; wall time is used only across processes (start-up, second process).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "workflows"


def row(suite: str, name: str, value: Any, unit: str = "", target: str = "",
        met: bool | None = None, note: str = "") -> dict:  # fmt: skip
    """One table row. `met` None means there is no target to meet."""
    flag = "-" if met is None else ("yes" if met else "no")
    return {"suite": suite, "name": name, "value": value, "unit": unit, "target": target,
            "met": flag, "note": note}  # fmt: skip


def suite_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser every `python -m bench.NAME` starts from, so --help prints its usage (the
    module's docstring) and an argument it does not know is refused, not ignored."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast check")
    return parser


def suite_main(module: str, doc: str | None, run: Callable[[bool], list[dict]],
               argv: list[str] | None = None) -> None:  # fmt: skip
    """`python -m bench.NAME [--quick]`: that one suite's rows as the runner's table."""
    args = suite_parser(module, doc).parse_args(argv)
    from bench.__main__ import table

    print(table(run(args.quick)))


def skipped(suite: str, name: str, reason: str, target: str = "") -> dict:
    return row(suite, name, None, "", target, None, f"skipped: {reason}")


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def isolate_cache_dir() -> Path:
    """Point LATENTGRAPH_CACHE_DIR at a private temp folder (once per process): benchmarks
    must never be served from the user's disk cache, nor fill it."""
    current = os.environ.get("LATENTGRAPH_BENCH_CACHE")
    if current:
        return Path(current)
    path = Path(tempfile.mkdtemp(prefix="latentgraph-bench-"))
    os.environ["LATENTGRAPH_BENCH_CACHE"] = str(path)
    os.environ["LATENTGRAPH_CACHE_DIR"] = str(path)
    return path


def one_thread():
    import torch

    torch.set_num_threads(1)
    return torch


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int,
                clock: Callable[[], float] = time.process_time) -> dict[str, list[float]]:  # fmt: skip
    """CPU seconds (default clock) of each function, run in turn `repeats` times with the order rotated each
    round, so drift on a shared machine (and who-runs-first effects) hit all alike."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = clock()
            fns[name]()
            times[name].append(clock() - t0)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


class ModelTimer:
    """Accumulates wall time spent inside model calls: UNet/text encoder `forward` and VAE
    `decode`/`encode`, by wrapping them on the instances (undone by `restore`)."""

    def __init__(self, clock: Callable[[], float] = time.process_time) -> None:
        self.clock = clock
        self.seconds = 0.0
        self.calls = 0
        self._patched: list[tuple[Any, str]] = []

    def wrap(self, module: Any, method: str) -> None:
        original = getattr(module, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = self.clock()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += self.clock() - t0
                self.calls += 1

        setattr(module, method, timed)
        self._patched.append((module, method))

    def wrap_bundle(self, unet: Any, text_encoder: Any, vae: Any) -> None:
        self.wrap(unet, "forward")
        self.wrap(text_encoder, "forward")
        self.wrap(vae, "decode")
        self.wrap(vae, "encode")

    def restore(self) -> None:
        for module, method in self._patched:
            delattr(module, method)
        self._patched.clear()

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    return _status_kb("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc), so RSS readings show live memory."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"^{field}:\s+(\d+)", f.read(), re.M)
    return int(match.group(1)) if match else 0


def run_child(cmd: list[str], cwd: Path | None = None, env: dict | None = None,
              timeout: float = 300) -> tuple[float, float, int, str, str]:  # fmt: skip
    """Run a command in a fresh process: (wall s, peak RSS MB of that child, rc, out, err).

    The peak is the child's VmHWM, polled from /proc while it runs (it only grows): the
    rusage maxrss would also count the parent's pages the child had between fork and exec."""
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=out, stderr=err)
        deadline = t0 + timeout
        peak_kb = 0
        status_file = f"/proc/{proc.pid}/status"
        while True:
            try:
                with open(status_file) as f:
                    match = re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M)
                if match:
                    peak_kb = max(peak_kb, int(match.group(1)))
            except OSError:
                pass
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, _ = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return wall, peak_kb / 1024, proc.returncode, out.read(), err.read()


def latentgraph_cmd(*args: str) -> list[str]:
    """The `latentgraph` command as this interpreter runs it."""
    exe = Path(sys.executable).with_name("latentgraph")
    if exe.is_file():
        return [str(exe), *args]
    return [
        sys.executable,
        "-c",
        "import sys; from latentgraph.cli import main; sys.exit(main())",
        *args,
    ]
