"""What a value a node returns must be, by its output's declared socket type.

The scheduler checks each returned value here before it is cached or passed on, so a node
that returns None or a value of the wrong kind fails itself, instead of the node it feeds (or
silently, through an ANY input). Only what is cheap and certain is checked: None for any type
but ANY, the widget types exactly, and for IMAGE / MASK / LATENT that the value is the torch
tensor (or holds it) every built-in node makes; an IMAGE's layout and dtype too (channels
last, 3 or 4 of them, floating point), as a channels-first or uint8 tensor passes every other
test and is saved as a sliver of pixels or refused by the next node as its input. Its values'
range is not checked (reading every value, on the GPU a wait). Other types are not checked.

A value's size is bounded where the run's limits bound it (`SIZES`): a STRING longer than
`Settings.max_string_chars` fails the node returning it, as a picture over the pixel limits
fails the node making it, so a text cannot double its way to gigabytes, node by node.

A table beside the socket types of `declare` (which stays free of these rules), and free of
torch: a tensor can only be one if torch is imported already, so it is never imported here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .context import Settings, limit_label
from .declare import ANY, BOOLEAN, FLOAT, IMAGE, INT, LATENT, MASK, STRING, NodeType


def _tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _int(value: Any) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _number(value: Any) -> bool:
    return type(value) in (float, int) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    )


# The channel counts an IMAGE's last dimension may have: RGB, or RGBA (JoinImageWithAlpha's);
# the built-in nodes taking an image (VAEEncode...) accept these.
IMAGE_CHANNELS = (3, 4)


def _image(value: Any) -> bool:
    return (
        _tensor(value)
        and value.dim() == 4
        and value.shape[-1] in IMAGE_CHANNELS
        and value.is_floating_point()
    )


def _latent(value: Any) -> bool:
    return _tensor(getattr(value, "samples", None))


def not_none(value: Any) -> bool:
    """The test of every type CHECKS does not list: any value but None."""
    return value is not None


# socket type -> (does a value fit, what was expected); a type not listed takes any value but
# None.
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    ANY: (lambda v: True, "anything"),
    INT: (_int, "an int"),
    FLOAT: (_number, "a float or an int"),
    STRING: (lambda v: isinstance(v, str), "a str"),
    BOOLEAN: (lambda v: type(v) is bool, "a bool"),
    IMAGE: (_image, "a float torch.Tensor [B, H, W, C], C 3 or 4, in 0..1"),
    MASK: (_tensor, "a torch.Tensor"),
    LATENT: (_latent, "a Latent: its .samples a torch.Tensor [B, C, h, w]"),
}
# The tests alone, for the scheduler's loop over every returned value (one lookup, one call:
# `TESTS.get(type, not_none)(value)`).
TESTS: dict[str, Callable[[Any], bool]] = {t: test for t, (test, _) in CHECKS.items()}


def expected(socket_type: str) -> str:
    """What an output of `socket_type` must be, in words ("" when only None is refused)."""
    check = CHECKS.get(socket_type)
    return check[1] if check is not None else ""


def _string_limit(settings: Settings) -> int:
    return settings.max_string_chars


def _string_size(value: str, settings: Settings) -> str | None:
    limit = _string_limit(settings)
    if len(value) <= limit:
        return None
    return (f"is a text of {len(value)} characters, more than the limit of {limit} "
            f"({limit_label(settings, 'max_string_chars')})")  # fmt: skip


# socket type -> what makes a value of it (one that passed its test) too large for the run's
# limits, said after "output 'x' " (None: within them). The scheduler asks each output of a
# type listed here, after its test: `SIZES.get(type)`.
SIZES: dict[str, Callable[[Any, Settings], str | None]] = {STRING: _string_size}
# socket type -> the run limit SIZES checks its values against (`size_limits`).
_SIZE_LIMITS: dict[str, Callable[[Settings], int]] = {STRING: _string_limit}


def size_limits(node_type: NodeType, settings: Settings) -> list[int]:
    """The run limits a node's values were checked against (`SIZES`), one per output of a
    type it lists; part of the node's cache key (`cache.node_key`): a value is checked only
    as its node returns it, so a text cached under a higher --max-string-chars must be no
    hit under a lower one, nor what it feeds. [] for a node with no such output, whose key
    is then unchanged."""
    return [limit(settings) for out in node_type.outputs
            if (limit := _SIZE_LIMITS.get(out.type)) is not None]  # fmt: skip
