"""`latentgraph submit` of a run where nodes fail prints what `latentgraph run` prints for the
same workflow: the engine runs on past a failed node, and the server tells the client of each
failure as it happens (`node_error`), not only of the first one at the run's end."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import pytest

from latentgraph.wiring import worker_registry

from .test_submit_cli import _running

PACK = Path(__file__).parent / "failing_plugin"

# A node crashing, and beside it nodes that do not need it (they still run).
CRASH = """\
version: 1
nodes:
  cr: {type: TP_Crash, n: 0}
  show2: {type: TP_Show, text: "x", value: {from: cr.v}}
  clk: {type: TP_Clock}
  show3: {type: TP_Show, text: {from: clk.t}}
"""
# Two independent failures: a node refusing its input (InputError) and a crash.
TWO = """\
version: 1
nodes:
  rf: {type: TP_Refuse, n: -1}
  show1: {type: TP_Show, text: "y", value: {from: rf.v}}
  cr: {type: TP_Crash, n: 0}
  show2: {type: TP_Show, text: "x", value: {from: cr.v}}
  clk: {type: TP_Clock}
  show3: {type: TP_Show, text: {from: clk.t}}
"""


@pytest.fixture(scope="module")
def pack_server(tmp_path_factory):
    """`latentgraph serve --nodes-dir failing_plugin`."""
    yield from _running(tmp_path_factory, "pack-server", partial(worker_registry, (PACK,)))


def _lines(err: str) -> list[str]:
    """The run's lines, less what differs between two runs: times, the clock's tick, and the
    outputs' summary a local run adds to its 'done' lines."""
    err = re.sub(r" in \d+\.\d+s$", "", err, flags=re.M)
    err = re.sub(r"tick \d+", "tick N", err)
    return [re.sub(r"^(done \S+ \(\w+\)) .*", r"\1", line) for line in err.splitlines()]


def _story(out: str) -> list[tuple]:
    """The JSON lines as what happened to which node, and the run's end with every list."""
    told = []
    for event in map(json.loads, out.splitlines()):
        kind = event["event"]
        if kind == "run_finished":
            told.append((kind, event["status"], event["executed"], event["cached"],
                         event["failed"], event["skipped"]))  # fmt: skip
        elif kind == "node_failed":
            told.append((kind, event["node_id"], event["message"], event["exception_type"],
                         event["user_error"], event["input_name"]))  # fmt: skip
        else:
            told.append((kind, event.get("node_id"), event.get("nodes")))
    return told


@pytest.mark.parametrize("workflow", [CRASH, TWO], ids=["crash", "two-failures"])
def test_submit_of_a_failing_run_prints_what_run_prints(pack_server, cli, tmp_path, workflow):
    """Side by side, text and --json: the failed node is no 'done', the nodes beside it that
    ran are counted and show their output, every failure is told (the second one was lost,
    its node 'skipped'), the same counts and exit code."""
    (tmp_path / "wf.yaml").write_text(workflow)
    pack = ("--nodes-dir", str(PACK))
    ran = cli("run", "wf.yaml", *pack, plugin=False)
    sent = cli("submit", "wf.yaml", "--server", pack_server.url)
    assert ran[0] == sent[0] == 1, (ran, sent)
    assert _lines(sent[2]) == _lines(ran[2]), sent[2]
    assert "error: wf.yaml:" in sent[2] and "show3: tick" in sent[2]

    ran = cli("run", "wf.yaml", "--json", *pack, plugin=False)
    sent = cli("submit", "wf.yaml", "--server", pack_server.url, "--json")
    assert ran[0] == sent[0] == 1, (ran, sent)
    assert _story(sent[1]) == _story(ran[1])


def test_the_history_keeps_every_nodes_failure(pack_server, cli, tmp_path):
    """Each failed node's `node_error` in the prompt's status messages, and ComfyUI's one
    `execution_error` (the first failure) ending them; the nodes that ran are its `executed`
    and their outputs are kept."""
    (tmp_path / "wf.yaml").write_text(TWO)
    code, out, _ = cli("submit", "wf.yaml", "--server", pack_server.url, "--json")
    assert code == 1
    prompt_id = json.loads(out.splitlines()[0])["run_id"]
    entry = pack_server.http.get(f"/history/{prompt_id}").json()[prompt_id]
    messages = entry["status"]["messages"]
    errors = [(d["node_id"], d["user_error"], d["exception_message"])
              for t, d in messages if t == "node_error"]  # fmt: skip
    assert errors == [("rf", True, "node 'rf' (TP_Refuse) input 'n': -1 is negative"),
                      ("cr", False, "division by zero")]  # fmt: skip
    [end] = [d for t, d in messages if t == "execution_error"]
    assert messages[-1][0] == "execution_error"
    assert (end["node_id"], end["executed"]) == ("rf", ["clk", "show3"])
    assert list(entry["outputs"]) == ["show3"]
