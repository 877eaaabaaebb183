"""SDXL: text encoding with two encoders, size conditioning, and the UNet's added inputs.

What diffusers' StableDiffusionXLPipeline does, as values on sockets:
- the prompt goes through both text encoders; each one's penultimate hidden state (no final
  layer norm) is kept and the two are concatenated along the feature axis; the second
  encoder's projected output is the pooled embedding. The refiner has only the second encoder.
- the UNet also takes `text_embeds` (the pooled embedding) and `time_ids`: original size, crop
  top-left, target size (base), or original size, crop, aesthetic score (refiner). How many
  numbers a model takes is read from its UNet config, so the refiner needs no flag.
Size numbers left unset on the CONDITIONING are filled from the latent being denoised (its
size times 8), as ComfyUI does and as diffusers' defaults (the output size) come to.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from latentgraph.graph import CONDITIONING, Float, Int, Output, Socket, node

from . import runtime
from .values import ClipModel, Conditioning, SizeConditioning, input_error

PIXELS_PER_LATENT = 8  # every SD-family VAE, the tiny models' included
BASE_TIME_IDS = 6  # (height, width, crop top, crop left, target height, target width)
REFINER_TIME_IDS = 5  # (height, width, crop top, crop left, aesthetic score)
AESTHETIC_POSITIVE = 6.0  # diffusers' and ComfyUI's defaults
AESTHETIC_NEGATIVE = 2.5
PENULTIMATE = -2


def _hidden(encoder: Any, ids: Any, layer: int) -> Any:
    """(hidden state of `layer`, the encoder's first output: pooled for the projection model)."""
    out = encoder(ids.to(encoder.device), output_hidden_states=True)
    return out.hidden_states[layer], out[0]


def plain_prompts(ctx: Any, prompts: list[str]) -> list[str]:
    """The prompts as SDXL encodes them for now: weights `(word:1.3)` are read as weight 1 (the
    text kept, the syntax dropped, with a warning); `embedding:NAME` is refused. Both work for
    SD 1.x/2.x (nodes/text.py); for SDXL they are still to do."""
    from .prompt_syntax import is_plain, parse_prompt

    out = []
    for prompt in prompts:
        pieces = parse_prompt(prompt)
        if is_plain(prompt, pieces):
            out.append(prompt)
            continue
        if any(piece.embedding for piece in pieces):
            raise input_error(ctx, "text", "embedding:NAME is not supported with SDXL models yet")
        ctx.warn("prompt weights are not applied with SDXL models yet: the prompt is encoded "
                 "with every weight 1")  # fmt: skip
        out.append("".join(piece.text for piece in pieces))
    return out


def encode_sdxl(ctx: Any, clip: ClipModel, prompts: list[str], prompts_l: list[str] | None = None,
                layer: int = PENULTIMATE) -> Conditioning:  # fmt: skip
    """Encode prompts with SDXL's encoders: `prompts` with the second (OpenCLIP bigG, "g"),
    `prompts_l` (default: the same) with the first (CLIP ViT-L, absent on the refiner)."""
    import torch

    from .text import plain_ids

    prompts = plain_prompts(ctx, prompts)
    prompts_l = prompts if prompts_l is None else plain_prompts(ctx, prompts_l)
    if len(prompts_l) != len(prompts):
        raise input_error(ctx, "text_l", f"{len(prompts_l)} prompts for the first encoder "
                                         f"but {len(prompts)} for the second")  # fmt: skip
    states = []
    encoders = [m for m in (clip.text_encoder, clip.text_encoder_2) if m is not None]
    with torch.inference_mode(), runtime.in_use(ctx.settings, clip.device, *encoders):
        if clip.text_encoder is not None:
            ids = plain_ids(ctx, clip.tokenizer, prompts_l, warn=prompts_l is not prompts)
            states.append(_hidden(clip.text_encoder, ids, layer)[0])
        ids_2 = plain_ids(ctx, clip.tokenizer_2, prompts)
        hidden_2, pooled = _hidden(clip.text_encoder_2, ids_2, layer)
        states.append(hidden_2)
        embeds = torch.cat(states, dim=-1).to(dtype=clip.text_encoder_2.dtype)
    return Conditioning(embeds.cpu(), list(prompts), pooled.cpu())  # cached on the CPU


def time_id_count(unet_config: Any, pooled_dim: int) -> int:
    """How many size numbers the UNet takes: what its added-embedding input has beyond the
    pooled embedding, in units of the time embedding width (6: base, 5: refiner)."""
    extra = unet_config.projection_class_embeddings_input_dim - pooled_dim
    return extra // unet_config.addition_time_embed_dim


def time_ids(size: SizeConditioning, latent_hw: tuple[int, int], count: int,
             negative: bool) -> list[float]:  # fmt: skip
    """The UNet's size numbers for one conditioning, unset ones from the latent's size."""
    height = size.height or latent_hw[0] * PIXELS_PER_LATENT
    width = size.width or latent_hw[1] * PIXELS_PER_LATENT
    head = [height, width, size.crop_h, size.crop_w]
    if count == REFINER_TIME_IDS:
        default = AESTHETIC_NEGATIVE if negative else AESTHETIC_POSITIVE
        score = size.aesthetic_score if size.aesthetic_score is not None else default
        return [*head, score]
    return [*head, size.target_height or height, size.target_width or width]


def is_sdxl_unet(unet: Any) -> bool:
    return unet.config.get("addition_embed_type") == "text_time"


def added_cond_kwargs(job: Any, batch: int) -> dict[str, Any] | None:
    """The SDXL UNet's `added_cond_kwargs` for a DenoiseJob (None for other UNets): pooled
    embeddings and time ids, negative rows first under guidance as the embeddings are."""
    import torch

    if not is_sdxl_unet(job.model):
        return None
    rows = [("negative", job.negative)] if job.guided else []
    rows.append(("positive", job.positive))
    latent_hw = tuple(job.latent.samples.shape[-2:])
    pooled_rows, id_rows = [], []
    for name, cond in rows:
        if cond.pooled is None:
            raise input_error(job.ctx, name, "this SDXL model needs conditioning from an SDXL "
                                             "text encoder (with a pooled embedding)")  # fmt: skip
        count = time_id_count(job.model.config, cond.pooled.shape[-1])
        if count not in (BASE_TIME_IDS, REFINER_TIME_IDS):
            raise input_error(job.ctx, name, f"the pooled embedding (width "
                              f"{cond.pooled.shape[-1]}) does not fit this SDXL model")  # fmt: skip
        pooled = cond.pooled if cond.pooled.shape[0] == batch else cond.pooled.expand(batch, -1)
        pooled_rows.append(pooled)
        ids = time_ids(cond.size, latent_hw, count, negative=name == "negative")
        id_rows.append(torch.tensor([ids], dtype=cond.embeds.dtype).repeat(batch, 1))
    dtype = job.model.dtype
    return {
        "text_embeds": torch.cat(pooled_rows).to(job.device, dtype),
        "time_ids": torch.cat(id_rows).to(job.device),
    }


SIZE_INPUTS = [
    Int("width", 0, min=0, max=16384, description="the image's size before cropping, as the "
        "model is told (0: the latent's)"),
    Int("height", 0, min=0, max=16384, description="0: the latent's"),
    Int("crop_w", 0, min=0, max=16384, description="left edge of the crop"),
    Int("crop_h", 0, min=0, max=16384, description="top edge of the crop"),
    Int("target_width", 0, min=0, max=16384, description="base model: the size wanted "
        "(0: width)"),
    Int("target_height", 0, min=0, max=16384, description="0: height"),
    Float("aesthetic_score", 6.0, min=0.0, max=1000.0, step=0.01, description="refiner only: "
          "the aesthetic score asked for (ComfyUI and diffusers: 6 positive, 2.5 negative)"),
]  # fmt: skip


def size_conditioning(conditioning: Conditioning, *, width: int = 0, height: int = 0,
                      crop_w: int = 0, crop_h: int = 0, target_width: int = 0,
                      target_height: int = 0, aesthetic_score: float | None = None) -> Conditioning:  # fmt: skip
    """The conditioning with new SDXL size numbers (a size of 0: the latent's, at sampling)."""
    if aesthetic_score is None:
        aesthetic_score = conditioning.size.aesthetic_score
    size = SizeConditioning(width or None, height or None, crop_w, crop_h, target_width or None,
                            target_height or None, aesthetic_score)  # fmt: skip
    return replace(conditioning, size=size)


@node(
    "SizeConditioning",
    category="conditioning",
    inputs=[Socket("conditioning", CONDITIONING), *SIZE_INPUTS],
    outputs=[Output("conditioning", CONDITIONING)],
)
def size_conditioning_node(ctx, conditioning: Conditioning, width: int = 0, height: int = 0,
                           crop_w: int = 0, crop_h: int = 0, target_width: int = 0,
                           target_height: int = 0, aesthetic_score: float = 6.0):  # fmt: skip
    """SDXL's size, crop and aesthetic conditioning (the model ignores it elsewhere)."""
    return size_conditioning(conditioning, width=width, height=height, crop_w=crop_w,
                             crop_h=crop_h, target_width=target_width,
                             target_height=target_height, aesthetic_score=aesthetic_score)  # fmt: skip
