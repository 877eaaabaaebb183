"""`latentgraph nodes` and docs/nodes.md: node types described from their declarations."""

from __future__ import annotations

import math

import pytest

from latentgraph.graph.context import Settings
from latentgraph.graph.declare import Input, NodeType, Output, Registry
from latentgraph.graph.node_docs import builtin_only, describe, listing, markdown


def _type(name: str = "Blur", inputs=(), outputs=(), **kwargs) -> NodeType:
    kwargs.setdefault("module", "latentgraph.nodes.toy")
    return NodeType(name, lambda ctx, **kw: (), tuple(inputs), tuple(outputs), **kwargs)


def _line(i: Input, dynamic: bool = True) -> str:
    return describe(_type(inputs=[i]), dynamic).split("inputs:\n")[1].split("\n\noutputs:")[0]


@pytest.mark.parametrize("i, text", [
    (Input("n", "INT", 3, min=0, max=10), "  n: INT (value or link, default 3; min 0; max 10)"),
    (Input("f", "FLOAT", 0.5, min=0.25, max=1.5), "  f: FLOAT (value or link, default 0.5; "
                                                   "min 0.25; max 1.5)"),
    (Input("x", "INT", 1, min=-(2**62), max=2**62), "  x: INT (value or link, default 1)"),
    (Input("x", "INT", 1, min=-(2**61), max=2**61),
     "  x: INT (value or link, default 1; min -2305843009213693952; max 2305843009213693952)"),
    (Input("color", "INT", 0, min=0, max=16777215),
     "  color: INT (value or link, default 0; min 0; max 16777215)"),
    (Input("f", "FLOAT", 0.5, min=0.001, max=16777215.5),
     "  f: FLOAT (value or link, default 0.5; min 0.001; max 16777215.5)"),
    (Input("x", "FLOAT", 1.0, min=-math.inf, max=math.inf), "  x: FLOAT (value or link, "
                                                            "default 1.0)"),
    (Input("x", "FLOAT", 1.0, min=0.0), "  x: FLOAT (value or link, default 1.0; min 0)"),
    (Input("x", "FLOAT", -1.0, max=-1.0), "  x: FLOAT (value or link, default -1.0; max -1)"),
    (Input("s", "STRING", "a 'q'"), "  s: STRING (value or link, default \"a 'q'\")"),
    (Input("s", "STRING", "", multiline=True), "  s: STRING (value or link, default ''; multiline)"),
    (Input("seed", "INT", 0, min=0, seed=True), "  seed: INT (value or link, default 0; min 0; seed)"),
    (Input("c", "COMBO", "a", choices=["a", "b", "c"]),
     "  c: COMBO (value or link, default 'a'; one of: a, b, c)"),
    (Input("c", "COMBO", choices=[]), "  c: COMBO (value or link, required)"),
    (Input("latent", "LATENT", kind="socket"), "  latent: LATENT (link, required)"),
    (Input("mask", "MASK", kind="socket", optional=True), "  mask: MASK (link, optional)"),
    (Input("k", "INT", optional=True), "  k: INT (value or link, optional)"),
    (Input("k", "INT", None, optional=True), "  k: INT (value or link, default None)"),
    (Input("k", "INT", min=1, max=4, multiline=True, seed=True, description="how many"),
     "  k: INT (value or link, required; min 1; max 4; multiline; seed)\n      how many"),
])  # fmt: skip
def test_input_lines(i, text):
    assert _line(i) == text


def test_run_time_choices_are_listed_only_when_dynamic():
    asked = []

    def files(settings: Settings) -> list[str]:
        asked.append(settings)
        return ["b.safetensors", "a.safetensors"]

    i = Input("ckpt", "COMBO", choices=files)
    assert _line(i, dynamic=False) == (
        "  ckpt: COMBO (value or link, required; one of the files found at run time)")  # fmt: skip
    assert asked == []
    assert (
        _line(i) == "  ckpt: COMBO (value or link, required; one of: b.safetensors, a.safetensors)"
    )
    assert asked == [Settings()]
    assert "one of: b.safetensors, a.safetensors" in describe(_type(inputs=[i]))  # the default
    listed = Input("c", "COMBO", choices=["x"])
    assert _line(listed, dynamic=False) == "  c: COMBO (value or link, required; one of: x)"


def test_describe_a_full_node_type():
    t = _type("Blur", version=3, display_name="Gaussian blur", category="image/filters",
              description="Blurs an image.\n\nLonger text.", output_node=True,
              deterministic=False, inputs=[Input("image", "IMAGE", kind="socket"),
                                           Input("radius", "FLOAT", 1.0, min=0, max=50)],
              outputs=[Output("image", "IMAGE", description="the blurred image"),
                       Output("mask", "MASK")])  # fmt: skip
    assert describe(t) == "\n".join([
        "Blur (v3) - Gaussian blur",
        "category: image/filters; output node, non-deterministic: always re-runs",
        "",
        "Blurs an image.\n\nLonger text.",
        "",
        "inputs:",
        "  image: IMAGE (link, required)",
        "  radius: FLOAT (value or link, default 1.0; min 0; max 50)",
        "",
        "outputs:",
        "  image: IMAGE  the blurred image",
        "  mask: MASK",
    ])  # fmt: skip


def test_describe_a_bare_node_type():
    assert describe(_type("Bare")) == "\n".join([
        "Bare (v1) - Bare", "category: latentgraph", "", "inputs:", "  (none)", "",
        "outputs:", "  (none)"])  # fmt: skip
    assert describe(_type("Det", deterministic=False)).split("\n")[1] == (
        "category: latentgraph; non-deterministic: always re-runs")  # fmt: skip
    assert describe(_type("Out", output_node=True)).split("\n")[1] == (
        "category: latentgraph; output node")  # fmt: skip


def test_listing_groups_by_sorted_category():
    registry = Registry()
    for t in (_type("Zeta", category="b/x", description="Last letter.\nMore."),
              _type("Alpha", category="b/x", display_name="First one"),
              _type("Mid", category="a")):  # fmt: skip
        registry.add(t)
    assert listing(registry) == "\n".join([
        "a:",
        "  Mid    Mid",
        "b/x:",
        "  Alpha  First one",
        "  Zeta   Last letter.",
    ])  # fmt: skip
    assert listing(Registry()) == ""


def test_listing_lines_up_the_descriptions_past_the_longest_name():
    """A name longer than the 26 columns the names had ran into its description, one space
    after it, out of line with the rows above and below (ConditioningSetTimestepRange)."""
    registry = Registry()
    for t in (_type("Short", category="c", description="One."),
              _type("ConditioningSetAreaPercentageLonger", category="c", description="Two.")):  # fmt: skip
        registry.add(t)
    rows = listing(registry).splitlines()[1:]
    assert len({row.index(row.split()[-1]) for row in rows}) == 1, rows  # one column
    assert all("  " in row.strip() for row in rows), rows  # two spaces after the longest too


def test_builtin_only_and_markdown():
    registry = Registry()
    shipped = _type("Shipped", module="latentgraph.nodes.images",
                    inputs=[Input("ckpt", "COMBO", choices=lambda s: ["machine.ckpt"])])  # fmt: skip
    registry.add(shipped)
    registry.add(_type("Plugin", module="latentgraph_plugin_x_123"))
    registry.add(_type("Bare", module="latentgraph"))
    registry.add(_type("Other", module="somepack.latentgraph.nodes"))
    assert [t.name for t in builtin_only(registry)] == ["Shipped"]
    assert markdown(registry) == "\n".join([
        "# Node reference", "", "Generated by `latentgraph nodes --markdown`; do not edit.", "",
        "## Shipped", "", "```", describe(shipped, dynamic=False), "```", ""])  # fmt: skip
    assert "machine.ckpt" not in markdown(registry)
