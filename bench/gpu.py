"""GPU rows: fp16, model CPU offload, torch.compile and TF32, each as it/s of our UNetDenoise
against diffusers' StableDiffusionPipeline on the same CUDA device, same model, same steps.

Needs CUDA: on a machine without it every row says it was skipped (the table keeps the rows,
so a reader sees what was not measured). Wall time with CUDA synchronization, since the GPU
works asynchronously; the two sides alternate, so drift hits both.
"""

from __future__ import annotations

import time
from typing import Any

from ._common import has_cuda, interleaved, isolate_cache_dir, median, row, skipped, suite_main

SUITE = "gpu"
PROMPT = "a photograph of an astronaut riding a horse"
# name -> (dtype, options); the pipeline side gets the same dtype and the matching setting
ROWS = {
    "fp16 weights": ("fp16", {}),
    "model CPU offload (fp16)": ("fp16", {"cpu_offload": True}),
    "torch.compile UNet (fp16)": ("fp16", {"compile": True}),
    "TF32 (fp32)": ("fp32", {"tf32": True}),
}


def run(quick: bool) -> list[dict]:
    if not has_cuda():
        return [skipped(SUITE, name, "needs CUDA (no GPU on this machine)") for name in ROWS]
    isolate_cache_dir()
    size, steps, repeats = (256, 10, 2) if quick else (512, 25, 3)
    return [_row(name, dtype, options, size, steps, repeats)
            for name, (dtype, options) in ROWS.items()]  # fmt: skip


def _row(name: str, dtype: str, options: dict[str, Any], size: int, steps: int,
         repeats: int) -> dict:  # fmt: skip
    import torch

    from latentgraph.nodes.model_manager import manager

    ours = _ours(dtype, options, size, steps)
    theirs = _pipeline(dtype, options, size, steps)

    def timed(fn):
        def go():
            fn()
            torch.cuda.synchronize()

        return go

    timed(ours)(), timed(theirs)()  # warm up: compile, allocator, cuDNN autotune
    times = interleaved({"ours": timed(ours), "pipe": timed(theirs)}, repeats, time.perf_counter)
    ours_its, pipe_its = steps / median(times["ours"]), steps / median(times["pipe"])
    manager().free()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return row(SUITE, name, round(ours_its, 2), "it/s",
               note=f"StableDiffusionPipeline {pipe_its:.2f} it/s on {torch.cuda.get_device_name()}"
               f" ({size}px, {steps} steps, tiny model; includes text encode and VAE decode)")  # fmt: skip


def _ours(dtype: str, options: dict[str, Any], size: int, steps: int):
    from latentgraph.graph import CancelToken, Context, Settings
    from latentgraph.nodes import denoise, latents, loaders, model_presets, schedulers, text, vae

    settings = Settings(device="cuda", dtype=dtype, options=dict(options))

    def ctx(node_type: str) -> Context:
        return Context("bench", node_type, settings, CancelToken())

    unet, clip, vae_model, spec = loaders.load_model(ctx("LoadModel"), model_presets.BUILTIN_TINY)
    sched = schedulers.scheduler_select(ctx("SchedulerSelect"), spec, "dpm++2m")

    def go():
        pos = text.text_encode(ctx("TextEncode"), clip, PROMPT)
        neg = text.text_encode(ctx("TextEncode"), clip, "")
        noise = latents.latent_noise(ctx("LatentNoise"), size, size, 1, 42, vae=vae_model)
        out = denoise.unet_denoise(ctx("UNetDenoise"), unet, sched, pos, neg, noise, steps,
                                   7.5, 1.0, 42)  # fmt: skip
        vae.vae_decode(ctx("VAEDecode"), out, vae_model)

    return go


def _pipeline(dtype: str, options: dict[str, Any], size: int, steps: int):
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    from latentgraph.nodes.runtime import torch_dtype
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    pipe = StableDiffusionPipeline.from_pretrained(
        str(ensure_tiny_sd()), torch_dtype=torch_dtype(dtype), safety_checker=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if options.get("cpu_offload"):
        pipe.enable_model_cpu_offload()
    else:
        pipe.to("cuda")
    if options.get("compile"):
        pipe.unet.compile(dynamic=False)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(
        options.get("tf32")
    )

    def go():
        generator = torch.Generator("cpu").manual_seed(42)
        pipe(PROMPT, height=size, width=size, num_inference_steps=steps, guidance_scale=7.5,
             generator=generator, output_type="pil")  # fmt: skip

    return go


if __name__ == "__main__":
    suite_main("bench.gpu", __doc__, run)
