"""latentgraph.nodes: the Stable Diffusion nodes, on diffusers.

Importing this package registers every node type with the engine's default registry, ComfyUI's
classic nodes included (nodes/comfy.py). It must not import torch, diffusers or transformers:
node functions import them when they run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import (  # noqa: F401 - importing registers the node types
    codecs,
    comfy,
    denoise,
    image_tools,
    images,
    input_files,
    latent_tools,
    latents,
    loaders,
    masks,
    schedulers,
    text,
    vae,
)
from .models_dirs import configure as _configure_models

comfy.install()


def configure(
    *,
    models_dirs: Sequence[Path | str] | None = None,
    input_dir: Path | str | None = None,
    write_example: bool = False,
) -> None:
    """Where this process finds models and input images (the CLI and the server call it at
    start), so dropdowns, validation and runs agree. `write_example` puts example.png into
    the input folder (the server does, so the editor can preview it)."""
    if models_dirs is not None:
        _configure_models(models_dirs)
    if input_dir is not None:
        input_files.configure(input_dir)
        if write_example:
            input_files.write_example(Path(input_dir))
