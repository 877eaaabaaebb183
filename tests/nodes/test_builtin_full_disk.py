"""The built-in tiny models are built into the cache folder on first use: when that disk is
full, the build fails as any file latentgraph writes does (`graph.files.FileWriteError`),
naming the model's folder and saying why in words, and leaves nothing behind."""

from __future__ import annotations

import errno

import pytest

from latentgraph.graph.files import FileWriteError
from latentgraph.nodes import tiny_model

from ..full_disk import fill

FULL = "the disk is full (No space left on device)"


def test_a_full_cache_disk_names_the_models_folder_and_leaves_nothing(tmp_path, monkeypatch):
    dest = tmp_path / "cache" / "models" / "tiny-sd-v2"
    fill(monkeypatch, tmp_path)
    with pytest.raises(FileWriteError) as raised:
        tiny_model.ensure_tiny_sd(dest)
    assert str(raised.value) == f"cannot write {dest}: {FULL}"
    assert raised.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no temp folder, no cache/models/ made for it


def test_a_full_disk_under_the_safetensors_writer_is_worded_too(tmp_path, monkeypatch):
    """The weights are written by safetensors (Rust): a full disk is its `SafetensorError`
    "... (os error 28)", not an OSError; the build says it as the disk being full."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")  # fmt: skip

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    dest = tmp_path / "models" / "tiny-sd-v2"
    with pytest.raises(FileWriteError) as raised:
        tiny_model.ensure_tiny_sd(dest)
    assert str(raised.value) == f"cannot write {dest}: {FULL}"
    assert list(tmp_path.iterdir()) == []


def test_a_build_that_fails_for_another_reason_is_not_called_a_write_failure(tmp_path):
    def broken(folder):
        raise ValueError("a bug in the recipe")

    with pytest.raises(ValueError, match="a bug in the recipe"):
        tiny_model.build_folder(tmp_path / "models" / "x", broken)
    assert list(tmp_path.iterdir()) == []
