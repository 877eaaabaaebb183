"""The queue/history store in-process: a Store on a tmp_path file, called directly (no server,
no subprocess), so mutation testing reaches all of it. What a restart does is a close and a
new Store on the same file; a crash is a close with prompts left running."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from latentgraph.server import store as st
from latentgraph.server.jsontext import encode_json
from latentgraph.server.store import PromptRecord, Store, StoreWriteError

from .conftest import FullDisk


def _add(store: Store, pid: str, **fields) -> PromptRecord:
    """Add a prompt; `prompt=` is given as a value, stored as its JSON text."""
    fields["prompt_json"] = json.dumps(fields.pop("prompt", {"1": {"v": pid}}))
    front = fields.pop("front", False)
    return store.add(PromptRecord(id=pid, number=fields.pop("number", None), **fields), front=front)


def _run(store: Store, pid: str, status: str = st.SUCCESS, **ends) -> None:
    assert store.mark_running(pid)
    assert store.finish(pid, status, **ends)


def _ids(records: list[PromptRecord]) -> list[str]:
    return [r.id for r in records]


def _reopen(store: Store, **kw) -> Store:
    store.close()
    return Store(store.path, **kw)


def _row(path: Path | str, pid: str) -> sqlite3.Row | None:
    """A row as another process reads it (a second connection)."""
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM prompts WHERE id = ?", (pid,)).fetchone()


@pytest.fixture
def store(tmp_path):
    made = Store(tmp_path / "db.sqlite3")
    yield made
    made.close()


# --- records and their JSON -------------------------------------------------------------


def test_a_record_starts_pending_and_empty():
    r = PromptRecord(id="a", number=3, prompt_json='{"1": {}}')
    assert (r.status, r.client_id, r.targets, r.error, r.started_ms, r.finished_ms) == (
        st.PENDING, None, None, None, None, None)  # fmt: skip
    assert (r.extra_data, r.outputs, json.loads(r.ui_json), r.messages, r.created_ms, r.seq,
            r.size) == (
        {}, [], {}, [], 0, 0, 0)  # fmt: skip
    assert json.loads(r.queue_item_json()) == [3, "a", {"1": {}}, {}, []]
    assert "item_json" not in repr(r) and "size" not in repr(r)
    # The cached encoding and the size are not part of what a record is.
    assert r == PromptRecord(id="a", number=3, prompt_json='{"1": {}}', item_json="x", size=9)


def test_queue_items_are_written_once_as_compact_utf8_json_around_the_prompt_text(store):
    r = store.add(PromptRecord(id="é", number=None, prompt_json='{"1": {"text": "caf\\u00e9"}}',
                               extra_data={"k": [1, "☕"]}, outputs=["9"]))  # fmt: skip
    text = r.queue_item_json()
    assert text == '[0,"é",{"1": {"text": "caf\\u00e9"}},{"k":[1,"☕"]},["9"]]'
    assert json.loads(text)[2] == {"1": {"text": "café"}}
    assert r.queue_item_json() is text
    with pytest.raises(ValueError):  # NaN is no JSON: refused, never sent
        encode_json([float("nan")])


def test_job_status_names_are_the_editors():
    assert st.JOB_STATUS == {"pending": "pending", "running": "in_progress",
                             "success": "completed", "error": "failed",
                             "interrupted": "cancelled"}  # fmt: skip
    assert st.FINISHED == ("success", "error", "interrupted")


# --- opening ----------------------------------------------------------------------------


def test_a_new_database_is_empty_wal_autocommit_and_usable_from_other_threads(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    assert store.backup is None and store.path == str(path)
    assert store.history_bytes == 128 * 1024 * 1024
    assert (store.pending(), store.running(), store.history()) == ([], [], [])
    assert store.memory_bytes() == (0, 0) and store.count_queued() == 0
    assert store.next_pending() is None and store.get("a") is None
    assert store._exec("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._exec("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    # The first prompt is number 0; each write is committed at once (another process sees it).
    assert _add(store, "a").number == 0
    assert _row(path, "a")["status"] == st.PENDING
    done = []
    thread = threading.Thread(target=lambda: done.append(_add(store, "b").number))
    thread.start()
    thread.join()
    assert done == [1]
    store.close()


def test_in_memory_database(tmp_path):
    store = Store(":memory:")
    _add(store, "a")
    assert _ids(store.pending()) == ["a"] and store.backup is None
    store.close()


def test_an_unreadable_in_memory_database_raises(monkeypatch, caplog):
    real_open, calls = Store._open, []

    def fails_once(self):
        calls.append(True)
        if len(calls) == 1:
            raise sqlite3.DatabaseError("file is not a database")
        return real_open(self)

    monkeypatch.setattr(Store, "_open", fails_once)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        Store(":memory:")  # nothing to set aside: no second try
    assert calls == [True] and caplog.records == []


def _corrupt_copy(tmp_path: Path) -> tuple[Path, bytes]:
    """A database whose pages are damaged after the first two: it opens, quick_check fails."""
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    for i in range(300):
        _add(store, f"p{i}", prompt={"x": "y" * 200})
    store.close()
    data = bytearray(path.read_bytes())
    for page in range(2, len(data) // 4096):
        data[page * 4096 + 100 : page * 4096 + 400] = b"\x07" * 300
    path.write_bytes(bytes(data))
    return path, bytes(data)


def test_a_database_failing_its_integrity_check_is_set_aside(tmp_path, caplog):
    path, damaged = _corrupt_copy(tmp_path)
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        store = Store(path)
    assert store.backup is not None and store.backup.parent == tmp_path
    assert store.backup.name.startswith("db.sqlite3.corrupt-")
    assert store.backup.read_bytes() == damaged
    assert store.pending() == [] and _add(store, "new").number == 0
    (message,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in message  # SQLite's report was the problems a line each, up to 100
    assert message.startswith(f"the queue/history database {path} could not be read "
                              "(integrity check failed: On tree page ")  # fmt: skip
    assert re.search(r" and \d+ more problems\); it was moved to ", message), message
    assert message.endswith(f"; it was moved to {store.backup}: the queue and history start "
                            f"empty, and what it held can be looked for in that copy with "
                            f"sqlite3 (sqlite3 {store.backup} .recover)")  # fmt: skip
    store.close()
    assert Store(path).backup is None  # the new one opens fine


def test_a_damaged_index_is_found_and_the_database_set_aside(tmp_path, caplog):
    """Bytes flipped in an index page, the page itself well formed: quick_check passed it
    (it does not compare an index with its table), and lookups by id then missed rows."""
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    for i in range(0, 10, 2):
        _add(store, f"id-{i}")
    store.close()
    with closing(sqlite3.connect(path)) as db:
        (root,) = db.execute("SELECT rootpage FROM sqlite_master"
                             " WHERE name = 'sqlite_autoindex_prompts_1'").fetchone()  # fmt: skip
        (size,) = db.execute("PRAGMA page_size").fetchone()
    data = bytearray(path.read_bytes())
    page = (root - 1) * size
    for pid, now in ((b"id-4", b"5"), (b"id-6", b"7")):  # in order still: a valid page
        data[page + data[page : page + size].index(pid) + 3] = now[0]
    path.write_bytes(bytes(data))
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        store = Store(path)
    assert store.backup is not None and store.backup.read_bytes() == bytes(data)
    assert store.pending() == []
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"the queue/history database {path} could not be read (integrity "
                              "check failed: row 3 missing from index sqlite_autoindex_prompts_1"
                              " and 1 more problem); it was moved to ")  # fmt: skip
    store.close()


def test_set_aside_moves_the_wal_files_too_and_names_never_collide(tmp_path, monkeypatch):
    """SQLite deletes an unreadable file's -wal and -shm when its connection closes, unless
    another process holds them: stand in for that with an open that leaves them behind."""
    monkeypatch.setattr(st.time, "strftime", lambda fmt: "STAMP")
    path = tmp_path / "db.sqlite3"
    real_open, opened = Store._open, []

    def open_leaving_wal_files(self):
        opened.append(True)
        if len(opened) % 2:  # the first open of each Store fails
            (tmp_path / "db.sqlite3-wal").write_bytes(b"wal%d" % len(opened))
            (tmp_path / "db.sqlite3-shm").write_bytes(b"shm%d" % len(opened))
            raise sqlite3.DatabaseError("file is not a database")
        return real_open(self)

    monkeypatch.setattr(Store, "_open", open_leaving_wal_files)
    backups = []
    for n in range(3):
        path.write_bytes(b"db%d" % n)
        store = Store(path)
        backups.append(store.backup.name)
        store.close()
        assert store.backup.read_bytes() == b"db%d" % n
        assert Path(f"{store.backup}-wal").read_bytes() == b"wal%d" % (2 * n + 1)
        assert Path(f"{store.backup}-shm").read_bytes() == b"shm%d" % (2 * n + 1)
    assert backups == ["db.sqlite3.corrupt-STAMP", "db.sqlite3.corrupt-STAMP~1",
                       "db.sqlite3.corrupt-STAMP~2"]  # fmt: skip


def test_garbage_is_set_aside(tmp_path):
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"not a database at all" * 400)
    store = Store(path)
    assert store.backup.read_bytes() == b"not a database at all" * 400
    stamp = store.backup.name.removeprefix("db.sqlite3.corrupt-")
    assert re.fullmatch(r"\d{8}-\d{6}", stamp), stamp
    assert abs(time.mktime(time.strptime(stamp, "%Y%m%d-%H%M%S")) - time.time()) < 600
    assert _add(store, "a").number == 0
    store.close()


def test_only_the_parts_that_exist_are_moved(tmp_path, monkeypatch):
    monkeypatch.setattr(st.time, "strftime", lambda fmt: "T" if "%H%M%S" in fmt else "?")
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    store = Store(path)
    assert store.backup == tmp_path / "db.sqlite3.corrupt-T"
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == [
        "db.sqlite3.corrupt-T"]  # fmt: skip
    store.close()


def test_a_truncated_database_is_set_aside(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    for i in range(100):
        _add(store, f"p{i}", prompt={"x": "y" * 500})
    store.close()
    damaged = path.read_bytes()[:4096] + b"\x07" * 20000
    path.write_bytes(damaged)
    store = Store(path)
    assert store.backup.read_bytes() == damaged and store.pending() == []
    store.close()


def test_a_database_that_cannot_be_opened_is_left_where_it_is(tmp_path, caplog):
    """A folder in its place (or no permission, or a lock) is no corrupt database: it was
    moved aside as one ("could not be read ... moved to"), and a new database started."""
    path = tmp_path / "db.sqlite3"
    path.mkdir()
    (path / "kept").write_text("x")
    with pytest.raises(st.StoreOpenError) as raised:
        Store(path)
    assert str(raised.value) == (
        f"the queue database {path} cannot be opened (unable to open database file)"
    )
    assert isinstance(raised.value, OSError)  # the CLI prints it as an error, no traceback
    assert (path / "kept").read_text() == "x"
    # the lock file this opening made is gone with it (a refused start leaves nothing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite3"]
    assert caplog.records == []


def test_a_locked_database_is_left_where_it_is(tmp_path, monkeypatch):
    path = tmp_path / "db.sqlite3"
    Store(path).close()
    data = path.read_bytes()

    def locked(self):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Store, "_open", locked)
    with pytest.raises(st.StoreOpenError, match="cannot be opened \\(database is locked\\)"):
        Store(path)
    assert path.read_bytes() == data and sorted(p.name for p in tmp_path.iterdir()) == [
        "db.sqlite3", "db.sqlite3.lock"]  # fmt: skip


def test_a_failed_open_closes_its_connection(tmp_path, monkeypatch):
    closed = []

    class Connection(sqlite3.Connection):
        def close(self):
            closed.append(True)
            super().close()

    real = sqlite3.connect
    monkeypatch.setattr(st.sqlite3, "connect", lambda *a, **k: real(*a, factory=Connection, **k))
    (tmp_path / "db.sqlite3").write_bytes(b"garbage" * 1000)
    store = Store(tmp_path / "db.sqlite3")
    assert closed == [True]  # the unreadable file's connection, before it was moved
    store.close()


# --- the layout's version -----------------------------------------------------------------

# The layout before versions were recorded (user_version 0): this one's, less its index on
# finished_ms.
_OLD_SCHEMA = st._SCHEMA.replace(
    "CREATE INDEX IF NOT EXISTS prompts_finished ON prompts (finished_ms, seq);\n", ""
)


def _old_database(path: Path, schema: str = _OLD_SCHEMA) -> None:
    """A database as latentgraph wrote it before it recorded a layout version (user_version
    0, auto_vacuum off), holding one finished prompt and one pending."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
        for pid, status, finished in (("done", "success", 5), ("queued", "pending", None)):
            db.execute("INSERT INTO prompts (id, number, prompt, extra_data, outputs, status,"
                       " created_ms, finished_ms) VALUES (?, 0, '{}', '{}', '[]', ?, 1, ?)",
                       (pid, status, finished))  # fmt: skip


def _pragma(path: Path, name: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_database_records_the_version_of_its_layout(tmp_path):
    Store(tmp_path / "db.sqlite3").close()
    assert _pragma(tmp_path / "db.sqlite3", "user_version") == st.SCHEMA_VERSION == 1


def test_a_database_from_before_versions_is_read_and_stamped(tmp_path):
    """Version 0 (every database written before this change) whose table is this layout: read
    as it is, its history and queue kept, then stamped."""
    path = tmp_path / "db.sqlite3"
    assert _OLD_SCHEMA != st._SCHEMA
    _old_database(path)
    store = Store(path)
    assert _ids(store.pending()) == ["queued"] and _ids(store.history()) == ["done"]
    store.close()
    assert _pragma(path, "user_version") == st.SCHEMA_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite3", "db.sqlite3.lock"]


def test_a_version_0_database_of_another_layout_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "db.sqlite3"
    _old_database(path, _OLD_SCHEMA.replace("    error TEXT\n", "    error TEXT, extra TEXT\n"))
    data = path.read_bytes()
    with pytest.raises(st.StoreOpenError) as raised:
        Store(path)
    assert str(raised.value) == (
        f"the queue database {path} in the data folder {tmp_path} has a table prompts of "
        "columns this latentgraph does not know (seq, id, number, client_id, prompt, extra_data, "
        "outputs, targets, status, created_ms, started_ms, finished_ms, ui, messages, error, "
        "extra); give it another --data-dir"
    )
    assert path.read_bytes() == data and _pragma(path, "user_version") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite3"]  # its lock file gone


def test_a_database_a_newer_latentgraph_wrote_is_refused_and_left_as_it_is(tmp_path, caplog):
    """Not read, changed or set aside as corrupt: a downgrade would read a layout it does not
    know (and write its own over it)."""
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    _add(store, "a")
    store.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"PRAGMA user_version={st.SCHEMA_VERSION + 1}")
    data = path.read_bytes()
    with pytest.raises(st.StoreTooNew) as raised:
        Store(path)
    assert str(raised.value) == (
        f"the queue database {path} in the data folder {tmp_path} was written by a newer "
        f"latentgraph (its layout version {st.SCHEMA_VERSION + 1}; this one reads "
        f"{st.SCHEMA_VERSION} and older): run that version or a newer one on it, or give this "
        "one another --data-dir"
    )
    assert isinstance(raised.value, st.StoreOpenError)  # the CLI prints it, exit 2
    assert path.read_bytes() == data and caplog.records == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite3", "db.sqlite3.lock"]
    with closing(sqlite3.connect(path, isolation_level=None)) as db:  # the lock was let go
        db.execute(f"PRAGMA user_version={st.SCHEMA_VERSION}")
    store = Store(path)
    assert _ids(store.pending()) == ["a"]
    store.close()


# --- persistence across a restart ---------------------------------------------------------


def test_queue_and_history_read_back_after_a_restart(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    _add(store, "done", client_id="c1", extra_data={"e": 1}, outputs=["9"], targets=["9"],
         created_ms=1234)  # fmt: skip
    _run(store, "done", ui={"9": {"images": [{"filename": "a.png"}]}},
         messages=[["execution_start", {"prompt_id": "done"}]])  # fmt: skip
    _add(store, "queued", targets=None)
    _add(store, "front", front=True)
    before = {pid: store.get(pid) for pid in ("done", "queued", "front")}
    bytes_before = store.memory_bytes()
    again = _reopen(store)
    for pid, record in before.items():
        assert again.get(pid) == record, pid
    done = again.get("done")
    assert (done.client_id, done.targets, done.created_ms, done.extra_data) == (
        "c1", ["9"], 1234, {"e": 1})  # fmt: skip
    assert done.status == st.SUCCESS and done.started_ms <= done.finished_ms
    assert again.get("queued").targets is None
    assert _ids(again.pending()) == ["front", "queued"]
    assert _ids(again.history()) == ["done"]
    # The same bytes are counted in memory as before the restart.
    assert again.memory_bytes() == bytes_before
    assert again.get("done").size == before["done"].size
    # Numbering goes on after the highest number stored, a front prompt's (-2) too.
    assert _add(again, "next").number == -before["front"].number + 1 == 3
    again.close()


def test_numbers_go_on_after_every_prompt_is_deleted_and_a_restart(tmp_path):
    """Was: POST /history {"clear": true} with an empty queue, then a restart, and numbering
    began at 0 again, a front prompt's -1 too (the counter was the largest number stored)."""
    store = Store(tmp_path / "db.sqlite3")
    _add(store, "a")
    _add(store, "front", front=True)
    _add(store, "b")
    _run(store, "front")
    assert store.delete_pending() == 2 and store.delete_history() == 1
    again = _reopen(store)
    assert _add(again, "next").number == 3
    assert _add(again, "front2", front=True).number == -4
    again.close()


def test_the_counter_starts_at_the_largest_number_a_database_before_it_stored(tmp_path):
    """A database from before the counter was kept (no table `prompt_counter`) starts it at
    its largest |number|; an older latentgraph's inserts into it, which know no counter, still
    raise it (the trigger is the database's)."""
    path = tmp_path / "db.sqlite3"
    counter = st._SCHEMA.index("CREATE TABLE IF NOT EXISTS prompt_counter")
    _old_database(path, st._SCHEMA[:counter])  # "done" and "queued", both number 0
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA user_version=1")
        db.execute("UPDATE prompts SET number = -7 WHERE id = 'queued'")
    store = Store(path)
    assert store.delete_pending() == 1 and store.delete_history() == 1
    store = _reopen(store)
    assert _add(store, "next").number == 8
    store.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:  # an older latentgraph
        db.execute("INSERT INTO prompts (id, number, prompt, extra_data, outputs, status,"
                   " created_ms) VALUES ('old', 20, '{}', '{}', '[]', 'pending', 1)")  # fmt: skip
        db.execute("DELETE FROM prompts")
    store = Store(path)
    assert _add(store, "later", front=True).number == -21
    store.close()


def test_memory_sizes_are_the_stored_json(store):
    r = _add(store, "a", prompt={"1": {"t": "x" * 10}}, outputs=["1"], targets=["1"])
    stored = sum(len(_row(store.path, "a")[c]) for c in st._JSON_COLUMNS)
    assert r.size == stored and store.memory_bytes() == (stored, 0)
    _run(store, "a", ui={"1": {"t": ["y"]}})
    row = _row(store.path, "a")
    finished = sum(len(row[c]) for c in st._JSON_COLUMNS)
    assert store.get("a").size == finished and store.memory_bytes() == (0, finished)


def test_a_crash_leaves_running_prompts_failed_by_recover_and_pending_ones_queued(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    for pid in ("r1", "r2", "p1", "p2", "done"):
        _add(store, pid)
    _run(store, "done")
    assert store.mark_running("r2") and store.mark_running("r1")
    store.close()  # the process dies here: no prompt ends are written
    again = Store(tmp_path / "db.sqlite3")
    assert _ids(again.running()) == ["r1", "r2"]  # in queue order (seq)
    before = st.now_ms()
    assert again.recover() == ["r1", "r2"]
    assert again.running() == [] and _ids(again.pending()) == ["p1", "p2"]
    for pid in ("r1", "r2"):
        record = again.get(pid)
        assert (record.status, record.error) == (st.ERROR, "interrupted by shutdown")
        (start_kind, start), (kind, data) = record.messages
        assert (start_kind, start) == ("execution_start", {"prompt_id": pid,
                                                           "timestamp": record.started_ms})  # fmt: skip
        assert kind == "execution_error"
        assert before <= data["timestamp"] <= st.now_ms()
        assert data.keys() == _failed_run_error().keys()  # a failed run's fields, all of them
        assert data == {"prompt_id": pid, "node_id": "", "node_type": "", "executed": [],
                        "exception_message": "interrupted by shutdown",
                        "exception_type": "Shutdown", "traceback": [], "current_inputs": {},
                        "current_outputs": {}, "timestamp": data["timestamp"],
                        "user_error": False, "input_name": None}  # fmt: skip
        assert _row(again.path, pid)["status"] == st.ERROR
    assert _ids(again.history()) == ["done", "r1", "r2"]
    assert again.recover() == []  # nothing left running
    _add(again, "r3")
    again.mark_running("r3")
    assert again.recover("worker gone") == ["r3"] and again.get("r3").error == "worker gone"
    again.close()


def _editor_accepts(job: dict) -> None:
    """`job`'s `execution_error` has the types the editor's Zod schema for an /api/jobs item
    requires (comfyui-frontend-package 1.58.1: node_id, node_type, exception_message and
    exception_type strings, traceback a list of strings; executed, when given, a list of
    strings; prompt_id a string, timestamp a number): one that has not makes it refuse the
    whole list, the Job Queue's history and the Assets "Generated" tab empty."""
    error = job["execution_error"]
    for name in ("node_id", "node_type", "exception_message", "exception_type", "prompt_id"):
        assert isinstance(error[name], str), (name, error)
    for name in ("traceback", "executed"):
        assert isinstance(error[name], list), (name, error)
        assert all(isinstance(item, str) for item in error[name]), (name, error)
    assert isinstance(error["timestamp"], int) and not isinstance(error["timestamp"], bool)
    assert isinstance(error["current_inputs"], dict) and isinstance(error["current_outputs"], dict)
    assert isinstance(job["id"], str) and isinstance(job["create_time"], int)


def test_a_prompt_a_crash_left_running_is_an_error_the_editors_job_list_takes(tmp_path):
    """A restart after a crash wrote the prompt it found running with node_id null: the editor
    refused /api/jobs whole until that entry was deleted. The node is not known then ("")."""
    from latentgraph.server.api_queue import job_entry

    store = Store(tmp_path / "db.sqlite3")
    _add(store, "r")
    assert store.mark_running("r")
    again = _reopen(store)
    assert again.recover() == ["r"]
    job = job_entry(again.get("r"))
    _editor_accepts(job)
    assert (job["execution_error"]["node_id"], job["execution_error"]["node_type"]) == ("", "")
    kept = json.loads(_row(again.path, "r")["messages"])[1][1]
    assert kept["node_id"] == ""  # as /history and the next start read it
    again.close()


def test_an_error_entry_written_with_null_fields_is_one_the_editors_job_list_takes(tmp_path):
    """Entries already in a database: a shutdown's written with node_id null, and
    a failed prompt whose history holds no `execution_error`, show in /api/jobs with every field
    the editor requires."""
    from latentgraph.server.api_queue import job_entry

    store = Store(tmp_path / "db.sqlite3")
    old = {"prompt_id": "old", "node_id": None, "node_type": "", "executed": [],
           "exception_message": "interrupted by shutdown", "exception_type": "Shutdown",
           "traceback": [], "current_inputs": {}, "current_outputs": {}, "timestamp": 5}  # fmt: skip
    _add(store, "old")
    _run(store, "old", st.ERROR, messages=[["execution_error", old]],
         error="interrupted by shutdown")  # fmt: skip
    _add(store, "bare")
    _run(store, "bare", st.ERROR, error="it failed")
    shown = job_entry(store.get("old"))["execution_error"]
    assert shown == {**old, "node_id": "", "user_error": False, "input_name": None}
    bare = job_entry(store.get("bare"))
    _editor_accepts(bare)
    assert bare["execution_error"]["exception_message"] == "it failed"
    store.close()


def test_a_failure_no_node_had_names_no_node_as_a_string(tmp_path):
    """A worker that died before any node started, a crash outside the engine: the run's
    `execution_error` had node_id null, which the editor's job list refuses."""
    from latentgraph.server.api_queue import job_entry
    from latentgraph.server.messages import RunError, RunTranslator

    sent: list = []
    translator = RunTranslator("p", {}, lambda type_, data: sent.append([type_, data]))
    translator.error(RunError("worker process died: signal 9", "WorkerDied"))
    store = Store(tmp_path / "db.sqlite3")
    _add(store, "p")
    _run(store, "p", st.ERROR, messages=sent, error="worker process died: signal 9")
    _editor_accepts(job_entry(store.get("p")))
    assert next(data for type_, data in sent if type_ == "execution_error")["node_id"] == ""
    store.close()


# --- one process at a time ----------------------------------------------------------------


def _in_use(path: Path, pid: int) -> str:
    return (
        f"the queue database {path} cannot be opened (another latentgraph server, pid {pid},"
        " is using it: stop that server first, or give this one another --data-dir)"
    )


def test_a_second_store_on_the_same_database_is_refused_until_the_first_closes(tmp_path):
    """Two servers on one data folder marked each other's running prompt failed and ran each
    other's queued prompts: the second is refused, the first goes on untouched."""
    path = tmp_path / "db.sqlite3"
    first = Store(path)
    _add(first, "a")
    assert first.mark_running("a")
    with pytest.raises(st.StoreInUse) as raised:
        Store(path)
    assert str(raised.value) == _in_use(path, os.getpid())
    assert isinstance(raised.value, st.StoreOpenError)  # the CLI prints it, exit 2
    assert _row(path, "a")["status"] == st.RUNNING  # not recovered by the refused one
    _add(first, "b")  # the first one still writes
    first.close()
    again = Store(path)
    assert _ids(again.running()) == ["a"] and _ids(again.pending()) == ["b"]
    again.close()


def test_a_store_that_fails_to_open_lets_the_next_one_try(tmp_path, monkeypatch):
    path = tmp_path / "db.sqlite3"

    def locked(self):
        raise sqlite3.OperationalError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "_open", locked)
        with pytest.raises(st.StoreOpenError, match="database is locked"):
            Store(path)
    Store(path).close()


def test_the_lock_goes_with_a_killed_process(tmp_path):
    """SIGKILL drops the lock: a restart after a crash opens the database, and recover marks
    the dead process's running prompt."""
    path = tmp_path / "db.sqlite3"
    script = ("import sys, time\nfrom latentgraph.server.store import PromptRecord, Store\n"
              "store = Store(sys.argv[1])\n"
              "store.add(PromptRecord(id='a', number=None, prompt_json='{}'))\n"
              "store.mark_running('a')\nprint('open', flush=True)\ntime.sleep(60)\n")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout.readline() == "open\n"
        with pytest.raises(st.StoreInUse) as raised:
            Store(path)
        assert str(raised.value) == _in_use(path, proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    store = Store(path)
    assert store.recover() == ["a"] and store.get("a").error == "interrupted by shutdown"
    store.close()


def test_a_deleted_data_folder_is_written_again_at_the_next_prompt_start(tmp_path, caplog):
    """`rm -rf` of the data folder while the server ran: the queue and history went on into
    deleted files, lost at stop, nothing logged, and the lock no longer refused a second
    server on that folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "db.sqlite3"
    store = Store(path)
    _add(store, "a")
    _run(store, "a")
    shutil.rmtree(folder)
    _add(store, "b")  # no check here: a prompt's start is where it is made again
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        _run(store, "b")
        _add(store, "c")
        assert store.mark_running("c")  # once
    (note,) = [r.getMessage() for r in caplog.records]
    assert note == (f"the queue database {path} was deleted while the server ran (its data "
                    "folder removed?); it was written there again from the copy this server had "
                    "open (1 queued, 1 finished prompts) and the server goes on with it. To "
                    "start with an empty queue and history, stop the server first, then delete "
                    "the data folder")  # fmt: skip
    assert folder.stat().st_mode & 0o777 == st.DATA_DIR_MODE  # it holds every prompt
    with pytest.raises(st.StoreInUse):  # the lock taken again
        Store(path)
    assert _row(path, "b")["status"] == st.SUCCESS and _row(path, "c")["status"] == st.RUNNING
    store.close()
    again = Store(path)
    assert _ids(again.history()) == ["a", "b"] and _ids(again.running()) == ["c"]
    again.close()


def test_a_data_folder_another_server_took_is_left_to_it(tmp_path, caplog):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "db.sqlite3"
    store = Store(path)
    _add(store, "a")
    shutil.rmtree(folder)
    folder.mkdir()
    other = Store(path)
    _add(other, "theirs")
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        assert store.mark_running("a")
        _add(store, "b")
        assert store.mark_running("b")  # said once
    (note,) = [r.getMessage() for r in caplog.records]
    assert note == (f"the queue database {path} was deleted or replaced while the server ran; "
                    "this server goes on with the copy it has open, whose queue and history "
                    f"are lost when it stops: another file is at {path} now, left as it is")  # fmt: skip
    assert _ids(other.pending()) == ["theirs"] and _row(path, "a") is None
    other.close()
    store.close()


# --- the queue ----------------------------------------------------------------------------


def test_numbers_front_and_run_order(store):
    _add(store, "a")
    _add(store, "b", number=10)
    _add(store, "c")  # after the highest number so far
    _add(store, "d", number=-3)
    _add(store, "e")
    assert [store.get(p).number for p in "abcde"] == [0, 10, 11, -3, 12]
    assert _ids(store.pending()) == ["d", "a", "b", "c", "e"]
    assert store.mark_running("d")
    # Front takes the counter's negative, as ComfyUI's does; the counter goes on after it.
    assert _add(store, "f", front=True).number == -13
    assert _add(store, "g", front=True).number == -14
    assert _add(store, "i", number=-20).number == -20
    assert _add(store, "j", front=True).number == -21  # below a client's own too
    assert _add(store, "k", number=5, front=True).number == 5  # a number of its own, as ComfyUI
    _add(store, "g2")
    assert store.get("g2").number == 22
    assert store.delete_pending(["i", "j", "k", "g2"]) == 4
    assert store.next_pending().id == "g"
    assert _ids(store.pending()) == ["g", "f", "a", "b", "c", "e"]
    # Equal numbers run in the order they came.
    _add(store, "h", number=0)
    assert _ids(store.pending())[2:4] == ["a", "h"]


def test_front_of_an_empty_queue_is_minus_one(store):
    assert _add(store, "a", front=True).number == -1


def test_a_front_prompt_never_takes_the_number_of_one_queued_or_running(tmp_path):
    """Was: with A (0) running and B (1) queued, two front prompts got 0 and -1: /queue
    listed running [0], pending [-1, 0, 1]. Also after a restart, numbers read back: the
    counter goes on after the front prompts' numbers too."""
    store = Store(tmp_path / "db.sqlite3")
    _add(store, "A")
    assert store.mark_running("A")
    _add(store, "B")
    _add(store, "front", front=True)
    _add(store, "front2", front=True)

    def numbers(store: Store) -> list[tuple[str, int]]:
        return [(r.id, r.number) for r in store.running() + store.pending()]

    assert numbers(store) == [("A", 0), ("front2", -3), ("front", -2), ("B", 1)]
    store = _reopen(store)  # A is still running as the database has it
    _add(store, "front3", front=True)
    shown = numbers(store)
    assert shown == [("A", 0), ("front3", -4), ("front2", -3), ("front", -2), ("B", 1)]
    store.recover()  # as a start does: A ended
    _add(store, "front4", front=True)
    assert [r.id for r in store.pending()] == ["front4", "front3", "front2", "front", "B"]
    assert len({r.number for r in store.pending()}) == 5
    store.close()


def test_add_records_what_it_was_given(store):
    before = st.now_ms()
    r = _add(store, "a", client_id="c", created_ms=0, status=st.SUCCESS)
    assert r.status == st.PENDING and before <= r.created_ms <= st.now_ms()
    assert abs(r.created_ms - time.time() * 1000) < 60_000  # milliseconds of the epoch
    assert _row(store.path, "a")["targets"] is None  # no targets: NULL, not "null"
    assert _add(store, "b", created_ms=77).created_ms == 77
    assert (r.seq, store.get("b").seq) == (1, 2)
    row = _row(store.path, "a")
    assert (row["status"], row["client_id"], row["created_ms"], row["seq"]) == (
        st.PENDING, "c", r.created_ms, 1)  # fmt: skip
    assert store.exists("a") and store.count_queued() == 2


def test_the_queue_in_memory_is_bounded_by_bytes_at_the_limit(store):
    a = _add(store, "a")
    limit = a.size * 2
    b = store.add(PromptRecord(id="b", number=None, prompt_json=json.dumps({"1": {"v": "b"}})),
                  max_queued_bytes=limit)  # fmt: skip
    assert b.size == a.size and store.memory_bytes()[0] == limit  # exactly at the limit: taken
    with pytest.raises(st.QueueTooLarge) as refused:
        store.add(PromptRecord(id="c", number=None, prompt_json=json.dumps({"1": {"v": "c"}})),
                  max_queued_bytes=limit)  # fmt: skip
    assert str(refused.value) == (
        f"the queue holds {limit:,} bytes of prompts; this one ({a.size:,} bytes) would take "
        f"it over {limit:,}")  # fmt: skip
    assert not store.exists("c") and store.memory_bytes()[0] == limit
    big = {"1": {"t": "x" * 2000}}
    with pytest.raises(st.QueueTooLarge, match="2,0"):
        store.add(
            PromptRecord(id="d", number=None, prompt_json=json.dumps(big)), max_queued_bytes=2000
        )


def test_running_and_requeue(store):
    for pid in "abc":
        _add(store, pid)
    before = st.now_ms()
    assert store.mark_running("b") and store.mark_running("a")
    assert not store.mark_running("a")  # already running
    assert not store.mark_running("zz")
    assert _ids(store.running()) == ["a", "b"] and _ids(store.pending()) == ["c"]
    assert store.next_pending().id == "c" and store.count_queued() == 3
    a = store.get("a")
    assert a.status == st.RUNNING and before <= a.started_ms <= st.now_ms()
    assert _row(store.path, "a")["started_ms"] == a.started_ms
    assert store.requeue("a")
    assert not store.requeue("a") and not store.requeue("c")
    a = store.get("a")
    assert (a.status, a.started_ms) == (st.PENDING, None)
    assert _row(store.path, "a")["status"] == st.PENDING
    assert _ids(store.pending()) == ["a", "c"]  # back in its place


def test_delete_pending_by_id_and_all(store):
    for pid in ("a", "b", "c", "5", "run"):
        _add(store, pid)
    store.mark_running("run")
    one = store.get("a").size
    total = store.memory_bytes()[0]
    assert store.delete_pending(["a", "zz", "run", 5]) == 2  # "run" runs: kept
    assert _ids(store.pending()) == ["b", "c"] and store.memory_bytes()[0] == total - 2 * one
    assert not store.exists("a") and _row(store.path, "5") is None
    assert store.delete_pending(None) == 2
    assert store.pending() == [] and _ids(store.running()) == ["run"]
    assert store.memory_bytes()[0] == store.get("run").size
    assert _row(store.path, "run") is not None and _row(store.path, "b") is None
    assert store.delete_pending([]) == 0 and store.delete_pending(None) == 0


# --- ends, failed writes ------------------------------------------------------------------


def test_finish_records_the_end_and_moves_the_prompt_to_history(store):
    _add(store, "a", outputs=["9"])
    store.mark_running("a")
    before = st.now_ms()
    assert store.finish("a", st.ERROR, ui={"9": {"p": Path("/x")}}, error="boom",
                        messages=[["execution_error", {"t": Path("/y")}]])  # fmt: skip
    a = store.get("a")
    assert (a.status, a.error) == (st.ERROR, "boom")
    assert before <= a.finished_ms <= st.now_ms()
    assert json.loads(a.ui_json) == {"9": {"p": "/x"}} and a.messages == [
        ["execution_error", {"t": "/y"}]
    ]
    row = _row(store.path, "a")
    assert (row["status"], row["finished_ms"], row["error"]) == (st.ERROR, a.finished_ms, "boom")
    assert row["ui"] == a.ui_json and json.loads(row["messages"]) == a.messages
    assert store.count_queued() == 0 and _ids(store.history()) == ["a"]
    # A second end replaces the first (read back from the database).
    assert store.finish("a", st.SUCCESS)
    a = store.get("a")
    assert (a.status, json.loads(a.ui_json), a.messages, a.error) == (st.SUCCESS, {}, [], None)
    assert _ids(store.history()) == ["a"]
    assert store.memory_bytes()[1] == a.size


def test_outputs_are_kept_as_text_with_what_history_and_jobs_show_of_them(store):
    ui = {"3": {"images": [{"filename": "a.png"}], "text": ["t"]},
          "5": "not an output",
          "9": {"images": [{"filename": "b.png"}, {"filename": "c.png", "p": Path("/x")}]}}  # fmt: skip
    _add(store, "a")
    _run(store, "a", ui=ui)
    expected = st.Outputs(
        nodes=("3", "5", "9"), count=4, images=3,
        last_image={"filename": "c.png", "p": "/x", "nodeId": "9", "mediaType": "images"},
    )  # fmt: skip
    a = store.get("a")
    assert a.outputs_seen == expected
    assert json.loads(a.ui_json) == json.loads(json.dumps(ui, default=str))
    store = _reopen(store)  # read back from the row: the same
    try:
        assert store.get("a").outputs_seen == expected
        assert store.get("a").ui_json == a.ui_json
    finally:
        store.close()


def test_finishing_again_a_prompt_whose_row_turned_corrupt(store, caplog):
    _add(store, "a")
    _run(store, "a")
    store._recent.clear()
    _damage(store.path, "a", "prompt", "{")
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        assert store.finish("a", st.ERROR, error="again")  # written, though not readable
    assert _row(store.path, "a")["error"] == "again" and store.get("a") is None
    assert "skipped prompt 'a'" in caplog.records[0].getMessage()


def test_finishing_an_unknown_prompt_records_nothing(store):
    assert store.finish("nobody", st.SUCCESS)
    assert store.get("nobody") is None and store.history() == []


def _full_disk(store: Store, monkeypatch, error: Exception) -> FullDisk:
    disk = FullDisk(store._db, error)
    monkeypatch.setattr(store, "_db", disk)
    return disk


@pytest.mark.parametrize(("error", "code", "text"), [
    (sqlite3.OperationalError("database or disk is full"), errno.ENOSPC, "disk full: "),
    (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC, "disk full: "),
    (sqlite3.OperationalError("disk I/O error"), errno.EIO, ""),
    (OSError(errno.EIO, "Input/output error"), errno.EIO, ""),
], ids=["sqlite-full", "enospc", "sqlite-io", "eio"])  # fmt: skip
def test_a_failed_write_raises_store_write_error_naming_the_database(store, monkeypatch, error,
                                                                     code, text):  # fmt: skip
    _add(store, "a")
    _full_disk(store, monkeypatch, error).full = True
    for attempt in (lambda: _add(store, "b"), lambda: store.mark_running("a"),
                    lambda: store.delete_pending(None), lambda: store.delete_history(["a"])):  # fmt: skip
        with pytest.raises(StoreWriteError) as raised:
            attempt()
        assert raised.value.errno == code
        assert str(raised.value) == (
            f"[Errno {code}] the queue database {store.path} cannot be written ({text}{error})"
        )
        assert raised.value.__cause__ is error
    assert not store.exists("b") and _ids(store.pending()) == ["a"]
    assert store.memory_bytes()[0] == store.get("a").size


def test_an_end_that_cannot_be_written_is_kept_as_it_happened_until_flushed(store, monkeypatch,
                                                                           caplog):  # fmt: skip
    """A success whose end the full disk refused was turned into an error with no outputs (its
    client had heard the success, its image was saved), and written so once space returned:
    one run, two ends. Its end is kept as it happened, in memory, then in the database."""
    for pid in ("a", "b"):
        _add(store, pid)
        store.mark_running(pid)
    disk = _full_disk(store, monkeypatch, sqlite3.OperationalError("database or disk is full"))
    disk.full = True
    ui = {"9": {"images": [{"filename": "t_00009_.png", "subfolder": "", "type": "output"}]}}
    ran = [["execution_start", {"prompt_id": "a", "at": Path("/p")}],
           ["execution_success", {"prompt_id": "a", "timestamp": 5}]]  # fmt: skip
    before = st.now_ms()
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        assert not store.finish("a", st.SUCCESS, ui=ui, messages=ran)
    a = store.get("a")
    assert (a.status, a.error, json.loads(a.ui_json)) == (st.SUCCESS, None, ui)
    assert a.outputs_seen == st.Outputs.of(ui) and before <= a.finished_ms
    assert a.messages == [["execution_start", {"prompt_id": "a", "at": "/p"}], ran[1]]
    assert _ids(store.running()) == ["b"] and _ids(store.history()) == ["a"]
    assert _row(store.path, "a")["status"] == st.RUNNING  # not written yet
    (note,) = [r.getMessage() for r in caplog.records]
    assert note.startswith("prompt a ended (success) but [Errno 28] the queue database")
    assert "its end is kept in memory and recorded once the database can be written" in note
    assert not store.finish("b", st.INTERRUPTED)
    assert store.get("b").status == st.INTERRUPTED
    assert not store.flush()  # still full: both ends wait
    assert _row(store.path, "a")["status"] == st.RUNNING
    disk.full = False
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="latentgraph.server"):
        assert store.flush()
    late = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [n.split(",")[0] for n in late] == [
        "recorded the end of prompt a (success)",
        "recorded the end of prompt b (interrupted)",
    ]
    assert all(n.endswith("s late: the database can be written again") for n in late)
    row = _row(store.path, "a")
    assert (row["status"], row["error"], row["finished_ms"]) == (st.SUCCESS, None, a.finished_ms)
    assert json.loads(row["messages"]) == a.messages and json.loads(row["ui"]) == ui
    assert _row(store.path, "b")["status"] == st.INTERRUPTED
    assert store.flush()  # nothing left
    again = _reopen(store)
    assert again.get("a") == a and _ids(again.history()) == ["a", "b"]
    again.close()


def test_closing_tries_the_unwritten_ends_once_more_and_names_those_lost(store, monkeypatch,
                                                                       caplog):  # fmt: skip
    """An end still unwritten at close is lost with the process (the next start's `recover`
    records the prompt as interrupted): the log says which."""
    _add(store, "a")
    store.mark_running("a")
    disk = _full_disk(store, monkeypatch, OSError(errno.ENOSPC, "full"))
    disk.full = True
    assert not store.finish("a", st.SUCCESS)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        store.close()
    (note,) = [r.getMessage() for r in caplog.records]
    assert note.startswith("the end of prompt(s) a could not be recorded before the server "
                           f"stopped (the queue database {store.path} cannot be written)")  # fmt: skip
    again = Store(store.path)
    assert again.recover() == ["a"] and again.get("a").status == st.ERROR
    again.close()


def test_closing_writes_an_end_the_disk_takes_again(store, monkeypatch):
    _add(store, "a")
    store.mark_running("a")
    disk = _full_disk(store, monkeypatch, OSError(errno.ENOSPC, "full"))
    disk.full = True
    assert not store.finish("a", st.SUCCESS)
    disk.full = False
    store.close()
    again = Store(store.path)
    assert again.get("a").status == st.SUCCESS and again.recover() == []
    again.close()


def test_flush_stops_at_the_first_end_it_cannot_write(store, monkeypatch):
    for pid in ("a", "b"):
        _add(store, pid)
        store.mark_running(pid)
    disk = _full_disk(store, monkeypatch, OSError(errno.ENOSPC, "full"))
    disk.full = True
    assert not store.finish("a", st.SUCCESS) and not store.finish("b", st.SUCCESS)
    writes = []
    real = disk.execute

    def one_write_then_full(sql, args=()):
        if sql.startswith("UPDATE"):
            writes.append(args[-1])
            disk.full = len(writes) > 1
        return real(sql, args)

    monkeypatch.setattr(disk, "execute", one_write_then_full)
    disk.full = False
    assert not store.flush()
    assert writes == ["a", "b"]
    assert _row(store.path, "a")["status"] == st.SUCCESS
    assert _row(store.path, "b")["status"] == st.RUNNING
    disk.full = False
    writes.clear()
    assert store.flush() and writes == ["b"]  # "a" was written: not written twice


def test_an_unwritten_end_of_a_prompt_not_in_memory(store, monkeypatch):
    _add(store, "a")
    _run(store, "a")
    _full_disk(store, monkeypatch, OSError(errno.ENOSPC, "full")).full = True
    assert not store.finish("a", st.ERROR)  # finished before: not in the queue
    assert store.get("a").status == st.SUCCESS  # nothing else changes until it is written
    assert not store.finish("unknown", st.ERROR)


def test_a_finished_prompts_id_is_taken_again_its_history_entry_replaced(store):
    """ComfyUI queues a prompt under an id used before, the new entry replacing the old (a
    client retrying a job under its own key). A queued or running prompt's id stays its own."""
    _add(store, "a", prompt={"1": {"v": "old"}})
    _run(store, "a")
    _add(store, "b")
    with pytest.raises(st.PromptIdInUse, match="'b' is the id of a prompt queued or running"):
        _add(store, "b")
    store.mark_running("b")
    with pytest.raises(st.PromptIdInUse):
        store.check_id_free("b")
    store.check_id_free("a")
    new = _add(store, "a", prompt={"1": {"v": "new"}})
    assert new.status == st.PENDING and _ids(store.pending()) == ["a"]
    assert store.history() == [] and store.memory_bytes()[1] == 0 and store._finished == 0
    assert json.loads(_row(store.path, "a")["prompt"]) == {"1": {"v": "new"}}
    _run(store, "a")
    assert _ids(store.history()) == ["a"] and store._finished == 1
    assert json.loads(store.get("a").prompt_json) == {"1": {"v": "new"}}
    again = _reopen(store)
    assert _ids(again.history()) == ["a"] and again.get("a").seq == new.seq
    assert _ids(again.running()) == ["b"]
    again.close()


def test_an_id_taken_again_drops_the_old_prompts_unwritten_end(store, monkeypatch):
    """A finished prompt whose end the full disk refused (`finish`) still has its row marked
    running: taking its id again must not let `flush` write that old end over the new row."""
    _add(store, "a")
    store.mark_running("a")
    disk = _full_disk(store, monkeypatch, OSError(errno.ENOSPC, "full"))
    disk.full = True
    assert not store.finish("a", st.SUCCESS)
    with pytest.raises(StoreWriteError):
        _add(store, "a")  # still full: the old entry stays
    assert store.get("a").status == st.SUCCESS
    disk.full = False
    _add(store, "a", prompt={"1": {"v": "again"}})
    assert store.flush() and _row(store.path, "a")["status"] == st.PENDING
    assert _ids(store.pending()) == ["a"] and store.history() == []


# --- history ------------------------------------------------------------------------------


def test_history_is_oldest_first_paged_as_comfyui_pages_it(store):
    """`offset` skips that many of the oldest (it counted from the newest); a negative one, the
    default, gives the newest `max_items`."""
    for i in range(6):
        _add(store, f"p{i}")
        _run(store, f"p{i}")
    _add(store, "waiting")
    every = [f"p{i}" for i in range(6)]
    assert _ids(store.history()) == every and _ids(store.history(None, -1)) == every
    assert _ids(store.history(2)) == ["p4", "p5"] and _ids(store.history(2, -5)) == ["p4", "p5"]
    assert _ids(store.history(2, 1)) == ["p1", "p2"]
    assert _ids(store.history(None, 4)) == ["p4", "p5"]
    assert _ids(store.history(10, 5)) == ["p5"] and _ids(store.history(10)) == every
    assert store.history(0) == [] and store.history(3, 6) == [] and store.history(0, 2) == []
    assert _ids(store.history(-1)) == []
    assert _ids(store.history("2", "1")) == ["p1", "p2"]  # query strings
    assert _ids(store.recent_history(2, 1)) == ["p1", "p2"]


def test_recent_history_past_what_memory_holds_reads_the_database(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    n = st.RECENT_HISTORY + 4
    for i in range(n):
        _add(store, f"p{i}", number=i)
        _run(store, f"p{i}")
    assert len(store._recent) == st.RECENT_HISTORY
    assert _ids(store.recent_history(st.RECENT_HISTORY)) == [f"p{i}" for i in range(4, n)]
    assert store.recent_history(st.RECENT_HISTORY + 1) is None
    assert store.recent_history(None) is None and store.recent_history(10, 250) is None
    assert store.recent_history(3, n - 3) is None  # counted from the oldest: not all in memory
    assert len(store.history()) == n and _ids(store.history(3)) == [
        f"p{n - 3}",
        f"p{n - 2}",
        f"p{n - 1}",
    ]
    assert _ids(store.history(3, 0)) == ["p0", "p1", "p2"] and _ids(store.history(2, n - 1)) == [
        f"p{n - 1}"
    ]
    assert store.get("p0").status == st.SUCCESS and store.exists("p0")
    assert _ids(store.history(st.RECENT_HISTORY + 1))[0] == "p3"
    assert store.history(0, 2) == [] and _ids(store.history(1, 1)) == ["p1"]
    # After a restart, memory holds the same newest prompts.
    again = _reopen(store)
    assert len(again._recent) == st.RECENT_HISTORY and again.recent_history(None) is None
    assert _ids(again.recent_history(st.RECENT_HISTORY)) == [f"p{i}" for i in range(4, n)]
    # One more finishes: the oldest in memory leaves, after a restart as before it.
    _add(again, "new", number=n)
    _run(again, "new")
    assert _ids(again.recent_history(st.RECENT_HISTORY)) == [
        *(f"p{i}" for i in range(5, n)),
        "new",
    ]
    again.delete_history(None)
    assert again.recent_history(None) == [] and again.history() == []
    again.close()


class NoDatabase:
    def execute(self, *args):
        raise AssertionError("the database was read")


def test_the_queue_and_recent_history_answer_from_memory(store, monkeypatch):
    _add(store, "done")
    _run(store, "done")
    queued = _add(store, "queued")
    monkeypatch.setattr(store, "_db", NoDatabase())
    assert store.get("queued") is queued and store.get("done").status == st.SUCCESS
    assert store.exists("queued") and store.exists("done")
    assert _ids(store.history()) == ["done"] and _ids(store.history(1)) == ["done"]
    assert _ids(store.pending()) == ["queued"] and store.next_pending() is queued


def test_exactly_as_many_as_memory_keeps_are_all_in_memory(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    for i in range(st.RECENT_HISTORY):
        _add(store, f"p{i}")
        _run(store, f"p{i}")
    assert len(store.recent_history(None)) == st.RECENT_HISTORY
    again = _reopen(store)
    assert len(again.recent_history(None)) == st.RECENT_HISTORY
    again.close()


def test_history_memory_keeps_the_newest_within_its_bytes(tmp_path):
    store = Store(tmp_path / "db.sqlite3", history_bytes=2000)
    for i, size in enumerate([600, 600, 600, 3000, 100]):
        _add(store, f"p{i}", prompt={"t": "x" * size})
        _run(store, f"p{i}")
        held = store.memory_bytes()[1]
        assert held <= 2000 or len(store._recent) == 1, (i, held)
    # p3 alone is over the budget: kept (the newest is always kept), then p4 pushed it out.
    assert list(store._recent) == ["p4"]
    assert store.memory_bytes()[1] == store.get("p4").size
    assert store.recent_history(2) is None and _ids(store.history(2)) == ["p3", "p4"]


def test_history_memory_exactly_at_its_budget_keeps_both(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    for pid in ("a", "b"):
        _add(store, pid)
        _run(store, pid)
    budget = store.memory_bytes()[1]
    again = _reopen(store, history_bytes=budget)
    assert list(again._recent) == ["a", "b"] and again.recent_history(None) is not None
    again.close()
    again = Store(store.path, history_bytes=budget - 1)
    assert list(again._recent) == ["b"] and again.recent_history(None) is None
    again.close()


def test_memory_after_a_restart_holds_no_gap(tmp_path):
    """Read back newest first within the byte budget: once one entry does not fit, the older
    ones are left to SQLite, even a small one that would fit (else history(2) from memory
    skipped the middle one)."""
    store = Store(tmp_path / "db.sqlite3", history_bytes=1000)
    for pid, size in [("small-old", 100), ("big-mid", 600), ("big-new", 600)]:
        _add(store, pid, prompt={"t": "x" * size})
        _run(store, pid)
    assert _ids(store.history(2)) == ["big-mid", "big-new"]
    again = _reopen(store, history_bytes=1000)
    assert _ids(again.history(2)) == ["big-mid", "big-new"]
    assert _ids(again.history()) == ["small-old", "big-mid", "big-new"]
    assert _add(again, "next").number == 3  # numbering still goes on after the highest
    again.close()


def test_the_same_prompt_finished_again_is_counted_once(store):
    _add(store, "a", prompt={"t": "x" * 100})
    _run(store, "a", ui={"1": {"t": ["y" * 50]}})
    first = store.memory_bytes()[1]
    assert store.finish("a", st.SUCCESS, ui={"1": {"t": ["y" * 50]}})
    assert store.memory_bytes()[1] == first and list(store._recent) == ["a"]


def test_delete_history_by_id_and_all(store):
    for pid in ("a", "b", "c", "7"):
        _add(store, pid)
        _run(store, pid)
    _add(store, "queued")
    sizes = {pid: store.get(pid).size for pid in ("a", "b", "c", "7")}
    assert store.delete_history(["a", "queued", "zz", 7]) == 2
    assert _ids(store.history()) == ["b", "c"] and store.exists("queued")
    assert store.memory_bytes()[1] == sizes["b"] + sizes["c"]
    assert store.get("a") is None and _row(store.path, "7") is None
    assert store.delete_history(None) == 2
    assert store.history() == [] and store.memory_bytes() == (store.get("queued").size, 0)
    assert _ids(store.pending()) == ["queued"]


def test_a_deleted_entry_evicted_from_memory_is_gone_from_the_database(tmp_path):
    store = Store(tmp_path / "db.sqlite3", history_bytes=1)
    for pid in ("a", "b"):
        _add(store, pid)
        _run(store, pid)
    assert list(store._recent) == ["b"] and store.exists("a")
    assert store.delete_history(["a"]) == 1 and not store.exists("a")
    assert store.recent_history(None) is None  # memory still does not hold all of it
    assert _ids(store.history()) == ["b"]
    store.close()


# --- the history's bound and its space ---------------------------------------------------

# What the editor sends with every prompt: its workflow in extra_data (40 KB is a small one).
_EDITOR_EXTRA = {"extra_pnginfo": {"workflow": {"nodes": ["x" * 40_000]}}}


def _on_disk(path: Path | str) -> int:
    """Bytes the database takes: its file and its WAL."""
    wal = Path(f"{path}-wal")
    return Path(path).stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _finished_rows(path: Path | str) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute(
            "SELECT id FROM prompts WHERE status IN (?, ?, ?) ORDER BY finished_ms, seq",
            st.FINISHED)]  # fmt: skip


def test_the_history_keeps_the_newest_max_history_finished_prompts(tmp_path):
    """ComfyUI keeps 10,000 (MAXIMUM_HISTORY_SIZE); ours grew without bound (200 prompts with
    an editor workflow: a 10.7 MB database, 10 MB answers to GET /history). The oldest finished
    prompts go when one ends, from SQLite and memory; queued and running ones never do."""
    path = tmp_path / "db.sqlite3"
    store = Store(path, max_history=3)
    _add(store, "waiting")
    _add(store, "running")
    assert store.mark_running("running")
    for i in range(6):
        _add(store, f"p{i}")
        _run(store, f"p{i}", st.ERROR if i == 4 else st.SUCCESS)
        assert len(_finished_rows(path)) == min(i + 1, 3)
    assert _finished_rows(path) == _ids(store.history()) == ["p3", "p4", "p5"]
    assert _ids(store.recent_history()) == ["p3", "p4", "p5"]  # memory holds no more
    assert store.get("p2") is None and not store.exists("p0")
    assert _ids(store.pending()) == ["waiting"] and _ids(store.running()) == ["running"]
    assert store.memory_bytes()[1] == sum(store.get(p).size for p in ("p3", "p4", "p5"))
    store = _reopen(store, max_history=2)  # a lower bound applies at start
    assert _finished_rows(path) == _ids(store.history()) == ["p4", "p5"]
    assert store.finish("running", st.SUCCESS)
    assert _finished_rows(path) == _ids(store.history()) == ["p5", "running"]
    assert _ids(store.pending()) == ["waiting"]
    store.close()


def test_a_prune_that_cannot_be_written_is_tried_again_at_the_next_end(store, monkeypatch,
                                                                       caplog):  # fmt: skip
    store.max_history = 1
    _add(store, "a")
    _run(store, "a")
    disk = _full_disk(store, monkeypatch, sqlite3.OperationalError("database or disk is full"))
    real_write = store._write

    def full_for_deletes(sql: str, args: tuple = ()):
        disk.full = sql.startswith("DELETE")
        try:
            return real_write(sql, args)
        finally:
            disk.full = False

    monkeypatch.setattr(store, "_write", full_for_deletes)
    _add(store, "b")
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        _run(store, "b")
    assert _finished_rows(store.path) == ["a", "b"]
    assert "could not delete the oldest finished prompts beyond the server's --max-history (1)" \
        in caplog.records[0].getMessage()  # fmt: skip
    monkeypatch.setattr(store, "_write", real_write)
    _add(store, "c")
    _run(store, "c")
    assert _finished_rows(store.path) == _ids(store.history()) == ["c"]


def test_the_oldest_are_found_by_their_index_not_by_reading_every_row(store):
    """Sorting every finished row by finished_ms read each one past its prompt and extra_data
    (0.1-1.4 s for 10,000 rows of 40 KB): once per prompt's end."""
    plan = store._db.execute(f"EXPLAIN QUERY PLAN {st._OLDEST}", (*st.FINISHED, 1)).fetchall()
    assert [row[3] for row in plan] == [
        "SEARCH prompts USING INDEX prompts_finished (finished_ms>?)"]  # fmt: skip


def _fill(store: Store, n: int) -> None:
    for i in range(n):
        _add(store, f"p{i}", extra_data=_EDITOR_EXTRA)
        _run(store, f"p{i}")


def test_a_cleared_history_gives_its_space_back(tmp_path):
    """Was: POST /history {"clear": true} answered {"deleted": 218}, and the database stayed
    10.7 MB, after the server stopped too (free pages kept, no VACUUM)."""
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    _fill(store, 200)
    assert _on_disk(path) > 8_000_000
    assert store.delete_history(None) == 200
    assert _on_disk(path) < 500_000  # at once, the WAL truncated too
    _add(store, "next")
    store.close()
    assert path.stat().st_size < 500_000 and _pragma(path, "auto_vacuum") == 2  # incremental


def test_a_small_clear_truncates_the_wal(tmp_path):
    """Its few free pages are kept for the next rows, but the WAL, which kept the deleted
    prompts (and SQLite keeps at its largest, up to 4 MB), is emptied: 5 prompts left 3.9 MB."""
    path = tmp_path / "db.sqlite3"
    store = Store(path, max_history=5)
    _fill(store, 12)
    assert Path(f"{path}-wal").stat().st_size > 400_000
    assert store.delete_history(None) == 5
    assert Path(f"{path}-wal").stat().st_size == 0
    assert store.delete_history(None) == 0
    store.close()


def test_a_queue_clear_truncates_the_wal(tmp_path):
    """POST /queue {"clear": true} gives the space back as a history delete does: it left the
    WAL holding the deleted prompts."""
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    for i in range(12):
        _add(store, f"p{i}", extra_data=_EDITOR_EXTRA)
    assert Path(f"{path}-wal").stat().st_size > 400_000
    assert store.delete_pending(["p0"]) == 1
    assert Path(f"{path}-wal").stat().st_size == 0
    assert store.delete_pending(None) == 11 and store.delete_pending(None) == 0
    store.close()


def test_deleting_many_by_id_gives_their_space_back_and_a_few_do_not(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    _fill(store, 200)
    store.delete_history([f"p{i}" for i in range(10)])  # 5%: reused by the next prompts
    assert _on_disk(path) > 8_000_000
    store.delete_history([f"p{i}" for i in range(10, 150)])
    assert _on_disk(path) < 3_000_000
    assert _ids(store.history()) == [f"p{i}" for i in range(150, 200)]
    store.close()


def test_a_database_from_before_gives_its_space_back_once_rewritten(tmp_path, caplog):
    """Made without auto_vacuum, whose mode only a VACUUM changes: its first large delete is
    given back by one (logged), later ones as a database made now gives them back."""
    path = tmp_path / "db.sqlite3"
    _old_database(path)
    store = Store(path)
    _fill(store, 200)
    with caplog.at_level(logging.INFO, logger="latentgraph.server"):
        store.delete_history(None)
    assert _on_disk(path) < 500_000 and _pragma(path, "auto_vacuum") == 2
    assert "rewriting the queue database" in caplog.text
    assert _ids(store.pending()) == ["queued"]
    _fill(store, 100)
    store.delete_history(None)
    assert _on_disk(path) < 500_000
    store.close()


def test_a_lower_bound_at_start_gives_the_space_back(tmp_path, caplog):
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    _fill(store, 200)
    store.close()
    with caplog.at_level(logging.INFO, logger="latentgraph.server"):
        store = Store(path, max_history=10)
    assert _ids(store.history()) == [f"p{i}" for i in range(190, 200)]
    assert _on_disk(path) < 1_000_000
    assert "deleted the 190 oldest finished prompts from the history: it keeps 10 (the " \
        "server's --max-history)" in caplog.text  # fmt: skip
    store.close()


def test_space_that_cannot_be_given_back_stays_free_and_is_logged(store, monkeypatch, caplog):
    _fill(store, 50)

    def full(name: str) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_pragma", full)
    with caplog.at_level(logging.WARNING, logger="latentgraph.server"):
        assert store.delete_history(None) == 50
    assert f"could not give the free space of the queue database {store.path} back (database " \
        "or disk is full); SQLite reuses it for new prompts" in caplog.text  # fmt: skip
    assert store.history() == []


# --- jobs ---------------------------------------------------------------------------------


def test_jobs_filtered_paged_and_sorted_by_creation(store):
    for pid, created in [("a", 300), ("b", 100), ("c", 200), ("d", 200), ("e", 50)]:
        _add(store, pid, created_ms=created)
    _run(store, "a")
    _run(store, "c", st.ERROR)
    store.mark_running("e")
    rows, total = store.jobs(None, 10, 0)
    assert (_ids(rows), total) == (["a", "d", "c", "b", "e"], 5)
    rows, total = store.jobs(None, 10, 0, newest_first=False)
    assert (_ids(rows), total) == (["e", "b", "c", "d", "a"], 5)
    rows, total = store.jobs([], 2, 1)
    assert (_ids(rows), total) == (["d", "c"], 5)
    rows, total = store.jobs([st.PENDING], 10, 0)
    assert (_ids(rows), total) == (["d", "b"], 2)
    rows, total = store.jobs([st.SUCCESS, st.ERROR], 1, 1, newest_first=False)
    assert (_ids(rows), total) == (["a"], 2)
    rows, total = store.jobs([st.RUNNING], "5", "0")
    assert (_ids(rows), total) == (["e"], 1) and isinstance(total, int)
    assert rows[0].status == st.RUNNING
    assert store.jobs([st.INTERRUPTED], 10, 0) == ([], 0)


def test_jobs_show_an_unwritten_end_as_history_does(store, monkeypatch):
    """A prompt whose end the full disk refused was "in_progress" in /api/jobs (its row, still
    running) while /history said success (memory); filtered by status, it was counted as
    running and not as finished."""
    for pid, created in [("a", 100), ("b", 200), ("c", 300)]:
        _add(store, pid, created_ms=created)
    store.mark_running("a")
    store.mark_running("b")
    _full_disk(store, monkeypatch, OSError(errno.ENOSPC, "full")).full = True
    ui = {"9": {"images": [{"filename": "t.png", "subfolder": "", "type": "output"}]}}
    assert not store.finish("a", st.SUCCESS, ui=ui)
    assert _row(store.path, "a")["status"] == st.RUNNING  # not written yet
    rows, total = store.jobs(None, 10, 0)
    assert (_ids(rows), total) == (["c", "b", "a"], 3)
    assert rows[2] == store.get("a") == store.history()[-1]  # as /history shows it
    assert rows[2].status == st.SUCCESS and rows[2].outputs_seen == st.Outputs.of(ui)
    assert store.jobs([st.SUCCESS], 10, 0) == ([store.get("a")], 1)
    rows, total = store.jobs([st.RUNNING], 10, 0)
    assert (_ids(rows), total) == (["b"], 1)
    rows, total = store.jobs([st.RUNNING, st.PENDING], 1, 1, newest_first=False)
    assert (_ids(rows), total) == (["c"], 2)


def test_an_unwritten_end_memory_no_longer_holds_is_still_shown(tmp_path, monkeypatch):
    """History memory, bounded in bytes, let go of an end the database had not taken: /jobs
    and /jobs/{id} read its row (running) again."""
    store = Store(tmp_path / "db.sqlite3", history_bytes=1)  # memory keeps the newest only
    for pid in ("a", "b"):
        _add(store, pid, created_ms={"a": 1, "b": 2}[pid])
        store.mark_running(pid)
    disk = _full_disk(store, monkeypatch, OSError(errno.ENOSPC, "full"))
    disk.full = True
    assert not store.finish("a", st.ERROR, error="boom")
    assert not store.finish("b", st.SUCCESS)
    assert list(store._recent) == ["b"]  # "a" left memory
    a = store.get("a")
    assert (a.status, a.error) == (st.ERROR, "boom")
    rows, total = store.jobs([st.ERROR], 10, 0)
    assert (rows, total) == ([a], 1)
    assert store.jobs([st.RUNNING], 10, 0) == ([], 0)
    disk.full = False
    assert store.flush()
    again = _reopen(store)
    assert again.get("a") == a  # as its row, once written
    again.close()


def test_history_read_from_the_database_shows_an_unwritten_end(tmp_path, monkeypatch):
    """A /history page older than memory holds is read from SQLite: an end the full disk had
    not let the store write was left out of it (its row, still running), though /history/{id}
    and /api/jobs show it."""
    store = Store(tmp_path / "db.sqlite3", history_bytes=1)  # memory keeps the newest only
    _add(store, "z")
    _run(store, "z")
    for pid in ("a", "b"):
        _add(store, pid)
        store.mark_running(pid)
    _full_disk(store, monkeypatch, OSError(errno.ENOSPC, "full")).full = True
    assert not store.finish("a", st.ERROR, error="boom")
    assert not store.finish("b", st.SUCCESS)
    assert list(store._recent) == ["b"] and store.recent_history() is None  # from SQLite
    assert _ids(store.history()) == ["z", "a", "b"]
    assert store.history()[1] == store.get("a") and store.get("a").status == st.ERROR
    assert _ids(store.history(2)) == ["a", "b"]  # the newest two
    assert _ids(store.history(1, 1)) == ["a"] and _ids(store.history(None, 2)) == ["b"]


# --- corrupt rows -------------------------------------------------------------------------


def _damage(path: Path | str, pid: str, column: str, text: str | bytes) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"UPDATE prompts SET {column} = ? WHERE id = ?", (text, pid))


def test_corrupt_rows_are_set_aside_at_start(tmp_path, caplog):
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    for pid in ("good-done", "bad-done", "good-queued", "bad-queued", "bad-running"):
        _add(store, pid)
    for pid in ("good-done", "bad-done"):
        _run(store, pid)
    store.mark_running("bad-running")
    store.close()
    _damage(path, "bad-queued", "prompt", "")
    _damage(path, "bad-done", "messages", '[["exec')
    _damage(path, "bad-running", "outputs", "{")
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        store = Store(path)
    assert _ids(store.pending()) == ["good-queued"] and store.running() == []
    assert _ids(store.history()) == ["good-done"]
    for pid in ("bad-queued", "bad-done", "bad-running"):
        assert store.get(pid) is None and not store.exists(pid)
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 3
    seq = {"bad-done": 2, "bad-queued": 4, "bad-running": 5}
    reasons = {"bad-done": "Unterminated string starting at: line 1 column 3 (char 2)",
               "bad-queued": "Expecting value: line 1 column 1 (char 0)",
               "bad-running": "Expecting property name enclosed in double quotes: line 1 "
                              "column 2 (char 1)"}  # fmt: skip
    for pid, n in seq.items():
        assert (f"set aside prompt {pid!r} (row {n}) of the database {path}: its stored JSON "
                f"cannot be read ({reasons[pid]}); the row was moved to the table "
                "corrupt_prompts") in notes, pid  # fmt: skip
    with closing(sqlite3.connect(path)) as db:
        kept = dict(db.execute("SELECT id, prompt FROM corrupt_prompts").fetchall())
    assert sorted(kept) == ["bad-done", "bad-queued", "bad-running"] and kept["bad-queued"] == ""
    store.close()


def test_a_row_that_turns_corrupt_later_is_skipped_when_read(store, caplog):
    for pid in ("a", "b", "c"):
        _add(store, pid)
        _run(store, pid)
    store._recent_all = False  # as if memory held only part of the history
    store._recent.clear()
    _damage(store.path, "c", "ui", "{nope")  # the newest: read first
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        assert _ids(store.history()) == ["a", "b"]
    (note,) = [r.getMessage() for r in caplog.records]
    assert note == (f"skipped prompt 'c' (row 3) of the database {store.path}: its stored JSON "
                    "cannot be read (Expecting property name enclosed in double quotes: line 1 "
                    "column 2 (char 1))")  # fmt: skip
    assert caplog.records[0].name == "latentgraph.server"
    _damage(store.path, "a", "ui", "{nope")
    _damage(store.path, "c", "ui", "{}")
    caplog.clear()
    assert _ids(store.history()) == ["b", "c"]
    assert _row(store.path, "a") is not None  # left where it is: only set aside at start
    assert store.get("a") is None and store.exists("a")


def test_a_corrupt_row_that_cannot_be_set_aside_is_skipped(tmp_path, caplog):
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    _add(store, "bad")
    _add(store, "good")
    store._exec("DROP TABLE corrupt_prompts")
    store._exec("CREATE TABLE corrupt_prompts (only_one_column)")
    store.close()
    _damage(path, "bad", "extra_data", "[1")
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        store = Store(path)
    assert _ids(store.pending()) == ["good"]
    (note,) = [r.getMessage() for r in caplog.records]
    assert note.startswith(f"skipped prompt 'bad' (row 1) of the database {path}: its stored "
                           "JSON cannot be read (Expecting ',' delimiter: line 1 column 3")  # fmt: skip
    assert "), and it could not be set aside (table corrupt_prompts has 1 columns" in note
    assert _row(path, "bad") is not None
    store.close()


def test_a_column_that_is_not_text_is_corrupt_too(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    _add(store, "a")
    _add(store, "b")
    store.close()
    _damage(path, "a", "prompt", b"{}")  # a blob: no text to search, a TypeError
    again = Store(path)
    assert _ids(again.pending()) == ["b"] and again.get("a") is None
    again.close()


def _rot(path: Path | str, pid: str, column: str) -> None:
    """Bit rot in a TEXT value: "ok" and a byte that is no UTF-8, as the tester made it."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"UPDATE prompts SET {column} = CAST(X'6F6BFF' AS TEXT) WHERE id = ?", (pid,))


def test_text_that_is_not_utf8_is_set_aside_at_start(tmp_path, caplog):
    """SQLite raised while fetching such a value, before the row could be judged: the server
    refused to start ("internal error: OperationalError: Could not decode to UTF-8 column")."""
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    for pid in ("good-done", "rot-done", "good-queued", "rot-queued"):
        _add(store, pid)
    for pid in ("good-done", "rot-done"):
        _run(store, pid)
    store.close()
    _rot(path, "rot-done", "error")
    _rot(path, "rot-queued", "prompt")
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        store = Store(path)
    assert _ids(store.pending()) == ["good-queued"] and _ids(store.history()) == ["good-done"]
    notes = sorted(r.getMessage() for r in caplog.records)
    assert notes == [
        f"set aside prompt {pid!r} (row {seq}) of the database {path}: its stored text cannot be "
        f"read (column {column!r} is not UTF-8: byte 0xff at character 2); the row was moved "
        "to the table corrupt_prompts"
        for pid, seq, column in (("rot-done", 2, "error"), ("rot-queued", 4, "prompt"))]  # fmt: skip
    with closing(sqlite3.connect(path)) as db:
        db.text_factory = bytes
        kept = dict(db.execute("SELECT id, error FROM corrupt_prompts").fetchall())
    assert kept == {b"rot-done": b"ok\xff", b"rot-queued": None}  # byte for byte
    store.close()


def test_text_that_turns_undecodable_later_is_skipped_by_every_read(store, caplog):
    for pid in ("a", "b", "c"):
        _add(store, pid)
        _run(store, pid)
    _add(store, "q")
    store._recent_all = False  # as if memory held only part of the history
    store._recent.clear()
    _rot(store.path, "b", "messages")
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        assert _ids(store.history()) == ["a", "c"]
        assert _ids(store.history(None, 0)) == ["a", "c"]
        assert store.get("b") is None and store.get("a").status == st.SUCCESS
        assert _ids(store.jobs(None, 10, 0)[0]) == ["q", "c", "a"]
        assert _ids(store.jobs([st.SUCCESS], 10, 0)[0]) == ["c", "a"]
    notes = {r.getMessage() for r in caplog.records}
    assert notes == {f"skipped prompt 'b' (row 2) of the database {store.path}: its stored text "
                     "cannot be read (column 'messages' is not UTF-8: byte 0xff at character "
                     "2)"}  # fmt: skip
    caplog.clear()
    _rot(store.path, "q", "id")  # the id itself: the log shows it escaped
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        assert _ids(store.jobs(None, 10, 0)[0]) == ["c", "a"]
    assert caplog.records[0].getMessage().startswith("skipped prompt 'ok\\udcff' (row 4) ")


def test_many_threads_add_and_finish_without_losing_a_prompt(store):
    def work(k: int) -> None:
        for i in range(20):
            pid = f"t{k}-{i}"
            _add(store, pid)
            if i % 2:
                _run(store, pid)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.pending()) == 40 and len(store.history()) == 40
    assert sorted(r.number for r in store.pending() + store.history()) == list(range(80))
    assert store.memory_bytes() == (sum(r.size for r in store.pending()),
                                    sum(r.size for r in store.history()))  # fmt: skip


def _failed_run_error() -> dict:
    """The `execution_error` data of a run that failed in a worker, for its fields."""
    from latentgraph.server.messages import RunError, RunTranslator

    sent: list = []
    translator = RunTranslator(
        "p", {"3": "KSampler"}, lambda type_, data: sent.append((type_, data))
    )
    translator.error(RunError("x", "E", "3", "KSampler"))
    return next(data for type_, data in sent if type_ == "execution_error")


def test_prompts_ending_in_one_millisecond_leave_memory_in_history_order(tmp_path, monkeypatch):
    """History orders by end time, then by queue order: a prompt queued later that ends in the
    same millisecond as one queued before it comes after it. Memory, full, drops what SQLite's
    history calls the oldest, whatever order they ended in."""
    monkeypatch.setattr(st, "now_ms", lambda: 1_000)  # every prompt ends at the same time
    store = Store(tmp_path / "db.sqlite3")
    n = st.RECENT_HISTORY + 3
    for i in range(n):
        _add(store, f"p{i}")
    for i in reversed(range(n)):  # the last queued ends first
        _run(store, f"p{i}")
    every = _ids(store.history())
    assert every == [f"p{i}" for i in range(n)]  # same end: queue order
    assert _ids(store.recent_history(st.RECENT_HISTORY)) == every[-st.RECENT_HISTORY :]
    store.close()
