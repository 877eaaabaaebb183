"""`run --ray`'s stop by signal (`stopping.Stopper.batch_signal`, `interrupted_line`), the
rules a Ray process test cannot reach: a second SIGTERM while the actors are being stopped."""

from __future__ import annotations

import signal

import pytest

from latentgraph import stopping
from latentgraph.graph.context import CancelToken


def test_a_second_sigterm_while_a_ray_batch_stops_ends_the_process_at_once(monkeypatch):
    """The first SIGTERM stops the batch as Ctrl-C does (its KeyboardInterrupt), and the lines
    then name SIGTERM; a second, should stopping the actors hang, ends the process there and
    then, by SIGTERM (143)."""
    ended: list[tuple[int, bool]] = []
    monkeypatch.setattr(stopping, "end_process",
                        lambda code, at_once=False: ended.append((code, at_once)))  # fmt: skip
    stop = stopping.Stopper(CancelToken())
    with pytest.raises(KeyboardInterrupt):
        stop.batch_signal(signal.SIGTERM, None)
    assert ended == [] and stop.name() == "SIGTERM" and stop.code() == 143
    assert stop.interrupted_line(1, 3) == (
        "latentgraph: interrupted by SIGTERM: 1 of 3 run(s) had finished")  # fmt: skip
    with pytest.raises(KeyboardInterrupt):  # (end_process, patched here, came back)
        stop.batch_signal(signal.SIGTERM, None)
    assert ended == [(143, True)]


def test_a_ray_batch_stopped_by_ctrl_c_says_so():
    """Ctrl-C stops the batch by Python's own KeyboardInterrupt: no signal reached the Stopper."""
    assert stopping.Stopper(CancelToken()).interrupted_line(0, 2) == (
        "latentgraph: interrupted (Ctrl-C): 0 of 2 run(s) had finished")  # fmt: skip
