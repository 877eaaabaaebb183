"""graph/files.py (atomic writes with the user's permissions) and graph/paths.py (where
latentgraph keeps its files)."""

import errno
import os
import stat
import sys
from pathlib import Path

import pytest

from latentgraph.graph import files, paths
from latentgraph.graph.files import create_temp, write_atomic

from ..full_disk import fill

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture
def umask():
    """Set the process umask for one test, restored after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- create_temp --------------------------------------------------------------------------


def test_a_temp_file_is_new_empty_and_named_with_its_prefix_and_suffix(tmp_path):
    fd, path = create_temp(tmp_path, prefix="pre-", suffix=".part")
    try:
        assert path.parent == tmp_path and path.exists() and path.stat().st_size == 0
        assert path.name.startswith("pre-") and path.name.endswith(".part")
        middle = path.name.removeprefix("pre-").removesuffix(".part")
        assert len(middle) == 16 and int(middle, 16) >= 0  # 8 random bytes in hex
        os.write(fd, b"abc")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"abc"


def test_temp_files_default_to_a_hidden_tmp_name(tmp_path):
    fd, path = create_temp(tmp_path)
    os.close(fd)
    assert path.name.startswith(".tmp-") and path.name.endswith(".tmp")


def test_a_temp_file_is_open_for_writing_only(tmp_path):
    fd, _ = create_temp(tmp_path)
    try:
        with pytest.raises(OSError):
            os.read(fd, 1)
    finally:
        os.close(fd)


def test_a_name_already_taken_is_never_reused(tmp_path, monkeypatch):
    names = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(names))
    fd, first = create_temp(tmp_path)
    os.write(fd, b"first")
    os.close(fd)
    fd, second = create_temp(tmp_path)  # "aaaa" exists: the next name is drawn
    os.close(fd)
    assert (first.name, second.name) == (".tmp-aaaa.tmp", ".tmp-bbbb.tmp")
    assert first.read_bytes() == b"first"  # not truncated by the second call


@posix_only
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_temp_file_gets_the_permissions_open_would_give(tmp_path, umask, mask, expected):
    umask(mask)
    fd, path = create_temp(tmp_path)
    os.close(fd)
    assert mode(path) == expected


# --- write_atomic -------------------------------------------------------------------------


def test_text_is_written_as_utf8_and_bytes_as_they_are(tmp_path):
    write_atomic(tmp_path / "a.txt", "café ∑\n")
    assert (tmp_path / "a.txt").read_bytes() == "café ∑\n".encode()
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"


def test_missing_folders_are_created_and_a_text_path_accepted(tmp_path):
    target = tmp_path / "x" / "y" / "out.json"
    write_atomic(str(target), "{}")
    assert target.read_text() == "{}"
    assert leftovers(target.parent) == []


def test_an_existing_file_is_replaced_whole(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("a much longer old content")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


def test_the_data_is_complete_in_the_folder_before_it_takes_the_name(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        src = Path(src)
        seen.append((src.parent, src.name, src.read_text(), Path(dst).read_text()))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    write_atomic(target, "new content")
    [(folder, name, temp_text, old_text)] = seen
    assert folder == tmp_path and name.startswith(".out.txt.")
    assert (temp_text, old_text) == ("new content", "old")
    assert target.read_text() == "new content"


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch, error):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(src, dst):
        raise error

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(type(error)):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_the_first_error_is_raised_even_when_the_temp_file_is_gone(tmp_path, monkeypatch):
    def vanish_then_fail(src, dst):
        Path(src).unlink()  # e.g. a cleaner removed it
        raise OSError("the real error")

    monkeypatch.setattr(files.os, "replace", vanish_then_fail)
    with pytest.raises(OSError, match="the real error"):
        write_atomic(tmp_path / "out.txt", "new")
    assert list(tmp_path.iterdir()) == []


def test_data_that_cannot_be_written_leaves_no_temp(tmp_path):
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "out.txt", 123)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@posix_only
def test_a_written_file_gets_the_users_umask(tmp_path, umask):
    umask(0o027)
    write_atomic(tmp_path / "out.txt", "x")
    assert mode(tmp_path / "out.txt") == 0o640


# --- paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("function, variable", [(paths.cache_dir, "LATENTGRAPH_CACHE_DIR"),
                                                (paths.data_dir, "LATENTGRAPH_DATA_DIR")])  # fmt: skip
def test_the_environment_variable_names_the_folder(tmp_path, monkeypatch, function, variable):
    monkeypatch.setenv(variable, str(tmp_path / "here"))
    assert function() == tmp_path / "here"


@pytest.mark.parametrize("function, variable", [(paths.cache_dir, "LATENTGRAPH_CACHE_DIR"),
                                                (paths.data_dir, "LATENTGRAPH_DATA_DIR")])  # fmt: skip
def test_a_tilde_in_the_variable_is_the_home_folder(tmp_path, monkeypatch, function, variable):
    """systemd's `Environment=` and `docker -e` pass `~/lg` as typed: it made a folder named
    `~` in the working folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(variable, "~/lg")
    assert function() == tmp_path / "lg"


@pytest.mark.parametrize("function, variable", [(paths.cache_dir, "LATENTGRAPH_CACHE_DIR"),
                                                (paths.data_dir, "LATENTGRAPH_DATA_DIR"),
                                                (paths.env_models_roots, paths.MODELS_DIRS_ENV)])  # fmt: skip
def test_a_tilde_user_of_no_user_is_a_value_error_naming_the_variable(monkeypatch, function,
                                                                      variable):  # fmt: skip
    """It was Path.expanduser's bare `RuntimeError: Could not determine home directory`, which
    the CLI called a bug and `latentgraph.run` raised as is."""
    monkeypatch.setenv(variable, "~lg-no-such-user/x")
    with pytest.raises(ValueError, match=rf"^\${variable} '~lg-no-such-user/x': no user "):
        function()


def test_a_tilde_user_of_no_user_in_a_node_input_is_a_value_error_quoting_the_value_alone():
    """A model or config path typed in a node input (variable None): the node error around
    it names the node and input, so the message quotes the value alone, and no variable."""
    with pytest.raises(ValueError) as raised:
        paths.user_path("~lg-no-such-user/x.safetensors", None)
    assert str(raised.value) == ("'~lg-no-such-user/x.safetensors': no user 'lg-no-such-user' on "
                                 "this machine (for ~lg-no-such-user); give the full path")  # fmt: skip


def test_the_models_variable_expands_a_tilde_and_skips_blank_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(paths.MODELS_DIRS_ENV, os.pathsep.join(["~/a", " ", "/b"]))
    assert paths.env_models_roots() == [tmp_path / "a", Path("/b")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG folders")
@pytest.mark.parametrize("function, variable, xdg", [
    (paths.cache_dir, "LATENTGRAPH_CACHE_DIR", "XDG_CACHE_HOME"),
    (paths.data_dir, "LATENTGRAPH_DATA_DIR", "XDG_DATA_HOME"),
])  # fmt: skip
@pytest.mark.parametrize("unset", ["absent", "empty", "blank"])
def test_without_it_the_users_folder_for_the_platform(tmp_path, monkeypatch, function, variable,
                                                      xdg, unset):  # fmt: skip
    if unset == "absent":
        monkeypatch.delenv(variable, raising=False)
    else:  # blank: " " named a folder " " in the working folder
        monkeypatch.setenv(variable, "" if unset == "empty" else " ")
    monkeypatch.setenv(xdg, str(tmp_path / "xdg"))
    assert function() == tmp_path / "xdg" / "latentgraph"


@posix_only
def test_a_writer_that_puts_its_own_0600_file_in_place_still_gives_open_s_mode(tmp_path, umask):
    """safetensors' save_file renames its own 0600 temp file over the path it is given."""

    def save(tmp: Path) -> None:
        fd = os.open(tmp.with_suffix(".own"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"weights")
        os.close(fd)
        os.replace(tmp.with_suffix(".own"), tmp)

    umask(0o027)
    target = files.write_file(tmp_path / "model.safetensors", save)
    assert target.read_bytes() == b"weights" and mode(target) == 0o640
    assert leftovers(tmp_path) == []


# --- a write that fails: the file it was for, and why in words ------------------------------


def test_a_full_disk_names_the_file_and_says_so_in_words(tmp_path, monkeypatch):
    """The disk fills while the data is written (the temp file was made): the error names the
    file the user would have got, not the temp file, and keeps the OS's errno."""
    fill(monkeypatch, tmp_path)
    with pytest.raises(files.FileWriteError) as raised:
        write_atomic(tmp_path / "out.txt", "data")
    assert str(raised.value) == (f"cannot write {tmp_path / 'out.txt'}: the disk is full "
                                 "(No space left on device)")  # fmt: skip
    assert raised.value.errno == errno.ENOSPC and raised.value.strerror == os.strerror(errno.ENOSPC)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("code", "words"), [
    (errno.EROFS, "the folder is on a read-only file system (Read-only file system)"),
    (errno.EACCES, "no permission to write in the folder (Permission denied)"),
    (errno.ENAMETOOLONG, "a name in the path is longer than the 255 bytes a file system allows "
                         "(File name too long)"),
    (errno.EIO, "Input/output error"),
])  # fmt: skip
def test_a_temp_file_that_cannot_be_made_is_not_what_the_error_names(tmp_path, monkeypatch,
                                                                     code, words):  # fmt: skip
    def refuse(path, *args):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(files.os, "open", refuse)
    with pytest.raises(files.FileWriteError) as raised:
        write_atomic(tmp_path / "out.txt", "data")
    assert str(raised.value) == f"cannot write {tmp_path / 'out.txt'}: {words}"
    assert ".out.txt." not in str(raised.value) and raised.value.errno == code


def test_a_failed_write_removes_the_folders_it_made(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    fill(monkeypatch, tmp_path)
    with pytest.raises(files.FileWriteError, match="the disk is full"):
        write_atomic(tmp_path / "a" / "b" / "c" / "out.txt", "data")
    assert [p.name for p in tmp_path.rglob("*")] == ["a"]  # the folder that was there stays


def test_a_file_in_place_of_a_folder_is_named_as_one(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(files.FileWriteError) as raised:
        files.write_new(tmp_path / "out" / "sub", lambda tmp: None, lambda tmp: tmp,
                        target=lambda: tmp_path / "out" / "sub" / "x.png",
                        names={tmp_path / "out": "the output folder"})  # fmt: skip
    assert str(raised.value) == (f"cannot write {tmp_path / 'out' / 'sub' / 'x.png'}: the "
                                 f"output folder ({tmp_path / 'out'}) is a file, not a folder")  # fmt: skip
    assert (tmp_path / "out").read_text() == "a file"


def test_a_folder_another_writer_makes_meanwhile_is_no_file_in_the_way(tmp_path, monkeypatch):
    """Ten uploads into one new subfolder at once: a writer that found it missing, and then
    found something there (another writer's mkdir), said "is a file, not a folder"."""
    real_lexists = os.path.lexists

    def made_meanwhile(path):
        Path(path).mkdir(exist_ok=True)  # the other writer, between is_dir() and this look
        return real_lexists(path)

    monkeypatch.setattr(files.os.path, "lexists", made_meanwhile)
    write_atomic(tmp_path / "new" / "out.txt", "data")
    assert (tmp_path / "new" / "out.txt").read_text() == "data"


def test_a_batch_says_what_it_saved_before_the_failure(tmp_path):
    failed = files.FileWriteError(tmp_path / "t_00003_.png", "the disk is full (No space)")
    said = failed.after_saving(["t_00001_.png", "t_00002_.png"], 4)
    assert str(said) == (f"saved 2 of 4: t_00001_.png, t_00002_.png; cannot write "
                         f"{tmp_path / 't_00003_.png'}: the disk is full (No space)")  # fmt: skip


def test_a_rust_writers_os_error_is_worded_as_the_os_error_it_carries(tmp_path):
    """safetensors' `save_file` (Rust) says a full disk only in its text ("... (os error 28)"),
    as a `SafetensorError`: it is the same failure as an `OSError(ENOSPC)`, worded so."""
    from safetensors import SafetensorError

    def save(tmp: Path) -> None:
        tmp.write_bytes(b"half a checkpoint")
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")  # fmt: skip

    with pytest.raises(files.FileWriteError) as raised:
        files.write_file(tmp_path / "m.safetensors", save)
    assert str(raised.value) == (f"cannot write {tmp_path / 'm.safetensors'}: the disk is full "
                                 "(No space left on device)")  # fmt: skip
    assert raised.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_writers_error_that_carries_no_os_error_is_not_taken_for_one(tmp_path):
    def save(tmp: Path) -> None:
        raise ValueError("tensor 'a' is not contiguous")

    with pytest.raises(ValueError, match="not contiguous"):
        files.write_file(tmp_path / "m.safetensors", save)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", [
    "\U0001f468\u200d\U0001f469\u200d\U0001f467.png",  # an emoji family
    "\U0001f3f3\ufe0f\u200d\U0001f308.png",  # a flag after its variation selector
    "\U0001f469\U0001f3fd\u200d\U0001f4bb.png",  # after a skin tone
    "夕焼け/猫.png", "café.png", "cafe\u0301.png",  # CJK, NFC and NFD
    "می\u200cخواهم.png",  # Persian: a non-joiner between two letters
    "क्\u200dष.png",  # Devanagari: a joiner after a virama
    "a\u00a0b.png", "猫\u3000犬.png",  # spaces that show as spaces
])  # fmt: skip
def test_a_name_keeps_what_shapes_its_script_or_emoji(name):
    assert paths.unseen_character(name) is None


@pytest.mark.parametrize(("name", "unseen"), [
    ("x\u200dy.png", "\u200d"), ("x\u200cy.png", "\u200c"),  # between ASCII letters
    ("z\u200d.png", "\u200d"), ("猫\u200d.png", "\u200d"),  # before the extension: 'z.png'
    ("\u200dfox.png", "\u200d"), ("猫\u200c", "\u200c"), ("ok/猫\u200d/x", "\u200d"),  # ends
    ("a\u200d猫.png", "\u200d"), ("cafe\u0301\u200dé.png", "\u200d"),  # next to ASCII
    ("猫\u200d\u200d犬.png", "\u200d"),  # a joiner joining a joiner
    ("ok/x\u200dz", "\u200d"),  # in a folder's name
    ("ls\u2028x.png", "\u2028"), ("ps\u2029x.png", "\u2029"),  # a line break in some viewers
])  # fmt: skip
def test_a_name_is_refused_for_a_joiner_that_joins_nothing_or_a_line_separator(name, unseen):
    """A zero-width (non-)joiner was accepted anywhere inside a name, `photo<ZWJ>.png` showing
    as `photo.png` in LoadImage's list, and U+2028/U+2029 (categories Zl, Zp) were accepted:
    a joiner now only joins two non-ASCII letters or symbols, and both separators are refused."""
    assert paths.unseen_character(name) == unseen
    assert f"U+{ord(unseen):04X}" in paths.unseen_problem(name)


@pytest.mark.parametrize("name", ["a" * 250 + ".json", "é" * 125 + ".json", "x" * 255])
def test_a_name_of_the_most_bytes_a_filesystem_takes_is_written(tmp_path, name):
    """The temp file beside it is named from the name's start: `.NAME.<16 hex>.tmp` whole
    was 22 bytes over the limit for a 234-255 byte name ("File name too long")."""
    write_atomic(tmp_path / name, b"{}")
    assert os.listdir(tmp_path) == [name]
    assert (tmp_path / name).read_bytes() == b"{}"


@pytest.mark.parametrize("name", ["model.safetensors", "a" * 250 + ".json", "é" * 127 + "x"])
def test_the_temp_file_write_file_fills_is_read_back_as_its_target(tmp_path, name):
    """The disk cache removes a killed write's temp file by `write_temp_target`: it must read
    the name `write_file` gives (the whole name, or its start when cut to fit), never None."""
    temps = []
    files.write_file(tmp_path / name, lambda tmp: temps.append(tmp.name) or tmp.write_bytes(b"x"))
    (temp,) = temps
    assert len(temp.encode()) <= files.MAX_NAME_BYTES
    target = files.write_temp_target(temp)
    assert target is not None and name.startswith(target)
    assert target == name or len(temp.encode()) > files.MAX_NAME_BYTES - 4  # cut only to fit
    assert files.write_temp_target(temp + ".bak") is None


@pytest.mark.parametrize("name", ["tiny-sd-v3", "a" * 250, "é" * 127 + "x"])
def test_the_folder_new_sibling_makes_is_read_back_as_its_target(tmp_path, name):
    """`cache clear` finds a killed folder build by `sibling_temp_target`: it must read the
    name `new_sibling` gives (the whole name, or its start when cut to fit), never None, and
    not take a `write_file` temp file for one."""
    temp = files.new_sibling(tmp_path / name).name
    assert len(temp.encode()) <= files.MAX_NAME_BYTES
    target = files.sibling_temp_target(temp)
    assert target is not None and name.startswith(target)
    assert target == name or len(temp.encode()) > files.MAX_NAME_BYTES - 4  # cut only to fit
    assert files.sibling_temp_target(temp + ".bak") is None
    assert files.write_temp_target(temp) is None
    written = []
    files.write_file(tmp_path / name, lambda tmp: written.append(tmp.name) or tmp.write_bytes(b""))
    assert files.sibling_temp_target(written[0]) is None


def test_a_folder_of_the_most_bytes_a_filesystem_takes_is_written(tmp_path):
    dest = tmp_path / ("d" * 255)
    files.write_folder(dest, lambda tmp: (tmp / "f").write_text("x"))
    files.write_folder(dest, lambda tmp: (tmp / "g").write_text("y"))  # over an earlier one
    assert os.listdir(tmp_path) == [dest.name] and os.listdir(dest) == ["g"]
