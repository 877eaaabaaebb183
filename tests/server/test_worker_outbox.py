"""A worker's outbox: messages leave in order; progress waiting behind a slow pipe is
coalesced to the latest step of the same node, keeping the latest preview."""

from __future__ import annotations

import threading

from latentgraph.graph.events import NodeFinished, NodeProgress
from latentgraph.server.worker_process import Outbox
from latentgraph.server.workers import RunEvent


class SlowPipe:
    """Holds the first message until released, then records everything sent."""

    def __init__(self) -> None:
        self.sent: list = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.all_sent = threading.Event()
        self.expect = 0

    def send(self, message) -> None:
        self.entered.set()
        self.release.wait(10)
        self.sent.append(message)
        if len(self.sent) >= self.expect:
            self.all_sent.set()


def progress(node: str, value: int, preview: bytes | None = None) -> RunEvent:
    return RunEvent("p", NodeProgress("p", node_id=node, value=value, max=9, preview=preview))


def test_unsent_progress_is_coalesced_in_order():
    pipe = SlowPipe()
    outbox = Outbox(pipe)
    outbox.put(progress("a", 1))
    assert pipe.entered.wait(10)  # taken by the sender, held in the pipe
    for message in [progress("a", 2, b"jpeg-2"), progress("a", 3), progress("b", 1),
                    progress("b", 2), RunEvent("p", NodeFinished("p", node_id="b")),
                    progress("a", 4)]:  # fmt: skip
        outbox.put(message)
    pipe.expect = 5
    pipe.release.set()
    assert pipe.all_sent.wait(10)
    got = [(type(m.event).__name__, m.event.node_id, getattr(m.event, "value", None),
            getattr(m.event, "preview", None)) for m in pipe.sent]  # fmt: skip
    assert got[1:] == [
        ("NodeProgress", "a", 3, b"jpeg-2"),  # 2 and 3 merged, 2's preview kept
        ("NodeProgress", "b", 2, None),
        ("NodeFinished", "b", None, None),
        ("NodeProgress", "a", 4, None),  # never merged across another message
    ]
    assert got[0][:3] == ("NodeProgress", "a", 1)
