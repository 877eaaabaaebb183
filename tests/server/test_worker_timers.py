"""A worker's timers: every callback on one long-lived thread, soonest first; a sooner timer
armed while the thread waits for a later one still runs on time; a failing callback does not
stop the rest."""

from __future__ import annotations

import threading

from latentgraph.server.worker_process import Timers


def test_callbacks_run_soonest_first_on_one_thread_started_once():
    timers = Timers()
    threads_before = threading.active_count()
    ran: list[tuple[str, int]] = []
    all_ran = threading.Event()

    def note(name: str) -> None:
        ran.append((name, threading.get_ident()))
        if len(ran) == 30:
            all_ran.set()

    for i in range(30):  # armed latest-due first
        timers.schedule(0.3 - i * 0.01, lambda i=i: note(f"t{29 - i:02d}"))
    assert threading.active_count() == threads_before  # no thread per timer
    assert all_ran.wait(10)
    assert [name for name, _ in ran] == [f"t{i:02d}" for i in range(30)]
    assert len({ident for _, ident in ran}) == 1
    assert ran[0][1] != threading.get_ident()


def test_a_sooner_timer_wakes_a_thread_waiting_for_a_later_one():
    timers = Timers()
    late, soon = threading.Event(), threading.Event()
    timers.schedule(30.0, late.set)
    threading.Event().wait(0.05)  # the thread now waits for the 30 s timer
    timers.schedule(0.01, soon.set)
    assert soon.wait(5)  # without the wake-up it would run after 30 s
    assert not late.is_set()


def test_a_failing_callback_does_not_stop_the_ones_after_it(caplog):
    timers = Timers()
    after = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    timers.schedule(0.0, fail)
    timers.schedule(0.01, after.set)
    assert after.wait(5)
    assert "a timer callback failed" in caplog.text
