"""dump_workflow writes every string so that load_workflow reads back the same text.

PyYAML quotes by YAML 1.1 rules, our reader types plain scalars by YAML 1.2 rules: a string
that 1.1 calls text but 1.2 calls a number (`0E0`, `+1`, `0o17`) was written bare and read
back as a number.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from latentgraph.graph.model import Graph, Link, Node
from latentgraph.graph.workflow import dump_workflow, load_workflow

from .conftest import make_registry

REGISTRY = make_registry()

# Strings YAML 1.2 core types as null, bool, int or float (some YAML 1.1 does not), and
# strings both agree are text.
NOT_TEXT_IN_1_2 = ["0E0", "1e5", "+1", "-0", ".5", "1.", "+.5e-3", "0o17", "0x1F", "-.inf",
                   ".NaN", "null", "~", "", "True", "FALSE", "007", "1E+2"]  # fmt: skip
TEXT_IN_BOTH = ["yes", "on", "1:20", "0b101", "1_000", "e5", "0x", "Infinity", ".", "-"]


def round_trip(text: str) -> tuple[str, str | None, object, str]:
    graph = Graph()
    graph.add(Node("f", "Format", {"template": text}, title=text))
    graph.add(Node("s", "Show", {"value": Link("f", 0)}))
    dumped = dump_workflow(graph, REGISTRY, params={"p": text}, description=text)
    loaded = load_workflow("r.yaml", text=dumped, registry=REGISTRY)
    node = loaded.graph["f"]
    return node.inputs["template"], node.title, loaded.params["p"], loaded.description


@pytest.mark.parametrize("text", NOT_TEXT_IN_1_2 + TEXT_IN_BOTH)
def test_strings_that_look_like_other_scalars_round_trip(text):
    assert round_trip(text) == (text, text, text, text)


number_like = st.from_regex(
    r"\A[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z|\A0o[0-7]+\Z|\A0x[0-9a-fA-F]+\Z"
)


@given(number_like | st.text(max_size=12))
@example("0E0")  # the report that opened this: read back as 0.0
@example("+1")
def test_any_text_round_trips_through_dump_and_load(text):
    assert round_trip(text) == (text, text, text, text)
