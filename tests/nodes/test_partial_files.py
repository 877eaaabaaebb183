"""The partial files a save killed while it wrote leaves (`kill -9`, a power cut: no `finally`
runs), `.saving-<16 hex>.png` beside its final name: the next save into that folder removes
them once stale (`graph.files.remove_stale_partials`), a live writer's younger one stays."""

from __future__ import annotations

import logging
import os
import time

import torch

from latentgraph.graph.files import STALE_PARTIAL_SECONDS
from latentgraph.nodes import images

KILLED = ".saving-0123456789abcdef.png"  # as `create_temp` names one
LIVE = ".saving-fedcba9876543210.png"


def aged(path, seconds: float) -> None:
    path.write_bytes(b"\x89PNG half an image")
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_save_removes_the_stale_partial_files_a_killed_save_left_in_its_folder(
    make_ctx, tmp_path, caplog
):
    ctx = make_ctx("SaveImage")
    out = tmp_path / "output"
    for folder in (out, out / "sub"):
        folder.mkdir(parents=True, exist_ok=True)
        aged(folder / KILLED, STALE_PARTIAL_SECONDS + 60)
        aged(folder / LIVE, STALE_PARTIAL_SECONDS - 60)  # a writer at work: kept
        aged(folder / ".saving-notours.png", 10 * STALE_PARTIAL_SECONDS)  # not a name we make
    image = torch.rand(1, 8, 8, 3, generator=torch.Generator().manual_seed(0))
    with caplog.at_level(logging.WARNING, logger="latentgraph.files"):
        images.save_image(ctx, image, "sub/t")
    assert {p.name for p in (out / "sub").iterdir()} == {
        ".saving-notours.png",
        LIVE,
        "t_00001_.png",
    }
    assert KILLED in {p.name for p in out.iterdir()}  # no save there yet
    assert [r.getMessage() for r in caplog.records] == [
        f"removed 1 partial file(s) a killed save or upload left in {out / 'sub'}: {KILLED}"]  # fmt: skip
    images.save_image(ctx, image, "t")
    assert {p.name for p in out.iterdir()} == {".saving-notours.png", LIVE, "sub", "t_00001_.png"}
