"""GET /queue answers every queued prompt in full (ComfyUI's shape), streamed from the stored
text: never one body holding the whole answer (five 50,000-node prompts made 255 MB, held
twice over)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from unittest import mock

from starlette.applications import Starlette
from starlette.requests import Request

from latentgraph.server import api_queue


class _Record:
    def __init__(self, number: int, nodes: int) -> None:
        prompt = {str(n): {"class_type": "Show", "inputs": {"x": ["1", 0], "t": "é"}}
                  for n in range(nodes)}  # fmt: skip
        self.item = [number, f"id{number}", prompt, {"client_id": "c"}, ["1"]]

    def queue_item_json(self) -> str:
        return json.dumps(self.item, ensure_ascii=False)


def _answer(running: list[_Record], pending: list[_Record]) -> list[bytes]:
    app = Starlette()
    store = SimpleNamespace(running=lambda: running, pending=lambda: pending)
    app.state.lg = SimpleNamespace(store=store)
    request = Request({"type": "http", "method": "GET", "path": "/queue", "app": app,
                       "headers": []})  # fmt: skip

    async def read() -> list[bytes]:
        response = await api_queue.get_queue(request)
        return [chunk async for chunk in response.body_iterator]

    return asyncio.run(read())


def test_the_queue_is_streamed_at_most_one_item_at_a_time():
    running, pending = [_Record(0, 300)], [_Record(i, 300) for i in range(1, 5)] + [_Record(9, 1)]
    longest = max(len(r.queue_item_json().encode()) for r in running + pending)
    with mock.patch.object(api_queue, "QUEUE_CHUNK_CHARS", 1000):
        chunks = _answer(running, pending)
    assert json.loads(b"".join(chunks)) == {"queue_running": [r.item for r in running],
                                            "queue_pending": [r.item for r in pending]}  # fmt: skip
    assert len(chunks) >= 5 and max(len(c) for c in chunks) <= longest


def test_an_empty_queue_is_comfyuis_empty_answer():
    assert json.loads(b"".join(_answer([], []))) == {"queue_running": [], "queue_pending": []}
