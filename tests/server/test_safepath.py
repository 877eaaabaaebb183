"""The path rules on their own: what is refused, with which error type and message."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from latentgraph.server.errors import ApiError
from latentgraph.server.safepath import clean_relative, safe_filename, safe_join


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
    assert error.message == f"image file name {value!r} must be a plain file name"


@pytest.mark.parametrize(
    "value, expected", [(" pic.png ", "pic.png"), ("..a", "..a"), ("a.b", "a.b")]
)
def test_safe_filename_keeps_plain_names(value, expected):
    assert safe_filename(value) == expected


def test_messages_name_a_path_or_a_filename_by_default(tmp_path):
    assert refusal(safe_join, tmp_path, "../x").message.startswith("path '../x' ")
    assert refusal(safe_filename, "a/b").message.startswith("filename 'a/b' ")
