"""Toy node types (pure Python) in a registry of their own, for the loading tests."""

from __future__ import annotations

import pytest

from latentgraph.graph.declare import (
    ANY,
    Bool,
    Choice,
    Float,
    Int,
    Output,
    Registry,
    Socket,
    String,
    node,
)

NUMBER = "NUMBER"
TEXT = "TEXT"


def make_registry() -> Registry:
    registry = Registry()

    @node("Const", inputs=[Int("value", 0, min=-1000, max=1000)],
          outputs=[Output("value", NUMBER)], registry=registry)  # fmt: skip
    def const(ctx, value):
        return value

    @node("Add", inputs=[Socket("a", NUMBER), Socket("b", NUMBER, optional=True)],
          outputs=[Output("sum", NUMBER)], registry=registry)  # fmt: skip
    def add(ctx, a, b=0):
        return a + b

    @node("Split", inputs=[Socket("x", NUMBER)],
          outputs=[Output("low", NUMBER), Output("high", NUMBER)], registry=registry)  # fmt: skip
    def split(ctx, x):
        return x - 1, x + 1

    @node(
        "Scale",
        inputs=[
            Socket("x", NUMBER),
            Float("factor", 1.0, min=0.0, max=10.0),
            Float("free", 0.0),
            Int("seed", 0, seed=True),
            Bool("flip", False),
            Choice("mode", ["fast", "slow", "exact"], "fast"),
            String("note", "", max_length=10),
            Int("width", 64, min=8, max=100000, limit="max_image_pixels"),
            Int("height", 64, min=8, max=100000, limit="max_image_pixels"),
        ],
        outputs=[Output("y", NUMBER)],
        registry=registry,
    )
    def scale(ctx, x, factor, free, seed, flip, mode, note, width, height):
        return x * factor

    @node("Format", inputs=[String("template", multiline=True), Socket("value", ANY, optional=True)],
          outputs=[Output("text", TEXT)], registry=registry)  # fmt: skip
    def format_(ctx, template, value=None):
        return template.format(value)

    @node("Show", inputs=[Socket("value", ANY)], output_node=True, registry=registry)
    def show(ctx, value):
        return ()

    @node("ShowNumber", inputs=[Socket("value", NUMBER)], output_node=True, registry=registry)
    def show_number(ctx, value):
        return ()

    def check_range(inputs, settings):
        if inputs["low"] > inputs["high"]:
            return [("low", "low must not be above high")]
        return []

    @node("Range", inputs=[Int("low", 0), Int("high", 10)], outputs=[Output("value", NUMBER)],
          check=check_range, registry=registry)  # fmt: skip
    def range_(ctx, low, high):
        return high - low

    return registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    return make_registry()


@pytest.fixture
def fresh_entry_points():
    """The installed entry points read anew in this test (a process reads them once, then
    keeps them: `plugins.installed_entry_points`), and again by whatever runs after it."""
    from latentgraph.graph.plugins import installed_entry_points

    installed_entry_points.cache_clear()
    yield
    installed_entry_points.cache_clear()
