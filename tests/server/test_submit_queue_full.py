"""`latentgraph submit` to a server whose queue is full: one line in the CLI's form, exit 3."""

from __future__ import annotations

import json

from latentgraph.cli import main

from .conftest import RunningServer, chain, free_port

WORKFLOW = """\
version: 1
nodes:
  n:
    type: Number
    value: 4
  s:
    type: Show
    x: n
"""


def test_submit_to_a_full_queue_says_so_in_one_line_and_exits_3(tmp_path, toy_workers,
                                                                 capsys, monkeypatch):  # fmt: skip
    """It printed the server's bare `the queue is full (2 prompts)` and exited 1, "the run
    failed", for a run that never was: a refusal to retry later, as an unreachable server's."""
    from latentgraph.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path / "data", port=free_port(), disk_cache=False,
                          load_nodes=False, editor=False, max_queue=2)  # fmt: skip
    running = RunningServer(config, toy_workers).start()
    try:
        for value in (1, 2):  # a long run and one queued behind it: the queue is full
            r = running.post_prompt(chain(value, slow_steps=500, delay=0.02))
            assert r.status_code == 200, r.text
        (tmp_path / "wf.yaml").write_text(WORKFLOW)
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
        capsys.readouterr()
        code = main(["submit", "wf.yaml", "--server", running.url, "-q"])
        out, err = capsys.readouterr()
        assert code == 3, err
        assert err == (f"latentgraph: error: the server at {running.url} did not queue the "
                       "workflow: the queue is full (2 prompts, the server's --max-queue); try "
                       "again once the queue has room\n")  # fmt: skip
        assert out == ""
        code = main(["submit", "wf.yaml", "--server", running.url, "--json"])
        out, err = capsys.readouterr()  # `--json`: a line saying so (stdout was empty)
        assert code == 3, err
        assert json.loads(out) == {"event": "submit_stopped", "reason": "queue_full",
                                   "message": err.removeprefix("latentgraph: error: ").strip(),
                                   "prompt_id": None, "history": None}  # fmt: skip
        running.http.post("/interrupt", json={})
    finally:
        running.stop()
