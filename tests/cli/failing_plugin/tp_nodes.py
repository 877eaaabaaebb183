"""Nodes that fail on demand beside ones that do not, and one that warns, for `submit` against
`run` (--nodes-dir)."""

import itertools

from latentgraph.graph import Float, NodeResult, Output, String, node
from latentgraph.graph import Int as IntInput
from latentgraph.graph.problems import InputError

_ticks = itertools.count()


@node("TP_Crash", inputs=[IntInput("n", 1)], outputs=[Output("v", "FLOAT")])
def crash(ctx, n):
    return 10 / n


@node("TP_Refuse", inputs=[IntInput("n", 0)], outputs=[Output("v", "FLOAT")])
def refuse(ctx, n):
    if n < 0:
        raise InputError(f"{n} is negative", "n")
    return float(n)


@node("TP_Clock", inputs=[], outputs=[Output("t", "STRING")], deterministic=False)
def clock(ctx):
    return f"tick {next(_ticks)}"  # a new value each run: never cached


@node("TP_Show", inputs=[String("text", ""), Float("value", 0.0)], outputs=[], output_node=True)
def show(ctx, text, value):
    return NodeResult(values=(), ui={"text": [f"{text} {value}"]})


@node("TP_Round", inputs=[Float("value", 0.0)], outputs=[Output("v", "FLOAT")])
def round_(ctx, value):
    if value != round(value):
        ctx.warn(f"{value} rounded to {round(value)}")  # a warning, as a crop to 8 pixels says
    return float(round(value))
