"""Benchmarks: `python -m bench [--quick] [--only NAME] [--json PATH]`.

Each module `bench/<name>.py` that defines `run(quick: bool) -> list[dict]` is a suite; its rows
(one dict each, in the shape bench/_common.py describes: "suite", "name", "value", "unit",
"target", "met", "note") are printed in one table and written as JSON.
"""
