"""ComfyUI's SDXL text encoders, with ComfyUI's names, inputs and widget order, as thin adapters
over nodes/sdxl.py (encoding with both encoders, then the size numbers set on the result).

Installed with the classic nodes (`comfy_registry`, see nodes/comfy.py).
"""

from __future__ import annotations

from latentgraph.graph import CLIP, CONDITIONING, Float, Int, Output, Socket, String, node

from .comfy import MAX_RESOLUTION, comfy_registry
from .sdxl import encode_sdxl, size_conditioning
from .values import ClipModel, input_error


def _size(name: str, default: int) -> Int:
    return Int(name, default, min=0, max=MAX_RESOLUTION)


def _sdxl_clip(ctx, clip: ClipModel) -> ClipModel:
    if not clip.is_sdxl:
        raise input_error(ctx, "clip", "not an SDXL text encoder (it has no second encoder); "
                                       "use CLIPTextEncode")  # fmt: skip
    return clip


@node(
    "CLIPTextEncodeSDXL", display_name="CLIPTextEncodeSDXL", category="advanced/conditioning",
    inputs=[Socket("clip", CLIP), _size("width", 1024), _size("height", 1024),
            _size("crop_w", 0), _size("crop_h", 0), _size("target_width", 1024),
            _size("target_height", 1024),
            String("text_g", "", multiline=True, dynamic_prompts=True),
            String("text_l", "", multiline=True, dynamic_prompts=True)],
    outputs=[Output("CONDITIONING", CONDITIONING)],
    registry=comfy_registry,
)  # fmt: skip
def clip_text_encode_sdxl(ctx, clip: ClipModel, width: int, height: int, crop_w: int,
                          crop_h: int, target_width: int, target_height: int, text_g: str,
                          text_l: str):  # fmt: skip
    """SDXL encoding with a prompt per encoder (g: OpenCLIP bigG, l: CLIP ViT-L) and the size
    numbers the base model is told."""
    cond = encode_sdxl(ctx, _sdxl_clip(ctx, clip), [text_g], [text_l], inputs=("text_g", "text_l"))
    return size_conditioning(cond, width=width, height=height, crop_w=crop_w, crop_h=crop_h,
                             target_width=target_width, target_height=target_height)  # fmt: skip


@node(
    "CLIPTextEncodeSDXLRefiner", display_name="CLIPTextEncodeSDXLRefiner",
    category="advanced/conditioning",
    inputs=[Socket("clip", CLIP), Float("ascore", 6.0, min=0.0, max=1000.0, step=0.01),
            _size("width", 1024), _size("height", 1024), String("text", "", multiline=True, dynamic_prompts=True)],
    outputs=[Output("CONDITIONING", CONDITIONING)],
    registry=comfy_registry,
)  # fmt: skip
def clip_text_encode_sdxl_refiner(ctx, clip: ClipModel, ascore: float, width: int, height: int,
                                  text: str):  # fmt: skip
    """SDXL refiner encoding: the prompt, an aesthetic score and the original size."""
    cond = encode_sdxl(ctx, _sdxl_clip(ctx, clip), [text])
    return size_conditioning(cond, width=width, height=height, aesthetic_score=ascore)
