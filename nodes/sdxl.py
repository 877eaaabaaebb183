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


def _encoder_output(ctx: Any, clip: ClipModel, pair: tuple[Any, Any], prompts: list[str],
                    layer: int, warn: bool, part: tuple[str, str]) -> tuple[Any, Any]:  # fmt: skip
    """One encoder's (hidden state of `layer`, first output) for the prompts: plain prompts
    tokenized exactly as diffusers does, weighted ones as TextEncode does (nodes/text.py),
    the weights applied to the hidden state as ComfyUI does; embeddings give this encoder
    their part, `part` = (tensor name "clip_l" or "clip_g", the input the prompts came from)."""
    import torch

    from .prompt_syntax import is_plain, parse_prompt
    from .text import inserted, plain_ids, tokenize, weighted

    tok, encoder = pair
    if all(is_plain(p, parse_prompt(p)) for p in prompts):
        return _hidden(encoder, plain_ids(ctx, tok, prompts, warn), layer)
    view = ClipModel(tok, encoder, clip.key, clip.device)
    tokens = [tokenize(ctx, view, i, p, *part) for i, p in enumerate(prompts)]
    with inserted(encoder, [t.inserts for t in tokens]):
        hidden, first = _hidden(encoder, torch.tensor([t.ids for t in tokens]), layer)
    empty = tok([""], padding="max_length", max_length=tok.model_max_length,
                return_tensors="pt").input_ids  # fmt: skip
    return weighted(hidden, tokens, lambda: _hidden(encoder, empty, layer)[0]), first


def encode_sdxl(ctx: Any, clip: ClipModel, prompts: list[str], prompts_l: list[str] | None = None,
                layer: int = PENULTIMATE, inputs: tuple[str, str] = ("text", "text")) -> Conditioning:  # fmt: skip
    """Encode prompts with SDXL's encoders: `prompts` with the second (OpenCLIP bigG, "g"),
    `prompts_l` (default: the same) with the first (CLIP ViT-L, absent on the refiner).
    ComfyUI's prompt weights apply to both; an embedding gives each encoder its own vectors
    ("clip_l", "clip_g"). `inputs` names the node inputs the two prompt lists came from, for
    errors."""
    import torch

    prompts_l = prompts if prompts_l is None else prompts_l
    if len(prompts_l) != len(prompts):
        raise input_error(ctx, inputs[1], f"{len(prompts_l)} prompts for the first encoder "
                                         f"but {len(prompts)} for the second")  # fmt: skip
    states = []
    encoders = [m for m in (clip.text_encoder, clip.text_encoder_2) if m is not None]
    with torch.inference_mode(), runtime.in_use(ctx.settings, clip.device, *encoders):
        if clip.text_encoder is not None:
            pair = (clip.tokenizer, clip.text_encoder)
            states.append(_encoder_output(ctx, clip, pair, prompts_l, layer,
                                          prompts_l is not prompts, ("clip_l", inputs[1]))[0])  # fmt: skip
        pair_2 = (clip.tokenizer_2, clip.text_encoder_2)
        hidden_2, pooled = _encoder_output(ctx, clip, pair_2, prompts, layer, True,
                                           ("clip_g", inputs[0]))  # fmt: skip
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
