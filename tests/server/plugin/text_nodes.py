"""Toy nodes showing text in the editor (`ui={"text": [...]}`), for the editor tests: a
plugin's node the editor has no code of its own for, and one named PreviewAny, which it has.
No torch."""

from __future__ import annotations

from latentgraph.graph import STRING, NodeResult, Output, Registry, Socket, String, node

from .toy_nodes import toy_registry


def text_registry() -> Registry:
    """The toy nodes and the text nodes (a server's worker processes build theirs with it)."""
    registry = toy_registry()

    @node("ShoutText", category="toy", inputs=[String("text", "hello")],
          outputs=[Output("text", STRING)], output_node=True, registry=registry)  # fmt: skip
    def shout_text(ctx, text):
        """docs/custom-nodes.md's first text node: shows its text upper-cased."""
        loud = text.upper() + "!"
        return NodeResult(values=(loud,), ui={"text": [loud]})

    @node("PreviewAny", category="toy", inputs=[Socket("source", STRING)], output_node=True,
          registry=registry)  # fmt: skip
    def preview_any(ctx, source):
        """Stands in for the built-in PreviewAny: the editor shows its text itself."""
        return NodeResult(values=(), ui={"text": [source]})

    return registry
