"""`builtin:tiny-esrgan`: a small ESRGAN upscaler with random weights, built by the project.

Like `builtin:tiny-sd`, it lets the upscale workflow run on a fresh clone with nothing to
download: its images are noise-coloured, by design. The network is spandrel's own ESRGAN (RRDB)
class at a small width, written once as .safetensors into the cache dir and then loaded like
any user file, so detection, loading and running are spandrel's code paths. Building it needs
the `upscale` extra (spandrel), like every upscale model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentgraph.graph import paths

BUILTIN_UPSCALER = "builtin:tiny-esrgan"
BUILD_VERSION = 1
SCALE = 2


def tiny_esrgan_tensors(spandrel: Any, seed: int = 0) -> dict[str, Any]:
    """The weights of a 2x ESRGAN with 8 filters and one RRDB block, seeded."""
    import torch

    with torch.random.fork_rng():  # the module initialises from the global generator
        torch.manual_seed(seed)
        net = spandrel.architectures.ESRGAN.ESRGAN(num_filters=8, num_blocks=1, scale=SCALE)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def builtin_upscaler_file() -> Path:
    """Where the file behind `builtin:tiny-esrgan` is built, built or not."""
    return paths.built_model("tiny-esrgan", BUILD_VERSION, ".safetensors")


def builtin_upscaler_path(spandrel: Any) -> Path:
    """The file behind `builtin:tiny-esrgan`, written into the cache dir on first use."""
    from .tiny_addons import save_atomic

    path = builtin_upscaler_file()
    if not path.is_file():
        save_atomic(tiny_esrgan_tensors(spandrel), path)
    return path


def builtin_identity() -> str:
    """`builtin:tiny-esrgan`'s identity in cache keys (`paths.builtin_identity`)."""
    return paths.builtin_identity(BUILTIN_UPSCALER, BUILD_VERSION)
