"""The collector pause: overlapping users leave the collector as they found it."""

from __future__ import annotations

import gc

from latentgraph.server.collector import CollectorPause


def test_overlapping_pauses_resume_the_collector_once_the_last_one_ends():
    assert gc.isenabled()
    pause = CollectorPause()
    pause.__enter__()  # thread A
    pause.__enter__()  # thread B, overlapping
    assert not gc.isenabled()
    pause.__exit__(None, None, None)  # A leaves first: B still needs it off
    assert not gc.isenabled()
    pause.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with CollectorPause():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
