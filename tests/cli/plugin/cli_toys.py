"""Pure-Python nodes for CLI tests (loaded with --nodes-dir)."""

from pathlib import Path

from latentgraph.graph import INT, NodeResult, Output, Socket, String, node
from latentgraph.graph import Int as IntInput
from latentgraph.graph.context import LIMITS

CLI_INT = "CLI_INT"


@node(
    "CliNumber", inputs=[IntInput("value", 0, min=0, max=1000)], outputs=[Output("value", CLI_INT)]
)
def number(ctx, value):
    return value


@node(
    "CliAdd",
    inputs=[Socket("a", CLI_INT), Socket("b", CLI_INT)],
    outputs=[Output("sum", CLI_INT)],
)
def add(ctx, a, b):
    return a + b


@node("CliFail", inputs=[Socket("a", CLI_INT)], outputs=[Output("value", CLI_INT)])
def fail(ctx, a):
    raise RuntimeError(f"refusing {a}")


@node(
    "CliWrite",
    inputs=[Socket("value", CLI_INT), String("name", "result")],
    outputs=[],
    output_node=True,
)
def write(ctx, value, name):
    out = Path(ctx.settings.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.txt").write_text(str(value))
    return NodeResult(values=(), ui={"text": [str(value)]})


assert INT == "INT"


@node("CliImage", inputs=[IntInput("shade", 0, min=0, max=255)], outputs=[Output("image", "IMAGE")])
def image(ctx, shade):
    """A flat 8x8 picture: an IMAGE for SaveImage without a model."""
    import torch

    return torch.full((1, 8, 8, 3), shade / 255.0)


@node("CliBounded", inputs=[IntInput(name, 1, min=1, limit=name) for name in LIMITS],
      outputs=[], output_node=True)  # fmt: skip
def bounded(ctx, **values):
    """One input bounded by each run limit (`graph.context.LIMITS`), named as the limit: a
    limit added there is here too, for the test that each limit's flag reaches every command."""
    return NodeResult(values=(), ui={"text": [str(sorted(values.items()))]})
