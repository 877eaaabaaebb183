"""Which attention implementation the loaded modules use, from the run's options.

PyTorch's scaled-dot-product attention (SDPA, diffusers' default on torch 2) is the fastest
path, and its fused kernels already compute attention in bounded memory. So `attention_slicing`
only slices when SDPA is turned off (`sdpa=false`, e.g. to compare against the classic
processor, which also honours a UNet's `upcast_attention`); with SDPA on it changes nothing.
"""

from __future__ import annotations

from typing import Any

from latentgraph.graph import Settings


def choose_attention(unet: Any, vae: Any, settings: Settings) -> None:
    if settings.option("sdpa"):
        return  # SDPA stays: slicing would replace it with a slower processor
    from diffusers.models.attention_processor import AttnProcessor

    unet.set_attn_processor(AttnProcessor())
    vae.set_attn_processor(AttnProcessor())
    if settings.option("attention_slicing"):
        unet.set_attention_slice("auto")
