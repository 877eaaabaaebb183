"""`--ray ADDRESS` naming a cluster nobody runs: a usage error at once, not Ray's endless
"Failed to connect to GCS" retries."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = str(ROOT / "workflows" / "txt2img.yaml")


def _closed_port() -> int:
    """A local port nothing listens on (a connection to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", [
    ["serve", "--port", "0", "--ray-workers", "1"],
    ["run", TXT2IMG, "--ray-workers", "1"],
])  # fmt: skip
def test_an_unreachable_cluster_is_a_usage_error_not_a_hang(command, tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    out = subprocess.run([sys.executable, "-m", "latentgraph.cli", *command, "--ray", address,
                          "--output-dir", str(tmp_path / "out"), *(
                              ["--data-dir", str(tmp_path / "data")] if command[0] == "serve"
                              else [])],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert f"latentgraph: error: cannot reach the Ray cluster at {address}" in out.stderr
    assert "Traceback" not in out.stderr and "Failed to connect to GCS" not in out.stderr
    assert not list(tmp_path.glob("out/**/*.png"))  # nothing ran
