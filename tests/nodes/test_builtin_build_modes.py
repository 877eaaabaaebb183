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
