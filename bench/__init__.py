"""Benchmarks: `python -m bench [--quick] [--only NAME] [--json PATH]`.

Each module `bench/<name>.py` that defines `run(quick: bool) -> list[dict]` is a suite; its rows
(one dict each, with at least "suite" and "case") are printed in one table and written as JSON.
"""
