"""The workflow file a command names, read by the one table of formats, and its problems
printed: as text on stderr, as JSON (`validate --json`), or as `run --json`'s refusal line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exits import EXIT_USAGE

if TYPE_CHECKING:
    from latentgraph.graph.declare import Registry
    from latentgraph.graph.workflow import Workflow


def read_workflow(path_text: str, overrides: dict[str, Any], registry: Registry) -> Workflow:
    """Load any supported workflow format (the one table in graph/formats.py)."""
    from latentgraph.graph.formats import load_file

    return load_file(workflow_file(path_text), overrides, registry)


def workflow_file(path_text: str) -> Path:
    """The workflow file the user named, or a WorkflowError saying why it cannot be one (a
    problem at that path, as an unreadable file's: `run --json` readers get their
    `workflow_invalid` line for it too)."""
    from latentgraph.graph.files import os_error_words
    from latentgraph.graph.model import Location
    from latentgraph.graph.problems import Problem, WorkflowError

    path = Path(path_text)
    try:
        if path.is_dir():
            reason = "is a folder; name a workflow file in it"
        elif not path.is_file():
            reason = "no such file"
        else:
            return path
    except OSError as exc:  # a name too long, a folder on the way not to be searched
        reason = os_error_words(exc, reading=True)
    raise WorkflowError([Problem("invalid_value", reason, location=Location(str(path)))])


def _problem_rows(problems) -> list[dict[str, Any]]:
    """Problems as JSON objects (`validate --json`, and `run --json`'s refusal line)."""
    return [
        {
            "severity": p.severity,
            "code": p.code,
            "message": p.message,
            "node": p.node_id,
            "input": p.input_name,
            "location": str(p.location) if p.location else None,
        }
        for p in problems
    ]


def print_problems(problems, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_problem_rows(problems), indent=2))
        return
    for p in problems:
        label = "error" if p.severity == "error" else "warning"
        print(f"{label}: {p}", file=sys.stderr)


def refuse_run(problems, json_lines: bool) -> int:
    """A workflow `run` will not start: its problems on stderr and, for `--json` readers, one
    `workflow_invalid` event line on stdout (they read no other line then)."""
    print_problems(problems, as_json=False)
    if json_lines:
        print(json.dumps({"event": "workflow_invalid", "problems": _problem_rows(problems)}))
    return EXIT_USAGE
