"""`latentgraph cache`: what the disk cache holds, and `cache clear` to empty it.

The folder is the one `run` writes (`graph.cache.disk_store_dir`): `--cache-dir DIR` (the
entries directly in DIR), else `outputs` in $LATENTGRAPH_CACHE_DIR or the user cache folder.
Clearing removes the cached outputs and the partial files of writes to them (a killed run's or
worker's, `DiskCache.clear`), and any other file in the folder stays; `cache` lists the partial
files there are (a run or server writing to the store removes those over an hour old). It
counts the files it removed, and those it could not (a read-only mount) are an error line
saying how many and why, exit 1, as a build it cannot remove is.

Beside them, in the cache folder's `models/` whatever `--cache-dir` says, are the built-in
models, built on first use (`nodes.builtin_builds`): both commands list them, each with its size
and whether this version uses it, and `clear` removes the ones an earlier version built, which
this one never reads (an upgrade that changed a recipe builds anew beside the old build), and
finishes removing one an interrupted `cache clear` left renamed aside (listed as such). This
version's builds stay (rebuilding them takes seconds, but a running server may be reading
them), and so do a newer version's and another user's. What a build killed part way left (its
temp folder or file, `PartialBuild`) is counted with the builds under way, and `clear` removes
the user's own last written over an hour ago: no build takes that long.

The limit shown is `--cache-disk-mb` when given, else the one the store was last written with
(`run` and `serve` record it: `DiskCache.recorded_limit`; a clear keeps the record), else the
default (10 GiB).

`--json` says the same as one JSON object on stdout, sizes in exact bytes (`info_json`,
`clear_json`), for scripts that check or trim the cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .arguments import at_least, check_cache_folders

if TYPE_CHECKING:
    from collections.abc import Callable

    from latentgraph.graph.cache import Held, StoreCleared
    from latentgraph.nodes.builtin_builds import Build, PartialBuild

T = TypeVar("T")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `cache` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("cache", help="show the disk cache's folder and size, or `cache clear`")
    p.add_argument("action", nargs="?", choices=["info", "clear"], default="info",
                   help="info (default): folder, entries, size and limit, and the built-in "
                   "models in the cache folder's models/; clear: remove the cached outputs "
                   "(with the temp files of writes to them a killed run left) and "
                   "the built-in models only an earlier version used (a recipe version, -vN, "
                   "below the one this version builds; this version's, a newer version's and "
                   "another user's are kept; an earlier latentgraph sharing the folder builds "
                   "its own again when it next needs it), what an interrupted clear left "
                   "of one, and what a build killed part way left (its temp folder or file, "
                   "last written over an hour ago)")  # fmt: skip
    p.add_argument("--cache-dir", type=Path,
                   help="the folder `run --cache-dir` was given (default: the user cache "
                   "folder's outputs/, or $LATENTGRAPH_CACHE_DIR/outputs)")  # fmt: skip
    p.add_argument("--cache-disk-mb", type=at_least(1), metavar="MB",
                   help="the limit to report, as given to `run`/`serve --cache-disk-mb` "
                   "(default: the one the store was last written with, else 10240)")  # fmt: skip
    p.add_argument("--json", action="store_true",
                   help="one JSON object on stdout, sizes in bytes: info's folder, entries, "
                   "bytes, partial files, limit, models and partial builds; clear's removed "
                   "and not removed entries, bytes and partial files, the models removed, "
                   "kept and not removed, and the partial builds removed and not removed")  # fmt: skip


def size_text(n: int) -> str:
    """Bytes as people read them: "0 B", "812 B", "3.4 MiB", "10 GiB"."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}".replace(".0 ", " ")
    raise AssertionError("unreachable")


def cmd_cache(args: argparse.Namespace) -> int:
    """Print the store's folder, entries, size and limit; with `clear`, empty it first.
    A cache folder (or `--cache-dir`) that is a file, or missing where it can never be made,
    is a usage error, as `run` refuses it (`check_cache_folders`), and so is a file where the
    store's outputs/ would be: "(not made yet)" would name a place that can never be made. A
    folder that is there is listed even when it cannot be written: listing only reads."""
    from latentgraph.graph.cache import DEFAULT_DISK_BYTES, DiskCache, disk_store_dir
    from latentgraph.graph.paths import built_models_dir
    from latentgraph.nodes.builtin_builds import found_builds, found_partial_builds

    from .exits import UserError
    from .preflight import folder_problem

    check_cache_folders(args.cache_dir, listing=True)
    folder = disk_store_dir(args.cache_dir)
    problem = None if args.cache_dir else folder_problem(folder, written=False)
    if problem:
        raise UserError(f"the disk cache's folder {folder}: {problem}")
    store = DiskCache(folder, DEFAULT_DISK_BYTES)
    limit, limit_from = _limit(store, args.cache_disk_mb)
    if args.action == "clear":
        emptied = store.clear()
        if emptied.why is not None:
            print(f"latentgraph: error: cannot remove {_held_text(emptied.left)} in {folder}: "
                  f"{emptied.why}", file=sys.stderr)  # fmt: skip
        cleared = _clear_builds()
        if args.json:
            print(json.dumps(clear_json(folder, emptied, cleared), indent=2))
        else:
            done = "cleared" if emptied.why is None else "could not clear"
            print(f"{done} {folder}: removed {_held_text(emptied.removed)}")
            _show_cleared(cleared)
        failed = cleared.failed or cleared.partials_failed or emptied.why is not None
        return 1 if failed else 0
    held = store.usage()
    builds, partials = found_builds(), found_partial_builds()
    if args.json:
        limits = (limit, limit_from)
        print(json.dumps(info_json(folder, held, limits, builds, partials), indent=2))
        return 0
    print(f"folder:  {folder}{'' if folder.is_dir() else ' (not made yet)'}")
    print(f"entries: {held.entries}")
    print(f"size:    {size_text(held.bytes)} of {_limit_text(limit, limit_from)}")
    if held.partials:
        print(f"partial: {held.partials} file(s), {size_text(held.partial_bytes)}: writes killed "
              "or under way (a run writing here removes those over an hour old; `cache clear` "
              "removes them all)")  # fmt: skip
    print(f"models:  {built_models_dir()} (the built-in models{'' if builds else ': none built'})")
    width = max((len(b.path.name) for b in builds), default=0)
    for build in builds:
        print(f"  {build.path.name:<{width}}  {size_text(build.size):>9}  {_build_text(build)}")
    if partials:
        print(f"partial: {len(partials)} build(s) in models/, "
              f"{size_text(sum(p.size for p in partials))}: killed part way or under way "
              "(`cache clear` removes those last written over an hour ago: "
              f"{sum(p.removable for p in partials)} now)")  # fmt: skip
    return 0


def info_json(folder: Path, held: Held, limit: tuple[int | None, str], builds: list[Build],
              partials: list[PartialBuild]) -> dict[str, Any]:  # fmt: skip
    """`cache --json`: the store's `folder` (`made`: whether it exists yet), its `entries`
    and their `bytes`, its `partial_files` (of writes killed or under way) and their
    `partial_bytes`, its `limit` (`bytes`, null for none; `from`: `--cache-disk-mb`,
    `last_written` or `default`), and the built-in models' folder with each build in it
    (`_build_json`) and each partial build (`_partial_json`)."""
    from latentgraph.graph.paths import built_models_dir

    return {"folder": str(folder), "made": folder.is_dir(), "entries": held.entries,
            "bytes": held.bytes, "partial_files": held.partials,
            "partial_bytes": held.partial_bytes,
            "limit": {"bytes": limit[0], "from": limit[1]},
            "models_folder": str(built_models_dir()),
            "models": [_build_json(b) for b in builds],
            "partial_builds": [_partial_json(p) for p in partials]}  # fmt: skip


def clear_json(folder: Path, emptied: StoreCleared, cleared: Cleared) -> dict[str, Any]:
    """`cache clear --json`: the store's `folder`, the `removed_entries` and their
    `removed_bytes`, the `removed_partial_files` and their `removed_partial_bytes` (what this
    clear removed), the same `not_removed_*` it could not remove and why (`not_removed_error`,
    null when none was left), the built-in models' builds `models_removed`, `models_kept`
    and `models_not_removed` (each with its `error`), as `_build_json` gives a build, and the
    partial builds `partial_builds_removed` and `partial_builds_not_removed` (`_partial_json`,
    with `error`)."""
    removed, left = emptied.removed, emptied.left
    return {"folder": str(folder), "removed_entries": removed.entries,
            "removed_bytes": removed.bytes, "removed_partial_files": removed.partials,
            "removed_partial_bytes": removed.partial_bytes,
            "not_removed_entries": left.entries, "not_removed_bytes": left.bytes,
            "not_removed_partial_files": left.partials,
            "not_removed_partial_bytes": left.partial_bytes,
            "not_removed_error": emptied.why,
            "models_removed": [_build_json(b) for b in cleared.removed],
            "models_kept": [_build_json(b) for b in cleared.kept],
            "models_not_removed": [{**_build_json(b), "error": why}
                                   for b, why in cleared.failed],
            "partial_builds_removed": [_partial_json(p) for p in cleared.partials_removed],
            "partial_builds_not_removed": [{**_partial_json(p), "error": why}
                                           for p, why in cleared.partials_failed]}  # fmt: skip


def _held_text(held: Held) -> str:
    """Cached outputs and partial files as `cache clear` names them: "7 cached output(s),
    222 KiB", then the partial files when there are any."""
    partials = (f", and {held.partials} partial file(s) of writes killed or under way, "
                f"{size_text(held.partial_bytes)}" if held.partials else "")  # fmt: skip
    return f"{held.entries} cached output(s), {size_text(held.bytes)}{partials}"


def _build_json(build: Build) -> dict[str, Any]:
    """A build as `--json` gives it: its `name`, `path`, `bytes` and `state` (`_STATES`'
    keys), and whether `cache clear` removes it (`clear_removes`)."""
    return {"name": build.name, "path": str(build.path), "bytes": build.size,
            "state": _state(build), "clear_removes": build.removable}  # fmt: skip


def _partial_json(partial: PartialBuild) -> dict[str, Any]:
    """A partial build as `--json` gives it: the build's `name` it was to take, its `path`,
    `bytes`, and whether `cache clear` removes it (`clear_removes`: the user's own, last written
    over an hour ago)."""
    return {"name": partial.name, "path": str(partial.path), "bytes": partial.size,
            "clear_removes": partial.removable}  # fmt: skip


# a build `remove_build` renamed aside and did not finish deleting (`Build.left_aside`)
_LEFT_ASIDE = "left by an interrupted `cache clear`"

# What a build is to this version (`_state`), and the words `cache` shows for it.
_STATES = {
    "left_aside": f"{_LEFT_ASIDE}: `cache clear` removes it",
    "left_aside_other_user": f"{_LEFT_ASIDE}, another user's: kept",
    "used": "used by this version",
    "newer": "a newer version's: kept",
    "earlier_other_user": "an earlier version's, another user's: kept",
    "earlier": "an earlier version's, not used by this one: `cache clear` removes it",
}


def _state(build: Build) -> str:
    """What a build is to this version: one of `_STATES`' keys."""
    if build.left_aside:
        return "left_aside" if build.own else "left_aside_other_user"
    if build.used:
        return "used"
    if not build.earlier:
        return "newer"
    return "earlier" if build.own else "earlier_other_user"


def _build_text(build: Build) -> str:
    """What a build is to this version, in the words `cache` shows."""
    return _STATES[_state(build)]


@dataclass
class Cleared:
    """What `_clear_builds` did with the builds: removed, kept (this version's, a newer one's,
    another user's) and failed to remove (with why, in words); and with the partial builds
    killed part way: removed and failed to remove."""

    removed: list[Build] = field(default_factory=list)
    kept: list[Build] = field(default_factory=list)
    failed: list[tuple[Build, str]] = field(default_factory=list)
    partials_removed: list[PartialBuild] = field(default_factory=list)
    partials_failed: list[tuple[PartialBuild, str]] = field(default_factory=list)


def _clear_builds() -> Cleared:
    """Remove the earlier versions' builds this user owns, the folders an interrupted clear
    left aside, and the user's partial builds last written over an hour ago; one that could
    not be removed said on stderr (why in words)."""
    from latentgraph.nodes.builtin_builds import (
        found_builds,
        found_partial_builds,
        remove_build,
        remove_partial_build,
    )

    cleared = Cleared()
    for build in found_builds():
        if not build.removable:
            cleared.kept.append(build)
        elif (why := _removal_failed(build.path, remove_build, build)) is not None:
            cleared.failed.append((build, why))
        else:
            cleared.removed.append(build)
    for partial in found_partial_builds():
        if not partial.removable:
            continue
        why = _removal_failed(partial.path, remove_partial_build, partial)
        if why is not None:
            cleared.partials_failed.append((partial, why))
        else:
            cleared.partials_removed.append(partial)
    return cleared


def _removal_failed(path: Path, remove: Callable[[T], None], item: T) -> str | None:
    """`remove(item)` (of `path`): None when done, else why not in words, said on stderr."""
    from latentgraph.graph.files import os_error_words

    try:
        remove(item)
    except OSError as exc:
        why = os_error_words(exc)
        print(f"latentgraph: error: cannot remove {path}: {why}", file=sys.stderr)
        return why
    return None


def _show_cleared(cleared: Cleared) -> None:
    """`cache clear`'s lines for the builds: each removed, with why, then those kept."""
    from latentgraph.graph.paths import built_models_dir

    for build in cleared.removed:
        why = (
            _LEFT_ASIDE
            if build.left_aside
            else "a built-in model an earlier version built, which this one does not use"
        )
        print(f"removed {build.path} ({size_text(build.size)}): {why}")
    for partial in cleared.partials_removed:
        print(f"removed {partial.path} ({size_text(partial.size)}): a build of {partial.name} "
              "killed part way (last written over an hour ago)")  # fmt: skip
    used = sum(b.used for b in cleared.kept)
    kept = [f"{b.path.name} ({_build_text(b).removesuffix(': kept')})"
            for b in cleared.kept if not b.used]  # fmt: skip
    if used or kept:
        uses = [f"the {used} built-in model(s) this version uses"] if used else []
        print(f"kept in {built_models_dir()}: {', '.join(uses + kept)}")


def _limit(store, given_mb: int | None) -> tuple[int | None, str]:
    """The limit `cache` shows, in bytes (None: no limit), and where it comes from:
    `--cache-disk-mb`, the store's record of the bound it was last written with
    (`last_written`), or the `default`."""
    from latentgraph.graph.cache import DEFAULT_DISK_BYTES

    if given_mb is not None:
        return given_mb << 20, "--cache-disk-mb"
    found, bound = store.recorded_limit()
    if found:
        return bound, "last_written"
    return DEFAULT_DISK_BYTES, "default"


def _limit_text(limit: int | None, limit_from: str) -> str:
    """The limit as `cache` shows it, with where it comes from (`_limit`)."""
    past = "past it the least recently used entries go"
    if limit is None:
        return "no limit (as last written)"
    said = {"--cache-disk-mb": "--cache-disk-mb", "last_written": "as last written",
            "default": "the default"}[limit_from]  # fmt: skip
    return f"{size_text(limit)} ({said}; {past})"
