"""Speed and memory techniques, each an option measured against the plain fp32 run.

Every row is a ratio taken side by side in this run (rotated order, median CPU time, one torch
thread): "x" below 1 means faster than the baseline. The rows that need a GPU (fp16, model
CPU offload, compile and TF32 on CUDA) are bench/gpu.py's. Options travel as run settings
(`--option NAME=VALUE` on the CLI); the model manager keys loaded models by the options that
change the module, so each variant is its own loaded copy (freed after its row).
"""

from __future__ import annotations

import time
from typing import Any

from ._common import (
    has_cuda,
    interleaved,
    isolate_cache_dir,
    median,
    one_thread,
    peak_rss_mb,
    reset_peak_rss,
    row,
    skipped,
    suite_main,
    trim_heap,
)

SUITE = "techniques"
PROMPT = "a photograph of an astronaut riding a horse"


class Variant:
    """One model variant (dtype + options) and what it takes to denoise with it."""

    def __init__(self, dtype: str = "fp32", **options: Any) -> None:
        from latentgraph.graph import CancelToken, Context, Settings
        from latentgraph.nodes import loaders, text
        from latentgraph.nodes.model_presets import BUILTIN_TINY

        self.settings = Settings(device="cpu", dtype=dtype, options=options)

        def ctx(node_type: str) -> Context:
            return Context("bench", node_type, self.settings, CancelToken())

        self.ctx = ctx
        self.unet, self.clip, self.vae, self.spec = loaders.load_model(
            ctx("LoadModel"), BUILTIN_TINY
        )
        self.pos = text.text_encode(ctx("TextEncode"), self.clip, PROMPT)
        self.neg = text.text_encode(ctx("TextEncode"), self.clip, "")

    def noise(self, size: int, batch: int = 1):
        from latentgraph.nodes import latents

        return latents.latent_noise(self.ctx("LatentNoise"), size, size, batch, 42, vae=self.vae)

    def denoise(self, size: int, steps: int, sampler: str = "dpm++2m", batch: int = 1,
                pos=None, neg=None):  # fmt: skip
        from latentgraph.nodes import denoise, schedulers

        sp = schedulers.scheduler_select(self.ctx("SchedulerSelect"), self.spec, sampler)
        return denoise.unet_denoise(self.ctx("UNetDenoise"), self.unet, sp, pos or self.pos,
                                    neg or self.neg, self.noise(size, batch), steps, 7.5, 1.0, 42)  # fmt: skip


def _free() -> None:
    import gc

    from latentgraph.nodes.model_manager import manager

    manager().free()
    gc.collect()


def _compare(base, other, repeats: int) -> tuple[float, float, float]:
    """(median base s, median other s, other/base)."""
    base(), other()  # warm up both (first-call allocations, lazy init)
    times = interleaved({"base": base, "other": other}, repeats)
    b, o = median(times["base"]), median(times["other"])
    return b, o, o / b


def _diff(a, b) -> float:
    return float((a.samples.float() - b.samples.float()).abs().max())


def run(quick: bool) -> list[dict]:
    isolate_cache_dir()
    torch = one_thread()
    size, steps, repeats = (64, 4, 1) if quick else (64, 20, 3)
    cuda = has_cuda()
    rows: list[dict] = []
    base = Variant()
    case = f"{size}x{size} {steps} steps"

    def ratio_row(name: str, variant: Variant, note: str = "", **kw: Any) -> None:
        b, o, r = _compare(lambda: base.denoise(size, steps, **kw),
                           lambda: variant.denoise(size, steps, **kw), repeats)  # fmt: skip
        rows.append(row(SUITE, name, round(r, 3), "x time", note=f"{case}: {o / steps * 1000:.1f}"
                        f" vs {b / steps * 1000:.1f} ms/step; {note}".rstrip("; ")))  # fmt: skip

    reference = base.denoise(size, steps)
    rows.append(row(SUITE, "baseline fp32 (SDPA, dpm++2m)", None, "", note=case))

    bf16 = Variant("bf16")
    err = _diff(bf16.denoise(size, steps), reference)
    ratio_row("bf16 weights", bf16, f"max |latent diff| vs fp32 {err:.3g}")
    del bf16
    _free()

    if not cuda:  # the GPU rows (fp16, offload, compile, TF32) are bench/gpu.py's
        rows.append(_fp16_cpu(base, size))
        _free()

    # Fewer steps with a better scheduler: same image budget, time for the whole denoise.
    pndm_steps = 10 if quick else 50
    dpm_steps = 4 if quick else 20
    b, o, r = _compare(lambda: base.denoise(size, pndm_steps, "pndm"),
                       lambda: base.denoise(size, dpm_steps, "dpm++2m"), max(2, repeats - 2))  # fmt: skip
    rows.append(row(SUITE, f"DPM++ {dpm_steps} steps vs PNDM {pndm_steps} steps", round(r, 3),
                    "x time", note=f"{o:.2f} s vs {b:.2f} s for one image"))  # fmt: skip

    variant = Variant(attention_slicing=True)
    ratio_row("attention slicing", variant, "saves attention memory on big images; CPU: time")
    del variant
    _free()

    variant = Variant(sdpa=False)
    ratio_row("classic attention (SDPA off)", variant, "above 1: SDPA is the faster default")
    del variant
    _free()

    variant = Variant(channels_last=True)
    ratio_row("channels_last UNet", variant)
    del variant
    _free()

    rows += _batching(base, size, steps, repeats)
    rows += _vae(base, torch, quick)

    if quick:
        rows.append(skipped(SUITE, "torch.compile UNet", "slow to compile on CPU; full run only"))
    else:
        rows += _compile(base, size, steps, repeats)
    _free()
    return rows


def _fp16_cpu(base: Variant, size: int) -> dict:
    try:
        fp16 = Variant("fp16")
        t0 = time.process_time()
        fp16.denoise(size, 2)
        t16 = (time.process_time() - t0) / 2
    except Exception as exc:  # noqa: BLE001 - any failure means "unsupported here"
        return row(SUITE, "fp16 weights on CPU", None, "", note=f"fails on CPU: "
                   f"{type(exc).__name__}: {str(exc)[:80]}")  # fmt: skip
    t0 = time.process_time()
    base.denoise(size, 2)
    t32 = (time.process_time() - t0) / 2
    return row(SUITE, "fp16 weights on CPU", round(t16 / t32, 3), "x time",
               note=f"2-step probe: {t16 * 1000:.0f} vs {t32 * 1000:.0f} ms/step; CPU has no "
               "fast fp16 path (GPU only)")  # fmt: skip


def _batching(base: Variant, size: int, steps: int, repeats: int) -> list[dict]:
    """Four prompts (and four seeds) as one batched UNet call per step vs four runs."""
    from latentgraph.nodes import text

    prompts = [PROMPT, "a red fox in the snow", "a lighthouse at dusk", "a bowl of ramen"]
    pos4 = text.text_encode(base.ctx("TextEncode"), base.clip, prompts)
    singles = [text.text_encode(base.ctx("TextEncode"), base.clip, p) for p in prompts]

    def batched():
        base.denoise(size, steps, batch=4, pos=pos4)

    def separate():
        for p in singles:
            base.denoise(size, steps, pos=p)

    b, o, r = _compare(separate, batched, max(2, repeats - 2))
    return [row(SUITE, "4 prompts batched in one UNet call", round(r, 3), "x time",
                note=f"{o:.2f} s vs {b:.2f} s for 4 separate runs ({size}x{size}, {steps} "
                "steps)")]  # fmt: skip


def _vae(base: Variant, torch: Any, quick: bool) -> list[dict]:
    from latentgraph.nodes import vae as vae_nodes

    rows = []
    batch, size = (2, 128) if quick else (8, 128)
    lat = torch.randn(batch, 4, size // base.vae.scale_factor, size // base.vae.scale_factor)

    def peak(fn) -> float:
        import gc

        gc.collect()
        trim_heap()
        reset_peak_rss()
        start = peak_rss_mb()
        fn()
        return peak_rss_mb() - start

    plain = lambda: vae_nodes.decode(base.ctx("VAEDecode"), base.vae, lat)  # noqa: E731
    sliced = lambda: vae_nodes.decode(base.ctx("VAEDecode"), base.vae, lat, sliced=True)  # noqa: E731
    b, o, r = _compare(plain, sliced, 1 if quick else 3)
    p_plain, p_sliced = peak(plain), peak(sliced)
    rows.append(row(SUITE, "VAE slicing (decode one image at a time)", round(r, 3), "x time",
                    note=f"batch {batch} at {size}px: peak RSS +{max(p_sliced, 0):.0f} MB vs "
                    f"+{max(p_plain, 0):.0f} MB unsliced"))  # fmt: skip
    big = 256 if quick else 512
    lat1 = torch.randn(1, 4, big // base.vae.scale_factor, big // base.vae.scale_factor)
    plain = lambda: vae_nodes.decode(base.ctx("VAEDecode"), base.vae, lat1)  # noqa: E731
    tiled = lambda: vae_nodes.decode(base.ctx("VAEDecode"), base.vae, lat1, tiled=True)  # noqa: E731
    b, o, r = _compare(plain, tiled, 1 if quick else 3)
    p_plain, p_tiled = peak(plain), peak(tiled)
    rows.append(row(SUITE, "VAE tiling (overlapping tiles)", round(r, 3), "x time",
                    note=f"one {big}px image: peak RSS +{max(p_tiled, 0):.0f} MB vs +{max(p_plain, 0):.0f} "
                    "MB untiled; "
                    "tiles blend at seams"))  # fmt: skip
    return rows


def _compile(base: Variant, size: int, steps: int, repeats: int) -> list[dict]:
    import os
    import tempfile

    # A cold inductor cache: the compile time a user pays the first time.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="lg-bench-inductor-")
    try:
        variant = Variant(compile=True)
        t0 = time.perf_counter()
        variant.denoise(size, 1)  # the first call compiles
        compile_s = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - no compiler, unsupported op...
        _free()
        return [row(SUITE, "torch.compile UNet", None, "", note=f"fails here: "
                    f"{type(exc).__name__}: {str(exc)[:80]}")]  # fmt: skip
    b, o, r = _compare(lambda: base.denoise(size, steps),
                       lambda: variant.denoise(size, steps), repeats)  # fmt: skip
    _free()
    return [row(SUITE, "torch.compile UNet", round(r, 3), "x time",
                note=f"{o / steps * 1000:.1f} vs {b / steps * 1000:.1f} ms/step after "
                f"{compile_s:.0f} s (wall) compiling, cold inductor cache")]  # fmt: skip


if __name__ == "__main__":
    suite_main("bench.techniques", __doc__, run)
