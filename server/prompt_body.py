"""Reading a POST /prompt body node by node, keeping the prompt's own text.

`json.loads` of a large body is one C call that holds the GIL throughout: 0.3-0.5 s for a
200,001-node prompt on this machine, during which no other request is answered. Here the
body's top-level object, and its "prompt" object, are read member by member, each value by
the json module's own decoder (`raw_decode`, with `parse_json`'s hooks), so other threads run
between nodes. The text the prompt came as is kept (`PromptBody.prompt_text`): stored as it
is, it needs no `json.dumps` (another call as long as the parse).

A body of at most `WHOLE_PARSE_CHARS` has its prompt read by one `raw_decode` call instead:
that holds the GIL for at most about 1.6 ms, and walking a 100-node prompt cost 0.1 ms more
than parsing it whole (0.18 ms more for a 201-node fan), on the way to every small run.

The value is the one `json.loads` gives: members in order, the last of a repeated key kept.
Anything this reader does not expect, malformed JSON included, goes to `json.loads`, so
errors read exactly as `parse_json`'s do. But a walked body that cannot be a prompt is refused
where that shows, unparsed, in the words the later check would use: a body that is no object,
a "prompt" that is no object, a node that is no object (parsing a 60 MB one whole first costs
seconds and gigabytes), unless that value is nested too deeply in its first 64 KiB: a whole
parse says that first (`_unless_too_deep`). A short scalar in place of a node is read on: an
editor workflow's (`last_node_id`) come before its `nodes` list, and the refusal says it is
one, as the check does. A node's JSON is read within `node_chars_limit` characters (one
string at the server's --max-string-chars, escaped, and room for the rest no real node
needs): a longer node is refused naming it, after reading at most about twice that. Walking
costs about what parsing and encoding again would: 0.27 s against 0.16 + 0.17 s for a
100,000-node chain (measured side by side).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from latentgraph.graph.problems import node_name

from .config import server_limit_label
from .errors import STRICT_DECODER, ApiError, json_body, parse_json
from .prompts import no_class_type, no_prompt

_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
# A key with nothing to unescape, its colon, and the space before its value.
_PLAIN_KEY = re.compile(r'"([^"\\\x00-\x1f]*)"[ \t\n\r]*:[ \t\n\r]*')
# What may follow a member's value: a comma and the space after it, or the closing brace.
_AFTER_VALUE = re.compile(r"[ \t\n\r]*(?:,[ \t\n\r]*|(\}))")

# The longest body whose prompt is parsed in one call (JSON text decodes at ~160 MB/s here).
WHOLE_PARSE_CHARS = 256 * 1024

# Reads the value at text[i]: (value, where it ends). The key is the member's.
ValueReader = Callable[[str, int, str], tuple[Any, int]]

# A walked node is first decoded from a slice of this many characters (most nodes are a few
# hundred), doubled while it is cut short. The first slice is decoded inline (`node`): through
# `_bounded`'s loop, a 100,000-node chain's body took 0.46-0.52 s against 0.44-0.50 s inline
# and 0.44-0.48 s before nodes were bounded (best of 4, three alternations, measured).
_FIRST_WINDOW = 2048
# Room in a node for all but its longest string: ComfyUI's largest nodes (a KSampler, a
# template's note) are a few kB.
_NODE_ROOM = 1024 * 1024
# How much of a value that is no object `_unless_too_deep` decodes, for its depth alone: the
# decoder refuses 1,000 levels (Python's recursion limit), which a value nested from its start
# reaches within a few kB; decoding 64 KiB holds the GIL about 15 ms (a node's whole limit,
# 2.2 MB, took 0.55 s: what reading node by node is for). Without the strict hooks, whose
# refusal of a NaN would have `parse_json` parse the whole body to say where.
_DEPTH_WINDOW = 64 * 1024
_PLAIN_DECODER = json.JSONDecoder()


def node_chars_limit(max_string_chars: int) -> int:
    """The most characters a node's JSON may have: a string of `max_string_chars` (the
    server's --max-string-chars), each character escaped as a surrogate pair (12 characters),
    and `_NODE_ROOM` for the rest."""
    return 12 * max_string_chars + _NODE_ROOM


def body_not_an_object() -> ApiError:
    """The refusal of a POST /prompt body that is no JSON object."""
    return ApiError(400, "the body must be a JSON object with a 'prompt'", "invalid_prompt")


@dataclass
class PromptBody:
    body: Any  # what json.loads gives for the body
    prompt_text: str | None  # the JSON text of the body's "prompt" object as it came, if kept


class _Unwalkable(Exception):
    """Text this reader does not walk (not an object, malformed): `json.loads` reads it, and
    says what is wrong with it in its own words."""


def read_prompt_body(raw: bytes, max_node_chars: int = node_chars_limit(100_000)) -> PromptBody:
    """Parse a POST /prompt body (a 400 `ApiError`, as `json_body` gives, when it is not
    acceptable JSON; a walked one that cannot be a prompt refused as the check would, a node
    longer than `max_node_chars` with a 413)."""
    if not raw.strip():
        json_body(raw)  # raises: the refusal of an empty body
    found: list[str | None] = [None]

    def decode(raw: bytes) -> Any:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")  # as json.loads does
        try:
            body, found[0] = _read_body(text, max_node_chars)
        except (_Unwalkable, json.JSONDecodeError):
            return STRICT_DECODER.decode(text)
        return body

    return PromptBody(parse_json(raw, decode=decode), found[0])


def _read_body(text: str, max_node_chars: int) -> tuple[Any, str | None]:
    start = _SPACE.match(text).end()
    walked = len(text) > WHOLE_PARSE_CHARS
    if not text.startswith("{", start):
        if walked:
            raise _unless_too_deep(body_not_an_object(), text, start)
        raise _Unwalkable  # refused later (not an object): nothing to walk
    prompt_text: str | None = None
    decode, first_window = STRICT_DECODER.raw_decode, min(_FIRST_WINDOW, max_node_chars)
    first_misfit: str | None = None  # the first member that is no node: the check names it

    def node(text: str, i: int, key: str) -> tuple[Any, int]:
        nonlocal first_misfit
        if not text.startswith("{", i):
            return no_node(text, i, key)
        value, end = node_object(text, i, key)
        if first_misfit is None and not isinstance(value.get("class_type"), str):
            first_misfit = key
        return value, end

    def node_object(text: str, i: int, key: str) -> tuple[Any, int]:
        end = i + first_window
        if end < len(text):  # the common case, inline: a node within its first window
            try:
                value, length = decode(text[i:end])
                return value, i + length
            except json.JSONDecodeError:
                pass  # cut short, or malformed: `_bounded` tells which
        return _bounded(text, i, key, max_node_chars)

    def no_node(text: str, i: int, key: str) -> tuple[Any, int]:
        """A member that is no object. A short scalar is read on, for the check to refuse:
        an editor workflow's (`last_node_id`, `id`, `revision`) come before its `nodes` list.
        Anything else is refused at once, nothing after it decoded, naming the first member
        that was no node, as the check does; at a `nodes` list, saying that the prompt is an
        editor workflow (`is_editor_workflow`)."""
        nonlocal first_misfit
        if first_misfit is None:
            first_misfit = key
        scalar = None if text.startswith("[", i) else _short_scalar(text, i)
        if scalar is not None:
            return scalar
        editor = key == "nodes" and text.startswith("[", i)
        raise _unless_too_deep(no_class_type(first_misfit, editor), text, i)

    def nodes(text: str, i: int, key: str) -> tuple[Any, int]:
        """The prompt object at text[i], node by node (other threads run in between)."""
        return _read_object(text, i, node)

    read_prompt = nodes if walked else _value

    def member(text: str, i: int, key: str) -> tuple[Any, int]:
        nonlocal prompt_text
        if walked and key == "prompt" and not text.startswith("{", i):
            raise _unless_too_deep(no_prompt(), text, i)
        if key != "prompt" or not text.startswith("{", i):
            if key == "prompt":
                prompt_text = None  # a later "prompt" replaces an earlier one
            return STRICT_DECODER.raw_decode(text, i)
        prompt, end = read_prompt(text, i, key)
        prompt_text = text[i:end]
        return prompt, end

    body, end = _read_object(text, start, member)
    if _SPACE.match(text, end).end() != len(text):
        raise _Unwalkable  # more after the object
    return body, prompt_text


def _unless_too_deep(refusal: Exception, text: str, i: int) -> Exception:
    """`refusal`, of the value at text[i] that is no object, unless that value is nested too
    deeply for the json module's decoder within its first `_DEPTH_WINDOW` characters: then
    the decoder's RecursionError, which `parse_json` answers as it answers a body parsed
    whole (a `{"prompt": [[[...]]]}` of 150,000 levels said "No prompt provided", one of
    100,000, parsed whole, "nested too deeply")."""
    try:
        _PLAIN_DECODER.raw_decode(text[i : i + _DEPTH_WINDOW])
    except ValueError:  # cut short at the slice's end, or malformed: the refusal stands
        pass
    return refusal


def _short_scalar(text: str, i: int) -> tuple[Any, int] | None:
    """The value at text[i] and where it ends, if it is whole within `_FIRST_WINDOW`
    characters (a number, string, true, false or null); else None."""
    window = text[i : i + _FIRST_WINDOW]
    try:
        value, end = STRICT_DECODER.raw_decode(window)
    except json.JSONDecodeError:
        return None
    if end == len(window) and i + end < len(text):
        return None  # it may go on past the window (a long number)
    return value, i + end


def _value(text: str, i: int, key: str) -> tuple[Any, int]:
    return STRICT_DECODER.raw_decode(text, i)


def _bounded(text: str, i: int, key: str, limit: int) -> tuple[Any, int]:
    """The node `key` whose "{" is at text[i], decoded from a slice of the text doubled while
    the node is cut short, up to `limit` characters: a longer node is refused (413) after
    reading at most about 2 x `limit` characters, whatever it holds."""
    window = _FIRST_WINDOW
    while True:
        window = min(window, limit)
        if i + window >= len(text):
            return STRICT_DECODER.raw_decode(text, i)
        try:
            value, end = STRICT_DECODER.raw_decode(text[i : i + window])
            return value, i + end
        except json.JSONDecodeError as exc:
            # cut short: the error is at the slice's end, or a string runs past it
            if exc.pos < window - 8 and not exc.msg.startswith("Unterminated string"):
                raise
        if window == limit:
            raise ApiError(413, f"{node_name(key[:64])} is more than {limit:,} characters of JSON; a "
                           f"node's JSON is at most that (its strings at most "
                           f"{server_limit_label('max_string_chars')})", "too_large", node_id=key[:64], limit=limit)  # fmt: skip
        window *= 2


def _read_object(text: str, i: int, read: ValueReader) -> tuple[dict[str, Any], int]:
    """The object whose "{" is at text[i], each member's value read by `read`: (the object,
    where it ends). Raises `_Unwalkable` or JSONDecodeError for anything else."""
    found: dict[str, Any] = {}
    i = _SPACE.match(text, i + 1).end()
    if text.startswith("}", i):
        return found, i + 1
    while True:
        plain = _PLAIN_KEY.match(text, i)
        if plain is not None:  # the common case: one match up to the value
            key, i = plain.group(1), plain.end()
        else:
            if not text.startswith('"', i):
                raise _Unwalkable
            key, i = STRICT_DECODER.raw_decode(text, i)
            i = _SPACE.match(text, i).end()
            if not text.startswith(":", i):
                raise _Unwalkable
            i = _SPACE.match(text, i + 1).end()
        found[key], i = read(text, i, key)
        after = _AFTER_VALUE.match(text, i)
        if after is None:
            raise _Unwalkable
        if after.group(1):  # the closing brace
            return found, after.end()
        i = after.end()
