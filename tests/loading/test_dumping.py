"""Writing workflows: the document's shape, links by output name, `$` escaped at every depth,
the YAML text itself (unicode, long lines, quoting), and `text_with_params` (what a saved PNG
embeds: the document as written with the params a run used)."""

from __future__ import annotations

import math

import pytest
import yaml

from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.workflow import (
    dump_workflow,
    graph_to_document,
    load_workflow,
    text_with_params,
)

from .test_workflow import GOOD


def test_the_document_has_its_version_and_unknown_types_keep_their_links(registry):
    graph = Graph(source="g")
    graph.add(Node("a", "Mystery", {}))
    graph.add(Node("c", "Const", {"value": 2}))
    graph.add(Node("b", "Mystery", {"x": Link("a", 0), "y": Link("c", 0), "z": Link("c", 1),
                                    "w": Link("gone", 3)}))  # fmt: skip
    doc = graph_to_document(graph, registry)
    assert doc["version"] == 1
    # unknown type: every link is written {from: ...}; an output name when the target's type
    # has it, else its index
    assert doc["nodes"]["b"] == {"type": "Mystery", "x": {"from": "a.0"},
                                 "y": {"from": "c.value"}, "z": {"from": "c.1"},
                                 "w": {"from": "gone.3"}}  # fmt: skip


def test_dollars_are_escaped_inside_lists_dicts_and_tuples(registry):
    graph = Graph(source="g")
    graph.add(Node("m", "Mystery", {"l": ["$a", ["$b"]], "d": {"k": "$c"}, "t": ("$d", 1)},
                   title="$t"))  # fmt: skip
    doc = graph_to_document(graph, registry)
    assert doc["nodes"]["m"] == {"type": "Mystery", "title": "$$t", "l": ["$$a", ["$$b"]],
                                 "d": {"k": "$$c"}, "t": ["$$d", 1]}  # fmt: skip


def test_the_yaml_text_keeps_order_unicode_and_long_lines(registry):
    wf = load_workflow("w.yaml", text=GOOD, registry=registry)
    wf.graph["s"].inputs["note"] = "café " + "word " * 30
    text = dump_workflow(wf.graph, registry, params={"z": 1, "a": 2})
    assert text.startswith("version: 1\nparams:\n  z: 1\n  a: 2\nnodes:\n  c:\n")  # as given
    assert "description" not in text  # none given: none written
    assert "café" in text  # not \xe9 escapes
    assert "\n    x: c.value\n" in text  # a socket of a known type: the link written bare
    note = [line for line in text.splitlines() if "note:" in line]
    assert len(note) == 1  # one line of up to 100 columns is folded at 100, not at 80
    assert len(note[0]) > 90


@pytest.mark.parametrize(("text", "style"), [("a\u2028b", '"'), ("0E0", "'"), ("plain", "")])
def test_strings_are_quoted_only_as_needed(registry, text, style):
    graph = Graph(source="g")
    graph.add(Node("m", "Mystery", {"s": text}))
    line = [x for x in dump_workflow(graph, registry).splitlines() if x.startswith("    s:")][0]
    value = line.removeprefix("    s: ")
    assert value[:1] == style if style else value == text
    assert load_workflow("x.yaml", text=dump_workflow(graph, registry)).graph["m"].inputs == {
        "s": text}  # fmt: skip


WRITTEN = """\
# the comment stays
params:
  n: 5   # steps
  label: |
    hello
  keep: 1
nodes:
  c: {type: Const, value: $n}
"""


def test_text_with_params_replaces_only_the_changed_params_in_place():
    text = text_with_params(WRITTEN, {"n": 5, "label": "hello\n", "keep": 1},
                            {"n": 1700, "label": "café", "keep": 1})  # fmt: skip
    assert text == WRITTEN.replace("n: 5 ", "n: 1700 ").replace("|\n    hello\n", '"café"\n')
    assert yaml.safe_load(text)["params"] == {"n": 1700, "label": "café", "keep": 1}


def test_text_with_params_unchanged_is_the_same_text():
    assert text_with_params(WRITTEN, {"n": 5}, {"n": 5}) is WRITTEN
    assert text_with_params("nodes: {}\n", None, {}) == "nodes: {}\n"


def test_text_with_params_when_the_declared_params_are_not_a_mapping():
    text = "params:\n  n: 5\nnodes: {}\n"
    assert text_with_params(text, None, {"n": 6}) == "params:\n  n: 6\nnodes: {}\n"
    assert text_with_params("nodes: {}\n", None, {"n": 6}) == "nodes: {}\n"  # no block


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.5, "text", [1, "a"]])
def test_a_param_written_in_place_reads_back_the_same(value):
    text = text_with_params("params:\n  p: 0\n  q: 1\n", {"p": 0, "q": 1}, {"p": value, "q": 1})
    read = yaml.safe_load(text)["params"]
    assert read["q"] == 1
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(read["p"])
    else:
        assert read["p"] == value
