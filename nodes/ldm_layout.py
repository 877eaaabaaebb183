"""Diffusers -> original (CompVis "LDM") tensor names, for writing single-file checkpoints.

Single-file Stable Diffusion checkpoints (the files people share, the ones ComfyUI loads) keep
the names of the original training code: `model.diffusion_model.*` (UNet),
`first_stage_model.*` (VAE), `cond_stage_model.transformer.*` (CLIP text encoder). diffusers
reads them (`from_single_file`) but has no public writer, so this module maps the other way.
Only the Stable Diffusion 1.x block layout is covered (UNet2DConditionModel with an integer
`layers_per_block`, AutoencoderKL, a transformers CLIP text model): what the tiny model uses.
No torch import: values pass through untouched, except the VAE attention weights, which the
original code stores as 1x1 convolutions (a reshape, applied through `to_conv1x1`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

_UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_UNET_RESNET = {
    "norm1.": "in_layers.0.",
    "conv1.": "in_layers.2.",
    "time_emb_proj.": "emb_layers.1.",
    "norm2.": "out_layers.0.",
    "conv2.": "out_layers.3.",
    "conv_shortcut.": "skip_connection.",
}
_VAE_ATTN = {
    "group_norm.": "norm.",
    "to_q.": "q.",
    "to_k.": "k.",
    "to_v.": "v.",
    "to_out.0.": "proj_out.",
}

_DOWN = re.compile(r"^down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)$")
_UP = re.compile(r"^up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)$")
_MID = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.*)$")
_VAE_DOWN = re.compile(r"^encoder\.down_blocks\.(\d+)\.(resnets|downsamplers)\.(\d+)\.(.*)$")
_VAE_UP = re.compile(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)$")
_VAE_MID = re.compile(r"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)$")


def _rename(rest: str, table: Mapping[str, str]) -> str:
    for old, new in table.items():
        if rest.startswith(old):
            return new + rest[len(old) :]
    return rest


def unet_key(key: str, config: Mapping[str, Any]) -> str:
    """The original name of one diffusers UNet2DConditionModel tensor (without prefix)."""
    per = config["layers_per_block"]
    if not isinstance(per, int):
        raise ValueError("only an integer layers_per_block is supported")
    for old, new in _UNET_TOP.items():
        if key.startswith(old):
            return new + key[len(old) :]
    if m := _DOWN.match(key):
        block, kind, index, rest = int(m[1]), m[2], int(m[3]), m[4]
        first = 1 + block * (per + 1)
        if kind == "resnets":
            return f"input_blocks.{first + index}.0.{_rename(rest, _UNET_RESNET)}"
        if kind == "attentions":
            return f"input_blocks.{first + index}.1.{rest}"
        return f"input_blocks.{first + per}.0.op.{_rename(rest, {'conv.': ''})}"
    if m := _MID.match(key):
        kind, index, rest = m[1], int(m[2]), m[3]
        if kind == "resnets":
            return f"middle_block.{2 * index}.{_rename(rest, _UNET_RESNET)}"
        return f"middle_block.1.{rest}"
    if m := _UP.match(key):
        block, kind, index, rest = int(m[1]), m[2], int(m[3]), m[4]
        first = block * (per + 1)
        if kind == "resnets":
            return f"output_blocks.{first + index}.0.{_rename(rest, _UNET_RESNET)}"
        if kind == "attentions":
            return f"output_blocks.{first + index}.1.{rest}"
        has_attention = "CrossAttn" in config["up_block_types"][block]
        return f"output_blocks.{first + per}.{2 if has_attention else 1}.{rest}"
    raise ValueError(f"UNet tensor {key!r} has no known original name")


def vae_key(key: str, config: Mapping[str, Any]) -> str:
    """The original name of one diffusers AutoencoderKL tensor (without prefix)."""
    if m := _VAE_DOWN.match(key):
        block, kind, index, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            return f"encoder.down.{block}.block.{index}.{_rename(rest, {'conv_shortcut.': 'nin_shortcut.'})}"
        return f"encoder.down.{block}.downsample.{rest}"
    if m := _VAE_UP.match(key):
        count = len(config["up_block_types"])
        block, kind, index, rest = count - 1 - int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            return f"decoder.up.{block}.block.{index}.{_rename(rest, {'conv_shortcut.': 'nin_shortcut.'})}"
        return f"decoder.up.{block}.upsample.{rest}"
    if m := _VAE_MID.match(key):
        side, kind, index, rest = m[1], m[2], int(m[3]), m[4]
        if kind == "resnets":
            return (
                f"{side}.mid.block_{index + 1}.{_rename(rest, {'conv_shortcut.': 'nin_shortcut.'})}"
            )
        return f"{side}.mid.attn_1.{_rename(rest, _VAE_ATTN)}"
    for side in ("encoder.", "decoder."):
        if key.startswith(side + "conv_norm_out."):
            return side + "norm_out." + key[len(side + "conv_norm_out.") :]
    if key.split(".")[0] in ("encoder", "decoder", "quant_conv", "post_quant_conv"):
        return key
    raise ValueError(f"VAE tensor {key!r} has no known original name")


def is_vae_attention_weight(original_key: str) -> bool:
    """Original VAE attention projections are 1x1 convolutions: [C, C, 1, 1], not [C, C]."""
    return ".mid.attn_1." in original_key and original_key.rsplit(".", 2)[-2:] in (
        ["q", "weight"],
        ["k", "weight"],
        ["v", "weight"],
        ["proj_out", "weight"],
    )


def clip_key(key: str) -> str:
    """The original name of a transformers CLIPTextModel tensor (with the `text_model.` part
    that transformers 5 no longer keeps in the module tree)."""
    return key if key.startswith("text_model.") else "text_model." + key


def to_original(
    unet: Mapping[str, Any],
    unet_config: Mapping[str, Any],
    vae: Mapping[str, Any],
    vae_config: Mapping[str, Any],
    text_encoder: Mapping[str, Any],
    to_conv1x1: Callable[[Any], Any],
) -> dict[str, Any]:
    """One original-layout state dict from the three diffusers/transformers state dicts."""
    out: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        if name in out:
            raise ValueError(f"two tensors map to the same original name {name!r}")
        out[name] = value

    for key, value in unet.items():
        put(UNET_PREFIX + unet_key(key, unet_config), value)
    for key, value in vae.items():
        name = vae_key(key, vae_config)
        if is_vae_attention_weight(name) and len(value.shape) == 2:
            value = to_conv1x1(value)
        put(VAE_PREFIX + name, value)
    for key, value in text_encoder.items():
        if key.endswith("position_ids"):
            continue  # a buffer, rebuilt by the model
        put(CLIP_PREFIX + clip_key(key), value)
    return out
