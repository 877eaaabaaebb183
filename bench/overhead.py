"""Whole-graph overhead: txt2img through `latentgraph run` in-process, minus model time.

The UNet and text encoder `forward` and the VAE `decode` are wrapped with timers (CPU time, one torch thread); everything
else (workflow loading, validation, planning, cache keys, scheduler math between UNet calls,
progress events, PNG saving) is what latentgraph and its glue add. Target: under 2% of the
run at 128x128 with 20 steps on the tiny model. The model is loaded by a warm-up run first:
loading weights is neither overhead nor a model call.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

from ._common import WORKFLOWS, ModelTimer, isolate_cache_dir, median, one_thread, row, suite_main

SUITE = "overhead"


def _bundle():
    from latentgraph.graph import CancelToken, Context, Settings
    from latentgraph.nodes.loaders import load_bundle
    from latentgraph.nodes.model_presets import BUILTIN_TINY

    ctx = Context("bench", "LoadModel", Settings(device="cpu"), CancelToken())
    return load_bundle(ctx, BUILTIN_TINY)[0]


def run(quick: bool) -> list[dict]:
    isolate_cache_dir()
    one_thread()
    from latentgraph.cli import main

    size, steps, repeats = 128, 20, (1 if quick else 3)
    out = Path(tempfile.mkdtemp(prefix="lg-bench-out-"))
    argv = ["run", str(WORKFLOWS / "txt2img.yaml"), "--no-cache", "-q", "--device", "cpu",
            "--output-dir", str(out), "--set", f"width={size}", "--set", f"height={size}",
            "--set", f"steps={steps}"]  # fmt: skip

    def once(extra: tuple[str, ...] = ()) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(argv + list(extra))
        if code != 0:
            raise RuntimeError(f"latentgraph run exited with {code}")

    # Load the model into the process-wide model manager (a small warm-up run).
    once(("--set", "width=64", "--set", "height=64", "--set", "steps=2"))
    bundle = _bundle()
    timer = ModelTimer()
    timer.wrap_bundle(bundle.unet, bundle.text_encoder, bundle.vae)
    totals, models = [], []
    try:
        for _ in range(repeats):
            timer.reset()
            t0 = time.process_time()
            once()
            totals.append(time.process_time() - t0)
            models.append(timer.seconds)
    finally:
        timer.restore()
    shares = [(t - m) / t * 100 for t, m in zip(totals, models, strict=True)]
    share = median(shares)
    outside = median([t - m for t, m in zip(totals, models, strict=True)]) * 1000
    case = f"txt2img {size}x{size} {steps} steps"
    return [
        row(
            SUITE,
            f"{case}: total",
            round(median(totals), 3),
            "s",
            note=f"median of {repeats}; model calls {median(models):.3f} s",
        ),  # fmt: skip
        row(
            SUITE,
            f"{case}: outside model calls",
            round(outside, 1),
            "ms",
            note="load + validate + plan + keys + scheduler math + events + PNG",
        ),  # fmt: skip
        row(
            SUITE,
            f"{case}: overhead share",
            share,  # unrounded: the table shows it so it agrees with the verdict
            "%",
            "< 2",
            share < 2.0,
            note="(total - model calls) / total",
        ),  # fmt: skip
    ]


if __name__ == "__main__":
    suite_main("bench.overhead", __doc__, run)
