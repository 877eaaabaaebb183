"""LoRA application time: LoadLoRA against diffusers' load_lora_weights + fuse_lora.

Both fuse the built-in tiny kohya-layout LoRA (builtin:tiny-lora) into the tiny model's UNet
and text encoder. Ours works on a weight-sharing copy (the shared model stays untouched) kept
by the model manager; diffusers' works in place on a pipeline already loaded. Each repeat
applies a strength not used before, so the manager never answers from memory; the cached
row times the second ask for the same LoRA and strength. CPU seconds, one torch thread,
interleaved repeats.
"""

from __future__ import annotations

import itertools
from typing import Any

from ._common import interleaved, isolate_cache_dir, median, one_thread, row, suite_main

SUITE = "lora"
LORA = "builtin:tiny-lora"


def run(quick: bool = False) -> list[dict]:
    isolate_cache_dir()
    one_thread()
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    from latentgraph.graph import CancelToken, Context, Settings
    from latentgraph.nodes import loaders, lora, model_presets
    from latentgraph.nodes.model_copies import new_bytes
    from latentgraph.nodes.model_manager import module_bytes
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    settings = Settings(device="cpu")
    ctx = Context("bench", "LoadLoRA", settings, CancelToken())
    unet, clip, _, _ = loaders.load_model(ctx, model_presets.BUILTIN_TINY)
    path = lora.lora_path(LORA)
    pipe = StableDiffusionPipeline.from_pretrained(ensure_tiny_sd(), safety_checker=None,
                                                   requires_safety_checker=False)  # fmt: skip
    strengths = itertools.count(1)

    def ours() -> Any:
        s = 0.5 + next(strengths) * 1e-4
        return lora.load_lora(ctx, unet, clip, LORA, s, s)

    def theirs() -> None:
        pipe.load_lora_weights(load_file(str(path)), adapter_name="bench")
        pipe.fuse_lora(components=["unet", "text_encoder"], lora_scale=0.5)
        pipe.unfuse_lora(components=["unet", "text_encoder"])
        pipe.unload_lora_weights()

    repeats = 3 if quick else 10
    ours()  # warm-up: imports, peft
    theirs()
    times = interleaved({"ours": ours, "diffusers": theirs}, repeats)
    t_ours, t_theirs = median(times["ours"]), median(times["diffusers"])
    u2, c2 = lora.load_lora(ctx, unet, clip, LORA, 0.25, 0.25)
    cached = interleaved({"cached": lambda: lora.load_lora(ctx, unet, clip, LORA, 0.25, 0.25)},
                         repeats)["cached"]  # fmt: skip
    extra = new_bytes(u2.unet, unet.unet) + new_bytes(c2.text_encoder, clip.text_encoder)
    whole = module_bytes(unet.unet, clip.text_encoder)
    note = f"tiny model, UNet + text encoder, median of {repeats}"
    return [
        row(SUITE, "LoadLoRA apply (copy + load + fuse)", round(t_ours * 1000, 1), "ms",
            note=note),
        row(SUITE, "diffusers load_lora_weights + fuse_lora (+ unfuse, unload)",
            round(t_theirs * 1000, 1), "ms", note=note),
        row(SUITE, "LoadLoRA / diffusers", round(t_ours / t_theirs, 3), "x",
            note="ours also copies the module tree; diffusers' time includes unfuse + unload"),
        row(SUITE, "same LoRA and strength again (model manager)",
            round(median(cached) * 1e6, 1), "us", note="no copy, no fuse"),
        row(SUITE, "memory held by a LoRA'd copy", round(100 * extra / whole, 2),
            "% of model", note=f"{extra / 2**10:.0f} KiB new of {whole / 2**20:.1f} MiB: only "
            "the fused layers; other weights are shared"),
    ]  # fmt: skip


if __name__ == "__main__":
    suite_main("bench.lora", __doc__, run)
