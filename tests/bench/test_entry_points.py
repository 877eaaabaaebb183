"""Each `python -m bench.NAME` has a parser: --help prints its usage without running anything,
and an argument it does not know is refused (`bench.engine --help` ran the whole suite; the
others printed nothing or ignored it). `bench.paired` with no server says so in one line."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))


def _bench(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"bench.{module}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize("module", MODULES)
def test_help_prints_usage_and_an_unknown_argument_is_refused(module):
    shown = _bench(module, "--help")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.startswith(f"usage: python -m bench.{module} ")
    needed = ("chain", "10", "1") if module == "paired" else ()  # its positional arguments
    refused = _bench(module, *needed, "--no-such-flag")
    assert refused.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in refused.stderr


def test_the_server_help_names_the_serve_mode_paired_drives():
    usage = " ".join(_bench("server", "--help").stdout.split())
    assert "--serve PORT DATA_DIR" in usage and "--quick" in usage


def test_paired_with_no_server_says_so_in_one_line():
    with socket.socket() as s:  # a port nothing listens on (bound, never listening)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        done = _bench("paired", "fan", "100", "--runs", "5", str(port))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"no server on port {port} (Connection refused): start one with "
        f"`python -m bench.server --serve {port} DATA_DIR`"
    ]
