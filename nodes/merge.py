"""Model merging: weighted sums of two UNets (whole, or per block) or two text encoders, and
SaveCheckpoint to keep the result as one original-layout .safetensors file.

A merge is computed once per process: the result is a new module in the model manager under a
key made of the inputs' keys and the merge's numbers, so re-running a graph (or another graph
with the same merge) reuses it, and the inputs' modules are never written to. Tensors are
combined in float32 and stored in the first model's dtype; buffers (e.g. position ids) are the
first model's. Both models must have the same architecture (same tensor names and shapes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from latentgraph.graph import (
    CLIP,
    MODEL,
    VAE,
    Float,
    NodeResult,
    Output,
    Socket,
    node,
)

from .images import SAVES, document_text, filename_prefix_input, other_entries, output_files
from .model_manager import manager
from .values import ClipModel, UNetModel, VAEModel, input_error

# A tensor's block, from its diffusers name: the first name part -> ComfyUI's block group.
BLOCKS = {"conv_in": "input", "down_blocks": "input", "mid_block": "middle",
          "up_blocks": "output", "conv_norm_out": "output", "conv_out": "output"}  # fmt: skip


@dataclass(frozen=True)
class Blend:
    """out = a * weight_a + b * weight_b for each tensor; per-block weights of `a` override
    `weight_a` (and b's is 1 - that) for ModelMergeBlocks-style merges."""

    name: str
    weight_a: float
    weight_b: float
    blocks: tuple[tuple[str, float], ...] = ()

    def weights(self, tensor_name: str) -> tuple[float, float]:
        group = BLOCKS.get(tensor_name.split(".", 1)[0])
        for block, ratio in self.blocks:
            if block == group:
                return ratio, 1.0 - ratio
        return self.weight_a, self.weight_b

    def key(self, component: str, a: str, b: str) -> str:
        text = json.dumps([component, self.name, a, b, self.weight_a, self.weight_b, self.blocks])
        return f"merge:{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _blended(ctx: Any, a: Any, b: Any, blend: Blend) -> Any:
    from .model_copies import copy_module

    theirs = dict(b.named_parameters())
    out = copy_module(a)
    for name, param in out.named_parameters():
        other = theirs.get(name)
        if other is None or other.shape != param.shape:
            found = "missing" if other is None else f"shape {list(other.shape)}"
            raise input_error(ctx, None, f"the two models differ in architecture: tensor {name!r} "
                                         f"has shape {list(param.shape)} in the first, {found} "
                                         "in the second")  # fmt: skip
        wa, wb = blend.weights(name)
        mixed = param.data.float() * wa + other.data.to(param.device).float() * wb
        param.data = mixed.to(param.dtype)
    return out


def merge_unets(ctx: Any, a: UNetModel, b: UNetModel, blend: Blend) -> UNetModel:
    """The merged UNet, computed once per process (see module docstring); sampled as `a` is,
    with `a`'s schedule (ComfyUI keeps model1's)."""
    from .model_manager import module_bytes

    key = blend.key("unet", a.key, b.key)
    module = manager().get(key, lambda: _blended(ctx, a.unet, b.unet, blend), device=a.device,
                           size=module_bytes)  # fmt: skip
    return replace(a, unet=module, key=key)


def merge_clips(ctx: Any, a: ClipModel, b: ClipModel, blend: Blend) -> ClipModel:
    """Each text encoder of `a` merged with the same one of `b` (SDXL: both; its refiner: the
    second), computed once per process; the two CLIPs must have the same encoders."""
    from .model_manager import module_bytes

    pairs = (("text_encoder", a.text_encoder, b.text_encoder),
             ("text_encoder_2", a.text_encoder_2, b.text_encoder_2))  # fmt: skip
    keys, encoders = [], []
    for name, mine, theirs in pairs:
        if (mine is None) != (theirs is None):
            has = "the first" if theirs is None else "the second"
            raise input_error(ctx, None, f"the two text encoders differ in architecture: only "
                                         f"{has} has a {name} (SDXL's second encoder?)")  # fmt: skip
        if mine is None:
            encoders.append(None)
            continue
        key = blend.key(name, a.key, b.key)
        encoders.append(manager().get(key, lambda m=mine, t=theirs: _blended(ctx, m, t, blend),
                                      device=a.device, size=module_bytes))  # fmt: skip
        keys.append(key)
    return replace(a, text_encoder=encoders[0], text_encoder_2=encoders[1], key=keys[0])


def ratio(name: str, description: str) -> Any:
    return Float(name, 1.0, min=0.0, max=1.0, step=0.01, description=description)


@node(
    "MergeModels",
    category="model_merging",
    inputs=[Socket("unet_a", MODEL), Socket("unet_b", MODEL),
            ratio("ratio", "share of unet_a (1: unet_a alone, 0: unet_b alone)")],
    outputs=[Output("unet", MODEL)],
)  # fmt: skip
def merge_models(ctx, unet_a: UNetModel, unet_b: UNetModel, ratio: float = 1.0):
    """Weighted average of two UNets: a * ratio + b * (1 - ratio)."""
    return merge_unets(ctx, unet_a, unet_b, Blend("simple", ratio, 1.0 - ratio))


@node(
    "MergeModelBlocks",
    category="model_merging",
    inputs=[Socket("unet_a", MODEL), Socket("unet_b", MODEL),
            ratio("input", "share of unet_a in the input (down) blocks and other tensors"),
            ratio("middle", "share of unet_a in the middle block"),
            ratio("output", "share of unet_a in the output (up) blocks")],
    outputs=[Output("unet", MODEL)],
)  # fmt: skip
def merge_model_blocks(ctx, unet_a: UNetModel, unet_b: UNetModel, input: float = 1.0,
                       middle: float = 1.0, output: float = 1.0):  # fmt: skip
    """Average two UNets with a separate ratio for the input, middle and output blocks."""
    blocks = (("input", input), ("middle", middle), ("output", output))
    return merge_unets(ctx, unet_a, unet_b, Blend("blocks", input, 1.0 - input, blocks))


@node(
    "AddModels",
    category="model_merging",
    inputs=[Socket("unet_a", MODEL), Socket("unet_b", MODEL)],
    outputs=[Output("unet", MODEL)],
)  # fmt: skip
def add_models(ctx, unet_a: UNetModel, unet_b: UNetModel):
    """a + b, tensor by tensor (e.g. a base plus a difference from SubtractModels)."""
    return merge_unets(ctx, unet_a, unet_b, Blend("add", 1.0, 1.0))


@node(
    "SubtractModels",
    category="model_merging",
    inputs=[Socket("unet_a", MODEL), Socket("unet_b", MODEL),
            Float("multiplier", 1.0, min=-10.0, max=10.0, step=0.01,
                  description="how much of unet_b to take away")],
    outputs=[Output("unet", MODEL)],
)  # fmt: skip
def subtract_models(ctx, unet_a: UNetModel, unet_b: UNetModel, multiplier: float = 1.0):
    """a - multiplier * b, tensor by tensor (e.g. a fine-tune minus its base)."""
    return merge_unets(ctx, unet_a, unet_b, Blend("subtract", 1.0, -multiplier))


@node(
    "MergeTextEncoders",
    category="model_merging",
    inputs=[Socket("clip_a", CLIP), Socket("clip_b", CLIP),
            ratio("ratio", "share of clip_a (1: clip_a alone, 0: clip_b alone)")],
    outputs=[Output("clip", CLIP)],
)  # fmt: skip
def merge_text_encoders(ctx, clip_a: ClipModel, clip_b: ClipModel, ratio: float = 1.0):
    """Weighted average of two CLIPs' text encoders (SDXL: both; clip_a's tokenizers kept)."""
    return merge_clips(ctx, clip_a, clip_b, Blend("simple", ratio, 1.0 - ratio))


# --- SaveCheckpoint -------------------------------------------------------------------------

CHECKPOINT_SUFFIX = ".safetensors"


def checkpoint_state(unet: UNetModel, clip: ClipModel, vae: VAEModel) -> dict[str, Any]:
    """One original-layout (LDM) state dict, the layout LoadModel and ComfyUI read: SD's, or
    SDXL's with both text encoders (the refiner's: the second only); a v-prediction model's
    marker tensors (nodes/model_sampling.py) so it loads back as one."""
    from .ldm_layout import sdxl_to_original, to_original, torch_ops
    from .model_sampling import markers

    unet_state, vae_state = unet.unet.state_dict(), vae.vae.state_dict()
    if clip.is_sdxl:
        first = None if clip.text_encoder is None else clip.text_encoder.state_dict()
        state = sdxl_to_original(unet_state, dict(unet.unet.config), vae_state,
                                 dict(vae.vae.config), first, clip.text_encoder_2.state_dict(),
                                 torch_ops())  # fmt: skip
    else:
        state = to_original(unet_state, dict(unet.unet.config), vae_state, dict(vae.vae.config),
                            clip.text_encoder.state_dict(), torch_ops().to_conv1x1)  # fmt: skip
    return {**state, **markers(unet.sampling)}


def _metadata(ctx: Any) -> dict[str, str]:
    """The workflow that made the checkpoint, as ComfyUI's CheckpointSave records it: the
    prompt, the workflow and every other extra_pnginfo entry (`other_entries`), each a string
    of its key, the value as JSON; our document. An entry named `format` leaves ours, `pt`."""
    meta = {"format": "pt"}
    for key in ("prompt", "workflow"):
        if ctx.extra.get(key) is not None:
            meta[key] = json.dumps(ctx.extra[key])
    for key, value in other_entries(ctx.extra):
        meta.setdefault(key, json.dumps(value))
    doc = document_text(ctx.extra)
    if doc is not None:
        meta["latentgraph"] = doc
    return meta


@node(
    "SaveCheckpoint",
    category="model_merging",
    inputs=[Socket("unet", MODEL), Socket("clip", CLIP), Socket("vae", VAE),
            filename_prefix_input("checkpoints/latentgraph")],
    outputs=[],
    **SAVES,
)  # fmt: skip
def save_checkpoint(ctx, unet: UNetModel, clip: ClipModel, vae: VAEModel,
                    filename_prefix: str = "checkpoints/latentgraph"):  # fmt: skip
    """Save UNet, text encoder and VAE as one .safetensors checkpoint (original layout), with
    the workflow in its metadata; LoadModel reads it back."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in checkpoint_state(unet, clip, vae).items()}
    files = output_files(ctx, filename_prefix, Path(ctx.settings.output_dir), "output",
                         CHECKPOINT_SUFFIX, record_contents=True)  # fmt: skip
    record = files.write(lambda tmp: save_file(state, str(tmp), metadata=_metadata(ctx)))
    return NodeResult(values=(), ui={"checkpoints": [record]})
