"""A worker converts a prompt the server is still checking (`JobRunner.convert_ahead`): its
job then runs from that conversion; any other job, or one whose prompt did not convert, runs
as before."""

from __future__ import annotations

import gc
import json
import multiprocessing

import pytest

from latentgraph.graph import Settings, comfy_api
from latentgraph.server.worker_process import JobRunner, WorkerSpec
from latentgraph.server.workers import Done, Job, RunMessages, WorkerSetup

from .conftest import chain
from .plugin.toy_nodes import toy_registry


@pytest.fixture
def runner(monkeypatch, tmp_path):
    """A JobRunner in this process (its Outbox sends on a pipe), counting conversions."""
    conversions: list[str] = []
    convert = comfy_api.graph_from_prompt

    def counting(prompt, registry=None, **kwargs):
        inputs = prompt["9"]["inputs"]
        conversions.append(inputs["prefix"] if isinstance(inputs, dict) else "broken")
        return convert(prompt, registry, **kwargs)

    monkeypatch.setattr(comfy_api, "graph_from_prompt", counting)
    ours, theirs = multiprocessing.Pipe()
    try:
        job_runner = JobRunner(WorkerSetup(registry=toy_registry),
                               WorkerSpec(0, Settings(output_dir=tmp_path),
                                          preload=False),
                               theirs)  # fmt: skip
        yield job_runner, ours, conversions
    finally:
        ours.close()
        gc.unfreeze()  # the runner froze the session's objects


def _run(runner: JobRunner, ours, prompt_id: str, prompt: dict) -> tuple[Done, list[str]]:
    """Run a checked job; its Done and the types of its websocket messages."""
    runner.run(Job(prompt_id, json.dumps(prompt), {}, None, False, checked=True))
    types: list[str] = []
    while True:
        for message in ours.recv():
            if isinstance(message, RunMessages):
                types += [t for t, _ in message.messages]
            elif isinstance(message, Done) and message.prompt_id == prompt_id:
                return message, types


def test_a_job_converted_ahead_runs_from_that_conversion(runner):
    job_runner, ours, conversions = runner
    prompt = chain(3, prefix="ahead")
    job_runner.convert_ahead("p1", json.dumps(prompt))
    assert conversions == ["ahead"]
    done, types = _run(job_runner, ours, "p1", prompt)
    assert done.status == "success" and conversions == ["ahead"]  # not converted again
    assert done.ui["9"]["images"][0]["filename"] == "ahead_6.png"
    assert types[-1] == "execution_success"


def test_another_job_runs_its_own_prompt_and_the_conversion_ahead_is_dropped(runner):
    job_runner, ours, conversions = runner
    job_runner.convert_ahead("refused", json.dumps(chain(1, prefix="refused")))
    done, _ = _run(job_runner, ours, "p2", chain(5, prefix="other"))
    assert done.status == "success" and done.ui["9"]["images"][0]["filename"] == "other_10.png"
    assert conversions == ["refused", "other"]
    assert job_runner.ahead is None  # not kept for a job that will not come


def test_a_prompt_that_does_not_convert_ahead_fails_in_its_run_as_before(runner):
    job_runner, ours, conversions = runner
    broken = {"9": {"class_type": "Show", "inputs": "not an object"}}
    job_runner.convert_ahead("p3", json.dumps(broken))
    assert job_runner.ahead is None and conversions == ["broken"]
    done, types = _run(job_runner, ours, "p3", broken)
    assert done.status == "failed" and "inputs" in done.error
    assert types[-1] == "execution_error"


def test_a_refused_prompts_id_coming_again_with_another_prompt_runs_that_prompt(runner):
    """A client may choose its prompt ids: one refused after its conversion ahead may come
    again with another prompt, with no conversion ahead this time (the queue was not empty)."""
    job_runner, ours, conversions = runner
    job_runner.convert_ahead("mine", json.dumps(chain(1, prefix="refused")))
    done, _ = _run(job_runner, ours, "mine", chain(2, prefix="accepted"))
    assert done.status == "success" and done.ui["9"]["images"][0]["filename"] == "accepted_4.png"
    assert conversions == ["refused", "accepted"]
