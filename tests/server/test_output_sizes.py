"""What a server's run sends and keeps is bounded: a text a node returns by the run's
max_string_chars (`serve --max-string-chars`), as it is everywhere, one node's `executed`
output (its ui) by `ui_chars_limit` of it, and all of a prompt's together by
`prompt_ui_chars_limit`. Twelve StringConcatenate nodes made a 200 MB history entry of a
99,000-character literal (920 MB server RSS, a 229 MB database); a plugin's node showing as
much text would have done the same; so did 300 PreviewAny nodes showing that one text, each
under the per-node cap (31 MB of a 120 KB prompt)."""

from __future__ import annotations

import gc
import json
import multiprocessing
import threading

import pytest

from latentgraph.graph import STRING, Int, NodeResult, Output, Registry, Settings, String, node
from latentgraph.graph import events as ev
from latentgraph.graph.context import LIMIT_FLAGS
from latentgraph.server.messages import RunTranslator, prompt_ui_chars_limit, ui_chars_limit
from latentgraph.server.worker_process import JobRunner, WorkerSpec
from latentgraph.server.workers import Done, Job, RunMessages, WorkerSetup

CHARS = 10  # the run's max_string_chars: small, so nothing large is made


def _registry() -> Registry:
    """The worker's nodes: a text joined with itself, and an output node showing a text of a
    given length (a plugin's, say)."""
    registry = Registry()

    @node("Twice", inputs=[String("text", "")], outputs=[Output("text", STRING)],
          registry=registry)  # fmt: skip
    def twice(ctx, text):
        return text + text

    @node("Show", inputs=[String("text", "")], output_node=True, registry=registry)
    def show(ctx, text):
        return NodeResult((), ui={"text": [text]})

    @node("Say", inputs=[Int("chars", 1, min=0, max=2**24)], output_node=True, registry=registry)
    def say(ctx, chars):
        return NodeResult((), ui={"text": ["x" * chars]})

    return registry


def _run(tmp_path, prompt: dict) -> tuple[list, Done]:
    """Run `prompt` in a worker's JobRunner, as a server's worker process runs it: the
    (type, data) of its websocket messages, its history entries, and its `Done`."""
    ours, theirs = multiprocessing.Pipe()
    settings = Settings(output_dir=tmp_path, max_string_chars=CHARS, limit_labels=LIMIT_FLAGS)
    runner = JobRunner(WorkerSetup(registry=_registry), WorkerSpec(0, settings, preload=False),
                       theirs)  # fmt: skip
    sent: list = []
    job = Job("p", json.dumps(prompt), {}, None, False, checked=True)
    run = threading.Thread(target=runner.run, args=(job,))  # a large message waits for us
    run.start()
    try:
        while not sent or not isinstance(sent[-1], Done):
            assert ours.poll(30), "the run sent nothing for 30 s"
            sent += ours.recv()
    finally:
        run.join(30)
        ours.close()
        gc.unfreeze()  # the runner froze the session's objects
    batches = [m for m in sent if isinstance(m, RunMessages)]
    messages = [(t, json.loads(text)["data"]) for b in batches for t, text in b.messages]
    history = [entry for b in batches for entry in b.history]
    return messages, history, sent[-1]


@pytest.mark.parametrize("text", ["abcde", "abcdef"], ids=["at-the-limit", "one-more"])
def test_a_text_over_the_run_limit_fails_its_node_in_a_servers_run(tmp_path, text):
    """The run's limit holds in a server's worker as in `run` and `latentgraph.run`: the node
    whose text would pass it fails, a user error naming the output and the flag."""
    messages, _history, done = _run(tmp_path, {
        "1": {"class_type": "Twice", "inputs": {"text": text}},
        "2": {"class_type": "Show", "inputs": {"text": ["1", 0]}}})  # fmt: skip
    if len(text) * 2 <= CHARS:
        assert done.status == "success" and done.ui == {"2": {"text": [text * 2]}}
        return
    assert done.status == "failed" and done.ui == {}
    [error] = [d for t, d in messages if t == "execution_error"]
    assert (error["node_id"], error["user_error"], error["traceback"]) == ("1", True, [])
    assert error["exception_message"] == (
        "node '1' (Twice): output 'text' is a text of 12 characters, more than the limit of 10 "
        "(--max-string-chars)")  # fmt: skip


@pytest.mark.parametrize("over", [False, True], ids=["at-the-limit", "one-more"])
def test_one_nodes_output_over_the_limit_is_neither_sent_nor_kept(tmp_path, over):
    """`{"text": ["x" * n]}` is n + 14 characters of JSON: at `ui_chars_limit` it is sent and
    kept; one character more, the node is warned instead (history, the server's log)."""
    limit = ui_chars_limit(CHARS)
    assert limit == 12 * CHARS + 2**20
    chars = limit - 14 + over
    messages, history, done = _run(tmp_path, {
        "1": {"class_type": "Say", "inputs": {"chars": chars}},
        "2": {"class_type": "Say", "inputs": {"chars": 3}}})  # fmt: skip
    assert done.status == "success"
    executed = {d["node"]: d["output"] for t, d in messages if t == "executed"}
    warnings = [d for t, d in history if t == "node_warning"]
    assert executed["2"] == done.ui["2"] == {"text": ["xxx"]}  # the others as they were
    if not over:
        assert len(executed["1"]["text"][0]) == chars and "1" in done.ui and warnings == []
        return
    assert "1" not in executed and "1" not in done.ui
    assert [(w["node_id"], w["node_type"], w["message"]) for w in warnings] == [
        ("1", "Say", f"its output for the editor is {limit + 1} characters of JSON, more than "
                     f"the limit of {limit} (from --max-string-chars): not sent, nor kept in "
                     "the history")]  # fmt: skip


def test_a_prompts_outputs_together_are_bounded_too(tmp_path):
    """Four outputs at the per-node cap fill the prompt's (`prompt_ui_chars_limit`): a fifth
    output, however small, is neither sent nor kept, and its node is warned."""
    limit, total = ui_chars_limit(CHARS), prompt_ui_chars_limit(CHARS)
    assert total == 4 * limit
    prompt = {str(n): {"class_type": "Say", "inputs": {"chars": limit - 14}} for n in range(1, 5)}
    prompt["5"] = {"class_type": "Say", "inputs": {"chars": 3}}
    messages, history, done = _run(tmp_path, prompt)
    assert done.status == "success"
    executed = [d["node"] for t, d in messages if t == "executed"]
    assert executed == ["1", "2", "3", "4"] and sorted(done.ui) == executed
    assert [(w["node_id"], w["message"]) for t, w in history if t == "node_warning"] == [
        ("5", f"its output for the editor (17 characters of JSON) would bring the prompt's "
              f"outputs past the limit of {total} for one prompt (from --max-string-chars): not "
              "sent, nor kept in the history, nor any later node's that does not fit")]  # fmt: skip


def _finished(node_id: str, chars: int) -> ev.NodeFinished:
    """A node finished showing a text: `chars` + 14 characters of JSON."""
    return ev.NodeFinished("p", node_id=node_id, node_type="Say", ui={"text": ["x" * chars]})


def test_past_the_prompts_limit_one_warning_and_what_still_fits_is_sent():
    """The prompt's limit counts the JSON sent: once an output would pass it, that node is
    warned (once per prompt: a warning per node would grow with the prompt again), an output
    that still fits is sent, and one over its own limit is warned as before. File records are
    counted as the JSON they are, so 2,000 images' fit in the default limit many times over."""
    sent: list[tuple[str, dict]] = []
    tr = RunTranslator("p", {}, send=lambda t, d: sent.append((t, d)), ui_limit=100,
                       prompt_ui_limit=250)  # fmt: skip
    for node_id, chars in [("a", 86), ("b", 86), ("c", 86), ("d", 36), ("e", 86), ("f", 87)]:
        tr.handle(_finished(node_id, chars))
    assert [d["node"] for t, d in sent if t == "executed"] == ["a", "b", "d"]
    assert tr.kept_ui({n: {} for n in "abcdef"}) == {"a": {}, "b": {}, "d": {}}
    warned = [(d["node_id"], d["message"].split(" of JSON")[0])
              for t, d in tr.history if t == "node_warning"]  # fmt: skip
    assert warned == [("c", "its output for the editor (100 characters"),
                      ("f", "its output for the editor is 101 characters")]  # fmt: skip
    images = {"images": [{"filename": f"ComfyUI_{i:05}_.png", "subfolder": "", "type": "output"}
                         for i in range(2000)]}  # fmt: skip
    assert 20 * len(json.dumps(images)) < prompt_ui_chars_limit(100_000)
