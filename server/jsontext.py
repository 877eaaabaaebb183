"""JSON the server can always answer with: what a body may not hold, and reading stored JSON.

Two kinds of value parse but cannot be sent back: NaN/Infinity (not JSON) and strings with a
lone UTF-16 surrogate (`"\\ud800"`, which has no UTF-8 encoding). Stored in the queue, either
made every later /queue, /history and /jobs answer fail; so bodies holding them are refused,
and what an older version already stored is repaired when it is read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

# A \\uD800-\\uDFFF escape in JSON text: the only way a lone surrogate gets into stored JSON.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def may_hold_surrogates(raw: bytes | str) -> bool:
    """False when JSON text cannot decode to a lone surrogate, so a large body needs no walk:
    one comes only from a \\uD800-\\uDFFF escape, or from raw surrogate code points (which
    json.loads lets through from bytes, decoding them with 'surrogatepass')."""
    if isinstance(raw, bytes):
        return b"\xed" in raw or _SURROGATE_ESCAPE_BYTES.search(raw) is not None
    return not raw.isascii() or _SURROGATE_ESCAPE.search(raw) is not None


def _lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unsendable(value: Any) -> tuple[str, str] | None:
    """Where the first value that cannot be sent back sits, as (`a.b.0.c`, what it is), or
    None. Iterative: bodies may nest as deep as the JSON parser allows."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _lone_surrogate(item):
                return _repair(
                    path
                ) or "(the body)", "a string with a lone UTF-16 surrogate (\\ud800-\\udfff)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path or "(the body)", "a non-finite number (NaN or Infinity)"
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                where = f"{path}.{key}" if path else str(key)
                if _lone_surrogate(key):
                    return _repair(where), "a key with a lone UTF-16 surrogate (\\ud800-\\udfff)"
                stack.append((child, where))
        elif isinstance(item, list):
            stack.extend((child, f"{path}.{i}" if path else str(i))
                         for i, child in reversed(list(enumerate(item))))  # fmt: skip
    return None


def _repair(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8") if _lone_surrogate(value) else value
    if isinstance(value, dict):
        return {_repair(k): _repair(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_repair(v) for v in value]
    return value


def load_stored(text: str) -> Any:
    """`json.loads` for JSON this server stored itself. Lone surrogates that an older version
    let in are replaced by "?", so the value can be answered again."""
    value = json.loads(text)
    return _repair(value) if _SURROGATE_ESCAPE.search(text) else value


def stored_json(text: str) -> tuple[Any, str]:
    """JSON text this server stored itself, read once: its value (`load_stored`) and text it
    can answer with, the same text unless it held lone surrogates, then re-encoded with "?" in
    their place. A damaged text raises ValueError."""
    value = load_stored(text)
    return value, json.dumps(value) if _SURROGATE_ESCAPE.search(text) else text


def stored_text(text: str) -> str:
    """`stored_json`'s answerable text, for JSON kept as text (checked to parse all the same)."""
    return stored_json(text)[1]


# The encoding JSONResponse uses; what the server encodes itself is written the same way.
encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def object_text(members: Iterable[tuple[str, str]]) -> str:
    """A JSON object from its keys and the JSON text of its values: a value the server holds as
    text (a prompt) goes into an answer as it is, never parsed and encoded again."""
    return "{" + ",".join(f"{encode_json(key)}:{text}" for key, text in members) + "}"
