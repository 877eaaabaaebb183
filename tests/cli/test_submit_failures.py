"""`latentgraph submit` of a run prints what `latentgraph run` prints for the same workflow: the
engine runs on past a failed node, and the server tells the client of each failure as it
happens (`node_error`), not only of the first one at the run's end; of each node that ran, its
outputs as `run` describes them (`node_finished`); and each node's warning (`node_warning`)."""

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
# A run that succeeds with a node's warning (`ctx.warn`), and outputs to describe.
WARN = """\
version: 1
nodes:
  rd: {type: TP_Round, value: 2.4}
  show: {type: TP_Show, text: "r", value: {from: rd.v}}
  clk: {type: TP_Clock}
  show3: {type: TP_Show, text: {from: clk.t}}
"""


@pytest.fixture(scope="module")
def pack_server(tmp_path_factory):
    """`latentgraph serve --nodes-dir failing_plugin`."""
    yield from _running(tmp_path_factory, "pack-server", partial(worker_registry, (PACK,)))


def _lines(err: str) -> list[str]:
    """The run's lines, less what differs between two runs: times and the clock's tick. (A
    'done' line keeps its outputs' summary: `done rd (TP_Round) 0.00s v: 2.0`.)"""
    err = re.sub(r"\b\d+\.\d+s\b", "T", err)
    return re.sub(r"tick \d+", "tick N", err).splitlines()


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
                         event["user_error"], event["input"], event["inputs"]))  # fmt: skip
        elif kind == "node_finished":
            summary = [re.sub(r"tick \d+", "tick N", line) for line in event["summary"]]
            told.append((kind, event["node_id"], event["cached"], summary, event["ui"]))
        elif kind == "node_warning":
            told.append((kind, event["node_id"], event["node_type"], event["message"],
                         event["input"]))  # fmt: skip
        else:
            told.append((kind, event.get("node_id"), event.get("nodes")))
    return told


@pytest.mark.parametrize("workflow", [CRASH, TWO], ids=["crash", "two-failures"])
def test_submit_of_a_failing_run_prints_what_run_prints(pack_server, cli, tmp_path, workflow):
    """Side by side, text and --json: the failed node is no 'done', the nodes beside it that
    ran are counted and show their output, every failure is told (the second one was lost,
    its node 'skipped') with the node's inputs (submit's were {}), the same counts and exit
    code."""
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
    crash = next(e for e in _story(sent[1]) if e[:2] == ("node_failed", "cr"))
    assert crash[-1] == {"n": 0}, crash


def test_submit_prints_outputs_and_warnings_as_run_does(pack_server, cli, tmp_path):
    """A run that succeeds, side by side, text and --json: each 'done' line with its outputs'
    summary (submit printed none, and a trailing space), the node's warning at its place
    (submit printed none: the server kept it in history only), no line ending in a space (a
    node with no outputs, a save's, had one in every mode)."""
    (tmp_path / "wf.yaml").write_text(WARN)
    pack = ("--nodes-dir", str(PACK))
    ran = cli("run", "wf.yaml", *pack, plugin=False)
    sent = cli("submit", "wf.yaml", "--server", pack_server.url)
    assert ran[0] == sent[0] == 0, (ran, sent)
    assert _lines(sent[2]) == _lines(ran[2]), sent[2]
    assert "warning: wf.yaml:" in sent[2] and "2.4 rounded to 2" in sent[2], sent[2]
    assert "(TP_Round) " in sent[2] and "s v: 2.0" in sent[2], sent[2]
    for err in (ran[2], sent[2]):
        assert not [line for line in err.splitlines() if line.endswith(" ")], err

    (tmp_path / "wf.yaml").write_text(WARN.replace("2.4", "2.6"))  # no cache hit: all run
    ran = cli("run", "wf.yaml", "--json", *pack, plugin=False)
    sent = cli("submit", "wf.yaml", "--server", pack_server.url, "--json")
    assert ran[0] == sent[0] == 0, (ran, sent)
    assert _story(sent[1]) == _story(ran[1])
    assert ("node_warning", "rd", "TP_Round", "2.6 rounded to 3", None) in _story(sent[1])
    assert ("node_finished", "rd", False, ["v: 3.0"], None) in _story(sent[1])


def test_the_history_keeps_every_nodes_failure(pack_server, cli, tmp_path):
    """Each failed node's `node_error` in the prompt's status messages, and ComfyUI's one
    `execution_error` (the first failure) ending them; the nodes that ran are its `executed`
    and their outputs are kept. The server's log (the editor's Logs panel) has a line for each
    failed node too, not only for the first."""
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
    lines = [e["m"] for e in pack_server.http.get("/internal/logs/raw").json()["entries"]]
    said = [m.splitlines()[0] for m in lines if f" prompt {prompt_id} failed" in m]
    head = f"ERROR latentgraph.server: prompt {prompt_id} failed at node"
    assert said == [f"{head} 'rf' (TP_Refuse): node 'rf' (TP_Refuse) input 'n': -1 is negative",
                    f"{head} 'cr' (TP_Crash): division by zero"], lines  # fmt: skip
