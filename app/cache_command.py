"""`latentgraph cache`: what the disk cache holds, and `cache clear` to empty it.

The folder is the one `run` writes (`graph.cache.disk_store_dir`): `--cache-dir DIR` (the
entries directly in DIR), else `outputs` in $LATENTGRAPH_CACHE_DIR or the user cache folder.
Clearing removes the cached outputs, and any other file in the folder stays.

Beside them, in the cache folder's `models/` whatever `--cache-dir` says, are the built-in
models, built on first use (`nodes.builtin_builds`): both commands list them, each with its size
and whether this version uses it, and `clear` removes the ones an earlier version built, which
this one never reads (an upgrade that changed a recipe builds anew beside the old build), and
finishes removing one an interrupted `cache clear` left renamed aside (listed as such). This
version's builds stay (rebuilding them takes seconds, but a running server may be reading
them), and so do a newer version's and another user's.

The limit shown is `--cache-disk-mb` when given, else the one the store was last written with
(`run` and `serve` record it: `DiskCache.recorded_limit`), else the default (10 GiB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .arguments import at_least


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `cache` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("cache", help="show the disk cache's folder and size, or `cache clear`")
    p.add_argument("action", nargs="?", choices=["info", "clear"], default="info",
                   help="info (default): folder, entries, size and limit, and the built-in "
                   "models in the cache folder's models/; clear: remove the cached outputs and "
                   "the built-in models only an earlier version used (a recipe version, -vN, "
                   "below the one this version builds; this version's, a newer version's and "
                   "another user's are kept; an earlier latentgraph sharing the folder builds "
                   "its own again when it next needs it), and what an interrupted clear left "
                   "of one")  # fmt: skip
    p.add_argument("--cache-dir", type=Path,
                   help="the folder `run --cache-dir` was given (default: the user cache "
                   "folder's outputs/, or $LATENTGRAPH_CACHE_DIR/outputs)")  # fmt: skip
    p.add_argument("--cache-disk-mb", type=at_least(1), metavar="MB",
                   help="the limit to report, as given to `run`/`serve --cache-disk-mb` "
                   "(default: the one the store was last written with, else 10240)")  # fmt: skip


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
    A `--cache-dir` naming a file is a usage error, as `run` refuses it."""
    from latentgraph.graph.cache import DEFAULT_DISK_BYTES, DiskCache, disk_store_dir

    from .exits import UserError
    from .preflight import folder_problem

    folder = disk_store_dir(args.cache_dir)
    problem = folder_problem(folder, create=True)
    if problem and args.cache_dir is not None:
        raise UserError(f"--cache-dir {args.cache_dir}: {problem}")
    store = DiskCache(folder, DEFAULT_DISK_BYTES)
    limit = _limit_text(store, args.cache_disk_mb)
    if args.action == "clear":
        count, size = store.clear()
        print(f"cleared {folder}: removed {count} cached output(s), {size_text(size)}")
        return _clear_builds()
    count, size = store.usage()
    print(f"folder:  {folder}{'' if folder.is_dir() else ' (not made yet)'}")
    print(f"entries: {count}")
    print(f"size:    {size_text(size)} of {limit}")
    _show_builds()
    return 0


def _show_builds() -> None:
    """The built-in models' folder and each build in it: name, size, whether this version
    uses it (and if not, whether `cache clear` removes it)."""
    from latentgraph.graph.paths import built_models_dir
    from latentgraph.nodes.builtin_builds import found_builds

    builds = found_builds()
    print(f"models:  {built_models_dir()} (the built-in models{'' if builds else ': none built'})")
    width = max((len(b.path.name) for b in builds), default=0)
    for build in builds:
        print(f"  {build.path.name:<{width}}  {size_text(build.size):>9}  {_build_state(build)}")


# a build `remove_build` renamed aside and did not finish deleting (`Build.left_aside`)
_LEFT_ASIDE = "left by an interrupted `cache clear`"


def _build_state(build) -> str:
    """What a build is to this version, in the words `cache` shows."""
    if build.left_aside:
        return (f"{_LEFT_ASIDE}, another user's: kept" if not build.own
                else f"{_LEFT_ASIDE}: `cache clear` removes it")  # fmt: skip
    if build.used:
        return "used by this version"
    if not build.earlier:
        return "a newer version's: kept"
    if not build.own:
        return "an earlier version's, another user's: kept"
    return "an earlier version's, not used by this one: `cache clear` removes it"


def _clear_builds() -> int:
    """Remove the earlier versions' builds this user owns, and the folders an interrupted
    clear left aside, each said; 1 when one could not be removed (said on stderr, why in
    words), else 0."""
    from latentgraph.graph.files import os_error_words
    from latentgraph.graph.paths import built_models_dir
    from latentgraph.nodes.builtin_builds import found_builds, remove_build

    code, used, kept = 0, 0, []
    for build in found_builds():
        if build.used:
            used += 1
            continue
        if not build.removable:
            kept.append(f"{build.path.name} ({_build_state(build).removesuffix(': kept')})")
            continue
        try:
            remove_build(build)
        except OSError as exc:
            print(f"latentgraph: error: cannot remove {build.path}: {os_error_words(exc)}",
                  file=sys.stderr)  # fmt: skip
            code = 1
            continue
        why = (
            _LEFT_ASIDE
            if build.left_aside
            else "a built-in model an earlier version built, which this one does not use"
        )
        print(f"removed {build.path} ({size_text(build.size)}): {why}")
    if used or kept:
        uses = [f"the {used} built-in model(s) this version uses"] if used else []
        print(f"kept in {built_models_dir()}: {', '.join(uses + kept)}")
    return code


def _limit_text(store, given_mb: int | None) -> str:
    """The limit `cache` shows and where it comes from: `--cache-disk-mb`, the store's record
    of the bound it was last written with, or the default."""
    from latentgraph.graph.cache import DEFAULT_DISK_BYTES

    past = "past it the least recently used entries go"
    if given_mb is not None:
        return f"{size_text(given_mb << 20)} (--cache-disk-mb; {past})"
    found, bound = store.recorded_limit()
    if found and bound is None:
        return "no limit (as last written)"
    if found:
        return f"{size_text(bound)} (as last written; {past})"
    return f"{size_text(DEFAULT_DISK_BYTES)} (the default; {past})"
