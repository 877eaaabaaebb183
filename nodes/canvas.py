"""The run's size limits for anything that makes a new picture, mask or latent: empty
canvases, padding, resizing, upscaling and batching all answer to the same pixel, batch and
batch-pixel limits (Settings.max_image_pixels, max_batch, max_batch_pixels) with one message,
naming the limit as whoever set it knows it (`limit_label`)."""

from __future__ import annotations

from typing import Any

from latentgraph.graph.context import limit_label

from .values import input_error


def check_canvas(ctx: Any, input_name: str, width: int, height: int, batch: int = 1) -> None:
    """Refuse (naming `input_name`) a width x height x batch output over the run's limits."""
    limits = ctx.settings
    if width < 1 or height < 1:
        raise input_error(ctx, input_name, f"the result would be {width}x{height} pixels; "
                                           "both sides must be at least 1")  # fmt: skip
    if width * height > limits.max_image_pixels:
        raise input_error(ctx, input_name, f"the result would be {width}x{height}, more than "
                                           f"the limit of {limits.max_image_pixels} pixels "
                                           f"({limit_label(limits, 'max_image_pixels')})")  # fmt: skip
    if batch > limits.max_batch:
        raise input_error(ctx, input_name, f"the result would be a batch of {batch}, more "
                                           f"than the limit of {limits.max_batch} "
                                           f"({limit_label(limits, 'max_batch')})")  # fmt: skip
    if width * height * batch > limits.max_batch_pixels:
        raise input_error(ctx, input_name, f"the result would be {width}x{height}x{batch}, "
                                           f"{width * height * batch} pixels, more than the "
                                           f"limit of {limits.max_batch_pixels} "
                                           f"({limit_label(limits, 'max_batch_pixels')})")  # fmt: skip
