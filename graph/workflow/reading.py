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


# What Windows Notepad saves as "Unicode": UTF-16 behind its byte order mark.
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF16_HEAD = 8  # bytes: the first four characters, which a workflow starts in ASCII


def _utf16(data: bytes) -> bool:
    """Whether the bytes are UTF-16: behind its byte order mark, or without one, the first
    characters ASCII with a NUL beside each (LE or BE). No UTF-8 workflow holds a NUL, and
    only the first bytes are looked at: a UTF-8 read pays nothing for it."""
    if data.startswith(_UTF16_BOMS):
        return True
    head = data[:_UTF16_HEAD]
    if len(head) < 2 or 0 not in head[:2]:
        return False
    nul_first = head[0] == 0  # BE: the NUL before each ASCII byte; LE: after it
    return all((byte == 0) == ((i % 2 == 0) == nul_first) for i, byte in enumerate(head))


def _decoded(data: bytes, name: str) -> str:
    """A workflow's bytes as text: UTF-8 (a BOM allowed), else refused at the first byte that
    is not, a UTF-16 file (which may even decode as UTF-8, a NUL every other byte) named as
    one."""
    if _utf16(data):
        raise Refused(Problem("syntax", "the file is UTF-16; save it as UTF-8",
                              location=Location.at_offset(name, data, 0)))  # fmt: skip
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
