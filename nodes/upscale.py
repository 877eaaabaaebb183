"""Super-resolution models: UpscaleModelLoader and ImageUpscaleWithModel, ComfyUI's nodes.

Loading goes through spandrel (it recognises ESRGAN, Real-ESRGAN, SwinIR, ... from a state
dict), from .safetensors files in the models folder's upscale_models/ only: pickles are
never opened. spandrel is an optional extra (`pip install 'latentgraph[upscale]'`): it
imports torchvision when imported, and a torchvision that does not match the installed torch
(e.g. PyPI's CUDA build next to a CPU-only torch) fails to import; the loader then says so
instead of failing later. docs/upscaling.md says what was verified where.

Running is ours: the image is cut into overlapping tiles (bounded memory for large images),
each tile upscaled alone, and the results blended with ramps across the overlaps, reporting
progress per tile and stopping between tiles when the run is cancelled. The tiling's inputs,
`tile_size` and `overlap`, are latentgraph's (`comfy_extra`: ComfyUI's node has neither).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from latentgraph.graph import IMAGE, Int, Output, Settings, Socket, node
from latentgraph.graph.problems import error_line

from . import models_dirs
from .canvas import check_canvas
from .compositing import edge_ramp
from .model_manager import manager, module_bytes
from .runtime import device_name, model_identity
from .tiny_upscaler import BUILTIN_UPSCALER, builtin_identity, builtin_upscaler_path
from .values import UpscaleModel, input_error

UPSCALE_MODEL = "UPSCALE_MODEL"
EXTRA = "latentgraph[upscale]"


class UpscalerUnavailable(RuntimeError):
    """spandrel (or the torchvision it imports) cannot be imported here."""


def import_spandrel() -> Any:
    """The spandrel module, or UpscalerUnavailable saying why it cannot be used."""
    try:
        import spandrel
    except ImportError as exc:
        raise UpscalerUnavailable(
            f"upscale models need spandrel: pip install '{EXTRA}' ({error_line(exc)})"
        ) from None
    except (
        RuntimeError
    ) as exc:  # torchvision built for another torch: "operator ... does not exist"
        raise UpscalerUnavailable(
            f"spandrel is installed but cannot be imported: its torchvision does not match "
            f"this torch ({error_line(exc)}); install the torchvision build made for your torch"
        ) from None
    return spandrel


def load_upscale_model(path: str, key: str, device: str = "cpu") -> UpscaleModel:
    """A .safetensors super-resolution model, recognised by spandrel, in eval mode on `device`."""
    from safetensors.torch import load_file

    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(load_file(path))
    except spandrel.UnsupportedModelError:
        raise ValueError(f"{path}: not a model architecture spandrel recognises (ESRGAN, "
                         "Real-ESRGAN, SwinIR, ...)") from None  # fmt: skip
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValueError(f"{path}: a {descriptor.architecture.name} model is not an "
                         "image-to-image upscaler")  # fmt: skip
    if descriptor.input_channels != 3:
        raise ValueError(f"{path}: the model takes {descriptor.input_channels} channels; "
                         "only RGB (3) models are supported")  # fmt: skip
    descriptor.eval().to(device)
    return UpscaleModel(descriptor, int(descriptor.scale), key, device)


def _model_names(settings: Settings) -> list[str]:
    return [BUILTIN_UPSCALER, *models_dirs.list_files("upscale_models", settings.models_dirs)]


_file_identity = models_dirs.identity_hook("upscale_models", "model_name")


def _identity(inputs: dict[str, Any], settings: Settings) -> str:
    if inputs.get("model_name") == BUILTIN_UPSCALER:
        return f"{builtin_identity()}|{model_identity(settings)}"
    return _file_identity(inputs, settings)


def spandrel_problems(inputs: dict[str, Any], settings: Settings) -> list[tuple[str | None, str]]:
    """UpscaleModelLoader's validation-time check: without spandrel the workflow is refused
    before anything runs, not after its image was generated. Only whether spandrel is
    installed is asked (`find_spec`): importing it imports torch, which the server process
    validating a prompt never does. (A name not in the folder is the dropdown's to refuse.)"""
    if importlib.util.find_spec("spandrel") is None:
        return [("model_name", f"upscale models need spandrel: pip install '{EXTRA}'")]
    return []


def upscaler_path(model_name: str, settings: Settings) -> str:
    """`builtin:tiny-esrgan` (built on first use) or a file in the models folders'
    upscale_models/."""
    if model_name == BUILTIN_UPSCALER:
        return str(builtin_upscaler_path(import_spandrel()))
    return str(models_dirs.resolve("upscale_models", model_name, settings.models_dirs))


@node(
    "UpscaleModelLoader",
    display_name="Load Upscale Model",
    category="loaders",
    inputs=[models_dirs.model_choice("model_name", "upscale_models", _model_names,
                   description="a .safetensors model in the models folder's upscale_models/, "
                               "or builtin:tiny-esrgan (random weights, for trying it out)")],
    outputs=[Output("UPSCALE_MODEL", UPSCALE_MODEL)],
    identity=_identity,
    check=spandrel_problems,
)  # fmt: skip
def upscale_model_loader(ctx, model_name: str):
    """Load a super-resolution model (ESRGAN and the other architectures spandrel knows)."""
    try:
        path = upscaler_path(model_name, ctx.settings)
        key = _identity({"model_name": model_name}, ctx.settings)
        device = device_name(ctx.settings)
        return manager().get(key, lambda: load_upscale_model(path, key, device), device,
                             size=lambda handle: module_bytes(handle.model.model))  # fmt: skip
    except (models_dirs.ModelNotFound, UpscalerUnavailable, ValueError) as exc:
        raise input_error(ctx, "model_name", str(exc)) from None


@dataclass(frozen=True)
class Tiling:
    """How an image is cut: tiles of at most `size` pixels a side, `overlap` pixels shared
    with each neighbour."""

    size: int
    overlap: int

    def starts(self, length: int) -> list[int]:
        """Tile origins along one axis of `length` pixels; the last tile ends at the edge."""
        if length <= self.size:
            return [0]
        stride = self.size - self.overlap
        origins = list(range(0, length - self.size, stride))
        return origins + [length - self.size]


def upscale_tiled(ctx: Any, run: Callable[[Any], Any], image: Any, scale: int,
                  tiling: Tiling) -> Any:  # fmt: skip
    """`image` [B, H, W, 3] upscaled by `scale` with `run` ([1, 3, h, w] → [1, 3, h*s, w*s]),
    tile by tile; overlaps are blended with linear ramps so no seam shows."""
    import torch

    x = image[..., :3].movedim(-1, 1).float()
    batch, _, height, width = x.shape
    ys, xs = tiling.starts(height), tiling.starts(width)
    total, done = batch * len(ys) * len(xs), 0
    out = torch.zeros((batch, 3, height * scale, width * scale))
    weight = torch.zeros((1, 1, height * scale, width * scale))
    for b in range(batch):
        for top in ys:
            for left in xs:
                ctx.check_cancelled()
                tile = x[b : b + 1, :, top : top + tiling.size, left : left + tiling.size]
                h, w = tile.shape[-2:]
                with torch.inference_mode():
                    up = run(tile).float().cpu()
                sides = (top > 0, top + h < height, left > 0, left + w < width)
                ramp = edge_ramp(h * scale, w * scale, tiling.overlap * scale, sides)
                rows = slice(top * scale, (top + h) * scale)
                cols = slice(left * scale, (left + w) * scale)
                out[b : b + 1, :, rows, cols] += up * ramp
                if b == 0:
                    weight[..., rows, cols] += ramp
                done += 1
                ctx.progress(done, total)
    return (out / weight).clamp(0.0, 1.0).movedim(1, -1).contiguous()


@node(
    "ImageUpscaleWithModel",
    display_name="Upscale Image (using Model)",
    category="image/upscaling",
    inputs=[Socket("upscale_model", UPSCALE_MODEL), Socket("image", IMAGE),
            Int("tile_size", 512, min=32, max=4096, optional=True, comfy_extra=True,
                description="tile side in pixels (smaller: less memory)"),
            Int("overlap", 32, min=0, max=512, optional=True, comfy_extra=True,
                description="pixels shared by neighbouring tiles, blended")],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def image_upscale_with_model(ctx, upscale_model: UpscaleModel, image, tile_size: int = 512,
                             overlap: int = 32):  # fmt: skip
    """Upscale images with a super-resolution model, in overlapping tiles."""
    if overlap * 2 >= tile_size:
        raise input_error(ctx, "overlap", f"{overlap} must be less than half the tile size "
                                          f"({tile_size})")  # fmt: skip
    scale = upscale_model.scale
    check_canvas(ctx, "image", image.shape[2] * scale, image.shape[1] * scale, image.shape[0])
    model, device = upscale_model.model, upscale_model.device
    return upscale_tiled(ctx, lambda tile: model(tile.to(device)), image, scale,
                         Tiling(tile_size, overlap))  # fmt: skip
