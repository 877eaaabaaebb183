"""Diffusers -> original (CompVis "LDM") tensor names, for writing single-file checkpoints.

Single-file Stable Diffusion checkpoints (the files people share, the ones ComfyUI loads) keep
the names of the original training code: `model.diffusion_model.*` (UNet),
`first_stage_model.*` (VAE), `cond_stage_model.transformer.*` (CLIP text encoder). diffusers
reads them (`from_single_file`) but has no public writer, so this module maps the other way.
Only the Stable Diffusion 1.x block layout is covered (UNet2DConditionModel with an integer
`layers_per_block`, AutoencoderKL, a transformers CLIP text model): what the tiny models use;
SDXL adds its conditioner's two text encoders (the second in OpenCLIP's layout).
No torch import: values pass through untouched, except the VAE attention weights, which the
original code stores as 1x1 convolutions (a reshape, applied through `to_conv1x1`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

_UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",  # SDXL: pooled text + size numbers
    "add_embedding.linear_2.": "label_emb.0.2.",
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


class _StateDict(dict):
    def put(self, name: str, value: Any) -> None:
        if name in self:
            raise ValueError(f"two tensors map to the same original name {name!r}")
        self[name] = value

    def put_unet_vae(self, unet: Mapping[str, Any], unet_config: Mapping[str, Any],
                     vae: Mapping[str, Any], vae_config: Mapping[str, Any],
                     to_conv1x1: Callable[[Any], Any]) -> None:  # fmt: skip
        for key, value in unet.items():
            self.put(UNET_PREFIX + unet_key(key, unet_config), value)
        for key, value in vae.items():
            name = vae_key(key, vae_config)
            if is_vae_attention_weight(name) and len(value.shape) == 2:
                value = to_conv1x1(value)
            self.put(VAE_PREFIX + name, value)

    def put_clip(self, prefix: str, text_encoder: Mapping[str, Any]) -> None:
        for key, value in text_encoder.items():
            if not key.endswith("position_ids"):  # a buffer, rebuilt by the model
                self.put(prefix + clip_key(key), value)


def to_original(
    unet: Mapping[str, Any],
    unet_config: Mapping[str, Any],
    vae: Mapping[str, Any],
    vae_config: Mapping[str, Any],
    text_encoder: Mapping[str, Any],
    to_conv1x1: Callable[[Any], Any],
) -> dict[str, Any]:
    """One original-layout state dict from the three diffusers/transformers state dicts."""
    out = _StateDict()
    out.put_unet_vae(unet, unet_config, vae, vae_config, to_conv1x1)
    out.put_clip(CLIP_PREFIX, text_encoder)
    return dict(out)


# SDXL (Stability's "sgm" code): the text encoders are "embedders" of a conditioner. The base has
# CLIP ViT-L in transformers' layout (0) and OpenCLIP bigG in OpenCLIP's layout (1); the refiner
# has only the OpenCLIP one (0).
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_CLIP_G_PREFIX = "conditioner.embedders.0.model."
_OPEN_CLIP_TOP = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}
_OPEN_CLIP_LAYER = re.compile(r"^text_model\.encoder\.layers\.(\d+)\.(.*)$")
_OPEN_CLIP_BLOCK = {
    "layer_norm1.": "ln_1.",
    "layer_norm2.": "ln_2.",
    "mlp.fc1.": "mlp.c_fc.",
    "mlp.fc2.": "mlp.c_proj.",
    "self_attn.out_proj.": "attn.out_proj.",
}
_QKV = re.compile(r"^self_attn\.([qkv])_proj\.(weight|bias)$")


def open_clip_state(text_encoder: Mapping[str, Any], concat: Callable[[list[Any]], Any],
                    transpose: Callable[[Any], Any]) -> dict[str, Any]:  # fmt: skip
    """A transformers CLIPTextModelWithProjection state dict in OpenCLIP's names (without
    prefix): per layer, q/k/v projections stacked into one `attn.in_proj_*`, and the projection
    stored as the matrix the pooled output is multiplied by (the transpose of a Linear's)."""
    out = _StateDict()
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    for key, value in text_encoder.items():
        key = clip_key(key) if not key.startswith("text_projection") else key
        if key.endswith("position_ids"):
            continue
        if key == "text_projection.weight":
            out.put("text_projection", transpose(value))
        elif key in _OPEN_CLIP_TOP:
            out.put(_OPEN_CLIP_TOP[key], value)
        elif (m := _OPEN_CLIP_LAYER.match(key)) and (q := _QKV.match(m[2])):
            qkv.setdefault((m[1], q[2]), {})[q[1]] = value
        elif m:
            out.put(f"transformer.resblocks.{m[1]}.{_rename(m[2], _OPEN_CLIP_BLOCK)}", value)
        else:
            raise ValueError(f"text encoder tensor {key!r} has no known OpenCLIP name")
    for (layer, kind), parts in qkv.items():
        out.put(f"transformer.resblocks.{layer}.attn.in_proj_{kind}",
                concat([parts["q"], parts["k"], parts["v"]]))  # fmt: skip
    return dict(out)


@dataclass(frozen=True)
class TensorOps:
    """The few tensor operations the layout change needs (this module imports no torch)."""

    to_conv1x1: Callable[[Any], Any]
    concat: Callable[[list[Any]], Any]
    transpose: Callable[[Any], Any]


def torch_ops() -> TensorOps:
    """The tensor operations on torch tensors."""
    import torch

    return TensorOps(to_conv1x1=lambda t: t.reshape(*t.shape, 1, 1), concat=torch.cat,
                     transpose=lambda t: t.T.contiguous())  # fmt: skip


def sdxl_to_original(unet: Mapping[str, Any], unet_config: Mapping[str, Any],
                     vae: Mapping[str, Any], vae_config: Mapping[str, Any],
                     text_encoder: Mapping[str, Any] | None, text_encoder_2: Mapping[str, Any],
                     ops: TensorOps) -> dict[str, Any]:  # fmt: skip
    """One SDXL original-layout state dict (base, or refiner when `text_encoder` is None)."""
    out = _StateDict()
    out.put_unet_vae(unet, unet_config, vae, vae_config, ops.to_conv1x1)
    prefix = SDXL_REFINER_CLIP_G_PREFIX
    if text_encoder is not None:
        out.put_clip(SDXL_CLIP_L_PREFIX, text_encoder)
        prefix = SDXL_CLIP_G_PREFIX
    for key, value in open_clip_state(text_encoder_2, ops.concat, ops.transpose).items():
        out.put(prefix + key, value)
    return dict(out)
