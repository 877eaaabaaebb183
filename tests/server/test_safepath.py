"""The path rules on their own: what is refused, with which error type and message."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from latentgraph.graph.problems import quoted
from latentgraph.server.errors import ApiError
from latentgraph.server.safepath import clean_relative, folded_relative, safe_filename, safe_join


def refusal(fn, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as caught:
        fn(*args, **kw)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    "value, says",
    [("a\x00b", "NUL byte"), ("/etc/passwd", "relative path"), ("C:x", "relative path"),
     ("c:/x", "relative path"), ("..", "relative path"), ("a/../b", "relative path"),
     ("..\\x", "relative path")],
)  # fmt: skip
def test_clean_relative_refuses(value, says):
    error = refusal(clean_relative, value, "subfolder")
    assert error.type == "invalid_path"
    assert error.message.startswith("subfolder ") and says in error.message


@pytest.mark.parametrize(
    "value, expected",
    [("a/b", "a/b"), ("", "."), (None, "."), ("a\\b", "a/b"), ("ab:c", "ab:c"), ("..a/b..", "..a/b..")],
)  # fmt: skip
def test_clean_relative_keeps_ordinary_names(value, expected):
    assert clean_relative(value, "subfolder") == PurePosixPath(expected)


def test_safe_join_names_what_was_refused(tmp_path):
    assert safe_join(tmp_path, "a", "b.png") == tmp_path.resolve() / "a" / "b.png"
    assert safe_join(tmp_path, "") == tmp_path.resolve()
    error = refusal(safe_join, tmp_path, "x/../../y", what="image file name")
    assert error.type == "invalid_path" and error.message.startswith("image file name ")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "out").symlink_to(tmp_path)
    error = refusal(safe_join, tmp_path / "base", "out", "f.png", what="filename")
    assert (error.type, error.message) == ("invalid_path", "filename leaves its folder")


@pytest.mark.parametrize("value", ["", "  ", None, "a/b", "a\\b", "a\x00b", ".", ".."])
def test_safe_filename_refuses(value):
    error = refusal(safe_filename, value, "image file name")
    assert error.type == "invalid_filename"
    shown = quoted(value) if isinstance(value, str) else repr(value)  # as the client sent it
    assert error.message == f"image file name {shown} must be a plain file name"


@pytest.mark.parametrize(
    "value, expected", [(" pic.png ", "pic.png"), ("..a", "..a"), ("a.b", "a.b")]
)
def test_safe_filename_keeps_plain_names(value, expected):
    assert safe_filename(value) == expected


def test_messages_name_a_path_or_a_filename_by_default(tmp_path):
    assert refusal(safe_join, tmp_path, "../x").message.startswith("path '../x' ")
    assert refusal(safe_filename, "a/b").message.startswith("filename 'a/b' ")


def test_names_longer_than_the_filesystem_takes_are_refused(tmp_path):
    from latentgraph.server.safepath import MAX_NAME_BYTES

    assert clean_relative("a/" + "x" * MAX_NAME_BYTES, "subfolder").name == "x" * MAX_NAME_BYTES
    error = refusal(clean_relative, "a/" + "x" * (MAX_NAME_BYTES + 1), "subfolder")
    assert error.type == "name_too_long"
    assert error.message == (f"subfolder {'a/' + 'x' * 58 + '...'!r}: a name is 256 bytes long; "
                             "at most 255 are allowed")  # fmt: skip
    assert refusal(clean_relative, "é" * 128, "subfolder").type == "name_too_long"  # 256 bytes
    assert refusal(safe_filename, "x" * 256, "image file name").message.startswith(
        "image file name 'xxx")  # fmt: skip
    assert safe_filename("x" * 255) == "x" * 255


def test_paths_deeper_or_longer_than_allowed_are_refused():
    from latentgraph.server.safepath import MAX_DEPTH, MAX_PATH_BYTES

    assert len(clean_relative("a/" * MAX_DEPTH, "subfolder").parts) == MAX_DEPTH
    deep = refusal(clean_relative, "a/" * (MAX_DEPTH + 1), "subfolder")
    assert deep.type == "invalid_path" and f"has 33 levels; at most {MAX_DEPTH}" in deep.message
    long = refusal(clean_relative, "a/" * 2000, "subfolder")
    assert long.type == "name_too_long"
    assert long.message.endswith(f"is 4000 bytes long; at most {MAX_PATH_BYTES} are allowed")
    assert len(long.message) < 200


def test_a_file_on_the_way_is_named_as_not_a_folder(tmp_path):
    from latentgraph.server.safepath import safe_folder

    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "test.json").write_text("{}")
    error = refusal(safe_join, tmp_path, "workflows/test.json/x.json", what="userdata path")
    assert (error.type, error.message) == ("not_a_folder", "userdata path "
        "'workflows/test.json/x.json': 'workflows/test.json' is a file, not a folder")  # fmt: skip
    assert safe_join(tmp_path, "workflows/test.json") == tmp_path.resolve() / "workflows/test.json"
    error = refusal(safe_folder, tmp_path, "workflows/test.json")
    assert error.message == "subfolder 'workflows/test.json' is a file, not a folder"
    assert safe_folder(tmp_path, "workflows/new") == tmp_path.resolve() / "workflows/new"
    assert str(tmp_path) not in error.message


@pytest.mark.parametrize(
    "name, n, expected",
    [("up.png", 1, "up (1).png"), ("up", 12, "up (12)"), ("x" * 251 + ".png", 1, "x" * 247 + " (1).png"),
     ("é" * 125 + ".png", 3, "é" * 123 + " (3).png"), ("a." + "e" * 252, 1, "a." + "e" * 249 + " (1)")],
)  # fmt: skip
def test_numbered_name_stays_within_the_limit(name, n, expected):
    from latentgraph.server.safepath import MAX_NAME_BYTES, numbered_name

    assert numbered_name(name, n) == expected
    assert len(expected.encode()) <= MAX_NAME_BYTES


def test_a_refused_name_is_quoted_as_the_client_sent_it():
    """A backslash stays one (repr doubled it: a value nobody sent); what cannot be printed
    is escaped."""
    assert refusal(safe_filename, "a\\b.png").message == (
        "filename 'a\\b.png' must be a plain file name"
    )
    assert "'a\\u0000b'" in refusal(safe_filename, "a\x00b").message  # by its code point


@pytest.mark.parametrize(
    "value, expected",
    [("workflows/sub/../x.json", "workflows/x.json"), ("a/./b//c", "a/b/c"), ("a/..", "."),
     ("a\\b.json", "a\\b.json"), ("", "."), ("..a/b..", "..a/b..")],
)  # fmt: skip
def test_folded_relative_folds_dots_inside_and_keeps_a_backslash(value, expected):
    assert folded_relative(value, "userdata path") == PurePosixPath(expected)


@pytest.mark.parametrize("value", ["..", "a/../../b", "/etc/x", "C:x", "a\x00b", "../a/b"])
def test_folded_relative_refuses_what_leaves_its_folder(value):
    assert refusal(folded_relative, value, "userdata path").type == "invalid_path"
