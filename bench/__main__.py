"""Run every benchmark suite found in this package and print one table."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import re
import sys
import time
import traceback
from pathlib import Path

from latentgraph.graph.files import write_atomic

HERE = Path(__file__).parent


def suites() -> list[str]:
    """The modules defining `run(quick)` (read, not imported: some import torch or Ray)."""
    names = (m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))
    return sorted(n for n in names if "\ndef run(" in (HERE / f"{n}.py").read_text())


COLUMNS = ["suite", "name", "value", "unit", "target", "met", "note"]
BOUND = re.compile(r"\s*(<=|>=|<|>|=)\s*(-?[\d.]+)")
HOLDS = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__,
         "=": float.__eq__}  # fmt: skip


def shown(row: dict, column: str) -> str:
    """A cell's text. A number is shown to 3 significant digits, and to as many more as it
    takes for the value read against its target to give the row's verdict, and not to read as
    the bound itself unless it is (1.0195 for "< 1.02 yes", never 1.02; 2.998 for "<= 3")."""
    v = row.get(column)
    if not isinstance(v, float):
        return "" if v is None else str(v)
    text = f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    bound = BOUND.match(str(row.get("target") or ""))
    if column != "value" or bound is None or row.get("met") not in ("yes", "no"):
        return text
    holds, limit = HOLDS[bound.group(1)], float(bound.group(2))
    for digits in range(3, 16):
        agrees = holds(float(text), limit) == (row["met"] == "yes")
        if agrees and (float(text) != limit or v == limit):
            return text
        text = f"{v:.{digits + 1}g}"
    return repr(v)


def table(rows: list[dict]) -> str:
    """Rows as aligned text columns: the standard ones (see bench/_common.py), plus "error"
    when a suite failed; anything else a row carries goes to the JSON only."""
    columns = [c for c in COLUMNS if any(c in r for r in rows)]
    if any("error" in r for r in rows):
        columns.append("error")
    cells = [[shown(row, c) for c in columns] for row in rows]
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

    def cell(r: dict, c: str) -> str:
        return shown(r, c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast check")
    known = suites()
    parser.add_argument("--only", action="append", choices=known, metavar="SUITE",
                        help=f"run only this suite (repeatable): {', '.join(known)}")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)

    names = args.only or known
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
