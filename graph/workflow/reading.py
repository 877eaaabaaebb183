"""Reading a workflow's text: the size limit, UTF-8 with line:column errors, and JSON with
positions and duplicate keys (values by `json`, positions by the YAML composer)."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from ..files import os_error_words
from ..model import Location
from ..problems import Problem, WorkflowError
from .positions import Positions, Refused, parse_yaml

MAX_BYTES = 5 * 1024 * 1024  # a workflow is a few KB; refuse anything absurd before parsing


def parse_json(text: str, source: str) -> tuple[Any, Positions, bool]:
    """Values from `json` (exact JSON semantics); positions and duplicates from the composer."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        where = Location(source, exc.lineno, exc.colno)
        raise Refused(Problem("syntax", f"JSON syntax error: {exc.msg}", location=where)) from None
    except RecursionError:
        raise Refused(
            Problem(
                "limit_exceeded", "the document is nested too deeply", location=Location(source)
            )
        ) from None
    try:
        # YAML refuses tabs where JSON allows them; same length keeps columns right.
        _, doc, _ = parse_yaml(text.replace("\t", " "), source)
    except Refused as refused:
        if refused.problem.code == "limit_exceeded":
            raise
        doc = Positions(source)
        doc.problems = [
            Problem("syntax", f"key {key!r} is written twice", location=Location(source))
            for key in duplicates
        ]
    return value, doc, False


def read_text(source: str | Path, text: str | bytes | None) -> str:
    name = str(source)
    if isinstance(text, str):
        if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            raise Refused(_too_big(name))
        return text
    data = _file_bytes(Path(source), name) if text is None else text
    if len(data) > MAX_BYTES:
        raise Refused(_too_big(name))
    return _decoded(data, name)


def _file_bytes(path: Path, name: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise Refused(_too_big(name))
        return path.read_bytes()
    except OSError as exc:
        reason = os_error_words(exc, reading=True)
        raise Refused(
            Problem("invalid_value", f"cannot read workflow: {reason}", location=Location(name))
        ) from None


# What Windows Notepad saves as "Unicode" (UTF-16), and UTF-32: named, not read. UTF-32 LE's
# mark begins with UTF-16 LE's, so it is looked for first.
_MARKS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_WIDE = (("utf-32-le", "UTF-32"), ("utf-32-be", "UTF-32"),
         ("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"))  # fmt: skip
_HEAD = 4  # characters: the first ones, which a workflow starts in ASCII
# Each ASCII character UTF-16/32 bytes read so hold is a NUL in them: a UTF-8 file's stray NUL
# or two are not so many, a workflow's `nodes:` and a node's `type:` alone are more.
_ASCII_LEAST = 8


def _ascii_head(data: bytes, width: int) -> bool:
    """Whether the first characters are ASCII in `width`-byte units, LE or BE: each unit one
    byte that is not NUL beside NULs. No UTF-8 workflow holds a NUL."""
    head = data[: _HEAD * width]
    units = [head[i : i + width] for i in range(0, len(head) - len(head) % width, width)]
    nuls = bytes(width - 1)
    return bool(units) and (
        all(u[0] and u[1:] == nuls for u in units) or all(u[-1] and u[:-1] == nuls for u in units)
    )


def _wide_encoding(data: bytes) -> str | None:
    """The wide encoding the bytes are in ("UTF-16", "UTF-32"), or None: behind its byte order
    mark; without one, by the NULs beside each of its first characters; or, when the bytes hold
    a NUL, when they read in that encoding with no NUL and a tenth or more of the characters,
    and at least `_ASCII_LEAST` of them, ASCII (a workflow's keys and punctuation are, whatever
    language its text is in). Such bytes may even decode as UTF-8 (ASCII with NULs, or CJK whose
    every byte is below 0x80: 大 is 0x59 0x27). A UTF-8 file pays only for a search for a NUL."""
    for mark, name in _MARKS:
        if data.startswith(mark):
            return name
    for name, width in (("UTF-32", 4), ("UTF-16", 2)):
        if _ascii_head(data, width):
            return name
    if b"\0" not in data:
        return None
    for codec, name in _WIDE:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        ascii_count = len(text.encode("ascii", "ignore"))
        if "\0" not in text and ascii_count >= max(len(text) / 10, _ASCII_LEAST):
            return name
    return None


def _decoded(data: bytes, name: str) -> str:
    """A workflow's bytes as text: UTF-8 (a BOM allowed), else refused at the first byte that
    is not; a UTF-16 or UTF-32 file (UTF-16 may even decode as UTF-8, a NUL every other byte)
    named as one."""
    _refuse_wide(data, name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Refused(
            Problem(
                "syntax",
                f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                location=Location.at_offset(name, data, exc.start),
            )
        ) from None


def _refuse_wide(data: bytes, name: str) -> None:
    wide = _wide_encoding(data)
    if wide:
        raise Refused(Problem("syntax", f"the file is {wide}; save it as UTF-8",
                              location=Location.at_offset(name, data, 0)))  # fmt: skip


def _too_big(name: str) -> Problem:
    return Problem(
        "limit_exceeded",
        f"the workflow is larger than {MAX_BYTES // (1024 * 1024)} MB",
        location=Location(name),
    )


def read_source(source: str | Path, text: str | bytes | None = None) -> str:
    """The workflow's text (from the file, or `text`: already text, or the bytes a request
    sent) under the size limit and as UTF-8; `WorkflowError` naming the place otherwise."""
    try:
        return read_text(source, text)
    except Refused as refused:
        raise WorkflowError([refused.problem]) from None
