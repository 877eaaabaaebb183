"""A tiny ControlNet and a tiny T2I-Adapter for `builtin:tiny-sd`, built by the project.

No real ControlNet fits the tiny model, so these are made from it with seeded random weights:
the ControlNet is diffusers' `ControlNetModel.from_unet` of the tiny UNet (its zero
convolutions, which a real ControlNet starts training from, filled with random values so the
control shows in the output); the T2I-Adapter is a `T2IAdapter` whose feature maps have the
sizes and widths of the tiny UNet's down blocks. Files are single .safetensors, the way they
are shared: diffusers' layout, and for the ControlNet also the original ("LDM") layout and a
"difference" file (ComfyUI's DiffControlNetLoader: weights stored minus the UNet's).

`builtin:tiny-controlnet` and `builtin:tiny-t2i-adapter` name them in LoadControlNet and
ControlNetLoader, so the example workflow runs on a fresh clone (built into the cache dir on
first use); `latentgraph tiny-model --addons MODELS_DIR` writes them all into controlnet/.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from latentgraph.graph import paths
from latentgraph.graph.files import write_file, write_folder

from .ldm_layout import unet_key
from .tiny_addons import save_atomic

BUILD_VERSION = 1
# three stride-2 convolutions: 8 hint pixels per latent cell, as in SD's ControlNets
CONDITIONING_CHANNELS = (8, 16, 16, 32)
# The tiny UNet's down blocks: DownBlock2D (32 wide, ends halved), CrossAttnDownBlock2D (64
# wide, no halving). The "full_adapter_xl" layout (first block keeps the size, one halving
# later) with a 16x unshuffle gives features of exactly those sizes.
ADAPTER_CONFIG = {"in_channels": 3, "channels": [32, 64], "num_res_blocks": 1,
                  "downscale_factor": 16, "adapter_type": "full_adapter_xl"}  # fmt: skip
BUILTIN_CONTROLS = {"builtin:tiny-controlnet": "tiny-controlnet",
                    "builtin:tiny-t2i-adapter": "tiny-t2i-adapter"}  # fmt: skip
_ZERO_CONVS = ("controlnet_down_blocks.", "controlnet_mid_block.",
               "controlnet_cond_embedding.conv_out.")  # fmt: skip


def tiny_unet() -> Any:
    from diffusers import UNet2DConditionModel

    from .tiny_model import ensure_tiny_sd

    return UNet2DConditionModel.from_pretrained(ensure_tiny_sd() / "unet")


def tiny_controlnet(seed: int = 3) -> Any:
    """The tiny ControlNet: the tiny UNet's encoder copied, the zero convolutions random."""
    import torch
    from diffusers import ControlNetModel

    unet = tiny_unet()  # first: building the tiny model on first use seeds torch itself
    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONDITIONING_CHANNELS)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith(_ZERO_CONVS):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    return net.eval()


def tiny_adapter(seed: int = 5) -> Any:
    import torch
    from diffusers import T2IAdapter

    torch.manual_seed(seed)
    return T2IAdapter(**ADAPTER_CONFIG).eval()


def controlnet_original_key(key: str, config: dict[str, Any]) -> str:
    """The original (LDM) name of a diffusers ControlNetModel tensor, without the
    `control_model.` prefix: the UNet encoder's names, plus the hint block (input_hint_block,
    its convolutions at even indexes), the zero convolutions (zero_convs.N.0) and the middle
    block's output (middle_block_out.0)."""
    embedding = "controlnet_cond_embedding."
    if key.startswith(embedding):
        rest = key[len(embedding) :]
        blocks = len(config["conditioning_embedding_out_channels"]) * 2 - 2
        if rest.startswith("conv_in."):
            return "input_hint_block.0." + rest[len("conv_in.") :]
        if rest.startswith("conv_out."):
            return f"input_hint_block.{2 * (blocks + 1)}." + rest[len("conv_out.") :]
        index, _, tail = rest[len("blocks.") :].partition(".")
        return f"input_hint_block.{2 * (int(index) + 1)}.{tail}"
    if key.startswith("controlnet_down_blocks."):
        index, _, tail = key[len("controlnet_down_blocks.") :].partition(".")
        return f"zero_convs.{index}.0.{tail}"
    if key.startswith("controlnet_mid_block."):
        return "middle_block_out.0." + key[len("controlnet_mid_block.") :]
    return unet_key(key, config)


def original_layout(net: Any, prefix: str = "control_model.") -> dict[str, Any]:
    return {prefix + controlnet_original_key(k, dict(net.config)): v
            for k, v in net.state_dict().items()}  # fmt: skip


def difference_file_tensors(net: Any, unet: Any) -> dict[str, Any]:
    """ComfyUI's "diff" ControlNet: original layout, every tensor the UNet also has stored
    minus the UNet's, and a `difference` marker tensor."""
    import torch

    base = unet.state_dict()
    out = {}
    for key, value in net.state_dict().items():
        shared = key in base and base[key].shape == value.shape
        name = "control_model." + controlnet_original_key(key, dict(net.config))
        out[name] = value - base[key] if shared else value
    out["difference"] = torch.tensor([])
    return out


def builtin_control_path(name: str) -> Path:
    """Where the file behind a `builtin:` control name is built, built or not."""
    stem = BUILTIN_CONTROLS.get(name)
    if stem is None:
        raise ValueError(f"unknown built-in control model {name!r}; known: "
                         f"{', '.join(BUILTIN_CONTROLS)}")  # fmt: skip
    return paths.built_model(stem, BUILD_VERSION, ".safetensors")


def builtin_control(name: str) -> Path:
    """The file behind a `builtin:` control name, written into the cache dir on first use."""
    path = builtin_control_path(name)
    stem = BUILTIN_CONTROLS[name]
    if not path.is_file():
        model = tiny_controlnet() if stem == "tiny-controlnet" else tiny_adapter()
        save_atomic(model.state_dict(), path, {"format": "pt"})
    return path


def controlnet_folder_writes(root: Path) -> list[Callable[[], Path]]:
    """The writes that put the tiny control models into a models root's controlnet/: the
    ControlNet in diffusers' layout, in the original layout, as a difference file, a second
    ControlNet (other seed, for mixing), the T2I-Adapter, and a diffusers folder of the
    ControlNet; each returns its file (or folder), called one at a time (`models_folder_writes`)."""
    folder = Path(root) / "controlnet"
    net, unet = tiny_controlnet(), tiny_unet()
    return [
        lambda: save_atomic(net.state_dict(), folder / "tiny-controlnet.safetensors"),
        lambda: save_atomic(original_layout(net), folder / "tiny-controlnet-original.safetensors"),
        lambda: save_atomic(difference_file_tensors(net, unet),
                            folder / "tiny-controlnet-diff.safetensors"),
        lambda: save_atomic(tiny_controlnet(seed=11).state_dict(),
                            folder / "tiny-controlnet-2.safetensors"),
        lambda: save_atomic(tiny_adapter().state_dict(), folder / "tiny-t2i-adapter.safetensors"),
        lambda: save_pretrained(net, folder / "tiny-controlnet-diffusers"),
    ]  # fmt: skip


def write_controlnet_folder(root: Path) -> list[Path]:
    """Put the tiny control models into a models root's controlnet/ (`controlnet_folder_writes`)."""
    return [write() for write in controlnet_folder_writes(root)]


def save_pretrained(model: Any, dest: Path) -> Path:
    """`model.save_pretrained` into `dest`, whole or not at all (`write_folder`: a full disk
    leaves no part of it), each file copied in with `write_file`: diffusers writes its weights
    through safetensors, whose files are 0600 whatever the umask."""

    def fill(folder: Path) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            model.save_pretrained(scratch)
            for src in sorted(Path(scratch).iterdir()):
                write_file(folder / src.name, partial(shutil.copyfile, src))

    return write_folder(dest, fill)
