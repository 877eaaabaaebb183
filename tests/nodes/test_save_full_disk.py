"""SaveImage on a disk that fills, a read-only output folder, an output folder that became a
file: the error names the file the user would have got and says why in words, and a batch
that fails part way leaves none of its files (a re-run saves it whole, not twice)."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from latentgraph.graph import files
from latentgraph.graph.files import FileWriteError
from latentgraph.nodes import images

from ..full_disk import fill


def batch(n: int) -> torch.Tensor:
    return torch.rand(n, 16, 16, 3, generator=torch.Generator().manual_seed(0))


def png_size(ctx) -> int:
    """The bytes one of `batch`'s PNGs takes, saved in a scratch folder."""
    probe = ctx.settings.output_dir.parent / "probe"
    images.save_images(ctx, batch(1), "t", probe, "output")
    return (probe / "t_00001_.png").stat().st_size


def test_a_disk_full_after_two_of_four_leaves_none_of_the_batch(make_ctx, tmp_path, monkeypatch):
    """The first two were kept ("saved 2 of 4: ..."), and the re-run once there was room saved
    all four again under new numbers: the folder held the first two twice. A batch is saved
    whole or not at all; files of an earlier batch, and folders that were there, stay."""
    ctx = make_ctx("SaveImage")
    out = tmp_path / "output"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "t_00001_.png").write_bytes(b"an earlier run's")
    room = 2 * png_size(ctx) + 10
    for prefix, third in (("t", 3), ("sub/t", 4), ("new/deeper/t", 3)):
        with monkeypatch.context() as patched:
            fill(patched, out, room)
            with pytest.raises(FileWriteError) as raised:
                images.save_image(ctx, batch(4), prefix)
        assert str(raised.value) == (
            f"cannot write {out / prefix}_0000{third}_.png: the disk is full "
            "(No space left on device)")  # fmt: skip
        assert raised.value.errno == errno.ENOSPC
        assert sorted(p.name for p in out.iterdir()) == ["sub"]
        assert [p.name for p in (out / "sub").iterdir()] == ["t_00001_.png"]

    records = images.save_image(ctx, batch(4), "t").ui["images"]
    assert [r["filename"] for r in records] == [f"t_0000{i}_.png" for i in range(1, 5)]
    assert sorted(p.name for p in out.iterdir()) == ["sub", *(r["filename"] for r in records)]


def test_a_full_disk_at_the_first_file_names_it(make_ctx, tmp_path, monkeypatch):
    ctx = make_ctx("SaveImage")
    out = tmp_path / "output"
    out.mkdir()
    (out / "t_00001_.png").write_bytes(b"an earlier run's")
    fill(monkeypatch, out)
    with pytest.raises(FileWriteError) as raised:
        images.save_image(ctx, batch(1), "t")
    assert str(raised.value) == (f"cannot write {out / 't_00002_.png'}: the disk is full "
                                 "(No space left on device)")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["t_00001_.png"]


def test_a_read_only_output_folder_names_the_final_file_not_the_temp_one(make_ctx, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    ctx = make_ctx("SaveImage")
    out = tmp_path / "output"

    def read_only(path, *args):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(files.os, "open", read_only)
    with pytest.raises(FileWriteError) as raised:
        images.save_image(ctx, batch(1), "t")
    assert str(raised.value) == (f"cannot write {out / 't_00001_.png'}: the folder is on a "
                                 "read-only file system (Read-only file system)")  # fmt: skip


def test_a_full_disk_leaves_no_subfolder_the_prefix_made(make_ctx, tmp_path, monkeypatch):
    ctx = make_ctx("SaveImage")
    out = tmp_path / "output"
    out.mkdir()
    fill(monkeypatch, out)
    with pytest.raises(FileWriteError, match="the disk is full"):
        images.save_image(ctx, batch(1), "portraits/fox/t")
    assert list(out.iterdir()) == []


def test_an_output_folder_that_became_a_file_is_named_as_one(make_ctx, tmp_path):
    ctx = make_ctx("SaveImage", output_dir=tmp_path / "o2")
    (tmp_path / "o2").write_text("not a folder")
    with pytest.raises(FileWriteError) as raised:
        images.save_image(ctx, batch(1), "t")
    assert str(raised.value) == (f"cannot write {tmp_path / 'o2' / 't_00001_.png'}: the output "
                                 f"folder ({tmp_path / 'o2'}) is a file, not a folder")  # fmt: skip
    with pytest.raises(FileWriteError) as raised:
        images.save_image(ctx, batch(1), "sub/t")
    assert f"the output folder ({tmp_path / 'o2'}) is a file" in str(raised.value)


def test_an_output_folder_named_output_reads_plainly_when_it_is_a_file(make_ctx, tmp_path):
    """The folder's path is in brackets after its label: "the output folder .../output is a
    file" read as if the label ran on into the name."""
    ctx = make_ctx("SaveImage", output_dir=tmp_path / "output")
    (tmp_path / "output").write_text("not a folder")
    with pytest.raises(FileWriteError) as raised:
        images.save_image(ctx, batch(1), "t")
    assert str(raised.value).endswith(
        f": the output folder ({tmp_path / 'output'}) is a file, not a folder"
    )
