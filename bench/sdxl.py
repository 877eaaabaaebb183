"""SDXL: UNetDenoise's per-step time against StableDiffusionXLPipeline on the tiny SDXL model.

The very same UNet module, same process, seed and scheduler (the model's own Euler); the two
run in rotated order several times and the median CPU time of each is compared, then again with
the UNet stubbed out (what each adds around it: scheduler math, guidance, SDXL's pooled
embeddings and size numbers, progress). Target: the node within 2% of the pipeline.

    python -m bench --only sdxl [--quick]
"""

from __future__ import annotations

from ._common import interleaved, isolate_cache_dir, median, row, suite_main
from .denoise import model_free

SUITE = "sdxl"
PROMPT = "a photograph of an astronaut riding a horse"


def run(quick: bool = False) -> list[dict]:
    import torch
    from diffusers import StableDiffusionXLPipeline

    from latentgraph.graph import CancelToken, Context, Settings
    from latentgraph.nodes import denoise, latents, loaders, text
    from latentgraph.nodes.schedulers import build_scheduler
    from latentgraph.nodes.tiny_sdxl import ensure_tiny_sdxl

    isolate_cache_dir()
    torch.set_num_threads(1)
    size, steps, repeats = (64, 10, 4) if quick else (128, 20, 5)
    guidance = 5.0
    settings = Settings()

    def ctx(t):
        return Context(t, t, settings, CancelToken(), emit_progress=lambda *a: None)

    unet, clip, vae, spec = loaders.load_model(ctx("LoadModel"), "builtin:tiny-sdxl")
    pos = text.text_encode(ctx("TextEncode"), clip, PROMPT)
    neg = text.text_encode(ctx("TextEncode"), clip, "")
    noise = latents.latent_noise(ctx("LatentNoise"), size, size, 1, 42, vae=vae)

    def node():
        denoise.unet_denoise(ctx("UNetDenoise"), unet, spec, pos, neg, noise, steps, guidance,
                             1.0, 42)  # fmt: skip

    pipe = StableDiffusionXLPipeline.from_pretrained(ensure_tiny_sdxl(), add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.unet = unet.unet  # the same module: only the loop around it differs
    pipe.scheduler = build_scheduler(spec, 42)

    def pipeline():
        pipe(prompt_embeds=pos.embeds, negative_prompt_embeds=neg.embeds,
             pooled_prompt_embeds=pos.pooled, negative_pooled_prompt_embeds=neg.pooled,
             height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
             generator=torch.Generator().manual_seed(42), output_type="latent")  # fmt: skip

    node(), pipeline()  # warm up
    times = interleaved({"node": node, "pipeline": pipeline}, repeats)
    med = {k: median(v) for k, v in times.items()}
    case = f"tiny SDXL {size}x{size} {steps} steps euler"
    rows = [row(SUITE, f"{k} per step", round(med[k] / steps * 1000, 2), "ms",
                note=f"{case}, median of {repeats}") for k in ("node", "pipeline")]  # fmt: skip
    ratio = med["node"] / med["pipeline"]
    spread = max(times["pipeline"]) / min(times["pipeline"]) - 1
    rows.append(row(SUITE, "UNetDenoise / StableDiffusionXLPipeline", round(ratio, 4), "x",
                    "< 1.02", ratio < 1.02,
                    note=f"output_type=latent; pipeline run-to-run spread {spread:.1%}"))  # fmt: skip
    rows += model_free(node, pipeline, unet.unet, med["pipeline"] / steps, steps, suite=SUITE,
                       versus="StableDiffusionXLPipeline")  # fmt: skip
    return rows


if __name__ == "__main__":
    suite_main("bench.sdxl", __doc__, run)
