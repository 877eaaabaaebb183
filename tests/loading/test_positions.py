"""The YAML composer with positions: YAML 1.2 plain scalars, explicit tags, duplicate keys at
each level, keys that are not names, aliases and depth, every refusal at file:line:column."""

from __future__ import annotations

import math

import pytest

from latentgraph.graph.workflow.positions import MAX_DEPTH, Refused, parse_yaml, plain_scalar


@pytest.mark.parametrize(("text", "value"), [
    ("", None), ("~", None), ("null", None), ("NULL", None), ("True", True), ("FALSE", False),
    ("yes", "yes"), ("on", "on"), ("010", 10), ("+7", 7), ("-3", -3), ("0o17", 15),
    ("0x1F", 31), ("0x", "0x"), ("1:20", "1:20"), ("0E0", 0.0), (".5", 0.5), ("1.", 1.0),
    ("-1.5e-3", -0.0015), (".inf", math.inf), ("-.Inf", -math.inf), ("+.INF", math.inf),
    ("1e", "1e"), ("0o8", "0o8"), ("nan", "nan"),
])  # fmt: skip
def test_plain_scalars_are_typed_the_yaml_1_2_way(text, value):
    got = plain_scalar(text)
    assert got == value and type(got) is type(value)


def test_nan_is_a_float():
    assert all(math.isnan(plain_scalar(t)) for t in (".nan", ".NaN", ".NAN"))


def refused(text: str) -> tuple:
    with pytest.raises(Refused) as info:
        parse_yaml(text, "w.yaml")
    problem = info.value.problem
    assert str(info.value) == str(problem)
    where = problem.location
    return problem.code, problem.message, (where.file, where.line, where.column)


@pytest.mark.parametrize(("text", "value"), [
    ("a: !!int '5'", 5), ("a: !!float 1", 1.0), ("a: !!float '2.5'", 2.5), ("a: !!bool true", True),
    ("a: !!null ~", None), ("a: !!str 5", "5"), ("a: '5'", "5"), ("a: !!seq [1]", [1]),
    ("a: !!map {b: 1}", {"b": 1}),
])  # fmt: skip
def test_explicit_core_tags_give_their_type(text, value):
    got = parse_yaml(text, "w.yaml")[0]["a"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("text", "message"), [
    ("a:\n  b: !!int true", "'true' is not a valid !!int"),
    ("a:\n  b: !!int 1.5", "'1.5' is not a valid !!int"),
    ("a:\n  b: !!float x", "'x' is not a valid !!float"),
    ("a:\n  b: !!float true", "'true' is not a valid !!float"),
    ("a:\n  b: !!bool ~", "'~' is not a valid !!bool"),
    ("a:\n  b: !!bool 1", "'1' is not a valid !!bool"),
    ("a:\n  b: !!null 0", "'0' is not a valid !!null"),
    ("a:\n  b: !!binary aGk=", "YAML tag 'tag:yaml.org,2002:binary' is not supported in workflows"),
    ("a:\n  b: !x 1", "YAML tag '!x' is not supported in workflows"),
    ("a:\n  b: !x [1]", "YAML tag '!x' is not supported in workflows"),
    ("a:\n  b: !x {c: 1}", "YAML tag '!x' is not supported in workflows"),
    ("a:\n  b: !xxxxxxxxxxxxxxxxxint 1",
     "YAML tag '!xxxxxxxxxxxxxxxxxint' is not supported in workflows"),  # as long as the core prefix
    ("a:\n  b: !!set {c: 1}", "YAML tag 'tag:yaml.org,2002:set' is not supported in workflows"),
    ("a:\n  b: !!omap [1]", "YAML tag 'tag:yaml.org,2002:omap' is not supported in workflows"),
    ("a:\n  ? [x]\n  : 1", "mapping keys must be plain names, not lists or mappings"),
])  # fmt: skip
def test_tags_and_keys_a_workflow_cannot_hold_are_refused_where_they_are(text, message):
    code, got, where = refused(text)
    assert (code, got) == ("syntax", message)
    assert where == ("w.yaml", 2, 5 if "keys" in message else 6)


def test_positions_of_values_and_keys_by_path():
    value, doc, empty = parse_yaml("nodes:\n  c: {type: Const, v: [1, 2]}\n", "w.yaml")
    assert not empty and value == {"nodes": {"c": {"type": "Const", "v": [1, 2]}}}
    at = {path: (loc.line, loc.column) for path, loc in doc.at.items()}
    assert at[()] == (1, 1) and at[("nodes", "c")] == (2, 6)
    assert at[("nodes", "c", "v", 1)] == (2, 27)
    assert (doc.key_at[("nodes", "c", "v")].line, doc.key_at[("nodes", "c", "v")].column) == (2, 20)
    assert all(loc.file == "w.yaml" for loc in doc.at.values()) and doc.problems == []


def test_an_empty_document_is_empty():
    value, doc, empty = parse_yaml("# nothing\n", "w.yaml")
    assert (value, empty, doc.at, doc.problems) == (None, True, {}, [])


@pytest.mark.parametrize(("text", "code", "message", "node", "name", "where"), [
    ("nodes:\n  a: {type: X}\n  a: {type: Y}\n", "duplicate_node",
     "node id 'a' is used twice (first at line 2 column 3); node ids must be unique", "a", None,
     (3, 3)),
    ("nodes:\n  a: {type: X, v: 1, v: 2}\n", "syntax",
     "input 'v' is written twice (first at line 2 column 16)", "a", "v", (2, 22)),
    ("params:\n  p: 1\n  p: 2\n", "syntax", "key 'p' is written twice (first at line 2 column 3)",
     None, None, (3, 3)),
    ("x: {nodes: {a: 1, a: 2}}\n", "syntax",
     "key 'a' is written twice (first at line 1 column 13)", None, None, (1, 19)),
    ("nodes:\n  a: {type: X, v: {w: 1, w: 2}}\n", "syntax",
     "key 'w' is written twice (first at line 2 column 20)", None, None, (2, 26)),
])  # fmt: skip
def test_duplicate_keys_are_named_by_their_level(text, code, message, node, name, where):
    value, doc, _ = parse_yaml(text, "w.yaml")
    ((problem),) = doc.problems
    assert (problem.code, problem.message) == (code, message)
    assert (problem.node_id, problem.input_name) == (node, name)
    assert (problem.location.file, problem.location.line, problem.location.column) == (
        "w.yaml", *where)  # fmt: skip
    first = text.split(":")[0]
    assert first in value  # the first value is kept


def test_aliases_are_refused_at_the_alias():
    code, message, where = refused("a: &x [1]\nb: *x\n")
    assert (code, message) == ("syntax", "YAML aliases (*x) are not allowed in workflows; write "
                                         "the value out (or use a param)")  # fmt: skip
    assert where == ("w.yaml", 2, 4)


def test_depth_at_the_limit_is_read_and_one_more_refused():
    assert parse_yaml("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1), "w.yaml")[0] is not None
    parse_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "w.yaml")
    code, message, where = refused("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert (code, message) == ("limit_exceeded", f"the document is nested more than {MAX_DEPTH} "
                                                 "levels deep")  # fmt: skip
    assert where == ("w.yaml", 1, MAX_DEPTH + 1)
    # the depth is counted down again: siblings are not nested
    parse_yaml("[" + ", ".join(["[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)] * 3) + "]", "w")


# A tab past the indentation: PyYAML's error and, per place, the hint's parts
TAB = "while scanning for the next token found character '\\t' that cannot start any token; a tab "
NOT_TAKEN = (": PyYAML, which reads the file, does not take a tab there, though YAML 1.2 "
             "allows it: ")  # fmt: skip
QUOTE_IT = ('quote the value to keep the tab ("a\\tb": inside double quotes \\t is a tab), '
            "or use a space")  # fmt: skip


@pytest.mark.parametrize(("text", "message", "line", "column"), [
    ("a: {b: 1\nc: 2", "expected ',' or '}', but got ':'; w.yaml:1:4: a flow mapping started "
     "here; the '{' opened there is not closed: end it with '}' and separate its entries with "
     "','", 2, 2),
    # the '{' is closed: an unquoted ': ' in a value (it said the '{' was not closed)
    ("p: {type: TextEncode, clip: model.clip, text: a: b}\n", "expected ',' or '}', but got "
     "':'; w.yaml:1:4: a flow mapping started here; a value with ': ' inside must be quoted, "
     "inside '{...}' too (text: \"a photo: a cat\"), or a ',' is missing before the next key",
     1, 48),
    ("p: {a: b\n  c: d}\n", "expected ',' or '}', but got ':'; w.yaml:1:4: a flow mapping "
     "started here; a value with ': ' inside must be quoted, inside '{...}' too (text: \"a "
     "photo: a cat\"), or a ',' is missing before the next key", 2, 4),
    ("p: [a: b: c]\n", "expected ',' or ']', but got ':'; w.yaml:1:4: a flow sequence started "
     "here; an item with ': ' inside must be quoted, inside '[...]' too (\"a photo: a cat\"), "
     "or a ',' is missing before the next item", 1, 9),
    ("p: {a: 'x' y}\n", "expected ',' or '}', but got '<scalar>'; w.yaml:1:4: a flow mapping "
     "started here; an entry runs on where ',' or '}' should come: separate the entries with "
     "',' (a quoted value ends at its closing quote)", 1, 12),
    # a '}' closes no '[': that one is not closed
    ("p: {a: [1, 2}\n", "expected ',' or ']', but got '}'; w.yaml:1:8: a flow sequence started "
     "here; the '[' opened there is not closed: end it with ']' and separate its items with "
     "','", 1, 13),
    ("a: [1, 2\n", "expected ',' or ']', but got '<stream end>'; w.yaml:1:4: a flow sequence "
     "started here; the '[' opened there is not closed: end it with ']' and separate its items "
     "with ','", 2, 1),
    ("a: \"x", "found unexpected end of stream; w.yaml:1:4: a quoted scalar started here; the "
     "quote opened there is never closed: end the value with the same quote", 1, 6),
    ("a:\n  b: 'x\n  c: 1\n", "found unexpected end of stream; w.yaml:2:6: a quoted scalar "
     "started here; the quote opened there is never closed: end the value with the same quote",
     4, 1),
    ("a:\n\tb: 1\n", "while scanning for the next token found character '\\t' that cannot "
     "start any token; YAML forbids tabs for indentation: indent with spaces", 2, 1),
    ("a:\n  \t- x\n", "while scanning for the next token found character '\\t' that cannot "
     "start any token; YAML forbids tabs for indentation: indent with spaces", 2, 3),
    # a tab past the indentation is no indentation: named by where it stands, with its fix
    ("p:\n  prompt:\t\"x\"\n", f"{TAB}after ':'{NOT_TAKEN}use a space", 2, 10),
    ("p: 'x'\t# c\n", f"{TAB}before a comment{NOT_TAKEN}use a space", 1, 7),
    ("p: {a: 1,\tb: 2}\n", f"{TAB}after ','{NOT_TAKEN}use a space", 1, 10),
    ("p: [\ta]\n", f"{TAB}after '['{NOT_TAKEN}use a space", 1, 5),
    ("p:\n  -\tx\n", f"{TAB}after a list item's '-'{NOT_TAKEN}use a space", 2, 4),
    ("p: x\t\n", f"{TAB}at the end of a line{NOT_TAKEN}remove it", 1, 5),
    ("p: x \t \r\n", f"{TAB}at the end of a line{NOT_TAKEN}remove it", 1, 6),
    ("p: {a: 1\t}\n", f"{TAB}before '}}'{NOT_TAKEN}remove it", 1, 9),
    ("p\t: 1\n", f"{TAB}before ':'{NOT_TAKEN}remove it", 1, 2),
    ("p: 'a'\tb\n", f"{TAB}after a quoted value{NOT_TAKEN}remove it", 1, 7),
    # inside a value (a prompt pasted from a spreadsheet) the tab is part of it: a space would
    # change the value
    ("p:\n  q: a\tb\n", f"{TAB}inside an unquoted value{NOT_TAKEN}{QUOTE_IT}", 2, 7),
    ("p: {q: a b\tc}\n", f"{TAB}inside an unquoted value{NOT_TAKEN}{QUOTE_IT}", 1, 11),
    ("p:\n  - a\tb\n", f"{TAB}inside an unquoted value{NOT_TAKEN}{QUOTE_IT}", 2, 6),
    ("a: b: c", "mapping values are not allowed here; a value with ': ' inside must be quoted "
     "(text: \"a photo: a cat\"), or this line is indented deeper than the line before it",
     1, 5),
    # a line between two mappings' key columns: both named, the deeper one beside the line (it
    # named only the holding one: the first node id, far above an over-indented `type:`)
    ("a:\n    b: 1\n  c: 2\n", "expected <block end>, but found '<block mapping start>'; "
     "w.yaml:2:5: the mapping above it has its keys in column 5, w.yaml:1:1: the mapping "
     "holding it in column 1; this line's indentation matches no key above it: the keys of one "
     "mapping start in the same column", 3, 3),
    ("nodes:\n  m: {type: X}\n  d:\n      type: X\n    u: 1\n", "expected <block end>, but "
     "found '<block mapping start>'; w.yaml:4:7: the mapping above it has its keys in column "
     "7, w.yaml:2:3: the mapping holding it in column 3; this line's indentation matches no "
     "key above it: the keys of one mapping start in the same column", 5, 5),
    ("a:\n  - 1\n b: 2\n", "expected <block end>, but found '<block mapping start>'; "
     "w.yaml:2:3: the list above it has its items in column 3, w.yaml:1:1: the mapping holding "
     "it in column 1; this line's indentation matches no key above it: the keys of one mapping "
     "start in the same column", 3, 2),
    ("p: [1, 2]]\n", "expected <block end>, but found ']'; w.yaml:1:1: a block mapping "
     "started here; a closing ']' with no '[' open before it: remove it", 1, 10),
    ("p: {a: 1}}\n", "expected <block end>, but found '}'; w.yaml:1:1: a block mapping "
     "started here; a closing '}' with no '{' open before it: remove it", 1, 10),
    ("a:\n  b: 1\n  - x\n", "expected <block end>, but found '-'; w.yaml:2:3: a block mapping "
     "started here; a list item ('- ...') cannot sit at a key's column inside a mapping: "
     "indent it under the key whose value the list is ('key:' then '  - item'), or write it "
     "as 'key: value'", 3, 3),
    ("a: 'it's'\n", "expected <block end>, but found '<scalar>'; w.yaml:1:1: a block mapping "
     "started here; text follows where the line should end: a quoted value ends at its closing "
     "quote (inside '...' write '' for ', inside \"...\" write \\\" for \"), and each line of a "
     "mapping is 'key: value'", 1, 8),
    ("a: @x\n", "while scanning for the next token found character '@' that cannot start any "
     "token; a value starting with @, ` or % must be quoted", 1, 4),
    ("a: &\n", "expected alphabetic or numeric character, but found '\\n'; w.yaml:1:4: an "
     "anchor started here", 1, 5),
])  # fmt: skip
def test_a_yaml_syntax_error_names_the_problem_where_its_context_started_and_what_to_do(
    text, message, line, column
):
    """The place of the problem itself, then (when elsewhere) the place its context started:
    the quote, the `{` or `[`, the mapping; and a hint for the common mistakes."""
    assert refused(text) == ("syntax", f"YAML syntax error: {message}", ("w.yaml", line, column))


def test_the_keys_after_a_duplicate_are_read():
    value, doc, _ = parse_yaml("params:\n  p: 1\n  p: 2\n  q: 3\n", "w.yaml")
    assert value == {"params": {"p": 1, "q": 3}} and len(doc.problems) == 1
