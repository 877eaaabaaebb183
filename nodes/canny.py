"""Canny: edge maps for ControlNets, through kornia's Canny edge detector (ComfyUI's node of
the same name, with its inputs: thresholds on gradient magnitudes of the 0..1 image)."""

from __future__ import annotations

from typing import Any

from latentgraph.graph import IMAGE, Float, Output, Socket, node


def threshold(name: str, default: float) -> Any:
    return Float(name, default, min=0.01, max=0.99, step=0.01,
                 description="hysteresis threshold on the gradient magnitude (0..1)")  # fmt: skip


@node(
    "Canny",
    category="image/preprocessors",
    inputs=[Socket("image", IMAGE), threshold("low_threshold", 0.4),
            threshold("high_threshold", 0.8)],
    outputs=[Output("IMAGE", IMAGE)],
)  # fmt: skip
def canny(ctx, image: Any, low_threshold: float = 0.4, high_threshold: float = 0.8):
    """An edge map of the image (Canny): white edges on black, as canny ControlNets expect."""
    from kornia.filters import canny as kornia_canny

    from .values import input_error

    if low_threshold > high_threshold:
        raise input_error(ctx, "low_threshold", f"{low_threshold} is above high_threshold "
                                                f"{high_threshold}")  # fmt: skip
    _, edges = kornia_canny(image[..., :3].movedim(-1, 1).float(), low_threshold, high_threshold)
    return edges.repeat(1, 3, 1, 1).movedim(1, -1).contiguous()
