"""The workflow file a command names, read by the one table of formats, and its problems
printed: as text on stderr, as JSON (`validate --json`), or as `run --json`'s refusal line."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .exits import EXIT_USAGE, UserError, verdict_text

if TYPE_CHECKING:
    from latentgraph.graph.declare import Registry
    from latentgraph.graph.problems import Problem
    from latentgraph.graph.workflow import Workflow


STDIN = "-"  # the workflow argument naming standard input: `latentgraph run - < wf.yaml`
STDIN_NAME = "<stdin>"  # how messages name it


def workflow_name(path_text: str) -> str:
    """The workflow argument as messages name it: `<stdin>` for `-`, a path with what cannot
    be printed escaped (`graph.problems.printable`)."""
    from latentgraph.graph.problems import printable

    return STDIN_NAME if path_text == STDIN else printable(path_text)


def refuse_stdin_twice(paths: list[str]) -> None:
    """Several workflows (`validate a.json - b.yaml`) read stdin for one of them at most: a
    second `-` would find it empty, and be refused as an empty workflow rather than as what
    it is."""
    if paths.count(STDIN) > 1:
        raise UserError(f"'-' (stdin) given {paths.count(STDIN)} times: stdin holds one "
                        "workflow; name the others by their files")  # fmt: skip


def read_workflow(path_text: str, overrides: dict[str, Any], registry: Registry) -> Workflow:
    """Load any supported workflow format (the one table in graph/formats.py): from a file, or
    from a pipe (`-` for stdin, `/dev/stdin`, a shell's `<(...)`) read as a request's text is:
    the same size limit and UTF-8 rule, its format from its content, its places named by the
    path (`<stdin>` for `-`)."""
    from latentgraph.graph.formats import load_file, load_text
    from latentgraph.graph.workflow import read_source

    piped = _piped(path_text)
    if piped is None:
        return load_file(workflow_file(path_text), overrides, registry)
    name, data = piped
    _refuse_image(name, data)
    return load_text(read_source(name, data), name, overrides, registry)


def _refuse_image(name: str, data: bytes) -> None:
    """An image piped in (`validate - < x.png`), named as one: a pipe is read as a workflow's
    text, and its bytes were refused as "not UTF-8 text (byte 0x89 at offset 0)". An image's
    workflow is read from its file."""
    from latentgraph.graph.formats import image_signature
    from latentgraph.graph.model import Location
    from latentgraph.graph.problems import Problem, WorkflowError

    image = image_signature(data)
    if image:
        reason = (f"is a {image} image: stdin or a pipe is read as a workflow's text; give "
                  "the image's path to read the workflow in it")  # fmt: skip
        raise WorkflowError([Problem("invalid_value", reason, location=Location(name))])


def _piped(path_text: str) -> tuple[str, bytes] | None:
    """The name and bytes of a workflow given as `-` (stdin) or as a pipe or device path, or
    None for any other path (a file, or what `workflow_file` refuses). At most one byte over
    the size limit is read: `read_source` refuses more, as it refuses a file that size."""
    from latentgraph.graph.workflow import MAX_BYTES

    if path_text == STDIN:
        return STDIN_NAME, sys.stdin.buffer.read(MAX_BYTES + 1)
    try:
        if not _is_pipe(Path(path_text)):
            return None
        with open(path_text, "rb") as stream:
            return path_text, stream.read(MAX_BYTES + 1)
    except OSError:
        return None  # as a file that cannot be read: `workflow_file` and the reader word it


def _is_pipe(path: Path) -> bool:
    """A FIFO or a character device (a terminal, /dev/null): read as a stream, not a file."""
    mode = path.stat().st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def workflow_file(path_text: str) -> Path:
    """The workflow file the user named, or a WorkflowError saying why it cannot be one (a
    problem at that path, as an unreadable file's: `run --json` readers get their
    `workflow_invalid` line for it too). `convert` and `submit` take a file only: a pipe or
    `-` is refused as one, not as a file that is not there."""
    from latentgraph.graph.files import os_error_words
    from latentgraph.graph.model import Location
    from latentgraph.graph.problems import Problem, WorkflowError

    path = Path(path_text)
    try:
        if path.is_dir():
            reason = "is a folder; name a workflow file in it"
        elif path.is_file():
            return path
        elif path_text == STDIN:
            reason = ("stands for stdin, which only `run` and `validate` read a workflow from; "
                      "name a workflow file")  # fmt: skip
        elif path.exists() and _is_pipe(path):
            reason = ("is a pipe or device, not a file: this command reads a workflow file "
                      "(`run` and `validate` also read one from a pipe)")  # fmt: skip
        elif path.exists():
            reason = "is not a regular file"
        else:
            reason = "no such file"
    except OSError as exc:  # a name too long, a folder on the way not to be searched
        reason = os_error_words(exc, reading=True)
    raise WorkflowError([Problem("invalid_value", reason, location=Location(str(path)))])


def _problem_rows(problems: list[Problem]) -> list[dict[str, Any]]:
    """Problems as JSON objects (`validate --json`, and `run --json`'s refusal line)."""
    from latentgraph.graph.problems import problem_row

    return [problem_row(p) for p in problems]


def print_problems(problems: list[Problem], as_json: bool) -> None:
    """Problems as JSON (`validate --json`), or one line each on stderr (`problem_line`)."""
    from latentgraph.graph.problems import problem_line

    if as_json:
        print(json.dumps(_problem_rows(problems), indent=2))
        return
    for p in problems:
        print(problem_line(p), file=sys.stderr)


class CheckedFile(NamedTuple):
    """One of the workflows `validate` checked: its name as messages give it, its node count
    (None: it did not load) and its problems."""

    name: str
    nodes: int | None
    problems: list[Problem]

    @property
    def errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)


def print_files_json(files: list[CheckedFile]) -> None:
    """Several workflows' `validate --json`: a list, one object per file in the order given,
    `{"file", "ok", "nodes", "problems"}` (`ok`: no errors, `nodes` null when the file did
    not load, `problems` as one file's `--json` lists them)."""
    print(json.dumps([{"file": f.name, "ok": not f.errors, "nodes": f.nodes,
                       "problems": _problem_rows(f.problems)} for f in files], indent=2))  # fmt: skip


def refuse_run(problems: list[Problem], json_lines: bool) -> int:
    """A workflow `run` will not start: its problems on stderr and, for `--json` readers, one
    `workflow_invalid` event line on stdout (they read no other line then)."""
    print_problems(problems, as_json=False)
    if json_lines:
        with verdict_text():  # a reader gone (`| head -1`) leaves the exit code 2
            print(json.dumps({"event": "workflow_invalid", "problems": _problem_rows(problems)}))
    return EXIT_USAGE
