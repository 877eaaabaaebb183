"""Reading a POST /prompt body node by node: the value json.loads gives, the prompt's text
exactly as it came (the last "prompt" wins, as in json.loads), and every refusal worded as
`json_body` words it. Each test reads both ways: a small body's prompt in one parse, and node
by node, as a body longer than `WHOLE_PARSE_CHARS` is read."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from latentgraph.server import prompt_body
from latentgraph.server.errors import ApiError, json_body
from latentgraph.server.prompt_body import PromptBody


@pytest.fixture(scope="module", params=["whole", "node-by-node"])
def read_prompt_body(request):
    """`read_prompt_body` with the prompt parsed in one call, or walked node by node."""
    limit = prompt_body.WHOLE_PARSE_CHARS if request.param == "whole" else -1

    def read(raw: bytes) -> PromptBody:
        with mock.patch.object(prompt_body, "WHOLE_PARSE_CHARS", limit):
            return prompt_body.read_prompt_body(raw)

    return read


def _prompt(n: int) -> dict:
    return {str(i): {"class_type": "Show", "inputs": {"x": [str(i - 1), 0], "t": "é\n\"q\""},
                     "_meta": {"title": f"n{i}"}} for i in range(n)}  # fmt: skip


@pytest.mark.parametrize("dump", [
    lambda v: json.dumps(v),
    lambda v: json.dumps(v, indent=2),
    lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False),
    lambda v: "\r\n\t " + json.dumps(v, indent="\t") + " \n",
], ids=["spaced", "indented", "compact-utf8", "tabs-and-crlf"])  # fmt: skip
def test_the_value_is_json_loads_and_the_prompt_text_is_the_bytes_as_sent(dump, read_prompt_body):
    body = {"client_id": "c1", "prompt": _prompt(5), "extra_data": {"a": [1, 2.5, None]}}
    text = dump(body)
    read = read_prompt_body(text.encode())
    assert read.body == json.loads(text)
    start = text.index('"prompt"') + len('"prompt"')
    start = text.index("{", start)
    assert read.prompt_text == text[start : start + len(read.prompt_text)]
    assert json.loads(read.prompt_text) == body["prompt"]


def test_escaped_keys_in_compact_text_read_as_json_loads_reads_them(read_prompt_body):
    text = '{"prompt":{"a\\"b":{"k\\n":1,"x":[1,{"y\\u00e9":2}]},"c":{}},"d\\\\":3}'
    read = read_prompt_body(text.encode())
    assert read.body == json.loads(text)
    assert read.body["prompt"]['a"b'] == {"k\n": 1, "x": [1, {"yé": 2}]}
    assert read.prompt_text == '{"a\\"b":{"k\\n":1,"x":[1,{"y\\u00e9":2}]},"c":{}}'


def test_a_body_without_a_prompt_object_keeps_no_text(read_prompt_body):
    for text in ('{"client_id": "c"}', "{}"):
        read = read_prompt_body(text.encode())
        assert (read.body, read.prompt_text) == (json.loads(text), None)


def test_a_repeated_prompt_key_keeps_the_last_as_json_loads_does(read_prompt_body):
    text = '{"prompt": {"1": {"a": 1}}, "prompt": {"2": {"b": 2}}, "x": 1}'
    read = read_prompt_body(text.encode())
    assert read.body == json.loads(text) == {"prompt": {"2": {"b": 2}}, "x": 1}
    assert read.prompt_text == '{"2": {"b": 2}}'
    text = '{"prompt": {"1": {"a": 1}}, "prompt": [1]}'  # the last is no object: no text kept
    read = prompt_body.read_prompt_body(text.encode())  # (walked, it is refused)
    assert (read.body, read.prompt_text) == ({"prompt": [1]}, None)


@pytest.mark.parametrize("text", [
    '{"prompt": {"1": {"a": 1},}}',  # trailing comma
    '{"prompt": {"1": {"a": 1}}',  # unclosed
    '{"prompt": {"1" {"a": 1}}}',  # no colon
    '{"prompt": {1: {}}}',  # unquoted key
    '{"prompt": {"1": {}}} x',  # extra data
    '{"prompt": {"1": {"v": NaN}}}',  # not finite
    '{"prompt": {"1": {"v": 1e999}}}',  # overflows to infinity
    '{"prompt": {"1": {"v": "\\ud800"}}}',  # lone surrogate
    "   ",  # empty
], ids=["trailing-comma", "unclosed", "no-colon", "unquoted-key", "extra-data", "nan",
        "overflow", "surrogate", "empty"])  # fmt: skip
def test_refusals_and_odd_bodies_read_as_a_whole_parse_reads_them(text, read_prompt_body):
    _same_as_a_whole_parse(text.encode(), read_prompt_body)


@pytest.mark.parametrize("raw", [
    b'{"prompt": {"1": {"v": "\xed\xa0\x80"}}}',  # a surrogate's UTF-8 bytes, as json lets in
    b'{"prompt": {"1": {"v": "\xff"}}}',  # no UTF-8
    '{"prompt": {"1": {"v": "\u00e9"}}}'.encode("utf-16"),  # another encoding, with its BOM
    b'\xef\xbb\xbf{"prompt": {"1": {}}}',  # UTF-8 with a BOM
], ids=["surrogate-bytes", "not-utf8", "utf16", "utf8-bom"])  # fmt: skip
def test_bytes_are_decoded_as_a_whole_parse_decodes_them(raw, read_prompt_body):
    _same_as_a_whole_parse(raw, read_prompt_body)


def _same_as_a_whole_parse(raw: bytes, read_prompt_body) -> None:
    try:
        expected = json_body(raw)
    except ApiError as exc:
        with pytest.raises(ApiError) as got:
            read_prompt_body(raw)
        assert (got.value.status, got.value.message, got.value.extra) == (
            exc.status, exc.message, exc.extra)  # fmt: skip
    else:
        assert read_prompt_body(raw).body == expected


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(
    nodes=st.dictionaries(
        st.text(max_size=6), st.dictionaries(st.text(max_size=5), _json), max_size=6
    ),
    others=st.dictionaries(st.sampled_from(["client_id", "extra_data", "prompt_id", "n"]), _json),
    indent=st.sampled_from([None, 0, 1, "\t"]),
    separators=st.sampled_from([None, (",", ":"), (" ,", " : ")]),
    ascii_only=st.booleans(),
)
def test_any_body_reads_as_json_loads_reads_it(read_prompt_body, nodes, others, indent,
                                              separators, ascii_only):  # fmt: skip
    text = json.dumps({**others, "prompt": nodes}, indent=indent, separators=separators,
                      ensure_ascii=ascii_only)  # fmt: skip
    read = read_prompt_body(text.encode())
    assert read.body == json.loads(text)
    assert json.loads(read.prompt_text) == nodes
    assert read.prompt_text in text


def test_only_a_body_longer_than_the_limit_is_walked_node_by_node():
    small = json.dumps({"prompt": _prompt(3)}).encode()
    large = json.dumps({"prompt": _prompt(3), "pad": "x" * prompt_body.WHOLE_PARSE_CHARS}).encode()
    for raw, walked in ((small, False), (large, True)):
        with mock.patch.object(prompt_body.STRICT_DECODER, "raw_decode",
                               wraps=prompt_body.STRICT_DECODER.raw_decode) as decode:  # fmt: skip
            read = prompt_body.read_prompt_body(raw)
        # a walked node is decoded from its own slice of the text; a whole prompt in place
        assert any(len(call.args) == 1 for call in decode.call_args_list) is walked
        assert read.body == json.loads(raw)
        assert json.loads(read.prompt_text) == _prompt(3)


def _walked(text: str) -> bytes:
    """`text` padded past `WHOLE_PARSE_CHARS` with trailing blanks: a body that is walked."""
    return (text + " " * prompt_body.WHOLE_PARSE_CHARS).encode()


@pytest.mark.parametrize(("text", "status", "error_type"), [
    ("[" + "0," * 100 + "0]", 400, "invalid_prompt"),  # a bare array
    ('"a prompt"', 400, "invalid_prompt"),
    ('{"prompt": [' + "0," * 100 + "0]}", 400, "no_prompt"),
    ('{"prompt": "x" , "client_id": "c"}', 400, "no_prompt"),
    ('{"prompt": {"1": [0, 0]}}', 400, "invalid_prompt"),  # a node that is no object
], ids=["bare-array", "string", "prompt-array", "prompt-string", "node-array"])  # fmt: skip
def test_a_walked_body_that_cannot_be_a_prompt_is_refused_unparsed(text, status, error_type):
    """A 60 MB `{"prompt": [0, 0, ...]}` was parsed whole (7 s, 240 MB) before the check
    refused it: refused where it shows, in the check's words, with nothing after it decoded."""
    from latentgraph.server.prompts import PromptRejected

    with mock.patch.object(prompt_body.STRICT_DECODER, "decode", side_effect=AssertionError):
        with pytest.raises((ApiError, PromptRejected)) as got:
            prompt_body.read_prompt_body(_walked(text))
    if isinstance(got.value, ApiError):
        assert (got.value.status, got.value.type) == (status, error_type)
    else:
        assert got.value.body["error"]["type"] == error_type


def _deep(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize("text", [
    _deep(5000),
    '{"prompt": ' + _deep(5000) + "}",
    '{"prompt": ' + _deep(150_000) + "}",  # walked however read: 300 kB
    '{"prompt": {"1": ' + _deep(5000) + "}}",
    '{"prompt": ' + "[0, " * 5000 + "0" + "]" * 5000 + ', "client_id": "c"}',
    '{"prompt": ' + "[\n  " * 5000 + "]" * 5000 + "}",
], ids=["body", "prompt", "prompt-150000", "node", "prompt-with-items", "prompt-indented"])  # fmt: skip
def test_a_value_nested_too_deeply_is_refused_as_such_however_read(text, read_prompt_body):
    """`{"prompt": [[[...]]]}` of 150,000 levels and more said "No prompt provided" (walked:
    refused as no object before anything decoded it), up to 100,000 "nested too deeply" (its
    body parsed whole): the depth is said first, as a whole parse says it."""
    with pytest.raises(ApiError) as whole:
        json_body(text.encode())
    with pytest.raises(ApiError) as got:
        read_prompt_body(text.encode())
    said = (got.value.status, got.value.type, got.value.message)
    assert said == (whole.value.status, whole.value.type, whole.value.message) == (
        400, "invalid_json", "the request body is nested too deeply")  # fmt: skip


@pytest.mark.parametrize("value", ['"' + "a" * 5000 + '"', "[" + "[]," * 2000 + "[]]"])
def test_a_node_longer_than_the_limit_is_refused_naming_it(value):
    """One node holding 60 MB of `[], ` took 15 s and 1.5 GB to parse: a node is read within
    its limit, and refused past it after reading about twice the limit at most."""
    text = '{"prompt": {"ok": {"class_type": "A"}, "big": {"inputs": {"v": ' + value + "}}}}"
    fits = prompt_body.read_prompt_body(_walked(text), max_node_chars=len(value) + 100)
    assert fits.body == json.loads(text)
    with mock.patch.object(prompt_body.STRICT_DECODER, "raw_decode",
                           wraps=prompt_body.STRICT_DECODER.raw_decode) as decode:  # fmt: skip
        with pytest.raises(ApiError) as got:
            prompt_body.read_prompt_body(_walked(text), max_node_chars=1000)
    assert (got.value.status, got.value.type, got.value.extra) == (
        413, "too_large", {"node_id": "big", "limit": 1000})  # fmt: skip
    assert got.value.message.startswith("node 'big' is more than 1,000 characters of JSON")
    assert all(len(call.args[0]) <= 1000 for call in decode.call_args_list
               if len(call.args) == 1)  # fmt: skip
