"""Start-up: `latentgraph --help` and `latentgraph validate` wall time in a fresh process
(targets 0.3 s and 0.5 s: neither may import torch), and the time to the first image.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ._common import (
    WORKFLOWS,
    isolate_cache_dir,
    latentgraph_cmd,
    median,
    row,
    run_child,
    suite_main,
)

SUITE = "startup"


def _timed(cmd: list[str], repeats: int) -> tuple[float, float]:
    """Median wall seconds and median peak RSS (MB) over `repeats` fresh processes."""
    walls, peaks = [], []
    for _ in range(repeats):
        wall, peak, rc, _, err = run_child(cmd)
        if rc != 0:
            raise RuntimeError(f"{' '.join(cmd[-3:])} exited {rc}: {err.strip()[-300:]}")
        walls.append(wall)
        peaks.append(peak)
    return median(walls), median(peaks)


def run(quick: bool) -> list[dict]:
    isolate_cache_dir()
    repeats = 3 if quick else 5
    rows = []
    wall, peak = _timed(latentgraph_cmd("--help"), repeats)
    rows.append(row(SUITE, "latentgraph --help", round(wall, 3), "s", "< 0.3", wall < 0.3,
                    note=f"median of {repeats} fresh processes, peak RSS {peak:.0f} MB"))  # fmt: skip
    cmd = latentgraph_cmd("validate", str(WORKFLOWS / "txt2img.yaml"))
    wall, peak = _timed(cmd, repeats)
    rows.append(row(SUITE, "latentgraph validate txt2img.yaml", round(wall, 3), "s", "< 0.5",
                    wall < 0.5, note=f"median of {repeats}, peak RSS {peak:.0f} MB"))  # fmt: skip
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    ensure_tiny_sd()  # built once per cache dir; not part of the first image's time
    size, steps = (64, 10) if quick else (128, 20)
    out = Path(tempfile.mkdtemp(prefix="lg-bench-out-"))
    cmd = latentgraph_cmd("run", str(WORKFLOWS / "txt2img.yaml"), "--no-cache", "-q",
                          "--device", "cpu", "--output-dir", str(out), "--set", f"width={size}",
                          "--set", f"height={size}", "--set", f"steps={steps}")  # fmt: skip
    wall, _, rc, _, err = run_child(cmd)
    if rc != 0:
        raise RuntimeError(f"latentgraph run exited {rc}: {err.strip()[-300:]}")
    images = list(out.rglob("*.png"))
    rows.append(row(SUITE, f"time to first image ({size}x{size}, {steps} steps)", round(wall, 2),
                    "s", note=f"fresh process, tiny model already built; {len(images)} PNG "
                    "written; includes importing torch+diffusers"))  # fmt: skip
    return rows


if __name__ == "__main__":
    suite_main("bench.startup", __doc__, run)
