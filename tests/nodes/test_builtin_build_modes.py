"""The built-in models' folders (`tiny_model.build_folder`: tiny-sd, its inpainting, SD2 and
SDXL variants, the shipped configs) are built in the cache with the user's umask, as everything
else there: not a 0700 temp folder renamed into place, nor safetensors' 0600 weights, which
other users sharing the cache folder could not read."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from latentgraph.nodes import tiny_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask, folder, file", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_a_built_model_folder_follows_the_umask(tmp_path, mask, folder, file):
    def write(into):
        (into / "unet").mkdir()
        weights = os.open(into / "unet" / "model.safetensors", os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(weights)  # as safetensors makes its files, whatever the umask
        (into / "model_index.json").write_text("{}")

    old = os.umask(mask)
    try:
        dest = tiny_model.build_folder(tmp_path / "models" / "tiny-sd-v2", write)
    finally:
        os.umask(old)
    assert mode(dest) == folder and mode(dest / "unet") == folder
    assert mode(dest / "unet" / "model.safetensors") == file
    assert mode(dest / "model_index.json") == file
    assert [p.name for p in dest.parent.iterdir()] == ["tiny-sd-v2"]  # no temp folder left


def old_build(dest, folder_mode: int = 0o700) -> None:
    """A folder as latentgraph built it before its builds followed the umask: a 0700 temp
    folder renamed into place, safetensors' 0600 weights, 0600 files beside them."""
    (dest / "unet").mkdir(parents=True)
    (dest / "unet" / "model.safetensors").write_bytes(b"w")
    (dest / "model_index.json").write_text("{}")
    for path in (dest / "unet" / "model.safetensors", dest / "model_index.json"):
        path.chmod(0o600)
    (dest / "unet").chmod(0o700)
    dest.chmod(folder_mode)


def reuse(dest, mask: int):
    def write(into):
        raise AssertionError("a built folder is reused, not built again")

    old = os.umask(mask)
    try:
        return tiny_model.build_folder(dest, write)
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask, folder, file", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_a_folder_an_earlier_version_built_0700_is_widened_to_the_umask(tmp_path, mask, folder,
                                                                        file):  # fmt: skip
    dest = tmp_path / "tiny-sd-v2"
    old_build(dest)
    assert reuse(dest, mask) == dest
    assert mode(dest) == folder and mode(dest / "unet") == folder
    assert mode(dest / "unet" / "model.safetensors") == file
    assert mode(dest / "model_index.json") == file


def test_a_reused_folder_is_never_narrowed_nor_changed_when_the_umask_gives_no_more(tmp_path):
    dest = tmp_path / "tiny-sd-v2"
    old_build(dest)
    reuse(dest, 0o077)  # the umask gives 0700 itself: nothing to widen
    assert mode(dest) == 0o700 and mode(dest / "model_index.json") == 0o600
    wide = tmp_path / "wide"
    old_build(wide, folder_mode=0o777)  # not narrower than the umask's: left as it is
    reuse(wide, 0o022)
    assert mode(wide) == 0o777 and mode(wide / "model_index.json") == 0o600


def test_another_users_folder_is_left_as_it_is(tmp_path, monkeypatch):
    dest = tmp_path / "tiny-sd-v2"
    old_build(dest)
    someone_else = dest.stat().st_uid + 1
    monkeypatch.setattr(os, "getuid", lambda: someone_else)
    reuse(dest, 0o022)
    assert mode(dest) == 0o700 and mode(dest / "model_index.json") == 0o600
