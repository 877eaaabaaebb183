"""Events as `--json` prints them: each one's kind and fields, never the preview image, and a
timestamp in milliseconds."""

from __future__ import annotations

import time

import pytest

from latentgraph.graph.events import (
    NodeFailed,
    NodeFinished,
    NodeProgress,
    NodesCached,
    NodeStarted,
    NodeWarning,
    RunFinished,
    RunStarted,
)


@pytest.mark.parametrize(("event", "fields"), [
    (RunStarted("r", timestamp=1), {"event": "run_started", "nodes": []}),
    (NodesCached("r", timestamp=1, nodes=["a"]), {"event": "nodes_cached", "nodes": ["a"]}),
    (NodeStarted("r", timestamp=1), {"event": "node_started", "node_id": "", "node_type": ""}),
    (NodeProgress("r", timestamp=1, node_id="k", value=2, max=5, preview=object()),
     {"event": "node_progress", "node_id": "k", "value": 2, "max": 5}),
    (NodeWarning("r", timestamp=1, message="careful"),
     {"event": "node_warning", "node_id": "", "node_type": "", "message": "careful",
      "input": None}),
    (NodeFinished("r", timestamp=1),
     {"event": "node_finished", "node_id": "", "node_type": "", "cached": False, "seconds": 0.0,
      "summary": [], "ui": None}),
    (NodeFailed("r", timestamp=1),
     {"event": "node_failed", "node_id": "", "node_type": "", "message": "",
      "exception_type": "", "traceback": [], "inputs": {},
      "user_error": False, "input": None}),
    (RunFinished("r", timestamp=1),
     {"event": "run_finished", "status": "success", "executed": [], "cached": [], "failed": [],
      "interrupted": [], "skipped": [], "seconds": 0.0, "interrupted_node": None}),
])  # fmt: skip
def test_each_event_serializes_its_kind_and_fields(event, fields):
    assert event.to_json() == {**fields, "run_id": "r", "timestamp": 1}
    assert next(iter(event.to_json())) == "event"  # first on the line, for people reading it


def test_the_timestamp_is_now_in_milliseconds():
    before = int(time.time() * 1000)
    stamp = RunStarted("r").timestamp
    assert before <= stamp <= int(time.time() * 1000)
