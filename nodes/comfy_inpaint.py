"""ComfyUI's inpainting nodes, with ComfyUI's names, inputs and outputs, as thin adapters over
nodes/inpaint.py. SetLatentNoiseMask and ImagePadForOutpaint need none: ours have ComfyUI's
names (nodes/inpaint.py, nodes/image_tools.py).

Installed with the classic nodes (`comfy_registry`, see nodes/comfy.py).
"""

from __future__ import annotations

from latentgraph.graph import LATENT, Output, node

from .comfy import comfy_registry
from .inpaint import (
    CONDITIONING_INPUTS,
    CONDITIONING_OUTPUTS,
    ENCODE_INPUTS,
    inpaint_conditioning,
    inpaint_encode,
)


@node(
    "VAEEncodeForInpaint", display_name="VAE Encode (for Inpainting)", category="latent/inpaint",
    inputs=ENCODE_INPUTS,
    outputs=[Output("LATENT", LATENT)],
    registry=comfy_registry,
)  # fmt: skip
def vae_encode_for_inpaint(ctx, pixels, vae, mask, grow_mask_by: int = 6):
    """InpaintEncode: the masked part greyed out, the grown mask as the noise mask."""
    return inpaint_encode(ctx, pixels, vae, mask, grow_mask_by)


@node(
    "InpaintModelConditioning", display_name="InpaintModelConditioning",
    category="conditioning/inpaint",
    inputs=CONDITIONING_INPUTS,
    outputs=CONDITIONING_OUTPUTS,
    registry=comfy_registry,
)  # fmt: skip
def inpaint_model_conditioning(ctx, positive, negative, vae, pixels, mask, noise_mask=True):
    """InpaintConditioning: the masked image's latents and the mask for a 9-channel UNet."""
    return inpaint_conditioning(ctx, positive, negative, vae, pixels, mask, noise_mask)
