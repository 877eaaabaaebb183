"""The CI variant of bench/load.py: 10 websocket clients, 30 prompts queued at once on toy
nodes. Every run message reaches its owner and nobody else; every owner sees the full
sequence. Times are reported by the bench, never asserted here."""

from __future__ import annotations

import asyncio
import tempfile

from bench.load import Server, drive, toy_prompt, toy_registry


def test_no_lost_or_misrouted_messages():
    with tempfile.TemporaryDirectory() as tmp, Server(toy_registry, tmp) as srv:
        result = asyncio.run(drive(srv.base, srv.ws, 10, 30, toy_prompt, timeout=120))
    assert (result.lost, result.misrouted, result.failed) == (0, 0, 0)
    assert result.complete == 30
    assert result.queue_ms, "the /queue poller never ran"
