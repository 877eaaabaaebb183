"""latentgraph.nodes: the Stable Diffusion nodes, on diffusers.

Importing this package registers every node type with the engine's default registry. It must
not import torch, diffusers or transformers: node functions import them when they run.
"""

from . import codecs, denoise, images, latents, loaders, schedulers, text, vae  # noqa: F401
