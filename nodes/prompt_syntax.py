"""ComfyUI's prompt syntax: `(word:1.3)` and `((word))` weights, `\\(` escapes, `embedding:NAME`.

Parsing only (no torch): a prompt becomes `Piece`s, each a run of text (or one embedding name)
with the weight its tokens get. The rules follow ComfyUI's: every pair of parentheses multiplies
the weight by 1.1, unless it ends in `:number`, which sets the weight to that number (not
multiplied by the outer ones); `\\(` and `\\)` are literal parentheses; a word starting with
`embedding:` names a textual-inversion file (trailing commas are not part of the name).
Square brackets are plain text, as in ComfyUI (only AUTOMATIC1111's syntax de-emphasizes them).
Unbalanced parentheses are kept as literal text. docs/comfy-compat.md lists where the results
differ from ComfyUI's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

EMPHASIS = 1.1
EMBEDDING_PREFIX = "embedding:"
# Escaped parentheses become private-use characters while parsing, then literal ones again.
_ESCAPES = {"\\(": "\ue000", "\\)": "\ue001"}
_EMBEDDING_WORD = re.compile(r"(?:(?<=\s)|^)embedding:([^\s,]+)")


@dataclass(frozen=True)
class Piece:
    """Text to tokenize with one weight, or (`embedding` True) the name of an embedding file."""

    text: str
    weight: float = 1.0
    embedding: bool = False


def _escape(text: str) -> str:
    for raw, private in _ESCAPES.items():
        text = text.replace(raw, private)
    return text


def _unescape(text: str) -> str:
    for raw, private in _ESCAPES.items():
        text = text.replace(private, raw[1])
    return text


def _groups(text: str) -> list[tuple[str, bool]]:
    """Split at top-level balanced parentheses: (text, is_group); a group without its parens.
    A parenthesis with no partner stays in the text around it."""
    out: list[tuple[str, bool]] = []
    depth, start, plain = 0, 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
            if depth == 0:
                if start > plain:
                    out.append((text[plain:start], False))
                out.append((text[start + 1 : i], True))
                plain = i + 1
    if plain < len(text):
        out.append((text[plain:], False))
    return out


def _explicit_weight(group: str) -> tuple[str, float | None]:
    """`word:1.3` -> ("word", 1.3); anything else -> (group, None)."""
    colon = group.rfind(":")
    if colon <= 0:
        return group, None
    try:
        weight = float(group[colon + 1 :])
    except ValueError:
        return group, None
    if not math.isfinite(weight):
        return group, None
    return group[:colon], weight


def _weighted(text: str, weight: float) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for part, is_group in _groups(text):
        if not is_group:
            out.append((part, weight))
            continue
        inner, explicit = _explicit_weight(part)
        out += _weighted(inner, explicit if explicit is not None else weight * EMPHASIS)
    return out


def _split_embeddings(text: str, weight: float) -> list[Piece]:
    pieces: list[Piece] = []
    pos = 0
    for match in _EMBEDDING_WORD.finditer(text):
        if match.start() > pos:
            pieces.append(Piece(text[pos : match.start()], weight))
        pieces.append(Piece(match.group(1), weight, embedding=True))
        pos = match.end()
    if pos < len(text):
        pieces.append(Piece(text[pos:], weight))
    return pieces


def parse_prompt(text: str) -> list[Piece]:
    """The prompt's pieces in order; empty text pieces are dropped."""
    pieces: list[Piece] = []
    for part, weight in _weighted(_escape(text), 1.0):
        for piece in _split_embeddings(_unescape(part), weight):
            if piece.text:
                pieces.append(piece)
    return pieces


def is_plain(text: str, pieces: list[Piece]) -> bool:
    """True when the prompt uses none of the syntax: it is encoded exactly as before."""
    if not pieces:
        return text == ""
    return len(pieces) == 1 and pieces[0] == Piece(text)


def embedding_names(text: str) -> list[str]:
    """Names of the embeddings a prompt uses, in order, without repeats."""
    names: list[str] = []
    for piece in parse_prompt(text):
        if piece.embedding and piece.text not in names:
            names.append(piece.text)
    return names
