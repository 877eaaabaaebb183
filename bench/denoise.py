"""UNetDenoise per-step time against a hand-written diffusers loop and StableDiffusionPipeline.

Same tiny model, same process, same seed and scheduler; each measured several times, best
kept. The node's overhead (scheduler build, batching, progress, cancellation checks) should
stay within 2% of the bare loop: ratio < 1.02.

    python bench/denoise.py [--quick]
"""

from __future__ import annotations

import sys
import time


def _setup(size: int):
    import torch

    from latentgraph.graph import CancelToken, Context, Settings
    from latentgraph.nodes import latents, loaders, schedulers, text

    torch.set_num_threads(1)
    settings = Settings()

    def ctx(t):
        return Context(t, t, settings, CancelToken(), emit_progress=lambda *a: None)

    unet, clip, vae, spec = loaders.load_model(ctx("LoadModel"), "builtin:tiny-sd")
    pos = text.text_encode(ctx("TextEncode"), clip, "a photograph of an astronaut")
    neg = text.text_encode(ctx("TextEncode"), clip, "")
    noise = latents.latent_noise(ctx("LatentNoise"), size, size, 1, 42, vae=vae)
    sp = schedulers.scheduler_select(ctx("SchedulerSelect"), spec, "dpm++2m")
    return ctx, unet, sp, pos, neg, noise


def _hand_loop(unet, spec, pos, neg, noise, steps, guidance):
    import torch

    from latentgraph.nodes.schedulers import build_scheduler

    sched = build_scheduler(spec, 42)
    sched.set_timesteps(steps)
    embeds = torch.cat([neg.embeds, pos.embeds])
    lat = noise.samples * sched.init_noise_sigma
    with torch.inference_mode():
        for t in sched.timesteps:
            inp = sched.scale_model_input(torch.cat([lat] * 2), t)
            eps = unet.unet(inp, t, encoder_hidden_states=embeds, return_dict=False)[0]
            u, c = eps.chunk(2)
            lat = sched.step(u + guidance * (c - u), t, lat, return_dict=False)[0]
    return lat


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool = False) -> list[dict]:
    import torch
    from diffusers import StableDiffusionPipeline

    from latentgraph.nodes import denoise
    from latentgraph.nodes.schedulers import build_scheduler
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    size, steps, repeats = (64, 10, 3) if quick else (128, 25, 5)
    ctx, unet, spec, pos, neg, noise = _setup(size)
    guidance = 7.5

    def node():
        denoise.unet_denoise(ctx("UNetDenoise"), unet, spec, pos, neg, noise, steps, guidance,
                             1.0, 42)  # fmt: skip

    def loop():
        _hand_loop(unet, spec, pos, neg, noise, steps, guidance)

    pipe = StableDiffusionPipeline.from_pretrained(ensure_tiny_sd(), safety_checker=None,
                                                   requires_safety_checker=False)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    pipe.unet = unet.unet  # the same module: only the loop around it differs
    pipe.text_encoder = pipe.text_encoder
    pipe.scheduler = build_scheduler(spec, 42)

    def pipeline():
        pipe(prompt_embeds=pos.embeds, negative_prompt_embeds=neg.embeds, height=size,
             width=size, num_inference_steps=steps, guidance_scale=guidance,
             generator=torch.Generator().manual_seed(42), output_type="latent")  # fmt: skip

    node(), loop(), pipeline()  # warm up
    # Interleave so drift on a shared machine hits all three alike.
    times = {"node": [], "loop": [], "pipeline": []}
    for _ in range(repeats):
        times["node"].append(_best(node, 1))
        times["loop"].append(_best(loop, 1))
        times["pipeline"].append(_best(pipeline, 1))
    best = {k: min(v) for k, v in times.items()}
    per_step = {k: v / steps * 1000 for k, v in best.items()}
    rows = [
        {"bench": "denoise", "what": k, "size": size, "steps": steps,
         "ms_per_step": round(per_step[k], 3)}
        for k in ("node", "loop", "pipeline")
    ]  # fmt: skip
    rows.append({"bench": "denoise", "what": "ratio node/loop",
                 "value": round(best["node"] / best["loop"], 4), "target": "< 1.02"})  # fmt: skip
    rows.append({"bench": "denoise", "what": "ratio node/pipeline",
                 "value": round(best["node"] / best["pipeline"], 4)})  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
