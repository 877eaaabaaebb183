"""What a `latentgraph` command ends with: its exit code, and `UserError` for a problem the
user can fix (`cli.main` prints it as one line and exits 2).

Exit codes, in short (README.md, "Exit codes", lists every case that gives each):
    0   success
    1   the run failed: a node raised (what was computed stays cached); also a command whose
        product is its work (`run`, `submit`, `tiny-model`) stopped because its stdout closed
    2   user error: bad arguments or flags, an invalid workflow, a folder or device that
        cannot be used, a run that failed only because a node refused its input
    3   `submit`: could not reach the server, or its queue is full (try again later)
    70  internal error (a bug: please report it with the output of `--debug`)
    130 interrupted (Ctrl-C)
    143 terminated (SIGTERM), stopped as Ctrl-C stops a run

User errors never print a Python traceback; `--debug` shows it for bug reports, and after the
error line of a node that crashed in `run` (a plugin's bug: its author's clue).
"""

import contextlib
import os
import sys
from collections.abc import Iterator

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 70, 130, 143


class UserError(Exception):
    """A problem the user can fix; printed as one clear message, exit code 2."""


class StdoutClosed(Exception):
    """stdout's reader went away (`run --json | head -1`) before a command whose product is
    its work (a run's files), not the text it prints, had finished: the command stops there,
    and `cli.main` says so on stderr with `stopped` (what became of the work) and exits 1, so a
    script does not take the abandoned run for a success. A command printing text
    (`schema | head`) just stops: its reader had what it wanted."""

    def __init__(self, stopped: str) -> None:
        super().__init__(stopped)
        self.stopped = stopped


@contextlib.contextmanager
def verdict_text() -> Iterator[None]:
    """Printing what a command has already decided (`validate`'s problems, `run --json`'s
    `workflow_invalid` line, any command's text at its final flush): stdout's reader leaving
    (`validate --json | head -1`) cuts the text short, not the verdict, so the command's exit
    code stands (an invalid workflow's 2 became 0, or 1). What stdout still holds is dropped."""
    try:
        yield
    except BrokenPipeError:
        drop_stdout()


def drop_stdout() -> None:
    """stdout onto /dev/null once its reader has gone: what it still holds is dropped, and
    Python's flush at exit does not fail again ("Exception ignored ... BrokenPipeError")."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
