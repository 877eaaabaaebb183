"""The example workflows load, validate and match the committed JSON Schema."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from latentgraph.graph.schema import workflow_schema
from latentgraph.graph.validate import validate
from latentgraph.graph.workflow import load_workflow

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
EXAMPLES = sorted(WORKFLOWS.glob("*.yaml"))


def shipped_schema() -> dict:
    """What workflows/schema.json must hold: the built-in nodes' schema, whatever plugins this
    process has loaded (other tests', an installed pack)."""
    from latentgraph.graph.declare import default_registry
    from latentgraph.graph.node_docs import builtin_only
    from latentgraph.wiring import node_registry

    node_registry()
    return json.loads(json.dumps(workflow_schema(builtin_only(default_registry))))


def shipped_reference() -> str:
    """What docs/nodes.md must hold (`markdown` covers the built-in nodes only)."""
    from latentgraph.graph.declare import default_registry
    from latentgraph.graph.node_docs import markdown
    from latentgraph.wiring import node_registry

    node_registry()
    return markdown(default_registry) + "\n"


def test_committed_schema_is_current():
    committed = json.loads((WORKFLOWS / "schema.json").read_text())
    assert committed == shipped_schema(), (
        "workflows/schema.json is stale: latentgraph schema --builtin > workflows/schema.json"
    )


def test_regeneration_commands_write_the_shipped_files_with_a_plugin_pack_installed(
    tmp_path, monkeypatch, capsys, fresh_entry_points
):
    """docs/contributing.md's two commands, run where a pack is installed through the
    `latentgraph.nodes` entry-point group, print what the two tests above compare with: `schema`
    without --builtin listed the pack's nodes, so the suggested fix could never pass."""
    from latentgraph.cli import main
    from latentgraph.graph.declare import default_registry

    (tmp_path / "lg_fake_pack.py").write_text(
        "from latentgraph.graph import node\n"
        "@node('FakePackNode', output_node=True)\n"
        "def f(ctx):\n    return ()\n"
    )
    dist = tmp_path / "lg_fake_pack-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lg-fake-pack\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[latentgraph.nodes]\nfake = lg_fake_pack\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["schema"]) == 0  # for the user's editor: the pack's nodes too
        assert "FakePackNode" in json.loads(capsys.readouterr().out)["definitions"]
        assert main(["schema", "--builtin"]) == 0
        assert json.loads(capsys.readouterr().out) == shipped_schema()
        assert main(["nodes", "--markdown"]) == 0
        assert capsys.readouterr().out == shipped_reference()
        assert "FakePackNode" in default_registry  # the pack was installed all along
    finally:
        default_registry.remove("FakePackNode")
        sys.modules.pop("lg_fake_pack", None)


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
    committed = (WORKFLOWS.parent / "docs" / "nodes.md").read_text()
    assert committed == shipped_reference(), (
        "docs/nodes.md is stale: latentgraph nodes --markdown > docs/nodes.md"
    )
