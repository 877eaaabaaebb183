"""A prompt some of whose outputs fail validation runs the others, as ComfyUI does: the 200
answer names the failed ones in node_errors, and only the good outputs run, whether POST
/prompt checked the job or the worker checks it (a job queued before a restart)."""

from __future__ import annotations

import gc
import json
import multiprocessing

from latentgraph.graph import Settings
from latentgraph.server.worker_process import JobRunner, WorkerSpec
from latentgraph.server.workers import Done, Job, WorkerSetup

from .conftest import chain
from .plugin.toy_nodes import toy_registry


def with_a_broken_output() -> dict:
    prompt = chain(3, prefix="good")
    prompt["10"] = {"class_type": "Show", "inputs": {"x": ["77", 0], "prefix": "bad"}}
    prompt["11"] = {"class_type": "Number", "inputs": {"value": "many"}}  # feeds no output
    return prompt


def test_the_good_outputs_run_and_the_answer_names_the_failed_ones(server, ws):
    client = ws()
    r = server.post_prompt(with_a_broken_output(), client.client_id)
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body["node_errors"]) == ["10"]
    assert body["node_errors"]["10"]["dependent_outputs"] == ["10"]
    assert body["node_errors"]["10"]["errors"][0]["type"] == "bad_linked_input"
    pid = body["prompt_id"]
    client.until_done(pid)
    history = server.http.get(f"/history/{pid}").json()[pid]
    assert history["status"]["status_str"] == "success"
    assert list(history["outputs"]) == ["9"] and history["prompt"][4] == ["9"]


def test_a_job_the_worker_checks_runs_only_its_good_outputs(tmp_path):
    ours, theirs = multiprocessing.Pipe()
    try:
        runner = JobRunner(WorkerSetup(registry=toy_registry),
                           WorkerSpec(0, Settings(output_dir=tmp_path),
                                      preload=False), theirs)  # fmt: skip
        runner.run(Job("unchecked", json.dumps(with_a_broken_output()), {}, None, False))
        done = next(m for batch in iter(ours.recv, None) for m in batch if isinstance(m, Done))
    finally:
        ours.close()
        gc.unfreeze()  # the runner froze the session's objects
    assert done.status == "success", done.error
    assert list(done.ui) == ["9"]
