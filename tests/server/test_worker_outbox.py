"""A worker's outbox: a prompt's websocket messages leave encoded, in order, in batches (one pipe
message for many); a message that starts a run leaves at once with what came before it, and a
run's last message with the Done after it; progress waiting behind a slow pipe, or less than a
batch old, is coalesced to the latest step of the same node, keeping the latest preview."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

from latentgraph.server import worker_process
from latentgraph.server.worker_process import Outbox
from latentgraph.server.workers import Done, Preview, RunMessages, SentImage


class SlowPipe:
    """Holds the first pipe message until released, then records everything sent: `sent`, the
    worker messages in order; `sends`, the pipe messages (each a list of them); `senders`,
    the name of the thread that sent each."""

    def __init__(self, hold: bool = True) -> None:
        self.sent: list = []
        self.sends: list[list] = []
        self.senders: list[str] = []
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.entered = threading.Event()
        self.changed = threading.Condition()

    def send(self, message) -> None:
        self.senders.append(threading.current_thread().name)
        self.entered.set()
        self.release.wait(10)
        with self.changed:
            self.sends.append(message)
            self.sent.extend(message)
            self.changed.notify_all()

    def wait_for(self, predicate) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.sent), 10)


def _send_held(outbox: Outbox, pipe: SlowPipe) -> threading.Thread:
    """An earlier run's end, being sent (from a thread of its own) into a pipe that holds it."""
    thread = threading.Thread(target=outbox.put, args=(Done("other", "success", {}, None),))
    thread.start()
    assert pipe.entered.wait(10)
    return thread


def progress(outbox: Outbox, node: str, value: int, jpeg: bytes | None = None) -> None:
    outbox.message("p", "progress", {"value": value, "max": 9, "prompt_id": "p", "node": node})
    if jpeg is not None:
        outbox.preview("p", jpeg, node)


def run_messages_after_release(outbox: Outbox, pipe: SlowPipe, ended: threading.Thread) -> list:
    """Let the held send (`_send_held`) through, end prompt p, and return what was sent of its
    run messages once its Done has crossed (`decoded`)."""
    pipe.release.set()
    ended.join()
    outbox.put(Done("p", "success", {}, None))
    assert pipe.wait_for(
        lambda sent: sent and sent[-1].prompt_id == "p" and isinstance(sent[-1], Done)
    )
    return decoded([m for m in pipe.sent if isinstance(m, RunMessages)])


def decoded(batches: list) -> list:
    """(type, node, value) of each run message, previews as ("preview", node, jpeg)."""
    out = []
    for batch in batches:
        assert isinstance(batch, RunMessages) and batch.prompt_id == "p"
        for type_, payload in batch.messages:
            if isinstance(payload, Preview):
                out.append(("preview", payload.node_id, payload.jpeg))
            elif isinstance(payload, SentImage):
                out.append(("image", payload.node_id, payload.png))
            else:
                message = json.loads(payload)
                assert message["type"] == type_
                data = message["data"]
                out.append((type_, data.get("node"), data.get("value")))
    return out


def test_run_messages_leave_in_one_batch_and_done_after_them(monkeypatch):
    # A batch also leaves when it is BATCH_SECONDS old: on a loaded machine the loop below can
    # take longer than 2 ms, so the window is made long here and only the Done sends them.
    monkeypatch.setattr(worker_process, "BATCH_SECONDS", 60.0)
    pipe = SlowPipe(hold=False)
    outbox = Outbox(pipe)
    for i in range(50):
        outbox.message("p", "executing", {"node": str(i), "display_node": str(i), "prompt_id": "p"})
        outbox.executed("p", str(i))
    outbox.put(Done("p", "success", {}, None))
    assert pipe.wait_for(lambda sent: sent and isinstance(sent[-1], Done))
    runs = [m for m in pipe.sent if isinstance(m, RunMessages)]
    assert len(runs) == 1, "50 quick messages should cross the pipe as one batch"
    assert [node for _, node, _ in decoded(runs)] == [str(i) for i in range(50)]
    assert runs[0].executed == [str(i) for i in range(50)] and runs[0].node == "49"


def test_history_messages_are_kept_aside_and_flush_at_once():
    pipe = SlowPipe(hold=False)
    outbox = Outbox(pipe)
    outbox.message("p", "execution_start", {"prompt_id": "p", "timestamp": 1})
    assert pipe.wait_for(lambda sent: len(sent) == 1)
    assert pipe.sent[0].history == [["execution_start", {"prompt_id": "p", "timestamp": 1}]]


def test_a_message_that_starts_a_run_wakes_a_sender_waiting_out_a_batch(monkeypatch):
    monkeypatch.setattr(worker_process, "BATCH_SECONDS", 60.0)
    pipe = SlowPipe(hold=False)
    outbox = Outbox(pipe)
    outbox.message("p", "executing", {"node": "1", "display_node": "1", "prompt_id": "p"})
    threading.Event().wait(0.05)  # the sender now waits out the batch's 60 s
    outbox.message("p", "execution_cached", {"nodes": [], "prompt_id": "p", "timestamp": 2})
    assert pipe.wait_for(lambda sent: len(sent) == 1)  # at once, not 60 s later
    assert [t for t, _ in pipe.sent[0].messages] == ["executing", "execution_cached"]


def test_a_runs_last_message_leaves_with_its_done_in_one_pipe_message(monkeypatch):
    monkeypatch.setattr(worker_process, "BATCH_SECONDS", 60.0)
    pipe = SlowPipe(hold=False)
    outbox = Outbox(pipe)
    outbox.message("p", "executing", {"node": "1", "display_node": "1", "prompt_id": "p"})
    outbox.message("p", "execution_success", {"prompt_id": "p", "timestamp": 2})
    threading.Event().wait(0.05)
    assert pipe.sends == []  # the end alone wakes no one: its Done comes right after it
    outbox.put(Done("p", "success", {}, None))
    assert pipe.wait_for(lambda sent: len(sent) == 2)  # at once, not 60 s later
    [(run, done)] = pipe.sends  # one pipe message, one wake-up of the server's reader
    assert [t for t, _ in run.messages] == ["executing", "execution_success"]
    assert run.history == [["execution_success", {"prompt_id": "p", "timestamp": 2}]]
    assert isinstance(done, Done)


def test_a_batch_due_when_a_message_is_put_leaves_from_the_putting_thread(monkeypatch):
    """The run's thread sends a due batch itself: waking the sender would make it wait for
    the GIL the run holds."""
    monkeypatch.setattr(worker_process, "BATCH_SECONDS", 0.0)
    pipe = SlowPipe(hold=False)
    outbox = Outbox(pipe)
    outbox.message("p", "executing", {"node": "1", "display_node": "1", "prompt_id": "p"})
    assert pipe.wait_for(lambda sent: len(sent) == 1)
    assert pipe.senders == [threading.current_thread().name]


def test_a_done_leaves_from_the_thread_that_puts_it():
    """A run's end is sent as the run ends, with the run's last messages: the main thread
    does not hand it to the sender thread, which would first have to take the GIL."""
    pipe = SlowPipe(hold=False)
    outbox = Outbox(pipe)
    outbox.message("p", "execution_success", {"prompt_id": "p", "timestamp": 2})
    outbox.put(Done("p", "success", {}, None))
    assert len(pipe.sends) == 1 and isinstance(pipe.sends[0][-1], Done)  # sent before put returned
    assert pipe.senders == [threading.current_thread().name]


def test_a_due_batch_never_waits_behind_a_send_under_way(monkeypatch):
    """While the sender is stuck in a slow pipe the run goes on: its due batch is left for
    the sender, which sends it next."""
    monkeypatch.setattr(worker_process, "BATCH_SECONDS", 0.0)
    pipe = SlowPipe()
    outbox = Outbox(pipe)
    ended = _send_held(outbox, pipe)
    returned = threading.Event()
    run = threading.Thread(target=lambda: (progress(outbox, "a", 1), returned.set()))
    run.start()
    assert returned.wait(5), "the run's thread waited for the slow pipe"
    pipe.release.set()
    assert pipe.wait_for(lambda sent: len(sent) == 2)
    assert decoded([pipe.sent[1]]) == [("progress", "a", 1)]
    run.join()
    ended.join()


def test_unsent_progress_is_coalesced_in_order():
    pipe = SlowPipe()
    outbox = Outbox(pipe)
    ended = _send_held(outbox, pipe)
    progress(outbox, "a", 1)
    progress(outbox, "a", 2, b"jpeg-2")
    progress(outbox, "a", 3)
    progress(outbox, "b", 1, b"jpeg-b1")
    progress(outbox, "b", 2, b"jpeg-b2")
    outbox.message("p", "executing", {"node": "c", "display_node": "c", "prompt_id": "p"})
    progress(outbox, "a", 4)
    assert run_messages_after_release(outbox, pipe, ended) == [
        ("preview", "a", b"jpeg-2"),  # steps 1-3 of a merged, 2's preview kept before them
        ("progress", "a", 3),
        ("preview", "b", b"jpeg-b2"),  # the later preview replaced the earlier one
        ("progress", "b", 2),
        ("executing", "c", None),
        ("progress", "a", 4),  # never merged across another message
    ]


def test_a_step_a_batch_after_the_one_before_sends_that_one_first(monkeypatch):
    """A client that keeps up got 14 of 20 progress values: a step replaced the unsent one
    before it however long that one had waited, and the sender thread may not get its turn in
    time while torch is busy. Now steps closer together than a batch (`BATCH_SECONDS`) are
    coalesced, and a step a batch later sends the one before it first, from the run's thread.
    The sender thread's clock stands still here, as if it never got its turn."""
    now = [1000.0]
    run = threading.current_thread()
    clock = lambda: now[0] if threading.current_thread() is run else 0.0  # noqa: E731
    monkeypatch.setattr(worker_process, "time", SimpleNamespace(monotonic=clock))
    pipe = SlowPipe(hold=False)
    outbox = Outbox(pipe)
    for step in range(1, 22):
        now[0] += 2 * worker_process.BATCH_SECONDS
        progress(outbox, "k", step)
    progress(outbox, "k", 22)  # within the batch step 21 began: 21 and 22 are coalesced
    progress(outbox, "k", 23)
    outbox.put(Done("p", "success", {}, None))
    assert pipe.wait_for(lambda sent: sent and isinstance(sent[-1], Done))
    steps = decoded([m for m in pipe.sent if isinstance(m, RunMessages)])
    assert steps == [("progress", "k", step) for step in [*range(1, 21), 23]]
    assert set(pipe.senders) == {run.name}  # none waited for the sender thread


def test_sent_images_are_never_coalesced_and_keep_their_place():
    """SaveImageWebsocket's images wait behind a slow pipe like any message: each one, in order,
    between the steps around it (a later step never replaces one)."""
    pipe = SlowPipe()
    outbox = Outbox(pipe)
    ended = _send_held(outbox, pipe)
    outbox.message("p", "executing", {"node": "w", "display_node": "w", "prompt_id": "p"})
    for i in (1, 2, 3):
        outbox.image("p", "w", b"png-%d" % i)
        progress(outbox, "w", i)
    outbox.message("p", "executing", {"node": None, "display_node": None, "prompt_id": "p"})
    assert run_messages_after_release(outbox, pipe, ended) == [
        ("executing", "w", None),
        ("image", "w", b"png-1"),
        ("progress", "w", 1),
        ("image", "w", b"png-2"),
        ("progress", "w", 2),
        ("image", "w", b"png-3"),
        ("progress", "w", 3),
        ("executing", None, None),
    ]
