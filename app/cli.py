"""The `latentgraph` command: its parser and `main`, which runs a command and turns what it
returns or raises into the exit code (exits.py lists them).

Each command lives in a module named for what it holds: `run` and `validate` in
run_command.py, `serve` and `submit` in serve_command.py, `nodes`, `schema`, `convert` and
`tiny-model` in tool_commands.py, `cache` in cache_command.py; the flags several share in
arguments.py. User errors never print a Python traceback; `--debug` shows it for bug
reports, and after the error line of a node that crashed in `run` (a plugin's bug: its
author's clue). Heavy modules (torch, diffusers, rich, the server) are imported only by the
commands that need them, so `--help` and `validate` start instantly.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

from . import cache_command, run_command, serve_command, tool_commands
from .exits import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    StdoutClosed,
    UserError,
    diagnostics_stderr,
    drop_stdout,
    end_process,
    escaped_unencodable,
    fill_closed_fds,
    verdict_text,
)
from .workflow_input import refuse_run


class _Parser(argparse.ArgumentParser):
    """The parser of `latentgraph` and of each command (argparse makes the commands' of the
    same class): every refusal is the CLI's one line, `latentgraph: error: ...`, exit 2, as
    README promises, not argparse's usage block and `latentgraph run: error: ...`. A flag's
    value refused by its type or choices is named as a refusal after parsing names it:
    `--device: device 'cuda0' is not one of ...` as `--device: device 'cuda': ...`. The usage
    is for `--help`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exit_on_error", False)  # its ArgumentError reaches parse_known_args
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        try:
            return super().parse_args(args, namespace)
        except argparse.ArgumentError as err:  # Python 3.13's `unrecognized arguments`
            self._refuse(err)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        try:
            return self._parse(args, namespace)
        except argparse.ArgumentError as err:
            self._refuse(err)

    def _parse(self, args: Any, namespace: Any) -> Any:
        return super().parse_known_args(args, namespace)

    def _refuse(self, err: argparse.ArgumentError) -> NoReturn:
        """An ArgumentError, which exit_on_error=False lets argparse raise (and Python 3.13
        raises from parse_args too, for the words no argument took), as the one line."""
        named = f"{err.argument_name}: " if err.argument_name else ""
        self.error(f"{named}{err.message}")

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"latentgraph: error: {message}\n")


class _AfterDashes(str):
    """A word given after `--` that begins with `-`, as argparse is given it: behind a NUL, so
    that argparse reads a word, not a flag (no command line can hold a NUL, so no word the
    user types looks like one); shown, in argparse's messages, as the user typed it (`cache --
    -x`: `invalid choice: '-x'`)."""

    word: str

    def __new__(cls, word: str) -> _AfterDashes:
        marked = super().__new__(cls, "\0" + word)
        marked.word = word
        return marked

    def __str__(self) -> str:
        return self.word

    def __repr__(self) -> str:
        return repr(self.word)


# What argparse is given for the `--` itself: a flag of the command's parser that no user can
# type, that takes no value and does nothing; it ends the flag before it, which takes no word
# after `--` as its value (`--set -- x`: `--set: expected one argument`, as argparse says).
_DASHES = "-\0"


class _Dashes(argparse.Action):
    """`--`'s stand-in (`_DASHES`): no setting."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)  # fmt: skip

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        pass


class _CommandParser(_Parser):
    """A command's parser: its words and flags in any order. argparse alone fills positionals
    only from the words before the first flag when one is optional or takes several (`nodes
    describe --json VShow` refused `VShow`, `validate a.yaml --json b.yaml` refused `b.yaml`):
    the flags are read first, then every word left over, wherever it stood. The words after a
    `--` are words, however they begin (`validate --json -- -odd.yaml`), after the others.
    argparse's own parse of words and flags in any order mishandles a `--` (Python 3.11's
    drops one that comes before every word, then reads `-odd.yaml` as a flag), so it is never
    given one: `_mark_dashes`."""

    _parsing = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(_DASHES, action=_Dashes)

    def _parse(self, args: Any, namespace: Any) -> Any:
        if args is None:
            args = sys.argv[1:]
        if self._parsing:  # the intermixed parse's own passes, on Pythons where they come back
            return super()._parse(args, namespace)
        self._parsing = True
        try:
            namespace, extras = self.parse_known_intermixed_args(_mark_dashes(args), namespace)
        finally:
            self._parsing = False
        for name, value in vars(namespace).items():
            setattr(namespace, name, _unmark(value))
        return namespace, _unmark(extras)


def _mark_dashes(args: list[str]) -> list[str]:
    """`args` as a command's parser is given them: the first `--` as `_DASHES`, each word after
    it that begins with `-` as `_AfterDashes` (the other words after it are words already)."""
    if "--" not in args:
        return list(args)
    at = args.index("--")
    after = [_AfterDashes(arg) if arg.startswith("-") else arg for arg in args[at + 1 :]]
    return [*args[:at], _DASHES, *after]


def _unmark(value: Any) -> Any:
    """A parsed value (a word, or a list of them) as the user gave it: `_mark_dashes` undone."""
    if isinstance(value, list):
        return [_unmark(item) for item in value]
    return value.word if isinstance(value, _AfterDashes) else value


class _Version(argparse.Action):
    """`--version`: `latentgraph 0.1.0` on stdout, exit 0. The version is the installed
    distribution's (its metadata: pyproject.toml's, as pip installed it), looked up only when
    asked, so no other command pays for it."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS,
                         help="print the version and exit")  # fmt: skip

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("latentgraph")
        except PackageNotFoundError:  # imported from a source tree pip did not install
            number = "(unknown: not installed by pip)"
        print(f"latentgraph {number}")
        parser.exit(EXIT_OK)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="latentgraph",
        description="Run diffusion node graphs from YAML/JSON workflows, headless or as a server.",
        epilog="exit codes: 0 ok, 1 run failed, 2 invalid input or usage, 3 server unreachable or its queue full, "
        "70 internal error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM) (these two as a "
        "shell shows them: the process ends by that signal)",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks of internal errors and of nodes that crash")  # fmt: skip
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for add_parser in (
        run_command.add_run_parser,
        run_command.add_validate_parser,
        tool_commands.add_nodes_parser,
        tool_commands.add_schema_parser,
        tool_commands.add_convert_parser,
        serve_command.add_serve_parser,
        serve_command.add_submit_parser,
        cache_command.add_parser,
        tool_commands.add_tiny_model_parser,
    ):  # the order `--help` lists them in
        add_parser(sub)
    return parser


COMMANDS = {
    "run": run_command.cmd_run,
    "validate": run_command.cmd_validate,
    "nodes": tool_commands.cmd_nodes,
    "schema": tool_commands.cmd_schema,
    "convert": tool_commands.cmd_convert,
    "serve": serve_command.cmd_serve,
    "submit": serve_command.cmd_submit,
    "tiny-model": tool_commands.cmd_tiny_model,
    "cache": cache_command.cmd_cache,
}


# What a command whose product is its work, not its text, left when its stdout closed midway
# (`StdoutClosed`); `run` says more (its node, what it saved). The others print text only.
STOPPED_WORK = {
    "run": "the run stopped before finishing; what had finished is cached",
    "submit": "it stopped watching: the prompt goes on on the server, but its files were not "
    "downloaded",
    "tiny-model": "it stopped before finishing; the files it had written are whole",
}


# When a command's product is the text it prints on stdout (given its flags): started with stdout
# closed (`>&-`), it refuses before any work, exit 1, as one whose reader went away midway
# (`StdoutClosed`); the others run, their lines for people on stdout lost (`fill_closed_fds`).
PRINTS = {
    "run": lambda args: args.json,
    "validate": lambda args: args.json,
    "submit": lambda args: args.json,
    "nodes": lambda args: True,
    "schema": lambda args: True,
    "convert": lambda args: args.dest == "-",
    "cache": lambda args: args.action == "info" or args.json,
    "serve": lambda args: False,  # its log is on stderr
    "tiny-model": lambda args: False,  # its product is files; the lines naming them are lost
}


def _show_warning(python_show: Any, message: Warning | str, category: type[Warning],
                  filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:  # fmt: skip
    """A warning about what the user gave (`WorkflowWarning`: a workflow file's broken part
    that was passed over) as the CLI's own warning line; any other as Python shows it
    (`python_show`)."""
    from latentgraph.graph.problems import WorkflowWarning

    if issubclass(category, WorkflowWarning):
        print(f"latentgraph: warning: {message}", file=sys.stderr)
    else:
        python_show(message, category, filename, lineno, file, line)


class _LogLine(logging.Handler):
    """A record of latentgraph's own loggers (`latentgraph.*`: e.g. the partial files a killed
    save left, removed) as the CLI's line for it, `latentgraph: warning: ...`, on the
    sys.stderr of the moment, as the CLI's printed warnings are. Not a server's or its
    workers' (`latentgraph.server`, `latentgraph.worker`): theirs is the server's log, even
    when a server runs in the CLI's process (a test's, `submit` to it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("latentgraph.server", "latentgraph.worker"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"latentgraph: {record.levelname.lower()}: {record.getMessage()}",
                  file=sys.stderr)  # fmt: skip
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _log_lines(command: str) -> Iterator[None]:
    """latentgraph's log records as the CLI's lines (`_LogLine`) while `command` runs; not for
    `serve`, whose log (server/run.py) has its own form: a time to read each line by."""
    if command == "serve":
        yield
        return
    logger, handler = logging.getLogger("latentgraph"), _LogLine(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """The command `argv` names, run; its exit code. stderr is diagnostics throughout: a line
    it cannot take is lost, not the command (`diagnostics_stderr`); a character neither
    stream's encoding has is written as an escape (`escaped_unencodable`)."""
    stdout_closed = fill_closed_fds()
    with escaped_unencodable(), diagnostics_stderr():
        return _main(argv, stdout_closed)


def _main(argv: list[str] | None, stdout_closed: bool) -> int:
    from latentgraph.graph.files import FileWriteError
    from latentgraph.graph.problems import WorkflowError

    from .wiring import InstallError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if stdout_closed and PRINTS[args.command](args):
        print(f"latentgraph: error: stdout was closed before {args.command} started, and "
              f"{args.command} prints its output there: nothing was done", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
            with _log_lines(args.command):
                code = COMMANDS[args.command](args)
        with verdict_text():  # the work was done: a closed pipe shows here, not at exit
            sys.stdout.flush()
        return code
    except (BrokenPipeError, StdoutClosed) as e:
        # The reader went away midway. `latentgraph schema | head` had what it wanted: stop
        # quietly. A command whose product is its work did not finish it: exit 1, saying so.
        drop_stdout()
        if args.command not in STOPPED_WORK:
            return EXIT_OK
        stopped = e.stopped if isinstance(e, StdoutClosed) else STOPPED_WORK[args.command]
        print(f"latentgraph: error: stdout was closed (its reader went away) before "
              f"{args.command} finished: {stopped}", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    except UserError as e:
        print(f"latentgraph: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except InstallError as e:  # not a bug in the code: the install's metadata is stale
        print(f"latentgraph: error: {e}", file=sys.stderr)
        return EXIT_INTERNAL
    except WorkflowError as e:  # `run --ray` reads its workflows outside cmd_run's own handler
        return refuse_run(e.problems, args.command == "run" and args.json)
    except KeyboardInterrupt:
        print("latentgraph: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FileWriteError as e:
        # The machine refused a file the command's work made (a full disk, a read-only folder):
        # the work failed, exit 1, as a run's SaveImage does; a place refused before any work
        # (app/preflight.py, a start-up check) is a UserError, exit 2.
        print(f"latentgraph: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return _disk_full(e)
        if args.debug:
            raise
        print(f"latentgraph: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        if args.debug:
            raise
        if isinstance(e, UnicodeEncodeError):  # a ValueError, but never the user's input:
            return _internal_error(e)  # the streams escape what they cannot encode
        print(f"latentgraph: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if args.debug:
            raise
        return _internal_error(e)


def _internal_error(exc: Exception) -> int:
    """A bug: its one line, asking for `--debug`'s traceback; exit 70."""
    print(
        f"latentgraph: internal error: {type(exc).__name__}: {exc}\n"
        "(this is a bug; run again with --debug for the traceback)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _disk_full(exc: OSError) -> int:
    """A write the disk refused for space (stdout sent to a full disk, `> /dev/full`, or a file
    no command wrapped in a `FileWriteError`): the work failed, exit 1 as README's table says,
    not a usage error. What stdout still holds is dropped if it cannot be written, so Python's
    flush at exit does not fail again (an "Exception ignored" and exit 120)."""
    from latentgraph.graph.files import os_error_words

    print(f"latentgraph: error: cannot write the output: {os_error_words(exc)}", file=sys.stderr)
    try:
        sys.stdout.flush()
    except OSError:
        drop_stdout()
    return EXIT_FAILED


def entry() -> NoReturn:
    """The `latentgraph` command (console script, `python -m latentgraph.cli`): `main`, its
    exit code the process's end (`exits.end_process`: a stop by Ctrl-C or SIGTERM ends by that
    signal). `main` itself only returns the code, for callers in this process."""
    end_process(main())


if __name__ == "__main__":
    entry()
