"""Composing YAML while keeping every position, and refusing what a workflow must not hold.

Plain YAML silently merges duplicate keys, expands alias bombs and types `no` as false. So the
document is *composed* (never constructed: no tags run code), checked for depth, aliases and
duplicate keys, and converted with YAML 1.2 core scalar typing while every position is kept,
so errors point at file:line:column.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import ScalarNode, SequenceNode
from yaml.tokens import (
    BlockEndToken,
    BlockMappingStartToken,
    BlockSequenceStartToken,
    FlowMappingEndToken,
    FlowMappingStartToken,
    FlowSequenceEndToken,
    FlowSequenceStartToken,
)

from ..model import Location
from ..problems import Problem, unprintables_escaped

# The source of a document given as data (a dict from Python, written out as JSON to be read):
# its places are key paths (`<workflow dict> nodes.decode.samples`, `Positions.by_path`), as a
# line:column would point into text its giver never saw.
DATA_SOURCE = "<workflow dict>"
MAX_DEPTH = 64  # nesting levels; also keeps the recursive composer far from Python's limit

# YAML 1.2 core schema for plain scalars: `yes`, `on`, `010` and `1:20` stay what they look like.
_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")

_PLAIN = "lg:plain"
_CORE = "tag:yaml.org,2002:"


def plain_scalar(text: str) -> Any:
    """Type a plain (unquoted) scalar the YAML 1.2 core way."""
    if _NULL.fullmatch(text):
        return None
    if _BOOL.fullmatch(text):
        return text.lower() == "true"
    if _INT.fullmatch(text):
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


class Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def _loc(source: str, mark: Any) -> Location:
    return Location(source, mark.line + 1, mark.column + 1)


@dataclass(frozen=True)
class Wording:
    """How `parse_yaml`'s refusals name the document they read (`where`: "in workflows") and
    what to write instead of an alias (`instead`), so a file that is no workflow (an
    extra_model_paths.yaml) is refused in its own words."""

    where: str = "in workflows"
    instead: str = "write the value out (or use a param)"


WORKFLOW = Wording()


class _Loader(yaml.SafeLoader):
    """Composes only. Refuses aliases (alias bombs) and documents nested too deep."""

    def __init__(self, stream: str, source: str, wording: Wording) -> None:
        super().__init__(stream)
        self._source = source
        self._wording = wording
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise Refused(
                Problem(
                    "syntax",
                    f"YAML aliases (*{event.anchor}) are not allowed {self._wording.where}; "
                    f"{self._wording.instead}",
                    location=_loc(self._source, event.start_mark),
                )
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Refused(
                    Problem(
                        "limit_exceeded",
                        f"the document is nested more than {MAX_DEPTH} levels deep",
                        location=_loc(self._source, self.peek_event().start_mark),
                    )
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)


class Positions:
    """A parsed document: positions of values and of mapping keys, by path, and problems."""

    def __init__(self, source: str, wording: Wording = WORKFLOW) -> None:
        self.source = source
        self.wording = wording
        self.at: dict[tuple, Location] = {}
        self.key_at: dict[tuple, Location] = {}
        self.problems: list[Problem] = []

    def by_path(self) -> None:
        """Every place as its key path instead of its line:column (a `DATA_SOURCE`'s)."""
        self.at = {path: Location(key_path(self.source, path)) for path in self.at}
        self.key_at = {path: Location(key_path(self.source, path)) for path in self.key_at}


def key_path(source: str, path: tuple) -> str:
    """`source` and the keys leading to a value: `<workflow dict> nodes.decode.samples`, a
    list's item by its index (`nodes.n.values[2]`)."""
    keys = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)
    return f"{source} {keys.lstrip('.')}" if keys else source


def parse_yaml(text: str, source: str,
               wording: Wording = WORKFLOW) -> tuple[Any, Positions, bool]:  # fmt: skip
    """Returns (value, positions, empty). Raises Refused for syntax and limits, worded for the
    document read (`wording`)."""
    doc = Positions(source, wording)
    loader = None
    try:
        loader = _Loader(text, source, wording)
        root = loader.get_single_node()
    except Refused:
        raise
    except yaml.MarkedYAMLError as exc:
        raise Refused(_syntax_problem(exc, source, text)) from None
    except yaml.reader.ReaderError as exc:
        raise Refused(
            Problem(
                "syntax",
                f"character U+{exc.character:04X} is not allowed {wording.where}",
                location=Location.at_offset(source, text, exc.position),
            )
        ) from None
    except yaml.YAMLError as exc:
        raise Refused(Problem("syntax", f"YAML error: {exc}", location=Location(source))) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return None, doc, True
    return _convert(root, (), doc), doc, False


_TAB = "found character '\\t'"  # PyYAML's problem for a tab (`_spacing_tab_hint`)
# PyYAML's problem for a line between two mappings' key columns (`_block_left`)
_BETWEEN_COLUMNS = "expected <block end>, but found '<block mapping start>'"

# PyYAML's errors a hand-written file most often meets, by the start of their context and of
# their problem text (the first that matches), and what to do: the one table of YAML hints.
_HINTS = (
    ("while scanning a quoted scalar", "found unexpected",
     "the quote opened there is never closed: end the value with the same quote"),
    ("while parsing a flow mapping", "expected ','",
     "the '{' opened there is not closed: end it with '}' and separate its entries with ','"),
    ("while parsing a flow sequence", "expected ','",
     "the '[' opened there is not closed: end it with ']' and separate its items with ','"),
    ("", _TAB, "YAML forbids tabs for indentation: indent with spaces"),
    ("", "found character", "a value starting with @, ` or % must be quoted"),
    ("", "mapping values are not allowed here",
     "a value with ': ' inside must be quoted (text: \"a photo: a cat\"), or this line is "
     "indented deeper than the line before it"),
    ("while scanning a simple key", "could not find expected ':'",
     "the line started there has no ': ' after its key"),
    ("", "expected <block end>, but found '<scalar>'",
     "text follows where the line should end: a quoted value ends at its closing quote "
     "(inside '...' write '' for ', inside \"...\" write \\\" for \"), and each line of a "
     "mapping is 'key: value'"),
    ("", "expected <block end>, but found ']'",
     "a closing ']' with no '[' open before it: remove it"),
    ("", "expected <block end>, but found '}'",
     "a closing '}' with no '{' open before it: remove it"),
    ("", "expected <block end>, but found '-'",
     "a list item ('- ...') cannot sit at a key's column inside a mapping: indent it under "
     "the key whose value the list is ('key:' then '  - item'), or write it as 'key: value'"),
    ("", "expected <block end>",
     "this line's indentation matches no key above it: the keys of one mapping start in the "
     "same column"),
)  # fmt: skip


# The same "expected ','" inside a '{...}' or '[...]' that is closed after all (`_closed`):
# not an unclosed bracket but an entry running on, by the token the parser got instead.
_RUN_ON_HINTS = (
    ("while parsing a flow mapping", "expected ',' or '}', but got ':'",
     "a value with ': ' inside must be quoted, inside '{...}' too (text: \"a photo: a cat\"), "
     "or a ',' is missing before the next key"),
    ("while parsing a flow sequence", "expected ',' or ']', but got ':'",
     "an item with ': ' inside must be quoted, inside '[...]' too (\"a photo: a cat\"), or a "
     "',' is missing before the next item"),
    ("while parsing a flow mapping", "expected ','",
     "an entry runs on where ',' or '}' should come: separate the entries with ',' (a quoted "
     "value ends at its closing quote)"),
    ("while parsing a flow sequence", "expected ','",
     "an item runs on where ',' or ']' should come: separate the items with ',' (a quoted "
     "value ends at its closing quote)"),
)  # fmt: skip


def _yaml_hint(context: str, problem: str, closed: bool = False) -> str | None:
    """What to do about PyYAML's error (`_HINTS`; for a '{' or '[' that is `closed`,
    `_RUN_ON_HINTS` first), or None for one it has no hint for."""
    first = _RUN_ON_HINTS if closed else ()
    for context_start, problem_start, hint in first + _HINTS:
        if context.startswith(context_start) and problem.startswith(problem_start):
            return hint
    return None


def _spacing_tab_hint(text: str, mark: Any) -> str | None:
    """What to do about the tab at `mark` when it is past its line's indentation, named by
    where it stands (None in the indentation: `_HINTS` says "indent with spaces"). YAML 1.2
    takes a tab as separation space, and inside a plain value; PyYAML's scanner takes none
    past the indentation, and each place has its own fix: a tab inside a value is part of
    it, kept by quoting it, where a space would change the value."""
    start = mark.index - mark.column
    before = text[start : mark.index].rstrip(" \t")
    if not before:
        return None
    end = text.find("\n", mark.index)
    rest = text[mark.index : len(text) if end < 0 else end].strip(" \t\r")
    if not rest:
        where, fix = "at the end of a line", "remove it"
    elif rest.startswith("#"):
        where, fix = "before a comment", "use a space"
    elif before.endswith((":", ",", "[", "{")):
        where, fix = f"after {before[-1]!r}", "use a space"
    elif before.split()[-1] == "-":
        where, fix = "after a list item's '-'", "use a space"
    elif rest[0] in ":,]}":
        where, fix = f"before {rest[0]!r}", "remove it"
    elif before.endswith(("'", '"')):
        where, fix = "after a quoted value", "remove it"
    else:
        where = "inside an unquoted value"
        fix = ('quote the value to keep the tab ("a\\tb": inside double quotes \\t is a '
               "tab), or use a space")  # fmt: skip
    return (f"a tab {where}: PyYAML, which reads the file, does not take a tab there, "
            f"though YAML 1.2 allows it: {fix}")  # fmt: skip


def _closed(text: str, opened: Any) -> bool:
    """Whether the '{' or '[' at `opened` (a mark) is closed later in `text`, as PyYAML's
    scanner, which reads on where its parser stopped, pairs the brackets (a '}' closes no
    '['). The parser says "expected ','" alike for one never closed and for an entry running
    on inside a closed one (`{text: a: b}`); each needs its own hint."""
    pairs = {
        FlowMappingEndToken: FlowMappingStartToken,
        FlowSequenceEndToken: FlowSequenceStartToken,
    }
    open_ones: list[type] = []
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index < opened.index:
                continue
            if type(token) in pairs.values():
                open_ones.append(type(token))
            elif type(token) in pairs:
                if not open_ones or open_ones.pop() is not pairs[type(token)]:
                    return False
                if not open_ones:
                    return True
    except yaml.YAMLError:  # the scanner stopped before the bracket was closed
        return False
    return False


def _block_left(text: str, mark: Any) -> Any | None:
    """The token starting the block mapping or list the line at `mark` left by dedenting (its
    first key or item), or None: a line indented less than the keys above it, but more than
    those of the mapping holding them, matches neither, and PyYAML names only the holding one
    (the first node id, far above), not the deeper one beside the line, which is often the
    line indented wrong."""
    starts: list[Any] = []
    left = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, BlockEndToken):
                left = starts.pop() if starts else None
                continue
            if token.start_mark.index >= mark.index:
                return left
            left = None
            if isinstance(token, BlockMappingStartToken | BlockSequenceStartToken):
                starts.append(token)
    except yaml.YAMLError:  # the scanner stopped before the line
        return None
    return None


def _syntax_problem(exc: yaml.MarkedYAMLError, source: str, text: str) -> Problem:
    """PyYAML's error at the place of its problem, with the place its context started when
    that is elsewhere (the quote, the `{` or the mapping it was reading: `FILE:L:C: a quoted
    scalar started here`), and a hint for the common mistakes (`_yaml_hint`; for a '{' or '['
    whose entry runs on, whether it is `_closed`; for a tab past the indentation, where it
    stands: `_spacing_tab_hint`)."""
    context, problem = exc.context or "", exc.problem or ""
    mark = exc.problem_mark or exc.context_mark
    where = _loc(source, mark) if mark is not None else Location(source)
    began = exc.context_mark
    if context and exc.problem_mark and began and (began.line, began.column) != (
            exc.problem_mark.line, exc.problem_mark.column):  # fmt: skip
        what = context.removeprefix("while scanning ").removeprefix("while parsing ")
        place = unprintables_escaped(str(_loc(source, began)))
        message = f"{problem}; {place}: {what} started here"
        between = problem == _BETWEEN_COLUMNS and context == "while parsing a block mapping"
        left = _block_left(text, exc.problem_mark) if between else None
        if left is not None:
            above = unprintables_escaped(str(_loc(source, left.start_mark)))
            block = ("the list above it has its items" if isinstance(left, BlockSequenceStartToken)
                     else "the mapping above it has its keys")  # fmt: skip
            message = (f"{problem}; {above}: {block} in column {left.start_mark.column + 1}, "
                       f"{place}: the mapping holding it in column {began.column + 1}")  # fmt: skip
    else:
        message = " ".join(p for p in (context, problem) if p) or str(exc)
    flow = context.startswith(("while parsing a flow mapping", "while parsing a flow sequence"))
    closed = flow and began is not None and _closed(text, began)
    hint = None
    if problem.startswith(_TAB) and exc.problem_mark is not None:
        hint = _spacing_tab_hint(text, exc.problem_mark)
    hint = hint or _yaml_hint(context, problem, closed)
    if hint:
        message += f"; {hint}"
    return Problem("syntax", f"YAML syntax error: {message}", location=where)


def _convert(node: Any, path: tuple, doc: Positions) -> Any:
    doc.at[path] = _loc(doc.source, node.start_mark)
    if isinstance(node, ScalarNode):
        return _scalar(node, doc)
    if isinstance(node, SequenceNode):
        if node.tag != _CORE + "seq":
            raise Refused(_tag_problem(node, doc))
        return [_convert(item, (*path, n), doc) for n, item in enumerate(node.value)]
    # a MappingNode: the composer makes no other kind of node
    if node.tag != _CORE + "map":
        raise Refused(_tag_problem(node, doc))
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise Refused(
                Problem(
                    "syntax",
                    "mapping keys must be plain names, not lists or mappings",
                    location=_loc(doc.source, key_node.start_mark),
                )
            )
        key = key_node.value
        key_path = (*path, key)
        if key in result:
            doc.problems.append(_duplicate(path, key, doc, key_node))
            continue
        doc.key_at[key_path] = _loc(doc.source, key_node.start_mark)
        result[key] = _convert(value_node, key_path, doc)
    return result


def _duplicate(path: tuple, key: str, doc: Positions, key_node: Any) -> Problem:
    where = _loc(doc.source, key_node.start_mark)
    first = doc.key_at[(*path, key)]  # recorded when the key was first read
    first_text = f" (first at line {first.line} column {first.column})"
    if path == ("nodes",):
        return Problem(
            "duplicate_node",
            f"node id {key!r} is used twice{first_text}; node ids must be unique",
            node_id=key,
            location=where,
        )
    if len(path) == 2 and path[0] == "nodes":
        return Problem(
            "syntax",
            f"input {key!r} is written twice{first_text}",
            node_id=path[1],
            input_name=key,
            location=where,
        )
    return Problem("syntax", f"key {key!r} is written twice{first_text}", location=where)


def _scalar(node: ScalarNode, doc: Positions) -> Any:
    if node.tag == _PLAIN:
        return plain_scalar(node.value)
    if node.tag == _CORE + "str":
        return node.value
    kinds = {"int": int, "float": float, "bool": bool, "null": type(None)}
    kind = node.tag[len(_CORE) :] if node.tag.startswith(_CORE) else None
    if kind in kinds:
        value = plain_scalar(node.value)
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, kinds[kind]) and not (kind == "int" and isinstance(value, bool)):
            return value
        raise Refused(
            Problem(
                "syntax",
                f"{node.value!r} is not a valid !!{kind}",
                location=_loc(doc.source, node.start_mark),
            )
        )
    raise Refused(_tag_problem(node, doc))


def _tag_problem(node: Any, doc: Positions) -> Problem:
    return Problem(
        "syntax",
        f"YAML tag {node.tag!r} is not supported {doc.wording.where}",
        location=_loc(doc.source, node.start_mark),
    )
