"""What a `latentgraph` command ends with: its exit code, and `UserError` for a problem the
user can fix (`cli.main` prints it as one line and exits 2).

Exit codes, in short (README.md, "Exit codes", lists every case that gives each):
    0   success
    1   the run failed: a node raised (what was computed stays cached); also a command whose
        product is its work (`run`, `submit`, `tiny-model`) stopped because its stdout closed,
        one whose product is its stdout started with it closed (`schema >&-`: nothing done),
        and `submit` that lost the server after it queued the workflow (naming the prompt)
    2   user error: bad arguments or flags, an invalid workflow, a folder or device that
        cannot be used, a run that failed only because a node refused its input
    3   `submit`: could not reach the server, or its queue is full (try again later): the
        workflow was not queued; `serve --ray`: its Ray cluster stopped answering (it stopped
        in order, its prompts kept for the next start)
    70  internal error (a bug: please report it with the output of `--debug`)
    130 interrupted (Ctrl-C)
    143 terminated (SIGTERM), stopped as Ctrl-C stops a run

130 and 143 are what a shell shows: a command a signal stopped (`run`, `serve`, `submit`), its
orderly stop done, ends the process by that same signal (`end_process`), so a service manager
sees the stop it asked for (systemd counts a death by SIGTERM or SIGINT as a clean stop, an exit
status 143 as a failure) and a parent process a death by the signal (Popen: -2, -15).

User errors never print a Python traceback; `--debug` shows it for bug reports, and after the
error line of a node that crashed in `run` (a plugin's bug: its author's clue).
"""

import atexit
import contextlib
import errno
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn, TextIO

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 70, 130, 143
# The exit code of a command stopped by each signal (the shell's 128 + its number); the process
# then ends by the signal itself (`end_process`).
SIGNAL_EXITS = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}


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
    devnull_onto(sys.stdout.fileno())


def devnull_onto(fd: int, flags: int = os.O_WRONLY) -> None:
    """/dev/null opened as `fd` (what was there closed), no other descriptor left open."""
    null = os.open(os.devnull, flags)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)


def fill_closed_fds() -> bool:
    """Started with stdin, stdout or stderr closed (`latentgraph run wf.yaml >&-`, as some
    daemons and CI steps start commands): each such descriptor opened onto /dev/null, so the
    next file opened (a saved image, the cache's) cannot land on fd 1 or 2 and take the
    command's text, and `sys.stdout` is a stream again (Python made it None). True when stdout
    was closed: its lines for people are lost, and a command whose product is stdout refuses
    before any work (`cli.main`). Ascending order: each `os.open` takes the lowest free fd."""
    stdout_closed = sys.stdout is None
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            devnull_onto(fd, os.O_RDONLY if mode == "r" else os.O_WRONLY)
            stdout_closed = stdout_closed or fd == 1
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - the process's own, kept open
    return stdout_closed


class Diagnostics(io.TextIOBase):
    """stderr as the CLI writes to it (`diagnostics_stderr`): its lines are diagnostics, so one
    the machine refuses (`2>/dev/full`: ENOSPC, EIO, a read-only log) is lost, not the run;
    stderr is then dropped onto /dev/null (what the stream still holds too, so Python's flush
    at exit does not fail: exit 120). A reader gone (EPIPE: `2>&1 | head -1`) still raises
    BrokenPipeError: the command stops as a closed stdout stops it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        with self._lossy():
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        with self._lossy():
            self.stream.flush()

    @contextlib.contextmanager
    def _lossy(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise
            with contextlib.suppress(Exception):  # a stream with no fd: only this line lost
                devnull_onto(self.stream.fileno())
                self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.stream.errors


@contextlib.contextmanager
def diagnostics_stderr() -> Iterator[None]:
    """`sys.stderr` as `Diagnostics` while a command runs: a line it cannot write is lost, the
    command goes on, its exit code says how it went."""
    stderr = sys.stderr
    sys.stderr = Diagnostics(stderr)
    try:
        yield
    finally:
        sys.stderr = stderr


@contextlib.contextmanager
def escaped_unencodable() -> Iterator[None]:
    """stdout and stderr, while a command runs, writing a character their encoding lacks as a
    backslash escape (`\\u56f3`), as Python's own stderr does: a stdout that is not UTF-8
    (`PYTHONIOENCODING=ascii`, a Latin-1 locale) failed `nodes`, `convert ... -` and `cache`
    midway with the codec's message. The one rule for every command's two streams; each
    one's own setting is put back after (a caller in this process keeps its streams)."""
    kept = []
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            kept.append((stream, stream.errors))
            stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        for stream, errors in kept:
            with contextlib.suppress(Exception):  # a stream closed meanwhile: nothing to keep
                stream.reconfigure(errors=errors)


def write_document(text: str) -> None:
    """`text`, a document a command writes to stdout (`convert SRC -`, `schema`, `nodes
    --markdown`, `nodes --json`: what `> file` keeps), as UTF-8 bytes whatever stdout's
    encoding: it is data, byte for byte what the same command writes to a file. The escapes
    of `escaped_unencodable` are for lines people read: on an ASCII stdout they turned `café`
    into a plain YAML `caf\\xe9`, silently another prompt. A stdout with no byte buffer (a
    `StringIO` a Python caller put there) takes the text."""
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(text)
        return
    stream.flush()  # what was printed before comes first
    buffer.write(text.encode("utf-8", "surrogateescape"))
    buffer.flush()


def end_process(code: int, *, at_once: bool = False) -> NoReturn:
    """End the `latentgraph` process with `code`: the console script's last step (`cli.entry`).
    A code a signal's stop gives (`SIGNAL_EXITS`: 130, 143) ends it by that signal instead,
    with the signal's default action, once Python's exit handlers ran and stdout and stderr
    were flushed (`at_once`: neither, as `os._exit`): the shell still shows 130 or 143, and
    systemd sees a clean signal stop, not a failed service. Any other code ends it once the
    threads it waits for ended, its exit handlers ran and stdout and stderr were flushed,
    without Python's finalization (seconds of module teardown once torch is loaded, during
    which a signal must not replace the decided code: `keep_verdict`)."""
    stop = next((sig for sig, exit_code in SIGNAL_EXITS.items() if exit_code == code), None)
    if stop is None and not at_once:
        keep_verdict(code)
        threading._shutdown()  # type: ignore[attr-defined] - what Python's own exit waits for
    if not at_once:
        atexit._run_exitfuncs()  # what Python's own exit would run (Ray's shutdown)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe: nothing left to say
                stream.flush()
    if stop is not None:
        signal.signal(stop, signal.SIG_DFL)
        signal.raise_signal(stop)  # ends the process here, unless the signal is blocked
    os._exit(code)


def keep_verdict(code: int) -> None:
    """The command has decided `code` and the process ends (`end_process`): a Ctrl-C or
    SIGTERM then stops nothing, it ends the process at once with `code`, stdout and stderr
    flushed, not by the signal (README: a run's status decides its exit code; a finished run
    was read as 130 or 143, "interrupted")."""

    def end_now(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe: nothing left to say
                stream.flush()
        os._exit(code)

    for sig in SIGNAL_EXITS:
        signal.signal(sig, end_now)
