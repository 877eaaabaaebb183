"""Our own endpoint (latentgraph YAML/JSON + params) and the `latentgraph submit` client."""

from __future__ import annotations

import json
import os
import stat

WORKFLOW = """\
version: 1
params:
  v: 4
nodes:
  n:
    type: Number
    value: $v
  a:
    type: Add
    a: n
    b: n
  s:
    type: Show
    x: a
    prefix: yml
"""


def test_run_yaml_with_overrides(server, ws):
    client = ws()
    r = server.http.post("/latentgraph/run", params={"set": "v=5", "client_id": client.client_id},
                         content=WORKFLOW, headers={"content-type": "application/yaml"})  # fmt: skip
    assert r.status_code == 200, r.text
    pid = r.json()["prompt_id"]
    msgs = client.until_done(pid)
    executed = next(m["data"] for m in msgs if m["type"] == "executed")
    assert executed["output"]["images"][0]["filename"] == "yml_10.png"


def test_run_json_body_with_params(server, ws):
    client = ws()
    body = {"workflow": WORKFLOW, "params": {"v": 6}, "client_id": client.client_id}
    r = server.http.post("/api/latentgraph/run", json=body)
    assert r.status_code == 200, r.text
    msgs = client.until_done(r.json()["prompt_id"])
    assert any(m["type"] == "execution_success" for m in msgs)


def test_run_invalid_workflow_names_the_place(server):
    bad = WORKFLOW.replace("type: Add", "type: Addd")
    r = server.http.post("/latentgraph/run", params={"name": "wf.yaml"}, content=bad,
                         headers={"content-type": "application/yaml"})  # fmt: skip
    assert r.status_code == 400
    problems = r.json()["problems"]
    assert problems and problems[0]["node_id"] == "a"
    assert problems[0]["location"].startswith("wf.yaml:")
    r = server.http.post(
        "/latentgraph/run", content=b"{", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_json"
    r = server.http.post("/latentgraph/run", json={"params": {}})
    assert r.status_code == 400


def test_a_body_that_is_not_utf8_is_refused_at_its_line_as_the_cli_refuses_it(server):
    """A Shift-JIS body got "the workflow must be UTF-8 text", with no place; a UTF-16 one
    (Windows Notepad's "Unicode") the same. Now the CLI's words at the line:col, the body named
    by `name=` (else `<request>`), UTF-16 named as such."""
    sjis = WORKFLOW.replace("prefix: yml", "prefix: 猫").encode("shift_jis")
    offset = sjis.index("猫".encode("shift_jis"))
    for params, where in (({"name": "sjis.yaml"}, "sjis.yaml:15:13"), ({}, "<request>:15:13")):
        r = server.http.post("/latentgraph/run", params=params, content=sjis,
                             headers={"content-type": "application/yaml"})  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_workflow"
        assert [(p["location"], p["message"]) for p in r.json()["problems"]] == [
            (where, f"the file is not UTF-8 text (byte 0x{sjis[offset]:02x} at offset {offset})")]  # fmt: skip
    for encoding in ("utf-16", "utf-16-be"):
        utf16 = (b"\xfe\xff" if encoding == "utf-16-be" else b"") + WORKFLOW.encode(encoding)
        r = server.http.post("/latentgraph/run", params={"name": "wf.yaml"}, content=utf16,
                             headers={"content-type": "application/yaml"})  # fmt: skip
        assert r.status_code == 400
        assert [(p["location"], p["message"]) for p in r.json()["problems"]] == [
            ("wf.yaml:1:1", "the file is UTF-16; save it as UTF-8")]  # fmt: skip


def test_submit_downloads_outputs(server, tmp_path, capsys):
    from latentgraph.server.submit import submit

    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    out = tmp_path / "out"
    umask = os.umask(0o022)
    try:
        code = submit(wf, server.url, {"v": 8}, output_dir=out, as_json=True)
    finally:
        os.umask(umask)
    assert code == 0
    assert (out / "yml_16.png").read_bytes().startswith(b"\x89PNG")
    assert stat.S_IMODE((out / "yml_16.png").stat().st_mode) == 0o644  # the user's umask
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in lines]
    assert kinds[0] == "run_started" and kinds[-2:] == ["run_finished", "downloaded"]
    assert lines[-2]["status"] == "success"
    assert lines[-2]["seconds"] > 0  # measured from queueing, not left at zero
    assert (lines[-1]["path"], lines[-1]["kept"]) == (str(out / "yml_16.png"), False)
    assert "node_started" in kinds and "node_finished" in kinds


def test_submit_errors(server, tmp_path):
    from latentgraph.server.submit import submit

    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW.replace("type: Add", "type: Addd"))
    assert submit(wf, server.url, {}, output_dir=tmp_path, quiet=True) == 2
    assert submit(tmp_path / "missing.yaml", server.url, {}, quiet=True) == 2
    wf.write_text(WORKFLOW)
    assert submit(wf, "http://127.0.0.1:9", {}, quiet=True) == 3


def test_submit_summary_counts_every_node_of_an_interrupted_or_failed_run():
    """As a local run's summary does: what ran, came from cache, failed or was stopped, and
    the rest skipped (before, the stopped node and the skipped ones were in no list)."""
    from latentgraph.graph import events as ev
    from latentgraph.server.submit import PromptEvents

    prompt = {n: {"class_type": "T", "inputs": {}} for n in ("a", "b", "c", "d")}
    for end, data, expected in [
        ("execution_interrupted", {"node_id": "c"}, {"interrupted": ["c"], "failed": []}),
        ("execution_error", {"node_id": "c", "node_type": "T"},
         {"interrupted": [], "failed": ["c"]}),
    ]:  # fmt: skip
        seen: list[ev.Event] = []
        events = PromptEvents("p", prompt, seen.append)
        events.handle("execution_start", {})
        events.handle("execution_cached", {"nodes": ["a"]})
        events.handle("executing", {"node": "b"})
        events.handle("executing", {"node": "c"})
        events.handle(end, data)
        [summary] = [e for e in seen if isinstance(e, ev.RunFinished)]
        assert summary.executed == ["b"] and summary.cached == ["a"]
        assert (summary.interrupted, summary.failed) == (expected["interrupted"],
                                                         expected["failed"])  # fmt: skip
        assert summary.skipped == ["d"]


def test_a_bad_param_is_named_as_the_request_gave_it(server):
    """A web client gave no `--set`: the refusal said "--set v=abc ($v at <request>:...)"
    for a JSON body's params. It names the param as the request gave it: the JSON body's
    `params.v='abc'`, the URL's `set=v=abc` (also beside a JSON body whose params leave it),
    or as the client says it was given (`given_as`: `latentgraph submit`'s `--set`)."""

    def refusal(query=None, **body):
        r = server.http.post("/latentgraph/run", params=query, json=body) if body else \
            server.http.post("/latentgraph/run", params=query, content=WORKFLOW,
                             headers={"content-type": "application/yaml"})  # fmt: skip
        assert r.status_code == 400, r.text
        return [p["text"] for p in r.json()["problems"]]

    [json_body] = refusal(workflow=WORKFLOW, params={"v": "abc"})
    assert json_body.startswith("params.v='abc' ($v at <request>:7:12): node 'n' input 'value': ")
    [query] = refusal({"set": "v=abc"})
    assert query.startswith("set=v=abc ($v at <request>:7:12): node 'n' input 'value': ")
    [both] = refusal({"set": "v=abc"}, workflow=WORKFLOW, params={})
    assert both == query
    [flag] = refusal(workflow=WORKFLOW, params={"v": "abc"}, given_as="--set")
    assert flag.startswith("--set v=abc ($v at <request>:7:12): ")
    [unknown] = refusal(workflow=WORKFLOW, params={"w": 1})
    assert unknown == "<request>:3:3: params.w: the workflow has no param 'w' (params: v)"
    [unknown] = refusal({"set": "w=1"})
    assert unknown.startswith("<request>:3:3: set=w: the workflow has no param 'w'")
    r = server.http.post("/latentgraph/run", json={"workflow": WORKFLOW, "given_as": "\n"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_param"


def test_a_params_problem_is_placed_as_the_request_gave_it_as_documented(server):
    """A problem's `location` is the place its error line names (`validate --json`'s is
    `--set seed=abc ($seed at wf.yaml:7:12)`, and `latentgraph submit` prints the server's
    as it is): for a param's value, the param as the request gave it and the `$` using it.
    docs/comfy-compat.md said `<request>:34:11` alone."""
    from pathlib import Path

    r = server.http.post("/latentgraph/run", json={"workflow": WORKFLOW, "params": {"v": "abc"}})
    assert r.status_code == 400, r.text
    (problem,) = r.json()["problems"]
    assert problem["location"] == "params.v='abc' ($v at <request>:7:12)"
    assert problem["node_id"] == "n" and "'abc'" in problem["message"]
    doc = Path(__file__).resolve().parents[2] / "docs" / "comfy-compat.md"
    said = " ".join(doc.read_text().split())
    assert "`location` (the place the CLI's error line names: `<request>:34:11`, " in said
    assert "a param's value `params.seed='abc' ($seed at <request>:34:11)`" in said
