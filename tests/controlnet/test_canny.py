"""Canny: edges where the picture changes, nothing in flat parts, thresholds that matter."""

from __future__ import annotations

import pytest
import torch

from latentgraph.nodes.canny import canny
from latentgraph.nodes.values import NodeInputError


def _square() -> torch.Tensor:
    image = torch.zeros(1, 32, 32, 3)
    image[:, 8:24, 8:24, :] = 1.0  # a white square on black
    return image


def test_edges_follow_the_square_and_flat_parts_stay_black(make_ctx):
    edges = canny(make_ctx("Canny"), _square())
    assert edges.shape == (1, 32, 32, 3)
    assert torch.equal(edges[..., 0], edges[..., 1]) and torch.equal(edges[..., 0], edges[..., 2])
    mask = edges[0, ..., 0] > 0.5
    assert mask[:, 6:10].any() and mask[6:10, :].any()  # around the left and top sides
    assert not mask[12:20, 12:20].any()  # the square's inside
    assert not mask[:4].any() and not mask[:, :4].any()  # the black border


def test_a_faint_step_is_lost_under_a_high_threshold(make_ctx):
    faint = _square() * 0.3
    assert canny(make_ctx("Canny"), faint, 0.05, 0.1).amax() == 1.0
    assert canny(make_ctx("Canny"), faint, 0.9, 0.95).amax() == 0.0


def test_thresholds_in_the_wrong_order_are_refused(make_ctx):
    with pytest.raises(NodeInputError, match="input 'low_threshold'"):
        canny(make_ctx("Canny"), _square(), 0.8, 0.4)
