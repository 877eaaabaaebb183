"""ComfyUI's LoRA, model-merging, checkpoint-saving and model-sampling nodes, as thin adapters
over nodes/lora.py, nodes/merge.py and nodes/model_sampling.py (registered with the other ComfyUI nodes in nodes/comfy.py).

What ComfyUI's MODEL and CLIP carry (a checkpoint's scheduler config, CLIPSetLastLayer's
"stop at layer") are fields of our handles (nodes/values.py), which those nodes keep.
"""

from __future__ import annotations

from typing import Any

from latentgraph.graph import (
    CLIP,
    MODEL,
    VAE,
    Bool,
    Choice,
    Float,
    Output,
    Settings,
    Socket,
)

from . import models_dirs
from .comfy import _node
from .images import SAVES, filename_prefix_input
from .lora import LoraUse, apply_lora, lora_identity, strength
from .merge import (
    add_models,
    merge_model_blocks,
    merge_models,
    merge_text_encoders,
    ratio,
    save_checkpoint,
    subtract_models,
)
from .model_sampling import set_model_sampling
from .tiny_addons import BUILTIN_LORAS
from .values import SAMPLING_KINDS, ClipModel, UNetModel

CATEGORY = "advanced/model_merging"


def lora_names(settings: Settings) -> list[str]:
    """The lora_name dropdown: the built-in tiny LoRAs, then every file in loras/."""
    return [*BUILTIN_LORAS, *models_dirs.list_files("loras", settings.models_dirs)]


def _lora_identity(inputs: dict[str, Any], settings: Settings) -> str:
    return lora_identity(str(inputs.get("lora_name", "")), settings.models_dirs)


LORA_NAME = models_dirs.model_choice("lora_name", "loras", lora_names)


@_node(
    "LoraLoader", "Load LoRA", "loaders",
    inputs=[Socket("model", MODEL), Socket("clip", CLIP), LORA_NAME,
            strength("strength_model", "how much of the LoRA goes into the UNet"),
            strength("strength_clip", "how much goes into the text encoders")],
    outputs=[Output("MODEL", MODEL), Output("CLIP", CLIP)],
    identity=_lora_identity,
)  # fmt: skip
def lora_loader(ctx, model: UNetModel, clip: ClipModel, lora_name: str,
                strength_model: float = 1.0, strength_clip: float = 1.0):  # fmt: skip
    """Apply a LoRA from loras/ to the model and the text encoders (SDXL: both)."""
    use = LoraUse(lora_name, strength_model, strength_clip, "lora_name")
    return apply_lora(ctx, model, clip, use)


@_node(
    "LoraLoaderModelOnly", "LoraLoaderModelOnly", "loaders",
    inputs=[Socket("model", MODEL), LORA_NAME,
            strength("strength_model", "how much of the LoRA goes into the UNet")],
    outputs=[Output("MODEL", MODEL)],
    identity=_lora_identity,
)  # fmt: skip
def lora_loader_model_only(ctx, model: UNetModel, lora_name: str, strength_model: float = 1.0):
    """Apply a LoRA from loras/ to the model only."""
    unet, _ = apply_lora(ctx, model, None, LoraUse(lora_name, strength_model, 0.0, "lora_name"))
    return unet


@_node(
    "ModelMergeSimple", "ModelMergeSimple", CATEGORY,
    inputs=[Socket("model1", MODEL), Socket("model2", MODEL), ratio("ratio", "share of model1")],
    outputs=[Output("MODEL", MODEL)],
)  # fmt: skip
def model_merge_simple(ctx, model1: UNetModel, model2: UNetModel, ratio: float = 1.0):
    """model1 * ratio + model2 * (1 - ratio)."""
    return merge_models(ctx, model1, model2, ratio)


@_node(
    "ModelMergeBlocks", "ModelMergeBlocks", CATEGORY,
    inputs=[Socket("model1", MODEL), Socket("model2", MODEL), ratio("input", "share of model1"),
            ratio("middle", "share of model1"), ratio("out", "share of model1")],
    outputs=[Output("MODEL", MODEL)],
)  # fmt: skip
def model_merge_blocks(ctx, model1: UNetModel, model2: UNetModel, input: float = 1.0,
                       middle: float = 1.0, out: float = 1.0):  # fmt: skip
    """Merge with a ratio per block group (input, middle, out)."""
    return merge_model_blocks(ctx, model1, model2, input, middle, out)


@_node(
    "ModelMergeAdd", "ModelMergeAdd", CATEGORY,
    inputs=[Socket("model1", MODEL), Socket("model2", MODEL)],
    outputs=[Output("MODEL", MODEL)],
)  # fmt: skip
def model_merge_add(ctx, model1: UNetModel, model2: UNetModel):
    """model1 + model2."""
    return add_models(ctx, model1, model2)


@_node(
    "ModelMergeSubtract", "ModelMergeSubtract", CATEGORY,
    inputs=[Socket("model1", MODEL), Socket("model2", MODEL),
            Float("multiplier", 1.0, min=-10.0, max=10.0, step=0.01)],
    outputs=[Output("MODEL", MODEL)],
)  # fmt: skip
def model_merge_subtract(ctx, model1: UNetModel, model2: UNetModel, multiplier: float = 1.0):
    """model1 - multiplier * model2."""
    return subtract_models(ctx, model1, model2, multiplier)


@_node(
    "CLIPMergeSimple", "CLIPMergeSimple", CATEGORY,
    inputs=[Socket("clip1", CLIP), Socket("clip2", CLIP), ratio("ratio", "share of clip1")],
    outputs=[Output("CLIP", CLIP)],
)  # fmt: skip
def clip_merge_simple(ctx, clip1: ClipModel, clip2: ClipModel, ratio: float = 1.0):
    """clip1 * ratio + clip2 * (1 - ratio)."""
    return merge_text_encoders(ctx, clip1, clip2, ratio)


@_node(
    "CheckpointSave", "Save Checkpoint", CATEGORY,
    inputs=[Socket("model", MODEL), Socket("clip", CLIP), Socket("vae", VAE),
            filename_prefix_input("checkpoints/ComfyUI")],
    outputs=[],
    **SAVES,
)  # fmt: skip
def checkpoint_save(ctx, model: UNetModel, clip: ClipModel, vae: Any,
                    filename_prefix: str = "checkpoints/ComfyUI"):  # fmt: skip
    """Save model, CLIP and VAE as one .safetensors checkpoint in the output folder."""
    return save_checkpoint(ctx, model, clip, vae, filename_prefix)


@_node(
    "ModelSamplingDiscrete", "ModelSamplingDiscrete", "advanced/model",
    inputs=[Socket("model", MODEL), Choice("sampling", list(SAMPLING_KINDS), "eps"),
            Bool("zsnr", False)],
    outputs=[Output("MODEL", MODEL)],
)  # fmt: skip
def model_sampling_discrete(ctx, model: UNetModel, sampling: str = "eps", zsnr: bool = False):
    """Sample the model as eps, v_prediction or lcm, optionally with zero-terminal-SNR betas."""
    return set_model_sampling(ctx, model, sampling, zsnr)
