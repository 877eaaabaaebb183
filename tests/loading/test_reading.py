"""Reading a workflow's text as JSON: syntax errors at their line and column, nesting too deep,
duplicate keys also when the position reader cannot follow, and the size refusal's text."""

from __future__ import annotations

import errno
import json
import os

import pytest

from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.workflow import load_workflow, read_source, reading

GOOD = {"version": 1, "nodes": {"c": {"type": "Const", "value": 2}}}


def problems(text: str, registry, name: str = "w.json") -> list[tuple]:
    with pytest.raises(WorkflowError) as info:
        load_workflow(name, text=text, registry=registry)
    return [(p.code, p.message, p.location) for p in info.value.problems]


def test_a_json_syntax_error_names_its_line_and_column(registry):
    ((code, message, where),) = problems('{"version": 1,\n  "nodes": {,}}', registry)
    assert (code, message) == ("syntax", "JSON syntax error: Expecting property name enclosed "
                                         "in double quotes")  # fmt: skip
    assert (where.file, where.line, where.column) == ("w.json", 2, 13)


def test_json_nested_deeper_than_the_parser_goes_is_a_limit(registry):
    ((code, message, where),) = problems("[" * 100_000 + "]" * 100_000, registry)
    assert (code, message) == ("limit_exceeded", "the document is nested too deeply")
    assert (where.file, where.line) == ("w.json", 0)  # the whole file


def test_duplicate_keys_are_found_when_positions_cannot_be_read(registry):
    """A 2000-character key is JSON but not YAML (simple keys stop at 1024): the positions are
    lost, the duplicate key is still reported, at the file."""
    text = json.dumps(GOOD)[:-1] + ', "' + "k" * 2000 + '": 1, "version": 1}'
    found = problems(text, registry)
    assert ("syntax", "key 'version' is written twice") in [(c, m) for c, m, _ in found]
    assert all(where.file == "w.json" for _, _, where in found)


def test_a_key_written_once_in_such_json_is_not_a_duplicate(registry):
    text = json.dumps(GOOD)[:-1] + ', "' + "k" * 2000 + '": 1}'
    assert not any("written twice" in m for _, m, _ in problems(text, registry))


def test_the_size_refusal_says_the_limit_in_megabytes(monkeypatch):
    with pytest.raises(WorkflowError) as info:
        read_source("big.yaml", text="x" * (reading.MAX_BYTES + 1))
    ((problem),) = info.value.problems
    assert problem.code == "limit_exceeded" and problem.location.file == "big.yaml"
    assert problem.message == "the workflow is larger than 5 MB"


def test_read_source_gives_the_text_from_a_file_or_as_given(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("nodes: {}\n")
    assert read_source(path) == "nodes: {}\n"
    assert read_source(path, text="given") == "given"  # the text wins; the file is its name
    with pytest.raises(WorkflowError) as info:
        read_source(tmp_path / "missing.yaml")
    assert info.value.problems[0].location.file == str(tmp_path / "missing.yaml")


def test_text_over_the_limit_in_utf8_bytes_is_refused():
    """The limit is in bytes: 2.5 M characters of two bytes each are over it."""
    text = "é" * (reading.MAX_BYTES // 2 + 1)
    with pytest.raises(WorkflowError) as info:
        read_source("w.yaml", text=text)
    assert info.value.problems[0].code == "limit_exceeded"


def test_a_file_larger_than_its_size_said_is_refused(monkeypatch):
    """Files whose size is not known beforehand (/proc, pipes) are measured once read."""
    monkeypatch.setattr(reading, "MAX_BYTES", 20)
    with pytest.raises(WorkflowError) as info:
        read_source("/proc/self/status")
    ((problem),) = info.value.problems
    assert problem.code == "limit_exceeded" and problem.location.file == "/proc/self/status"


def test_an_unreadable_file_says_why_at_its_name(tmp_path):
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(WorkflowError) as info:
        read_source(missing)
    ((problem),) = info.value.problems
    assert (problem.code, problem.message) == ("invalid_value",
                                               "cannot read workflow: No such file or directory")  # fmt: skip
    assert problem.location.file == missing


def test_a_file_the_os_refuses_to_open_says_why_in_the_words_writes_use(tmp_path, monkeypatch):
    """No permission to read it, a name too long: `graph.files.os_error_words` words the OS's
    refusal, as it words a failed write, the permission being to read."""
    path = tmp_path / "w.yaml"
    path.write_text("version: 1\n")

    def refuse(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(type(path), "read_bytes", refuse)
    with pytest.raises(WorkflowError) as info:
        read_source(path)
    assert [p.message for p in info.value.problems] == [
        "cannot read workflow: no permission to read it (Permission denied)"]  # fmt: skip
    with pytest.raises(WorkflowError) as info:
        read_source(tmp_path / ("ワ" * 90 + ".yaml"))
    assert [p.message for p in info.value.problems] == [
        "cannot read workflow: a name in the path is longer than the 255 bytes a file system "
        "allows (File name too long)"]  # fmt: skip


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_is_named_as_one(tmp_path, encoding):
    """Windows Notepad's "Unicode" is UTF-16 behind a byte order mark: it was refused as "not
    UTF-8 text (byte 0xff at offset 0)", with no word of UTF-16."""
    marks = {"utf-16": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}
    path = tmp_path / "w.yaml"
    path.write_bytes(marks[encoding] + "version: 1\n".encode(encoding))
    with pytest.raises(WorkflowError) as info:
        read_source(path)
    assert [(p.message, p.location.line, p.location.column) for p in info.value.problems] == [
        ("the file is UTF-16; save it as UTF-8", 1, 1)]  # fmt: skip
    assert read_source(path, b"\xef\xbb\xbfversion: 1\n") == "version: 1\n"  # UTF-8, a BOM


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("text", ["version: 1\nnodes: {}\n", "été: 1\n", "v"])
def test_a_utf16_file_without_its_mark_is_named_as_one(tmp_path, encoding, text):
    """UTF-16 saved without a byte order mark (ASCII in it is valid UTF-8, a NUL every other
    byte) was read and refused as "character U+0000 is not allowed": named as UTF-16 now, by
    the NUL beside each of its first characters, at 1:1, from a file or a request's bytes."""
    path = tmp_path / "w.yaml"
    path.write_bytes(text.encode(encoding))
    for given in (None, text.encode(encoding)):
        with pytest.raises(WorkflowError) as info:
            read_source(path, given)
        assert [(p.message, p.location.line, p.location.column) for p in info.value.problems] == [
            ("the file is UTF-16; save it as UTF-8", 1, 1)]  # fmt: skip
    assert read_source(path, b"ab\x00") == "ab\x00"  # one NUL is no UTF-16: left to the parser


@pytest.mark.parametrize(("data", "line", "column"), [
    (b"ab\xff", 1, 3), (b"\nab\xffc", 2, 3), (b"x: 1\ny: \xe9t\xe9\n", 2, 4), (b"\n\n\xff", 3, 1),
])  # fmt: skip
def test_bytes_that_are_not_utf8_are_located(tmp_path, data, line, column):
    path = tmp_path / "w.yaml"
    path.write_bytes(data)
    with pytest.raises(WorkflowError) as info:
        read_source(path)
    ((problem),) = info.value.problems
    offset = sum(len(x) + 1 for x in data.split(b"\n")[: line - 1]) + column - 1
    assert problem.code == "syntax" and problem.message == (
        f"the file is not UTF-8 text (byte 0x{data[offset]:02x} at offset {offset})"
    )
    assert (problem.location.file, problem.location.line, problem.location.column) == (
        str(path),
        line,
        column,
    )


@pytest.mark.parametrize("mark", [b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b""])
def test_a_utf32_file_is_named_as_one(tmp_path, mark):
    """UTF-32 with its byte order mark was named UTF-16 (LE: its mark begins with UTF-16 LE's)
    or refused as "not UTF-8 text (byte 0xfe at offset 2)" (BE); without a mark as "character
    U+0000 is not allowed". Named as UTF-32, as UTF-16 is named, not read."""
    codec = "utf-32-be" if mark.startswith(b"\x00") else "utf-32-le"
    path = tmp_path / "w.yaml"
    path.write_bytes(mark + "version: 1\nnodes: {}\n".encode(codec))
    with pytest.raises(WorkflowError) as info:
        read_source(path)
    assert [(p.message, p.location.line, p.location.column) for p in info.value.problems] == [
        ("the file is UTF-32; save it as UTF-8", 1, 1)]  # fmt: skip


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_file_without_its_mark_starting_in_cjk_is_named_as_one(tmp_path, encoding):
    """Without a mark, UTF-16 was named only when its first characters were ASCII: a file
    starting with a Japanese comment was "not UTF-8 text (byte 0x92 at offset 10)"."""
    text = "# 猫の絵を描く\nversion: 1\nnodes:\n  p: {type: TextEncode, text: 猫}\n"
    path = tmp_path / "w.yaml"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(WorkflowError) as info:
        read_source(path)
    assert [(p.message, p.location.line, p.location.column) for p in info.value.problems] == [
        ("the file is UTF-16; save it as UTF-8", 1, 1)]  # fmt: skip


@pytest.mark.parametrize(("codec", "head", "wide"), [
    ("utf-16-le", "# 大山の絵\n", "UTF-16"), ("utf-16-be", "# 一中上下\n", "UTF-16"),
    ("utf-32-le", "一丁\n", "UTF-32"),
])  # fmt: skip
def test_a_wide_file_without_its_mark_that_is_valid_utf8_is_named(tmp_path, codec, head, wide):
    """CJK whose every byte is below 0x80 (大 is 0x59 0x27) makes the whole file valid UTF-8
    holding NULs: it was read and refused as "character U+0000 is not allowed", the wide
    encodings looked for only in bytes that are not UTF-8."""
    text = head + "version: 1\nnodes:\n  p: {type: TextEncode, text: 山}\n"
    data = text.encode(codec)
    data.decode("utf-8")  # the case: UTF-8 too
    path = tmp_path / "w.yaml"
    path.write_bytes(data)
    for given in (None, data):
        with pytest.raises(WorkflowError) as info:
            read_source(path, given)
        assert [(p.message, p.location.line, p.location.column) for p in info.value.problems] == [
            (f"the file is {wide}; save it as UTF-8", 1, 1)]  # fmt: skip


@pytest.mark.parametrize("data", [
    b"version: 1\n\x00", b"version: 1\nnodes: {}  # \xe9\n\x00", b"\x00\x00\x00\x00",
])  # fmt: skip
def test_a_file_with_a_stray_nul_is_not_named_utf16(data):
    """A NUL in a file that is no UTF-16 is left to the parser (which names the character and
    its place) or to the UTF-8 check: read as UTF-16 the bytes are next to no ASCII, read as
    UTF-32 no text at all."""
    try:
        assert read_source("w.yaml", data) == data.decode()
    except WorkflowError as error:
        assert [p.message for p in error.problems] == [
            "the file is not UTF-8 text (byte 0xe9 at offset 24)"]  # fmt: skip
