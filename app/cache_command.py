"""`latentgraph cache`: what the disk cache holds, and `cache clear` to empty it.

The folder is the one `run` writes (`graph.cache.disk_store_dir`): `--cache-dir DIR` (the
entries directly in DIR), else `outputs` in $LATENTGRAPH_CACHE_DIR or the user cache folder.
Clearing removes the cached outputs only: the built tiny models beside them in the cache root
stay (rebuilding them takes seconds), and so does any other file in the folder.

The limit shown is `--cache-disk-mb` when given, else the one the store was last written with
(`run` and `serve` record it: `DiskCache.recorded_limit`), else the default (10 GiB).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import at_least


def add_parser(sub) -> None:
    """The `cache` subcommand, on `build_parser`'s subparsers."""
    p = sub.add_parser("cache", help="show the disk cache's folder and size, or `cache clear`")
    p.add_argument("action", nargs="?", choices=["info", "clear"], default="info",
                   help="info (default): folder, entries, size and limit; clear: remove the "
                   "cached outputs (not the built tiny models)")  # fmt: skip
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
        print(f"cleared {folder}: removed {count} cached output(s), {size_text(size)} "
              "(built models are kept)")  # fmt: skip
        return 0
    count, size = store.usage()
    print(f"folder:  {folder}{'' if folder.is_dir() else ' (not made yet)'}")
    print(f"entries: {count}")
    print(f"size:    {size_text(size)} of {limit}")
    return 0


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
