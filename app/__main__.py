"""`python -m latentgraph`: the `latentgraph` command, where its script is not on PATH or cannot
start (pip writes a `/bin/sh` trampoline for a venv whose path holds a space)."""

if __name__ == "__main__":
    from latentgraph.cli import entry

    entry()
