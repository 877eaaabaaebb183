"""UNetDenoise per-step time against a hand-written diffusers loop and StableDiffusionPipeline.

Same tiny model (the very same UNet module), same process, same seed and scheduler; the
three are run in rotated order several times and the median CPU time of each compared. The node's overhead (scheduler build, batching, progress, cancellation checks) should
stay within 2% of the bare loop: ratio < 1.02.

    python -m bench --only denoise [--quick]
"""

from __future__ import annotations

from ._common import interleaved, isolate_cache_dir, median, row, suite_main

SUITE = "denoise"


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


def model_free(node, loop, module, unet_step_s: float, steps: int, suite: str = SUITE,
               versus: str = "hand loop") -> list[dict]:  # fmt: skip
    """What each loop adds around the UNet, measured with the UNet replaced by a stub that
    returns a stored output: the difference is the node's own cost, free of the UNet's
    run-to-run noise (which on a shared machine is larger than the 2% being judged).
    `loop` is what the node is compared with (`versus` names it)."""
    import torch

    sample = {}

    def record(*args, **kwargs):
        out = original(*args, **kwargs)
        sample["out"] = out
        return out

    original = module.forward
    module.forward = record
    try:
        loop()
        stored = sample["out"]

        def stub(*args, **kwargs):
            return stored

        module.forward = stub
        with torch.inference_mode():
            times = interleaved({"node": node, "loop": loop}, 30)
    finally:
        del module.forward
    extra = (median(times["node"]) - median(times["loop"])) / steps
    per_step = {k: median(v) / steps * 1e6 for k, v in times.items()}
    ratio = (unet_step_s + max(extra, 0.0)) / unet_step_s
    return [
        row(suite, f"around the UNet per step: node vs {versus}", round(extra * 1e6, 1), "us",
            note=f"UNet stubbed: node {per_step['node']:.0f} us, {versus} "
            f"{per_step['loop']:.0f} us per step (scheduler math, CFG, progress, cancel checks)"),
        row(suite, f"UNetDenoise / {versus}, UNet noise removed", round(ratio, 4), "x", "< 1.02",
            ratio < 1.02, note="(UNet step + node's extra) / UNet step"),
    ]  # fmt: skip


def run(quick: bool = False) -> list[dict]:
    import torch
    from diffusers import StableDiffusionPipeline

    from latentgraph.nodes import denoise
    from latentgraph.nodes.schedulers import build_scheduler
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    isolate_cache_dir()
    size, steps, repeats = (64, 10, 4) if quick else (128, 20, 5)
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
    # Rotated order each round, CPU time of this process (one torch thread), medians: drift
    # and other load on a shared machine hit all three alike and do not count.
    times = interleaved({"node": node, "loop": loop, "pipeline": pipeline}, repeats)
    med = {k: median(v) for k, v in times.items()}
    case = f"{size}x{size} {steps} steps dpm++2m"
    rows = [row(SUITE, f"{k} per step", round(med[k] / steps * 1000, 2), "ms",
                note=f"{case}, median of {repeats}") for k in ("node", "loop", "pipeline")]  # fmt: skip
    ratio = med["node"] / med["loop"]
    spread = max(times["loop"]) / min(times["loop"]) - 1
    rows.append(row(SUITE, "UNetDenoise / hand loop", round(ratio, 4), "x", "< 1.02", ratio < 1.02,
                    note=f"loop run-to-run spread {spread:.1%}"))  # fmt: skip
    rows += model_free(node, loop, unet.unet, med["loop"] / steps, steps)
    ratio_p = med["node"] / med["pipeline"]
    rows.append(row(SUITE, "UNetDenoise / StableDiffusionPipeline", round(ratio_p, 4), "x",
                    "< 1.02", ratio_p < 1.02, note="output_type=latent"))  # fmt: skip
    return rows


if __name__ == "__main__":
    suite_main("bench.denoise", __doc__, run)
