"""latentgraph.nodes: the Stable Diffusion nodes, on diffusers.

Importing this package registers every node type with the engine's default registry, ComfyUI's
classic nodes included (nodes/comfy.py). It must not import torch, diffusers or transformers:
node functions import them when they run. Where models and input images are is the run's
`Settings` (node code reads it from its Context; dropdowns and check hooks are given it).
"""

from __future__ import annotations

from . import (  # noqa: F401 - importing registers the node types
    animation,
    canny,
    codecs,
    comfy,
    comfy_conditioning,
    comfy_controlnet,
    comfy_inpaint,
    comfy_models,
    comfy_sampling,
    comfy_sdxl,
    comfy_vae,
    conditioning,
    controlnet,
    custom_sampler,
    denoise,
    guiders,
    image_tools,
    images,
    inpaint,
    input_files,
    latent_tools,
    latents,
    loaders,
    lora,
    masks,
    merge,
    model_sampling,
    schedulers,
    sdxl,
    sigmas,
    text,
    upscale,
    vae,
)
from .input_files import write_example
from .model_manager import free_models, resident_models

comfy.install()

__all__ = ["free_models", "resident_models", "write_example"]
