"""The store's in-memory queue and recent history answer exactly what SQLite holds."""

from __future__ import annotations

import json
import random

from latentgraph.server import store as st

HISTORY_SQL = (
    "SELECT * FROM prompts WHERE status IN (?, ?, ?) ORDER BY finished_ms DESC, seq DESC"
    " LIMIT ? OFFSET ?"
)


def _from_sql_history(store: st.Store, limit: int = -1, offset: int = 0) -> list[str]:
    rows = store._rows(HISTORY_SQL, (*st.FINISHED, limit, offset))
    return [r.id for r in reversed(rows)]


def _from_sql_pending(store: st.Store) -> list[str]:
    rows = store._rows("SELECT * FROM prompts WHERE status = ? ORDER BY number, seq", (st.PENDING,))
    return [r.id for r in rows]


def _fill(store: st.Store, n: int, rng: random.Random) -> None:
    """Queue n prompts (some at the front, some with a number), run and finish most of them."""
    for k in range(n):
        number = rng.randint(-5, 5) if k % 17 == 0 else None
        store.add(st.PromptRecord(id=f"p{k}", number=number, prompt_json=json.dumps({"1": {"v": k}})),
                  front=k % 11 == 0)  # fmt: skip
        if k % 3 == 0:
            nxt = store.next_pending()
            assert nxt is not None and store.mark_running(nxt.id)
            status = (st.SUCCESS, st.ERROR, st.INTERRUPTED)[k // 3 % 3]
            store.finish(nxt.id, status, ui={"9": {"text": [str(k)]}},
                         messages=[["execution_start", {"prompt_id": nxt.id}]])  # fmt: skip


def _check(store: st.Store) -> None:
    assert [r.id for r in store.pending()] == _from_sql_pending(store)
    assert store.count_queued() == len(store.pending()) + len(store.running())
    every = _from_sql_history(store)
    total = len(every)
    for max_items, offset in [(None, -1), (1, -1), (64, -1), (256, -1), (300, -1), (None, 0),
                              (1, 0), (64, 10), (10, total - 5), (5, total + 3), (0, 0),
                              (0, -1)]:  # fmt: skip
        if offset < 0:  # the newest max_items
            want = every if max_items is None else every[max(0, total - max_items) :]
        else:  # skipping the oldest `offset`
            want = every[offset:] if max_items is None else every[offset : offset + max_items]
        assert [r.id for r in store.history(max_items, offset)] == want, (max_items, offset)


def test_memory_matches_sqlite_across_eviction_deletes_and_restart(tmp_path):
    rng = random.Random(7)
    path = tmp_path / "db.sqlite3"
    store = st.Store(path)
    _fill(store, 900, rng)  # about 300 finished: more than memory keeps
    assert store.recent_history(None) is None  # memory no longer holds all of it
    _check(store)
    # A finished entry from memory reads exactly like its row.
    newest = store.history(1)[0]
    (row,) = store._rows("SELECT * FROM prompts WHERE id = ?", (newest.id,))
    ui = json.loads(row.ui_json)
    assert store.get(newest.id) == row and ui == {"9": {"text": [ui["9"]["text"][0]]}}
    # Deleting from history and from the queue keeps memory and SQLite in step.
    gone = [r.id for r in store.history(40, 5)] + ["not-there"]
    assert store.delete_history(gone) == 40
    assert all(store.get(pid) is None for pid in gone)
    assert store.delete_pending([r.id for r in store.pending()[:7]]) == 7
    _check(store)
    # A new process reads the same queue and history back.
    store.close()
    again = st.Store(path)
    _check(again)
    assert [r.id for r in again.pending()] == [r.id for r in store.pending()]
    nxt = again.next_pending()
    assert nxt is not None and nxt.id == again.pending()[0].id
    again.delete_history(None)
    assert again.history() == [] and again.recent_history(None) == []
    again.delete_pending(None)
    assert again.pending() == [] and again.count_queued() == 0
    assert _from_sql_pending(again) == []
    again.close()


def test_numbers_follow_the_queue_and_items_encode_once(tmp_path):
    store = st.Store(tmp_path / "db.sqlite3")
    a = store.add(st.PromptRecord(id="a", number=None, prompt_json='{"1": {}}'))
    b = store.add(st.PromptRecord(id="b", number=None, prompt_json='{"1": {}}'))
    c = store.add(st.PromptRecord(id="c", number=None, prompt_json='{"1": {}}'), front=True)
    assert (a.number, b.number, c.number) == (0, 1, -2)
    assert [r.id for r in store.pending()] == ["c", "a", "b"]
    assert store.exists("a") and not store.exists("z")
    import json

    assert json.loads(a.queue_item_json()) == [0, "a", {"1": {}}, {}, []]
    assert a.queue_item_json() is a.queue_item_json()
    store.close()
