"""A node refusing its input while it runs (a user error), for CLI tests (--nodes-dir)."""

from latentgraph.graph import Int as IntInput
from latentgraph.graph import Output, node
from latentgraph.graph.problems import InputError


@node("CliEven", inputs=[IntInput("value", 0)], outputs=[Output("value", "CLI_INT")])
def even(ctx, value):
    if value % 2:
        raise InputError(f"{value} is odd", "value")  # the engine names the node and input
    return value
