"""Run every benchmark suite found in this package and print one table."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import sys
import time
import traceback
from pathlib import Path

from latentgraph.graph.files import write_atomic

HERE = Path(__file__).parent


def suites() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


COLUMNS = ["suite", "name", "value", "unit", "target", "met", "note"]


def table(rows: list[dict]) -> str:
    """Rows as aligned text columns: the standard ones (see bench/_common.py), plus "error"
    when a suite failed; anything else a row carries goes to the JSON only."""
    columns = [c for c in COLUMNS if any(c in r for r in rows)]
    if any("error" in r for r in rows):
        columns.append("error")

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
        return "" if v is None else str(v)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The same table as Markdown, for docs/benchmarks.md."""
    columns = [c for c in COLUMNS if any(c in r for r in rows)]
    if any("error" in r for r in rows):
        columns.append("error")

    def cell(v: object) -> str:
        text = f"{v:.3g}" if isinstance(v, float) and abs(v) < 1000 else (
            f"{v:.0f}" if isinstance(v, float) else ("" if v is None else str(v)))  # fmt: skip
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast check")
    parser.add_argument("--only", action="append", help="run only this suite (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)

    names = args.only or suites()
    rows: list[dict] = []
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except Exception:
            rows.append({"suite": name, "name": "import", "error": traceback.format_exc(limit=1)})
            continue
        if not callable(getattr(module, "run", None)):
            continue
        started = time.perf_counter()
        try:
            rows.extend(module.run(args.quick))
        except Exception as exc:
            rows.append({"suite": name, "name": "run", "error": f"{type(exc).__name__}: {exc}"})
        print(f"[{name}: {time.perf_counter() - started:.1f} s]", file=sys.stderr)
    print(markdown(rows) if args.markdown else table(rows))
    if args.json:
        doc = {
            "machine": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },  # fmt: skip
            "quick": args.quick,
            "rows": rows,
        }
        write_atomic(args.json, json.dumps(doc, indent=1, default=str))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
