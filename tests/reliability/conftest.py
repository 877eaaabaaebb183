"""Shared fixtures: an isolated cache dir for the whole session and file-tree snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(cache_dir):
    """Keep the tiny model, configs and disk cache out of the user's cache dir (every test
    here, not only those that ask for the tiny model)."""
    return cache_dir


def snapshot(root: Path) -> dict[str, int]:
    """Every file under `root` (relative path -> size)."""
    return {p.relative_to(root).as_posix(): p.stat().st_size
            for p in root.rglob("*") if p.is_file()}  # fmt: skip


def new_files(before: dict[str, int], root: Path) -> list[str]:
    return sorted(set(snapshot(root)) - set(before))


PARTIAL_MARKS = (".tmp", ".saving-", ".upload-", ".tmp-", ".partial")


def partial(names: list[str]) -> list[str]:
    """Names that look like a write that never finished (temp files left behind)."""
    return [n for n in names if any(m in Path(n).name for m in PARTIAL_MARKS)]
