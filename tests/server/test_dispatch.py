"""Choosing a worker: model affinity, and the bound that keeps a prompt from waiting forever.
Driven through the WorkerPool interface with an in-process pool that runs nothing."""

from __future__ import annotations

import json
import queue
import time

import pytest

from latentgraph.graph import NodeResult, Output, Registry, Socket, String, node
from latentgraph.graph.comfy_api import is_link
from latentgraph.server.dispatch import MAX_PASSES, Dispatcher
from latentgraph.server.hub import Hub
from latentgraph.server.messages import PromptParents
from latentgraph.server.store import PromptRecord, Store
from latentgraph.server.workers import (
    Died,
    Done,
    Ready,
    RunMessages,
    Warned,
    WorkerInfo,
    WorkerPool,
    model_keys,
)


def _registry() -> Registry:
    reg = Registry()

    @node("Loader", inputs=[String("name", "a")], outputs=[Output("model", "MODEL")],
          registry=reg)  # fmt: skip
    def loader(ctx, name):
        return name

    @node("Use", inputs=[Socket("model", "MODEL")], output_node=True, registry=reg)
    def use(ctx, model):
        return NodeResult(())

    return reg


def _prompt(model: str) -> dict:
    return {"1": {"class_type": "Loader", "inputs": {"name": model}},
            "2": {"class_type": "Use", "inputs": {"model": ["1", 0]}}}  # fmt: skip


class RecordingPool(WorkerPool):
    """Workers that report the given resident models and record the jobs they get."""

    def __init__(self, resident: list[frozenset[str]]) -> None:
        self.resident = resident
        self.jobs: queue.Queue[tuple[int, str]] = queue.Queue()
        self.converted: queue.Queue[tuple[int, str]] = queue.Queue()  # convert_ahead hints
        self.deliver = None

    def start(self, deliver) -> None:
        self.deliver = deliver
        for i, keys in enumerate(self.resident):
            deliver(i, Ready(1000 + i, keys))

    def stop(self, timeout: float = 2.0) -> None:
        pass

    def workers(self) -> list[WorkerInfo]:
        return [WorkerInfo(i, f"w{i}", "cpu", 1000 + i) for i in range(len(self.resident))]

    def submit(self, worker_id, job) -> None:
        self.jobs.put((worker_id, job.prompt_id))

    def cancel(self, worker_id, prompt_id) -> None:
        pass

    def kill(self, worker_id) -> None:
        pass

    def free(self, worker_id, unload_models, free_memory) -> None:
        pass

    def convert_ahead(self, worker_id, prompt_id, prompt_json) -> None:
        self.converted.put((worker_id, prompt_id))

    def finish(self, worker_id: int, prompt_id: str) -> None:
        self.deliver(worker_id, Done(prompt_id, "success", {}, None, self.resident[worker_id]))

    def next_job(self) -> tuple[int, str]:
        return self.jobs.get(timeout=10)


class RecordingHub(Hub):
    """Records what would go to each client, in order: (sid, type)."""

    def __init__(self) -> None:
        super().__init__()
        self.posted: queue.Queue[tuple[str | None, str]] = queue.Queue()

    def _post(self, sid, messages) -> None:
        for type_, _ in messages:
            self.posted.put((sid, type_))

    def to(self, sid: str, until: str, timeout: float = 10) -> list[str]:
        """The types sent to `sid`, up to and including `until`."""
        found: list[str] = []
        while until not in found:
            got_sid, type_ = self.posted.get(timeout=timeout)
            if got_sid == sid:
                found.append(type_)
        return found


@pytest.fixture
def make(tmp_path):
    made: list[Dispatcher] = []
    registry = _registry()
    keys = {m: model_keys(_prompt(m), registry) for m in ("A", "B")}

    def build(resident: list[str]) -> tuple[Dispatcher, RecordingPool, Store]:
        store = Store(tmp_path / f"db{len(made)}.sqlite3")
        pool = RecordingPool([keys[m] if m else frozenset() for m in resident])
        dispatcher = Dispatcher(store, RecordingHub(), registry, pool)
        made.append(dispatcher)
        return dispatcher, pool, store

    yield build
    for d in made:
        d.stop()
        d.store.close()


def _queue(store: Store, *models: str) -> list[str]:
    ids = []
    for i, m in enumerate(models):
        pid = f"p{len(store.pending()) + i}-{m}-{time.monotonic_ns()}"
        store.add(
            PromptRecord(id=pid, number=None, prompt_json=json.dumps(_prompt(m)), outputs=["2"])
        )
        ids.append(pid)
    return ids


def test_model_keys_are_the_loaders_with_literal_inputs():
    registry = _registry()
    assert model_keys(_prompt("A"), registry) == model_keys(_prompt("A"), registry)
    assert model_keys(_prompt("A"), registry) != model_keys(_prompt("B"), registry)
    assert len(model_keys(_prompt("A"), registry)) == 1
    linked = {"1": {"class_type": "Loader", "inputs": {"name": ["0", 0]}}}
    assert model_keys(linked, registry) == frozenset()


@pytest.mark.parametrize("value", [[0, 0], ["0", True]])
def test_a_value_the_converter_reads_as_a_literal_is_no_link_to_the_server(value):
    """A node id written as a number, or a bool index, is a literal list in ComfyUI's
    prompt (`is_link`, the converter's rule): a loader given one is still a loader (its
    model key), and a run's messages find no parent through it."""
    assert not is_link(value)
    prompt = {"1": {"class_type": "Loader", "inputs": {"name": value}}}
    assert len(model_keys(prompt, _registry())) == 1
    assert PromptParents(prompt)["1"] == []


def test_each_prompt_goes_to_the_worker_holding_its_models(make):
    dispatcher, pool, store = make(["A", "B"])
    b, a = _queue(store, "B", "A")  # queued before the workers are up: one dispatch pass
    dispatcher.start()
    assert {pool.next_job(), pool.next_job()} == {(1, b), (0, a)}


def test_a_prompt_waits_for_its_models_worker_at_most_max_passes_times(make):
    dispatcher, pool, store = make(["A", "B"])
    [busy] = _queue(store, "B")
    dispatcher.start()
    assert pool.next_job() == (1, busy)  # worker 1 (holding B) stays busy from now on
    [waiting, *others] = _queue(store, "B", *["A"] * (MAX_PASSES + 2))
    dispatcher.wake()
    ran = []
    for _ in range(MAX_PASSES + 1):
        worker, pid = pool.next_job()
        assert worker == 0
        ran.append(pid)
        pool.finish(0, pid)
    # B waited for the B worker while MAX_PASSES later prompts passed it, then took worker 0.
    assert ran == [*others[:MAX_PASSES], waiting]


def test_a_restarted_worker_takes_a_prompt_while_the_busy_one_has_one_waiting(make):
    """After a worker restart the fresh worker holds nothing, and every queued prompt wants the
    model the other, busy, worker holds: only the first waits for that worker (nothing else
    passes it), the next starts on the fresh one at once, which loads the model."""
    dispatcher, pool, store = make(["A", "A"])
    dispatcher.start()
    _queue(store, "A", "A")
    dispatcher.wake()
    jobs = dict([pool.next_job(), pool.next_job()])
    pool.finish(1, jobs[1])
    pool.deliver(1, Died("worker process died: signal 9"))  # killed while idle ...
    pool.deliver(1, Ready(2001, frozenset()))  # ... and replaced by a fresh process
    waiting, second, *_ = _queue(store, *["A"] * (MAX_PASSES + 2))
    dispatcher.wake()
    assert pool.next_job() == (1, second)  # without waiting for worker 0 to finish
    pool.finish(0, jobs[0])
    assert pool.next_job() == (0, waiting)  # the first waited for its model's worker


def test_without_models_any_idle_worker_takes_the_next_prompt(make):
    dispatcher, pool, store = make(["", ""])
    ids = _queue(store, "A", "A", "A")
    dispatcher.start()
    first = {pool.next_job(), pool.next_job()}
    assert {pid for _, pid in first} == set(ids[:2]) and {w for w, _ in first} == {0, 1}


def test_a_prompt_whose_worker_died_before_starting_it_is_queued_again_once(make):
    dispatcher, pool, store = make(["", ""])
    [pid] = _queue(store, "A")
    dispatcher.start()
    worker, got = pool.next_job()
    assert got == pid
    pool.deliver(worker, Died("worker process died: signal 9"))  # before any event
    assert pool.next_job() == (1 - worker, pid)  # the other worker takes it again
    pool.deliver(1 - worker, Died("worker process died: signal 9"))  # it kills workers
    deadline = time.monotonic() + 10
    while (record := store.get(pid)).status != "error":
        assert time.monotonic() < deadline, record.status
        time.sleep(0.01)
    assert record.error == "worker process died: signal 9"


def test_a_worker_dying_in_a_node_no_batch_told_of_fails_its_prompt_there_at_once(make):
    """A node that ends its worker process (os._exit) dies before the batch announcing it
    leaves: the error named no node, and the prompt, looking not begun, went back to the queue
    to kill a second worker. The pool tells the node it was running (`RunningNode`): the
    prompt fails there, and no other worker gets it."""
    dispatcher, pool, store = make(["", ""])
    [pid] = _queue(store, "A")
    dispatcher.start()
    worker, _ = pool.next_job()
    pool.deliver(worker, Died("worker process died: exit code 9", node="2"))
    deadline = time.monotonic() + 10
    while (record := store.get(pid)).status != "error":
        assert time.monotonic() < deadline, record.status
        time.sleep(0.01)
    assert record.error == "worker process died: exit code 9"
    [error] = [d for t, d in record.messages if t == "execution_error"]
    assert (error["node_id"], error["node_type"]) == ("2", "Use")
    assert error["exception_type"] == "WorkerDied"
    assert pool.jobs.empty()  # not sent to the other worker


def _executing(pid: str, node: str) -> tuple[str, str]:
    text = json.dumps({"type": "executing", "data": {"node": node, "prompt_id": pid}})
    return ("executing", text)


def test_a_held_prompt_runs_at_once_and_its_messages_wait_for_its_release(make):
    dispatcher, pool, store = make([""])
    dispatcher.start()
    pid = f"held-{time.monotonic_ns()}"
    dispatcher.hold(pid)  # as POST /prompt does before queueing it
    store.add(PromptRecord(id=pid, number=None, prompt_json=json.dumps(_prompt("A")),
                           outputs=["2"], client_id="c"))  # fmt: skip
    dispatcher.wake()
    assert pool.next_job() == (0, pid)  # started while its answer is still being written
    pool.deliver(0, RunMessages(pid, [_executing(pid, "1"), _executing(pid, "2")], node="2"))
    pool.finish(0, pid)
    deadline = time.monotonic() + 10
    while store.get(pid).status != "success":  # it ended (history written) ...
        assert time.monotonic() < deadline
        time.sleep(0.01)
    posted = dispatcher.hub.posted
    assert all(sid != "c" for sid, _ in list(posted.queue))  # ... and its client heard nothing
    dispatcher.release(pid)
    hub = dispatcher.hub
    assert hub.to("c", until="executing") == hub.to("c", until="executing") == ["executing"]
    # the run's end, as the server's copy of its translator says it, then the final `executing`
    assert hub.to("c", until="executing") == ["execution_success", "executing"]
    assert all(sid != "c" for sid, _ in list(posted.queue))


def test_a_hold_never_released_ends_by_itself(make, monkeypatch):
    from latentgraph.server import dispatch

    monkeypatch.setattr(dispatch, "HOLD_SECONDS", 0.3)
    dispatcher, pool, store = make([""])
    dispatcher.start()
    pid = f"lost-{time.monotonic_ns()}"
    dispatcher.hold(pid)
    store.add(PromptRecord(id=pid, number=None, prompt_json=json.dumps(_prompt("A")),
                           outputs=["2"], client_id="c"))  # fmt: skip
    dispatcher.wake()
    assert pool.next_job() == (0, pid)
    started = time.monotonic()
    pool.deliver(0, RunMessages(pid, [_executing(pid, "1")], node="1"))
    assert dispatcher.hub.to("c", until="executing", timeout=10) == ["executing"]
    assert 0.1 < time.monotonic() - started < 5  # when the hold ran out, not before


def test_a_prompt_starts_on_the_thread_that_queued_it(make):
    dispatcher, pool, store = make([""])
    dispatcher.start()
    deadline = time.monotonic() + 10
    while dispatcher.worker_pids() != [1000]:  # the worker's Ready handled
        assert time.monotonic() < deadline
        time.sleep(0.01)
    [pid] = _queue(store, "A")
    dispatcher.dispatch()  # as POST /prompt's submit thread does once the prompt is queued
    assert pool.jobs.get_nowait() == (0, pid)  # sent before dispatch() returned


def test_a_workers_message_is_handled_on_the_thread_that_delivers_it(make):
    dispatcher, pool, store = make([""])
    dispatcher.start()
    [pid] = _queue(store, "A")
    assert pool.next_job() == (0, pid)
    pool.finish(0, pid)  # the pool's reader delivering the worker's Done
    assert store.get(pid).status == "success"  # recorded before deliver returned


def test_a_shutdown_mid_run_records_the_error_at_the_node_that_was_running(make):
    """The shutdown's error named no node (node_id null, which the editor's job list refuses
    whole): the dispatcher knows the node the worker was in, and the error names it."""
    dispatcher, pool, store = make([""])
    dispatcher.start()
    [pid] = _queue(store, "A")
    assert pool.next_job() == (0, pid)
    pool.deliver(0, RunMessages(pid, [_executing(pid, "1"), _executing(pid, "2")], node="2"))
    dispatcher.stop()
    record = store.get(pid)
    error = next(data for type_, data in record.messages if type_ == "execution_error")
    assert (record.status, error["exception_type"]) == ("error", "Shutdown")
    assert (error["node_id"], error["node_type"]) == ("2", "Use")


def test_a_shutdown_mid_run_records_the_nodes_that_finished(make):
    """The shutdown's error said `executed: []` though nodes had finished: it is the run's end
    as the server's copy of its translator says it, as a dead worker's is, with the nodes the
    worker said finished and the history it sent."""
    dispatcher, pool, store = make([""])
    dispatcher.start()
    [pid] = _queue(store, "A")
    assert pool.next_job() == (0, pid)
    began = {"prompt_id": pid, "timestamp": 1}
    pool.deliver(0, RunMessages(pid, [_executing(pid, "1")], node="1",
                                history=[["execution_start", began]]))  # fmt: skip
    pool.deliver(0, RunMessages(pid, [_executing(pid, "2")], executed=["1"], node="2"))
    dispatcher.stop()
    record = store.get(pid)
    assert [type_ for type_, _ in record.messages] == ["execution_start", "execution_error"]
    assert record.messages[0][1] == began
    error = record.messages[1][1]
    assert (error["executed"], error["node_id"]) == (["1"], "2")
    assert error["exception_type"] == "Shutdown"
    assert (record.status, record.error) == ("error", "interrupted by shutdown")


def _state(dispatcher: Dispatcher, store: Store, tmp_path):
    from latentgraph.graph.context import Settings
    from latentgraph.server.config import ServerConfig
    from latentgraph.server.state import ServerState

    return ServerState(ServerConfig(data_dir=tmp_path), dispatcher.registry, Settings(), store,
                       dispatcher.hub, dispatcher)  # fmt: skip


def test_a_posted_prompt_is_converted_ahead_by_the_worker_it_starts_on(make, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    """While POST /prompt checks a prompt, the idle worker it will start on (the one holding
    its models) is already asked to convert it; then the job follows there."""
    from latentgraph.server import state as state_mod

    dispatcher, pool, store = make(["A", "B"])
    dispatcher.start()
    state = _state(dispatcher, store, tmp_path)
    asked_before_the_check = []

    def check(*args, **kwargs):
        asked_before_the_check.append(pool.converted.get_nowait())
        return real_check(*args, **kwargs)

    real_check = state_mod.check_prompt
    monkeypatch.setattr(state_mod, "check_prompt", check)
    record, _ = state._parse_check_and_add(json.dumps({"prompt": _prompt("B")}).encode())
    assert asked_before_the_check == [(1, record.id)]
    assert pool.next_job() == (1, record.id)


def test_a_prompt_that_is_no_object_of_nodes_is_refused_before_any_conversion_ahead(make,
                                                                                   tmp_path):  # fmt: skip
    """A prompt refused for a member that is no node is refused before an idle worker is
    asked to convert it, with the answer check_prompt gives."""
    from latentgraph.server.prompts import PromptRejected

    dispatcher, pool, store = make(["A"])
    dispatcher.start()
    state = _state(dispatcher, store, tmp_path)
    body = {"prompt": {"0": 1, **_prompt("A")}}
    with pytest.raises(PromptRejected) as refused:
        state._parse_check_and_add(json.dumps(body).encode())
    assert "has no class_type" in refused.value.body["error"]["message"]
    assert pool.converted.empty() and not store.pending()


def test_no_conversion_ahead_while_no_worker_is_idle(make, tmp_path):
    dispatcher, pool, store = make(["A"])
    [running] = _queue(store, "A")
    dispatcher.start()
    assert pool.next_job() == (0, running)  # the one worker is busy from now on
    state = _state(dispatcher, store, tmp_path)
    queued, _ = state._parse_check_and_add(json.dumps({"prompt": _prompt("A")}).encode())
    later, _ = state._parse_check_and_add(json.dumps({"prompt": _prompt("A")}).encode())
    assert pool.converted.empty()  # nobody idle: both wait in the queue
    pool.finish(0, running)
    assert pool.next_job() == (0, queued.id)
    assert pool.converted.empty() and store.pending()[0].id == later.id


def test_a_client_number_leaves_room_for_the_numbers_after_it(make, tmp_path):
    """A client's number is bounded so that the numbers the store gives the prompts after it
    (highest + 1) stay safe integers in JavaScript, which the editor shows them in."""
    from latentgraph.server.errors import ApiError
    from latentgraph.server.state import MAX_NUMBER

    dispatcher, _, store = make([])  # no worker: everything stays queued
    state = _state(dispatcher, store, tmp_path)
    with pytest.raises(ApiError, match="number must be a number between"):
        state._check_and_add({"prompt": _prompt("A"), "number": 2**53 - 1})
    given, _ = state._check_and_add({"prompt": _prompt("A"), "number": MAX_NUMBER})
    after, _ = state._check_and_add({"prompt": _prompt("A")})
    assert given.number == MAX_NUMBER and after.number == MAX_NUMBER + 1 < 2**53 - 1


def test_a_warning_every_worker_sends_is_logged_once(make, caplog):
    """`serve --workers 2` on a full cache disk logged the disk cache's warning once per
    worker: each worker tells the server (`Warned`), which logs a text once."""
    import logging

    dispatcher, pool, _ = make(["A", "B"])
    dispatcher.start()
    text = "the disk cache at /c cannot be written (No space left on device); ..."
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        for worker in (0, 1, 0):
            pool.deliver(worker, Warned(text))
        pool.deliver(1, Warned("another"))
    said = [r.getMessage() for r in caplog.records if r.name == "latentgraph.server"]
    assert said == [text, "another"]


def test_a_full_disk_that_stops_prompts_starting_is_logged_once_and_its_end_once(make, caplog,
                                                                                 monkeypatch):  # fmt: skip
    """The database's disk full: no prompt can be marked running. The log said "cannot start
    ...; retrying in 2.0 s" at every retry, forever; now once when it starts failing and once
    when a prompt starts again."""
    import errno
    import logging

    from latentgraph.server import dispatch
    from latentgraph.server.store import StoreWriteError

    monkeypatch.setattr(dispatch, "STORE_RETRY_SECONDS", 0.01)
    dispatcher, pool, store = make([""])
    mark_running, tries = store.mark_running, []

    def full(prompt_id):  # refuses five times, then the disk has room
        if len(tries) < 5:
            tries.append(prompt_id)
            raise StoreWriteError(errno.ENOSPC, "the queue database q cannot be written (full)")
        return mark_running(prompt_id)

    monkeypatch.setattr(store, "mark_running", full)
    [pid] = _queue(store, "A")
    with caplog.at_level(logging.INFO, logger="latentgraph.server"):
        dispatcher.start()
        assert pool.next_job() == (0, pid)  # after five refusals
    said = [r.getMessage() for r in caplog.records if r.name == "latentgraph.server"]
    said = [line for line in said if not line.startswith("worker 0 (pid")]  # its start, said
    assert len(tries) == 5 and said == [
        f"prompt {pid} cannot start: the queue database q cannot be written (full); no prompt "
        "starts until the database can be written again",
        f"the queue database can be written again: prompt {pid} starts",
        f"prompt {pid} starts on worker 0 (w0, pid 1000 on ?)"]  # fmt: skip


def test_each_prompt_start_names_its_worker_in_the_log(make, caplog):
    """Which worker ran a prompt was nowhere in the log (a plugin node reporting its pid was
    how to find out): each start says the worker, its name (a Ray actor's), pid and host."""
    import logging

    dispatcher, pool, store = make(["A"])
    dispatcher.start()
    pool.deliver(0, Ready(4242, pool.resident[0], (), "node-a"))  # a Ray actor, elsewhere
    with caplog.at_level(logging.INFO, logger="latentgraph.server"):
        [prompt] = _queue(store, "A")
        dispatcher.wake()
        assert pool.next_job() == (0, prompt)
    said = [r.getMessage() for r in caplog.records if r.name == "latentgraph.server"]
    assert f"prompt {prompt} starts on worker 0 (w0, pid 4242 on node-a)" in said
