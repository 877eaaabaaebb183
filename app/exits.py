"""What a `latentgraph` command ends with: its exit code, and `UserError` for a problem the
user can fix (`cli.main` prints it as one line and exits 2).

Exit codes (also in README.md):
    0   success
    1   the run failed: a node raised (its error is printed, what was computed stays cached)
    2   user error: bad arguments, unreadable or invalid workflow (every problem is printed),
        a folder flag naming a file (run's --output-dir and --cache-dir, cache's --cache-dir,
        serve's --data-dir, --output-dir, --input-dir, --temp-dir, --cache-dir, submit's
        --output-dir, tiny-model --addons; a --models-dir must exist), a file to write that cannot be (convert's DEST, tiny-model
        --single-file: a folder there, or a file where its folder would be), a --device this
        machine lacks (cuda, mps: checked before any node runs; for serve, each of --devices,
        before any worker starts), a `serve --port` in use (checked before any worker starts),
        or a run that failed only because a node refused its input (a missing or pickled
        model file, a file name leaving the output folder: `graph.problems.InputError`,
        printed like a validation problem at the input's file:line, with no traceback; on a
        server, `submit` alike), or a `submit --server` that is no http(s) URL with a host,
        or a server that wants a token `submit` was not given, or refuses the one given
    3   could not reach the server (`submit`)
    70  internal error (a bug: please report it with the output of `--debug`)
    130 interrupted (Ctrl-C); the current node stops at its next step; a second Ctrl-C (or a
        SIGTERM then) does not wait for a node that checks no step: the run ends at once,
        naming that node, with what had finished cached and no half-written file
    143 terminated (SIGTERM, e.g. from a service manager or `docker stop`): stopped as Ctrl-C
        stops a run, at the current node's next step, with what was computed cached and no
        half-written file; the code is the shell's for a SIGTERM (128 + 15)

User errors never print a Python traceback; `--debug` shows it for bug reports, and after the
error line of a node that crashed in `run` (a plugin's bug: its author's clue).
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 70, 130, 143


class UserError(Exception):
    """A problem the user can fix; printed as one clear message, exit code 2."""
