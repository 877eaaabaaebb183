"""The example workflows load, validate and match the committed JSON Schema."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from latentgraph.graph.schema import workflow_schema
from latentgraph.graph.validate import validate
from latentgraph.graph.workflow import load_workflow

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
EXAMPLES = sorted(WORKFLOWS.glob("*.yaml"))


def test_committed_schema_is_current():
    from latentgraph.graph.declare import default_registry
    from latentgraph.graph.node_docs import builtin_only
    from latentgraph.wiring import node_registry

    node_registry()
    committed = json.loads((WORKFLOWS / "schema.json").read_text())
    current = workflow_schema(builtin_only(default_registry))  # plugins other tests loaded: out
    assert committed == json.loads(json.dumps(current)), (
        "workflows/schema.json is stale: latentgraph schema > workflows/schema.json"
    )


@pytest.fixture
def extras_installed(monkeypatch):
    """The optional extras an example names (spandrel, for upscale.yaml) count as installed:
    the examples are checked as workflows; without the extra, refusing upscale.yaml at
    validation is tests/nodes/test_upscale.py's case."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: real("json") if name == "spandrel" else real(name, *a))  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_validates_and_matches_schema(path, extras_installed):
    from latentgraph.wiring import node_registry

    node_registry()  # the built-in nodes, also when this test runs alone
    workflow = load_workflow(path)
    assert [p for p in validate(workflow.graph) if p.severity == "error"] == []
    validator = jsonschema.Draft7Validator(workflow_schema())
    assert [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))] == []


def test_committed_node_reference_is_current():
    from latentgraph.graph.declare import default_registry
    from latentgraph.graph.node_docs import markdown
    from latentgraph.wiring import node_registry

    node_registry()
    committed = (WORKFLOWS.parent / "docs" / "nodes.md").read_text()
    assert committed == markdown(default_registry) + "\n", (
        "docs/nodes.md is stale: latentgraph nodes --markdown > docs/nodes.md"
    )
