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
from .values import ClipModel, CondEntry, Conditioning, SizeConditioning, input_error

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
    return Conditioning.of(embeds.cpu(), prompts, pooled.cpu())  # cached on the CPU


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


def text_width(unet_config: Any) -> int | None:
    """The width of the text embeddings the UNet takes (its cross_attention_dim, or the
    input of its text projection); None when its blocks differ and no one width applies, or
    its config does not say."""
    if unet_config.get("encoder_hid_dim_type") == "text_proj":
        return unet_config.get("encoder_hid_dim")
    dims = unet_config.get("cross_attention_dim")
    dims = set(dims) if isinstance(dims, (list, tuple)) else {dims}
    return dims.pop() if len(dims) == 1 else None


def check_fits(ctx: Any, model: Any, entry: CondEntry, input_name: str) -> None:
    """Refuse a conditioning entry the UNet cannot take, naming the input: an SDXL UNet needs
    a pooled embedding (what SDXL's text encoders give) of a width it takes, and every UNet
    needs text embeddings as wide as its cross_attention_dim; both mismatches come from the
    text encoder of another model. Every sampler reaches the UNet through nodes/guidance.py,
    which calls this (by `added_inputs`) for each entry before the first step."""
    if is_sdxl_unet(model):
        if entry.pooled is None:
            raise input_error(ctx, input_name, "this SDXL model needs conditioning from an "
                              "SDXL text encoder (with a pooled embedding)")  # fmt: skip
        count = time_id_count(model.config, entry.pooled.shape[-1])
        if count not in (BASE_TIME_IDS, REFINER_TIME_IDS):
            raise input_error(ctx, input_name, f"the pooled embedding (width "
                              f"{entry.pooled.shape[-1]}) does not fit this SDXL model")  # fmt: skip
    width, expected = entry.embeds.shape[-1], text_width(model.config)
    if expected is not None and width != expected:
        source = ("an SDXL text encoder" if entry.pooled is not None and not is_sdxl_unet(model)
                  else "the text encoder of another model (SD 1.x: 768 wide, SD 2.x: 1024, "
                       "SDXL: 2048, SDXL refiner: 1280)")  # fmt: skip
        raise input_error(ctx, input_name, f"the conditioning's text embeddings are {width} "
                          f"wide but this UNet takes {expected} (its cross_attention_dim): "
                          f"it likely comes from {source}; encode the prompt with the clip "
                          f"loaded with this model")  # fmt: skip


def added_inputs(ctx: Any, model: Any, entry: CondEntry, input_name: str,
                 latent_shape: tuple[int, ...]) -> dict[str, Any] | None:  # fmt: skip
    """The SDXL UNet's `added_cond_kwargs` for one conditioning entry's rows (None for other
    UNets): its pooled embedding and time ids, one row per image of the latent batch. The
    entry is checked to fit the UNet first (`check_fits`), for every UNet."""
    import torch

    check_fits(ctx, model, entry, input_name)
    if not is_sdxl_unet(model):
        return None
    count = time_id_count(model.config, entry.pooled.shape[-1])
    batch, latent_hw = latent_shape[0], tuple(latent_shape[-2:])
    pooled = entry.pooled if entry.pooled.shape[0] == batch else entry.pooled.expand(batch, -1)
    ids = time_ids(entry.size, latent_hw, count, negative=input_name == "negative")
    return {
        "text_embeds": pooled,
        "time_ids": torch.tensor([ids], dtype=entry.embeds.dtype).repeat(batch, 1),
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
    """The conditioning with new SDXL size numbers on every entry (a size of 0: the latent's,
    at sampling; no aesthetic score: each entry keeps its own)."""

    def resized(entry: CondEntry) -> CondEntry:
        score = entry.size.aesthetic_score if aesthetic_score is None else aesthetic_score
        size = SizeConditioning(width or None, height or None, crop_w, crop_h,
                                target_width or None, target_height or None, score)  # fmt: skip
        return replace(entry, size=size)

    return conditioning.map(resized)


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
