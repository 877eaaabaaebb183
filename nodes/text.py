"""TextEncode: prompts → CONDITIONING, one row per prompt.

Prompts longer than the tokenizer's limit (77 tokens for CLIP) are truncated, with a warning
event naming how many tokens were dropped: chunking would change results versus diffusers'
pipeline, which truncates too.
"""

from __future__ import annotations

import json

from latentgraph.graph import CLIP, CONDITIONING, Output, Socket, String, node

from . import runtime
from .values import ClipModel, Conditioning, input_error


def split_prompts(text: str | list[str]) -> list[str]:
    """A list of prompts gives a batch. Accepts a list, or a JSON list written as a string."""
    if isinstance(text, list):
        return [str(t) for t in text]
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            value = json.loads(stripped)
        except ValueError:
            return [text]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    return [text]


def encode(ctx, clip: ClipModel, prompts: list[str]):
    import torch

    tok = clip.tokenizer
    limit = tok.model_max_length
    ids = tok(prompts, padding="max_length", max_length=limit, truncation=True,
              return_tensors="pt").input_ids  # fmt: skip
    for i, prompt in enumerate(prompts):
        full_ids = tok(prompt).input_ids
        if len(full_ids) > limit:
            dropped = tok.decode(full_ids[limit - 1 : -1])
            ctx.warn(f"prompt {i} is {len(full_ids)} tokens, longer than the limit of {limit}: "
                     f"truncated, dropping {dropped!r}")  # fmt: skip
    te = clip.text_encoder
    with torch.inference_mode(), runtime.in_use(ctx.settings, clip.device, te):
        device = te.device
        attention = None
        if getattr(te.config, "use_attention_mask", False):
            attention = torch.ones_like(ids).to(device)
        embeds = te(ids.to(device), attention_mask=attention)[0]
    return embeds.to(dtype=te.dtype).cpu()  # cached on the CPU; UNetDenoise moves it back


@node(
    "TextEncode",
    category="conditioning",
    inputs=[
        Socket("clip", CLIP),
        String(
            "text",
            "",
            multiline=True,
            description="a prompt, or a JSON list of prompts for a batch",
        ),  # fmt: skip
    ],
    outputs=[Output("conditioning", CONDITIONING)],
)
def text_encode(ctx, clip: ClipModel, text: str):
    """Encode a prompt (or a list of prompts, one per batch image) with the CLIP text encoder."""
    prompts = split_prompts(text)
    if not prompts:
        raise input_error(ctx, "text", "expected at least one prompt")
    return Conditioning(encode(ctx, clip, prompts), prompts)
