"""The loader's own limits at their boundaries: document size and nesting depth."""

from __future__ import annotations

import pytest

from latentgraph.graph.problems import WorkflowError
from latentgraph.graph.workflow import MAX_BYTES, MAX_DEPTH, load_workflow, reading

HEAD = "nodes:\n  c: {type: Const}\n  o: {type: ShowNumber, value: c}\n"


def padded(size: int) -> str:
    """A valid workflow of exactly `size` bytes (a trailing comment)."""
    return HEAD + "#" + "x" * (size - len(HEAD) - 2) + "\n"


def limit_problems(**kw) -> list[str]:
    try:
        load_workflow(registry=kw.pop("registry"), **kw)
    except WorkflowError as exc:
        return [p.code for p in exc.problems]
    return []


@pytest.mark.parametrize("from_file", [False, True], ids=["text", "file"])
def test_size_at_the_limit_is_read_and_one_byte_more_refused(registry, tmp_path, monkeypatch,
                                                             from_file):  # fmt: skip
    # Parsing 5 MB of YAML takes PyYAML seconds: the same rule, at a smaller bound.
    limit = 4096
    assert MAX_BYTES > limit
    monkeypatch.setattr(reading, "MAX_BYTES", limit)

    def load(size: int) -> list[str]:
        text = padded(size)
        assert len(text.encode()) == size
        if from_file:
            path = tmp_path / f"w{size}.yaml"
            path.write_text(text)
            return limit_problems(source=path, registry=registry)
        return limit_problems(source="w.yaml", text=text, registry=registry)

    assert load(limit) == []
    assert load(limit + 1) == ["limit_exceeded"]
    assert load(limit - 1) == []


def nested(levels: int, json: bool) -> str:
    """A workflow whose Const.value is a list nested `levels` deep (the document itself,
    `nodes` and the node's mapping are three more levels)."""
    value = "[" * levels + "]" * levels
    if json:
        return '{"nodes": {"c": {"type": "Const", "value": ' + value + "}}}"
    return "nodes:\n  c: {type: Const, value: " + value + "}\n"


@pytest.mark.parametrize("json", [False, True], ids=["yaml", "json"])
def test_depth_at_the_limit_is_read_and_one_level_more_refused(registry, json):
    name = "w.json" if json else "w.yaml"
    at = limit_problems(source=name, text=nested(MAX_DEPTH - 3, json), registry=registry)
    assert "limit_exceeded" not in at
    over = limit_problems(source=name, text=nested(MAX_DEPTH - 2, json), registry=registry)
    assert over == ["limit_exceeded"]
