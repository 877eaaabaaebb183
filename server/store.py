"""The queue and the history, in one SQLite table that survives restarts.

Every prompt is a row from the moment it is accepted until it is deleted: pending, running,
then success / error / interrupted. The worker thread and the event loop share one connection
behind a lock; WAL mode keeps readers from waiting on the writer.

The queue (pending + running) and the most recent finished prompts are also kept in memory, so
/queue, /history?max_items=N and /history/{id} answer without SQLite or JSON decoding. That
matters under load: every SQLite call releases the GIL, and getting it back behind a worker
thread busy in Python costs up to a switch interval (5 ms) per call - one call per row.
Memory is bounded by bytes as well as by count (the encoded JSON of what each entry holds).

A write that fails (a full disk) raises `StoreWriteError`, except when a prompt finishes: its
end, as its client heard it, is then kept in memory and written by `flush` once writing works.
A stored row whose JSON cannot be read, or whose text is not UTF-8 (bit rot), is moved to the
table `corrupt_prompts` at start and skipped when read later, so one bad row never stops the
server. A file that is no database, or a damaged one (`PRAGMA integrity_check`, its indexes
compared with its table too), is moved aside and a new database started; one that cannot be
opened at all (a folder, no permission) raises `StoreOpenError` and is left where it is.

One process at a time has a database open: `DatabaseLock` (a lock file next to it) refuses a
second server on the same data folder with `StoreInUse`, which would otherwise mark the first
one's running prompt failed and run its queued prompts too. A data folder deleted while the
server runs is seen at the next prompt's start and the database written there again, its lock
taken again (`_follow_path`).

The history is bounded: when a prompt ends and more than `max_history` finished prompts are
stored (ComfyUI keeps 10,000), the oldest finished ones are deleted; queued and running ones
never are. Space that deletes free is given back to the filesystem once it is a good part of
the file (`_give_back_space`), and the WAL truncated.

The prompt counter (`add`) goes on after a restart even when every prompt was deleted: the
highest |number| given is kept in the one-row table `prompt_counter`, raised by a trigger in
each insert's own transaction (a crash cannot lose it, and POST /prompt makes no second call).
Opening a database raises it to the largest number stored (written only then: a start on a
full disk still opens), which starts it in a database from before it was kept; an older latentgraph, which knows no such table, still raises it (the
trigger is the database's), so it changes no layout version.

The database records its layout's version (`PRAGMA user_version`, `SCHEMA_VERSION`): one
written by a newer latentgraph is refused (`StoreTooNew`), not read or changed; one written
before versions were recorded (0) is read when its table is this layout, and stamped.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import closing, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows (not a target): the database is then not locked
    fcntl = None  # type: ignore[assignment]

from latentgraph.graph.files import make_folders, os_error_words
from latentgraph.graph.problems import quoted

from .config import DATA_DIR_MODE, MAX_HISTORY, server_limit_label
from .jsontext import encode_json, load_stored, stored_json, stored_text
from .messages import RunError, execution_error

PENDING = "pending"
RUNNING = "running"
SUCCESS = "success"
ERROR = "error"
INTERRUPTED = "interrupted"
FINISHED = (SUCCESS, ERROR, INTERRUPTED)
# The error of a prompt a shutdown ended: an orderly one (`Dispatcher.stop`), or a dead
# process's (`Store.recover`).
SHUTDOWN = "interrupted by shutdown"
RECENT_HISTORY = 256  # finished prompts kept in memory, newest first
RECENT_HISTORY_BYTES = 128 * 1024 * 1024  # and at most this much of their encoded JSON
# The layout `_SCHEMA` creates (`PRAGMA user_version`). 0 is a database from before versions
# were recorded; its table is this layout. A change of layout raises it and migrates from each
# older one in `_open`.
SCHEMA_VERSION = 1
_PRUNE_BATCH = 256  # rows deleted per transaction when the history is over its bound
# Free pages are given back once they are a quarter of the file and at least this many (1 MB
# of 4 KiB pages): fewer are reused by the next prompts' rows.
_GIVE_BACK_PAGES = 256
_VACUUM_BATCH = 2048  # pages given back per transaction (`PRAGMA incremental_vacuum`)
_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL

log = logging.getLogger("latentgraph.server")

# /jobs status names for our row statuses.
JOB_STATUS = {
    PENDING: "pending",
    RUNNING: "in_progress",
    SUCCESS: "completed",
    ERROR: "failed",
    INTERRUPTED: "cancelled",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prompts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    number INTEGER NOT NULL,
    client_id TEXT,
    prompt TEXT NOT NULL,
    extra_data TEXT NOT NULL,
    outputs TEXT NOT NULL,
    targets TEXT,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    ui TEXT NOT NULL DEFAULT '{}',
    messages TEXT NOT NULL DEFAULT '[]',
    error TEXT
);
CREATE INDEX IF NOT EXISTS prompts_status ON prompts (status, number, seq);
CREATE INDEX IF NOT EXISTS prompts_finished ON prompts (finished_ms, seq);
CREATE TABLE IF NOT EXISTS corrupt_prompts AS SELECT * FROM prompts WHERE 0;
CREATE TABLE IF NOT EXISTS prompt_counter (
    only INTEGER PRIMARY KEY CHECK (only = 0),
    high INTEGER NOT NULL
);
INSERT OR IGNORE INTO prompt_counter VALUES (0, -1);
UPDATE prompt_counter SET high = (SELECT MAX(ABS(number)) FROM prompts)
    WHERE high < (SELECT MAX(ABS(number)) FROM prompts);
CREATE TRIGGER IF NOT EXISTS prompt_counter_follows AFTER INSERT ON prompts
    WHEN ABS(NEW.number) > (SELECT high FROM prompt_counter)
BEGIN
    UPDATE prompt_counter SET high = ABS(NEW.number);
END;
"""

# The oldest finished prompts, by the index on (finished_ms, seq): `+status` keeps SQLite from
# choosing the status index, which sorts every finished row, reading each one's finished_ms
# past its prompt and extra_data (0.1-1.4 s for 10,000 rows of a 40 KB editor workflow).
_OLDEST = ("SELECT seq, id FROM prompts WHERE finished_ms IS NOT NULL AND +status IN (?, ?, ?)"
           " ORDER BY finished_ms, seq LIMIT ?")  # fmt: skip

_JSON_COLUMNS = ("prompt", "extra_data", "outputs", "targets", "ui", "messages")
# A queued row's ui and messages hold the schema's defaults until the prompt ends.
_EMPTY_ENDS = len("{}") + len("[]")


# A queued prompt's row (`Store.add`).
_NEW_ROW = ("(id, number, client_id, prompt, extra_data, outputs, targets, status, created_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")  # fmt: skip

_FINISH = (
    "UPDATE prompts SET status = ?, finished_ms = ?, ui = ?, messages = ?, error = ? WHERE id = ?"
)
# The columns an unwritten end changes, by their place in `_FINISH`'s arguments (`_Unwritten`).
_END_ARGS = {"status": 0, "finished_ms": 1}


def _columns(db: sqlite3.Connection, table: str) -> tuple[str, ...]:
    """The column names of `table` in order (none when it does not exist)."""
    return tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))


@functools.cache
def _layout() -> tuple[str, ...]:
    """The columns `_SCHEMA` gives the prompts table (and corrupt_prompts, made from it)."""
    with closing(sqlite3.connect(":memory:")) as db:
        db.executescript(_SCHEMA)
        return _columns(db, "prompts")


def _ended(record: PromptRecord, end: tuple, seen: Outputs | None = None) -> PromptRecord:
    """`record` (running) with its `end` (`_FINISH`'s arguments) as a read-back of its row
    would give it (JSON round trip: no live objects kept); `seen`: its outputs' `Outputs`."""
    status, finished, ui_json, messages_json, error, _ = end
    seen = seen if seen is not None else Outputs.of(json.loads(ui_json))
    size = record.size - _EMPTY_ENDS + len(ui_json) + len(messages_json)
    return replace(record, status=status, finished_ms=finished, error=error, ui_json=ui_json,
                   outputs_seen=seen, messages=json.loads(messages_json), size=size)  # fmt: skip


@dataclass(frozen=True)
class _Unwritten:
    """The ends `finish` could not write yet (a full disk), laid over the rows SQLite gives: a
    query shows such a prompt as memory and /history do (ended), not as its row still says
    (running). Taken under `_lock` (`Store._unwritten`)."""

    ends: dict[str, tuple]  # `_FINISH`'s arguments, by prompt id
    known: dict[str, PromptRecord | None]  # the record memory holds of each (None: no longer)

    def column(self, name: str) -> tuple[str, tuple]:
        """SQL for a row's column `name` ("status", "finished_ms") as its end has it, and the
        arguments it takes."""
        if not self.ends:
            return name, ()
        i = _END_ARGS[name]
        args = tuple(v for pid, end in self.ends.items() for v in (pid, end[i]))
        return f"CASE id {'WHEN ? THEN ? ' * len(self.ends)}ELSE {name} END", args

    def shown(self, rows: list[PromptRecord]) -> list[PromptRecord]:
        """`rows` with their unwritten ends: the record memory holds, or the row ended."""
        return [row if row.id not in self.ends else self.known[row.id] or
                _ended(row, self.ends[row.id]) for row in rows]  # fmt: skip


class StoreWriteError(OSError):
    """The database could not be written (errno ENOSPC when the disk is full)."""


class StoreOpenError(OSError):
    """The database file cannot be opened at all (a folder, no permission, locked): not a
    corrupt database, so it is left where it is."""


class StoreTooNew(StoreOpenError):
    """The database was written by a newer latentgraph (its `user_version` is above
    `SCHEMA_VERSION`): this one cannot know what it holds, so it is neither read nor changed."""


class StoreInUse(StoreOpenError):
    """Another process (another server on the same data folder) has the database open."""


def _database_files(path: str) -> list[str]:
    """The files SQLite keeps a database in (none for one in memory): the database, its WAL
    and shared-memory index, its rollback journal."""
    if path in ("", ":memory:"):
        return []
    return [path + suffix for suffix in ("", "-wal", "-shm", "-journal")]


def _identity(file: str | int) -> tuple[int, int] | None:
    """(device, inode) of the file at a path, or of an open descriptor; None when there is
    none."""
    try:
        found = os.fstat(file) if isinstance(file, int) else os.stat(file)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class DatabaseLock:
    """An exclusive lock on a queue database, held from its opening to its closing: `flock` on
    `<database>.lock` beside it, in which the holder writes its pid (for the refusal's
    message). The OS drops it when the process ends however it ends (SIGKILL too), so a
    restart after a crash opens the database and `Store.recover` marks what the dead process
    left running. Raises `StoreInUse` when another process holds it, `StoreOpenError` when the
    lock file cannot be made or its pid written (a full disk: the file made is removed, so a
    refused start leaves none behind, as `abandon` removes it for a start refused later)."""

    def __init__(self, database: Path | str) -> None:
        self.path = f"{database}.lock"
        self._fd: int | None = None
        if fcntl is None:
            return
        self._made = not os.path.lexists(self.path)  # by this lock: `abandon` removes it
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._refusal(database, "opened", exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            pid = f", pid {holder}," if holder.isdigit() else ""
            raise StoreInUse(f"the queue database {database} cannot be opened (another "
                             f"latentgraph server{pid} is using it: stop that server first, "
                             "or give this one another --data-dir)") from None  # fmt: skip
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            self.abandon()
            raise self._refusal(database, "written", exc) from None

    def _refusal(self, database: Path | str, done: str, exc: OSError) -> StoreOpenError:
        """The lock file could not be `done` ("opened", "written"), said in words (a full disk
        was the CLI's "cannot write the output", exit 1): "the queue database D cannot be
        opened: its lock file D.lock cannot be written: the disk is full (...)"."""
        return StoreOpenError(f"the queue database {database} cannot be opened: its lock file "
                              f"{self.path} cannot be {done}: {os_error_words(exc)}")  # fmt: skip

    def in_place(self) -> bool:
        """The lock file this lock holds is still the one at its path (not deleted with its
        folder): only then does it refuse a second server. Unlocked (released, no fcntl):
        False."""
        if self._fd is None:
            return False
        return _identity(self.path) == _identity(self._fd)

    def abandon(self) -> None:
        """Release the lock for a start that failed, its file removed when this lock made it
        (unlinked while still held: no other server has it), so the refusal leaves none behind;
        a file that was there before stays. Released already: nothing."""
        if self._fd is not None and self._made:
            os.unlink(self.path)
        self.release()

    def release(self) -> None:
        """Let another process open the database (again: nothing)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no stale pid for the next holder's first moment
            os.close(self._fd)  # which drops the lock
            self._fd = None


class QueueTooLarge(ValueError):
    """Queuing a prompt would take the in-memory queue over its byte limit."""


class PromptIdInUse(ValueError):
    """A prompt_id a queued or running prompt has (`Store.check_id_free`)."""

    def __init__(self, prompt_id: str) -> None:
        super().__init__(f"prompt_id {quoted(prompt_id[:40])} is the id of a prompt queued or "
                         "running; it can be used again once that prompt has finished (its "
                         "history entry is then replaced)")  # fmt: skip


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Outputs:
    """What /history and /jobs show of a finished prompt's outputs besides their JSON text,
    taken once when it ends (or its row is read). The outputs themselves stay text
    (`PromptRecord.ui_json`): a run of 100,000 output nodes left 200,000 parsed objects in
    recent history, and each full collection walked them (26.6 ms against 0.3 ms as text,
    GIL held, measured)."""

    nodes: tuple[str, ...] = ()  # the nodes with outputs, in order
    count: int = 0  # every list item of every output: what /jobs counts as outputs
    images: int = 0  # the images among them (/jobs' previewable outputs) ...
    last_image: dict[str, Any] | None = None  # ... and the last, as /jobs previews it

    @classmethod
    def of(cls, ui: dict[str, Any]) -> Outputs:
        count, images, last = 0, 0, None
        for node_id, out in ui.items():
            if not isinstance(out, dict):
                continue
            count += sum(len(v) for v in out.values() if isinstance(v, (list, tuple)))
            for image in out.get("images") or []:
                if isinstance(image, dict):
                    images += 1
                    last = (node_id, image)
        last_image = None
        if last is not None:  # as JSON gives it back (a Path becomes its text)
            image = json.loads(json.dumps(last[1], default=str))
            last_image = {**image, "nodeId": last[0], "mediaType": "images"}
        return cls(tuple(ui), count, images, last_image)


@dataclass
class PromptRecord:
    """One queued or finished prompt, as stored.

    The prompt is held as its JSON text, parsed only where it runs (a worker): a 100,000-node
    prompt parsed is millions of objects, and every full pass of the cyclic collector would
    walk them with the GIL held for as long as the prompt stays queued or in recent history
    (0.4 s for 200,001 nodes); as text it is one string, a tenth of the memory."""

    id: str
    number: int | None
    prompt_json: str
    extra_data: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    client_id: str | None = None
    targets: list[str] | None = None
    status: str = PENDING
    created_ms: int = 0
    started_ms: int | None = None
    finished_ms: int | None = None
    ui_json: str = "{}"  # the outputs, as JSON text (see `Outputs`)
    outputs_seen: Outputs = field(default_factory=Outputs)
    messages: list[list[Any]] = field(default_factory=list)
    error: str | None = None
    seq: int = 0
    item_json: str | None = field(default=None, repr=False, compare=False)
    size: int = field(default=0, repr=False, compare=False)  # bytes of its stored JSON

    def queue_item_json(self) -> str:
        """The [number, id, prompt, extra_data, outputs] item of /queue and /history as JSON,
        written once (the item never changes after it is queued), the prompt's text as it is."""
        if self.item_json is None:
            parts = (encode_json(self.number), encode_json(self.id), self.prompt_json,
                     encode_json(self.extra_data), encode_json(self.outputs))  # fmt: skip
            self.item_json = f"[{','.join(parts)}]"
        return self.item_json


def _history_order(record: PromptRecord) -> tuple[int, int]:
    return (record.finished_ms or 0, record.seq)


def _paging(max_items: int | str | None, offset: int | str) -> tuple[int | None, int]:
    """/history's paging as integers (query strings allowed); a negative count is none."""
    return (None if max_items is None else max(0, int(max_items))), int(offset)


def _read_text(raw: bytes) -> str:
    """A TEXT value as SQLite gives it (the connection's `text_factory`). Bytes that are not
    UTF-8 (bit rot) are kept as lone surrogates (`surrogateescape`) for `_record` to refuse the
    row, since SQLite's own decoding raises mid-fetch and one bad value would fail the read."""
    return raw.decode("utf-8", "surrogateescape")


class _NotText(ValueError):
    """A stored TEXT value is not UTF-8 (`_read_text`)."""


def _check_text(row: sqlite3.Row) -> None:
    """Raise `_NotText` naming the first column of `row` whose text is not UTF-8."""
    for column in row.keys():
        value = row[column]
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:  # U+DC80-U+DCFF stand for the bytes 0x80-0xff
                byte = ord(value[exc.start]) - 0xDC00
                raise _NotText(f"column {column!r} is not UTF-8: byte {byte:#04x} at "
                               f"character {exc.start}") from None  # fmt: skip


def _record(row: sqlite3.Row) -> PromptRecord:
    """A row as a record. Raises ValueError (JSONDecodeError, `_NotText`) or TypeError for a
    corrupt row."""
    _check_text(row)
    ui, ui_json = stored_json(row["ui"])
    return PromptRecord(
        id=row["id"],
        number=row["number"],
        prompt_json=stored_text(row["prompt"]),
        extra_data=load_stored(row["extra_data"]),
        outputs=load_stored(row["outputs"]),
        client_id=row["client_id"],
        targets=load_stored(row["targets"]) if row["targets"] else None,
        status=row["status"],
        created_ms=row["created_ms"],
        started_ms=row["started_ms"],
        finished_ms=row["finished_ms"],
        ui_json=ui_json,
        outputs_seen=Outputs.of(ui),
        messages=load_stored(row["messages"]),
        error=row["error"],
        seq=row["seq"],
        size=sum(len(row[c] or "") for c in _JSON_COLUMNS),
    )


def _problems(report: str) -> str:
    """SQLite's integrity report (a problem a line, after a `*** in database main ***` line) as
    one line for the log: the first problem, and how many more."""
    problems = [line for line in report.splitlines() if not line.startswith("*** ")] or [report]
    more = len(problems) - 1
    return problems[0] + (f" and {more} more problem{'s' * (more > 1)}" if more else "")


def corrupt_copy_path(path: Path) -> Path:
    """Where a file that cannot be read (the queue database, the editor's settings) is kept for
    inspection, beside it: `<name>.corrupt-<time>`, with `~1`, `~2`, ... when that is taken."""
    first = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    backup, n = first, 1
    while backup.exists():
        backup, n = first.with_name(f"{first.name}~{n}"), n + 1
    return backup


class Store:
    """Queue + history persistence. All methods are thread-safe."""

    # What memory holds, set by _load_memory from the database at start (under _mem):
    _queued: dict[str, PromptRecord]  # pending and running
    _recent: dict[str, PromptRecord]  # newest finished, at most RECENT_HISTORY
    _recent_all: bool  # _recent holds every finished prompt
    _queued_bytes: int
    _recent_bytes: int
    _max_number: int  # the highest |number| given (`prompt_counter`), -1 for none
    _finished: int  # finished prompts stored (under _lock)

    def __init__(self, path: Path | str, *, history_bytes: int = RECENT_HISTORY_BYTES,
                 max_history: int = MAX_HISTORY, lock: DatabaseLock | None = None) -> None:  # fmt: skip
        """`lock`: the database's lock, taken already (`serve` takes it before it binds its
        port); the store takes it otherwise, and releases it when closed. A database it cannot
        open is left as it was, or removed when this opening made it (a full disk), the lock
        then abandoned (`DatabaseLock.abandon`). `max_history`: finished prompts kept, the
        oldest deleted beyond it (at start too)."""
        self.path = str(path)
        self.history_bytes = history_bytes
        self.max_history = max_history
        self._lock = threading.Lock()  # the connection; taken before _mem when both are needed
        self._mem = threading.Lock()  # the in-memory queue and recent history
        # Ends of prompts the database could not take (disk full): id -> UPDATE arguments.
        self._unsaved: dict[str, tuple] = {}
        # Rows a read skipped as unreadable (their seq): left out of /jobs' pages and total.
        self._unreadable: set[int] = set()
        # Where an unreadable database was moved at start (None when it opened fine).
        self.backup: Path | None = None
        self._held = lock
        if lock is None and self.path not in ("", ":memory:"):
            self._held = DatabaseLock(self.path)  # StoreInUse: another server has it open
        made = [file for file in _database_files(self.path) if not os.path.lexists(file)]
        try:
            self._db = self._first_open()
            # The file opened, checked at each prompt's start (`_follow_path`); None: not.
            self._file = _identity(self.path) if _database_files(self.path) else None
            try:
                self._load_memory()
            except BaseException:
                self._db.close()
                raise
        except BaseException:  # a refused start leaves no file it made (a full disk: empty)
            for file in made:
                with suppress(FileNotFoundError):
                    os.unlink(file)
            if self._held is not None:
                self._held.abandon()
            raise
        self._bound_history()

    def _first_open(self) -> sqlite3.Connection:
        """The connection, a corrupt database set aside first."""
        try:
            return self._open()
        except sqlite3.OperationalError as exc:
            raise StoreOpenError(
                f"the queue database {self.path} cannot be opened ({exc})"
            ) from exc
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            if self.path == ":memory:":
                raise
            self.backup = self._set_aside(exc)
            return self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.text_factory = _read_text
            version = self._schema_version(db)  # before anything writes to it
            if self.path != ":memory:":
                # A new database gives freed pages back a batch at a time (`_give_back_space`);
                # an older one keeps its mode until its first VACUUM (asked of it here, the
                # pragma writes to it: before integrity_check has read it).
                if db.execute("PRAGMA page_count").fetchone()[0] == 0:
                    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                db.execute("PRAGMA journal_mode=WAL")
                # integrity_check, not quick_check: it also finds an index that no longer
                # matches its table (a flipped byte in an index page), which quick_check
                # passes and which then loses rows from lookups and the history's order. It
                # costs little more: 22 ms against 17 for 10,000 rows of 2 KB, 178 against
                # 133 for 10,000 of 40 KB (410 MB).
                # "ok", or its problems a row each (a row may hold several lines), up to 100
                report = db.execute("PRAGMA integrity_check").fetchall()
                result = "\n".join(row[0] for row in report)
                if result != "ok":  # the first problem, and how many more
                    raise sqlite3.DatabaseError(f"integrity check failed: {_problems(result)}")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _schema_version(self, db: sqlite3.Connection) -> int:
        """The layout version `db` records (`PRAGMA user_version`). Raises `StoreTooNew` for
        a newer one than this code's, and `StoreOpenError` for one from before versions were
        recorded (0) whose tables are not this layout: either is left as it is."""
        (version,) = db.execute("PRAGMA user_version").fetchone()
        folder = Path(self.path).parent
        if version > SCHEMA_VERSION:
            raise StoreTooNew(f"the queue database {self.path} in the data folder {folder} was "
                              f"written by a newer latentgraph (its layout version {version}; "
                              f"this one reads {SCHEMA_VERSION} and older): run that version "
                              "or a newer one on it, or give this one another --data-dir")  # fmt: skip
        if version <= 0:
            for table in ("prompts", "corrupt_prompts"):
                found = _columns(db, table)
                if found and found != _layout():
                    raise StoreOpenError(f"the queue database {self.path} in the data folder "
                                         f"{folder} has a table {table} of columns this "
                                         f"latentgraph does not know ({', '.join(found)}); "
                                         "give it another --data-dir")  # fmt: skip
        return version

    def _set_aside(self, exc: Exception) -> Path:
        """Move a corrupt database (and its WAL files) aside, keeping it for inspection."""
        main = Path(self.path)
        backup = corrupt_copy_path(main)
        for suffix in ("", "-wal", "-shm"):
            part = Path(self.path + suffix)
            if part.exists():
                os.replace(part, str(backup) + suffix)
        log.error("the queue/history database %s could not be read (%s); it was moved to %s: "
                  "the queue and history start empty, and what it held can be looked for in "
                  "that copy with sqlite3 (sqlite3 %s .recover)", main, exc, backup, backup)  # fmt: skip
        return backup

    def _load_memory(self) -> None:
        with self._lock:
            db = self._db
            queued = self._decode(db.execute(
                "SELECT * FROM prompts WHERE status IN (?, ?)", (PENDING, RUNNING)), aside=True)  # fmt: skip
            recent = self._decode(db.execute(
                "SELECT * FROM prompts WHERE status IN (?, ?, ?) ORDER BY finished_ms DESC,"
                " seq DESC LIMIT ?", (*FINISHED, RECENT_HISTORY + 1)), aside=True)  # fmt: skip
            (high,) = db.execute("SELECT high FROM prompt_counter").fetchone()
            self._finished = self._count_finished()
        with self._mem:
            self._queued = {r.id: r for r in queued}
            self._queued_bytes = sum(r.size for r in queued)
            # Newest first, up to the first that does not fit: memory holds the newest prompts
            # with no gap (an older, smaller one would fit after a bigger one was dropped).
            kept, size = [], 0
            for r in recent:
                if len(kept) == RECENT_HISTORY or (kept and size + r.size > self.history_bytes):
                    break
                kept.append(r)
                size += r.size
            # Oldest first, as `_remember` keeps it.
            self._recent = {r.id: r for r in reversed(kept)}
            self._recent_bytes, self._recent_all = size, len(kept) == len(recent)
            self._max_number = high

    def _decode(self, rows, *, aside: bool = False) -> list[PromptRecord]:
        """Records of `rows`, skipping corrupt ones (moved to `corrupt_prompts` if `aside`).
        The caller holds `_lock`."""
        records = []
        for row in rows.fetchall():
            try:
                records.append(_record(row))
            except (ValueError, TypeError) as exc:
                where = f"prompt {row['id']!r} (row {row['seq']}) of the database {self.path}"
                what = "text" if isinstance(exc, _NotText) else "JSON"
                if not aside:
                    log.error("skipped %s: its stored %s cannot be read (%s)", where, what, exc)
                    self._unreadable.add(int(row["seq"]))
                    continue
                try:
                    self._db.execute("INSERT INTO corrupt_prompts SELECT * FROM prompts"
                                     " WHERE seq = ?", (row["seq"],))  # fmt: skip
                    self._db.execute("DELETE FROM prompts WHERE seq = ?", (row["seq"],))
                except sqlite3.Error as err:
                    log.error("skipped %s: its stored %s cannot be read (%s), and it could "
                              "not be set aside (%s)", where, what, exc, err)  # fmt: skip
                else:
                    log.error("set aside %s: its stored %s cannot be read (%s); the row was "
                              "moved to the table corrupt_prompts", where, what, exc)  # fmt: skip
        return records

    def _remember(self, record: PromptRecord) -> None:
        """Keep a prompt that just finished in the recent history, within RECENT_HISTORY
        entries and `history_bytes`, dropping the oldest. `_recent` is kept in history order
        (`_history_order`), so the oldest is its first: a prompt that just finished comes last,
        but for one that finished in the same millisecond as one queued after it (or a clock
        set back), which is put in its place. (A search over 256 entries at every prompt's end
        was most of the store's time in a long-running server.) The caller holds `_mem`."""
        old = self._recent.pop(record.id, None)
        self._recent_bytes -= old.size if old is not None else 0
        last = next(reversed(self._recent.values()), None)
        self._recent[record.id] = record
        self._recent_bytes += record.size
        if last is not None and _history_order(record) < _history_order(last):
            self._recent = dict(sorted(self._recent.items(), key=lambda i: _history_order(i[1])))
        while len(self._recent) > RECENT_HISTORY or (
            self._recent_bytes > self.history_bytes and len(self._recent) > 1
        ):
            oldest = next(iter(self._recent.values()))
            del self._recent[oldest.id]
            self._recent_bytes -= oldest.size
            self._recent_all = False

    def close(self) -> None:
        """Close the database, the ends `finish` could not write tried once more: an end still
        unwritten is lost with the process (its row stays running; the next start's `recover`
        records it as interrupted), and the log names it."""
        if not self.flush():
            log.error("the end of prompt(s) %s could not be recorded before the server stopped "
                      "(the queue database %s cannot be written); the next start records them "
                      "as interrupted", ", ".join(self._unsaved), self.path)  # fmt: skip
            self._unsaved.clear()
        with self._lock:
            self._db.close()
        self._release()

    def _release(self) -> None:
        if self._held is not None:
            self._held.release()

    def _exec(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        """Run a statement that writes; the caller holds `_lock`. Raises StoreWriteError."""
        try:
            return self._db.execute(sql, args)
        except (sqlite3.OperationalError, OSError) as exc:
            full = getattr(exc, "errno", None) == errno.ENOSPC or "full" in str(exc).lower()
            raise StoreWriteError(errno.ENOSPC if full else errno.EIO,
                                  f"the queue database {self.path} cannot be written "
                                  f"({'disk full: ' if full else ''}{exc})") from exc  # fmt: skip

    def _rows(self, sql: str, args: tuple = ()) -> list[PromptRecord]:
        with self._lock:
            return self._decode(self._db.execute(sql, args))

    def memory_bytes(self) -> tuple[int, int]:
        """Bytes of encoded JSON held in memory by the queue and by the recent history."""
        with self._mem:
            return self._queued_bytes, self._recent_bytes

    # --- queue -------------------------------------------------------------------------

    def add(self, record: PromptRecord, *, front: bool = False,
            max_queued_bytes: int | None = None) -> PromptRecord:  # fmt: skip
        """Insert a pending prompt. Without an explicit number it goes to the back (or front).
        Raises QueueTooLarge when the queue in memory would exceed `max_queued_bytes`.

        Numbers count up, each prompt taking the next, as ComfyUI's counter does; a front
        prompt without a number of its own takes the negative of its (ComfyUI's rule). The
        counter is above every |number| given, a client's own too, so a front prompt runs
        before every other queued, the latest first, and no number is given twice. The first
        prompt at the front is -1.

        The id of a finished prompt is taken again, as ComfyUI takes it: that prompt's history
        entry is replaced (`_replace_finished`). A queued or running prompt's id raises
        PromptIdInUse (`check_id_free`)."""
        texts = [record.prompt_json, json.dumps(record.extra_data),
                 json.dumps(record.outputs),
                 json.dumps(record.targets) if record.targets is not None else None]  # fmt: skip
        record.size = sum(len(t or "") for t in texts) + _EMPTY_ENDS
        with self._lock:
            if max_queued_bytes is not None and self._queued_bytes + record.size > max_queued_bytes:
                raise QueueTooLarge(f"the queue holds {self._queued_bytes:,} bytes of prompts; "
                                    f"this one ({record.size:,} bytes) would take it over "
                                    f"{max_queued_bytes:,}")  # fmt: skip
            if record.number is None:
                following = self._max_number + 1
                record.number = -max(following, 1) if front else following
            record.created_ms = record.created_ms or now_ms()
            self.check_id_free(record.id)
            row = (record.id, record.number, record.client_id, *texts, PENDING, record.created_ms)
            try:
                cur = self._write(f"INSERT INTO prompts {_NEW_ROW}", row)
            except sqlite3.IntegrityError:  # the id is stored: a finished prompt's
                cur = self._replace_finished(record.id, row)
            record.seq = cur.lastrowid or 0
            record.status = PENDING
            with self._mem:
                self._queued[record.id] = record
                self._queued_bytes += record.size
                self._max_number = max(self._max_number, abs(record.number))
            return record

    def check_id_free(self, prompt_id: str) -> None:
        """Raise PromptIdInUse when a queued or running prompt has `prompt_id`: two prompts of
        one id in the queue could not be told apart (/queue deletes, /interrupt, the run's
        messages). A finished prompt's id is free: `add` replaces its history entry."""
        with self._mem:
            queued = prompt_id in self._queued
        if queued:
            raise PromptIdInUse(prompt_id)

    def _replace_finished(self, prompt_id: str, row: tuple) -> sqlite3.Cursor:
        """Store `row`, a new prompt taking the id of a finished one, in place of that one's
        row, in one statement (a failed write leaves the old entry). Its end not written yet
        (`finish` on a full disk) is dropped with it: `flush` would write it over the new
        row. The caller holds `_lock` and has checked the id is no queued prompt's."""
        found = self._db.execute("SELECT status FROM prompts WHERE id = ?", (prompt_id,))
        (status,) = found.fetchone() or (None,)
        if status not in FINISHED and prompt_id not in self._unsaved:
            raise PromptIdInUse(prompt_id)  # (its row says it runs: the queue in memory lost it)
        cur = self._write(f"INSERT OR REPLACE INTO prompts {_NEW_ROW}", row)
        self._finished -= status in FINISHED
        self._unsaved.pop(prompt_id, None)
        with self._mem:
            old = self._recent.pop(prompt_id, None)
            self._recent_bytes -= old.size if old is not None else 0
        return cur

    def exists(self, prompt_id: str) -> bool:
        with self._mem:
            if prompt_id in self._queued or prompt_id in self._recent:
                return True
        return bool(self._exec("SELECT 1 FROM prompts WHERE id = ?", (prompt_id,)).fetchone())

    def next_pending(self) -> PromptRecord | None:
        with self._mem:
            return min((r for r in self._queued.values() if r.status == PENDING),
                       key=lambda r: (r.number, r.seq), default=None)  # fmt: skip

    def pending(self) -> list[PromptRecord]:
        """Pending prompts in run order (from memory)."""
        with self._mem:
            rows = [r for r in self._queued.values() if r.status == PENDING]
        return sorted(rows, key=lambda r: (r.number, r.seq))

    def running(self) -> list[PromptRecord]:
        with self._mem:
            rows = [r for r in self._queued.values() if r.status == RUNNING]
        return sorted(rows, key=lambda r: r.seq)

    def count_queued(self) -> int:
        return len(self._queued)

    def mark_running(self, prompt_id: str) -> bool:
        self._follow_path()
        return self._move(prompt_id, PENDING, RUNNING, now_ms())

    def _follow_path(self) -> None:
        """At a prompt's start (one stat), check the database is still the file at its path.
        If its data folder was deleted under the running server, write the open database there
        again (`sqlite3 .backup`), retake its lock and log it once, so the history survives the
        stop and no second server starts on that folder. A file put at the path is never
        overwritten; if the copy fails (folder taken, disk full), log that the history is lost
        at stop and stop watching the path."""
        if self._file is None or _identity(self.path) == self._file:
            return
        with self._lock:
            try:
                self._write_again()
            except (OSError, sqlite3.Error) as exc:
                self._file = None
                log.error("the queue database %s was deleted or replaced while the server ran; "
                          "this server goes on with the copy it has open, whose queue and "
                          "history are lost when it stops: %s", self.path,
                          exc if isinstance(exc, StoreOpenError) else
                          f"it could not be written there again ({exc})")  # fmt: skip
                return
            log.warning("the queue database %s was deleted while the server ran (its data "
                        "folder removed?); it was written there again from the copy this "
                        "server had open (%d queued, %d finished prompts) and the server goes "
                        "on with it. To start with an empty queue and history, stop the server "
                        "first, then delete the data folder", self.path, len(self._queued),
                        self._finished)  # fmt: skip

    def _write_again(self) -> None:
        """Write the open database at its path again (`_follow_path`) and go on with it there,
        its lock taken again; the caller holds `_lock`. A failure leaves the open one in use
        and nothing this made behind."""
        if os.path.lexists(self.path):
            raise StoreOpenError(f"another file is at {self.path} now, left as it is")
        make_folders(Path(self.path).parent, mode=DATA_DIR_MODE)
        lock = self._held if self._held is not None and self._held.in_place() else None
        lock = lock or DatabaseLock(self.path)  # StoreInUse: another server took the folder
        try:
            with closing(sqlite3.connect(self.path)) as copy:
                self._db.backup(copy)
            db = self._open()
        except BaseException:
            for file in _database_files(self.path):
                with suppress(FileNotFoundError):
                    os.unlink(file)
            if lock is not self._held:
                lock.abandon()
            raise
        old, self._db = self._db, db
        old.close()
        if lock is not self._held and self._held is not None:
            self._held.release()
        self._held, self._file = lock, _identity(self.path)

    def requeue(self, prompt_id: str) -> bool:
        """A running prompt back to pending, in its place (its worker died before it began)."""
        return self._move(prompt_id, RUNNING, PENDING, None)

    def _move(self, prompt_id: str, old: str, new: str, started: int | None) -> bool:
        with self._lock:
            cur = self._write(
                "UPDATE prompts SET status = ?, started_ms = ? WHERE id = ? AND status = ?",
                (new, started, prompt_id, old),
            )
            if cur.rowcount != 1:
                return False
            with self._mem:
                record = self._queued.get(prompt_id)
                if record is not None:
                    self._queued[prompt_id] = replace(record, status=new, started_ms=started)
            return True

    def finish(
        self,
        prompt_id: str,
        status: str,
        *,
        ui: dict[str, Any] | None = None,
        messages: list[list[Any]] | None = None,
        error: str | None = None,
    ) -> bool:
        """Record how a prompt ended. Never raises for a failed write (a full disk): the end,
        as it happened, is then kept in memory (history shows it), written by `flush` once the
        database takes it, and False is returned. Its client has heard of that end already (a
        run's last messages come from its worker before this is called): the record says the
        same (a success keeps its outputs), never an error the client would contradict. The
        history is then held to `max_history`."""
        written = self._record_end(prompt_id, status, ui, messages, error)
        self._bound_history()
        return written

    def _record_end(self, prompt_id: str, status: str, ui: dict[str, Any] | None,
                    messages: list[list[Any]] | None, error: str | None) -> bool:  # fmt: skip
        finished = now_ms()
        ui_json = json.dumps(ui or {}, default=str)
        seen = Outputs.of(ui or {})
        messages_json = json.dumps(messages or [], default=str)
        args = (status, finished, ui_json, messages_json, error, prompt_id)
        with self._lock:
            try:
                found = self._write(_FINISH, args).rowcount == 1
                self._finished += found
            except StoreWriteError as exc:
                log.error("prompt %s ended (%s) but %s; its end is kept in memory and recorded "
                          "once the database can be written", prompt_id, status, exc)  # fmt: skip
                self._unsaved[prompt_id] = args
                with self._mem:
                    found = prompt_id in self._queued
            if not found:
                return prompt_id not in self._unsaved
            with self._mem:
                old = self._queued.pop(prompt_id, None)
                if old is not None:
                    self._queued_bytes -= old.size
            if old is None:  # not in memory: read the row back
                rows = self._decode(self._db.execute(
                    "SELECT * FROM prompts WHERE id = ?", (prompt_id,)))  # fmt: skip
                if not rows:
                    return prompt_id not in self._unsaved
                done = rows[0]
            else:
                done = _ended(old, args, seen)
            with self._mem:
                self._remember(done)
            return prompt_id not in self._unsaved

    def flush(self) -> bool:
        """Write the prompt ends `finish` could not. True when nothing is left unwritten."""
        with self._lock:
            for prompt_id, args in list(self._unsaved.items()):
                try:
                    self._finished += self._write(_FINISH, args).rowcount
                except StoreWriteError:
                    return False
                del self._unsaved[prompt_id]
                late = (now_ms() - args[1]) / 1000
                log.warning("recorded the end of prompt %s (%s), %.1f s late: the database can "
                            "be written again", prompt_id, args[0], late)  # fmt: skip
            return True

    def delete_pending(self, ids: list[str] | None = None) -> int:
        """Remove pending prompts (all of them when `ids` is None), then give the space back
        as `delete_history` does (`_give_back_space`: the caller's thread, never the event
        loop)."""
        n = self._delete_pending(ids)
        self._give_back_space(truncate_wal=n > 0)
        return n

    def _delete_pending(self, ids: list[str] | None) -> int:
        with self._lock:
            if ids is None:
                n = self._write("DELETE FROM prompts WHERE status = ?", (PENDING,)).rowcount
                with self._mem:
                    self._queued = {k: r for k, r in self._queued.items() if r.status != PENDING}
                    self._queued_bytes = sum(r.size for r in self._queued.values())
                return n
            n = 0
            for pid in map(str, ids):
                gone = self._write(
                    "DELETE FROM prompts WHERE id = ? AND status = ?", (pid, PENDING)
                ).rowcount
                if gone:
                    with self._mem:
                        old = self._queued.pop(pid, None)
                        self._queued_bytes -= old.size if old is not None else 0
                n += gone
            return n

    def recover(self, message: str = SHUTDOWN) -> list[str]:
        """At start, the prompts a dead process left running become errors, their history the
        messages a failed run's has: which nodes ran, and the node running, died with that
        process (`executed` empty, `node_id` ""). An orderly shutdown ends its running prompts
        itself, from what their runs said (`Dispatcher.stop`). Returns their ids."""
        running = self.running()
        for record in running:
            start = {"prompt_id": record.id, "timestamp": record.started_ms or now_ms()}
            error = execution_error(record.id, RunError(message, "Shutdown"), node_type="",
                                    executed=[])  # fmt: skip
            messages = [["execution_start", start], ["execution_error", error]]
            self.finish(record.id, ERROR, messages=messages, error=message)
        return [record.id for record in running]

    # --- history -----------------------------------------------------------------------

    def get(self, prompt_id: str) -> PromptRecord | None:
        with self._mem:
            found = self._queued.get(prompt_id) or self._recent.get(prompt_id)
        if found is not None:
            return found
        with self._lock:  # a row whose end is not written yet (`finish`), with that end
            rows = self._decode(self._db.execute("SELECT * FROM prompts WHERE id = ?",
                                                 (prompt_id,)))  # fmt: skip
            end = self._unsaved.get(prompt_id)
        return None if not rows else _ended(rows[0], end) if end is not None else rows[0]

    def recent_history(self, max_items: int | None = None, offset: int = -1) -> list | None:
        """`history(max_items, offset)` from memory, or None when memory does not hold it all:
        memory holds the newest entries, so it answers a page counted from the oldest only
        when it holds every entry."""
        max_items, offset = _paging(max_items, offset)
        with self._mem:
            newest = offset < 0 and max_items is not None and max_items <= len(self._recent)
            if not (newest or self._recent_all):
                return None
            rows = sorted(self._recent.values(), key=_history_order)
        if offset < 0:
            return rows if max_items is None else rows[max(0, len(rows) - max_items) :]
        return rows[offset:] if max_items is None else rows[offset : offset + max_items]

    def history(self, max_items: int | None = None, offset: int = -1) -> list[PromptRecord]:
        """Finished prompts, oldest first, paged as ComfyUI's /history is: `offset` of the
        oldest skipped, then at most `max_items`; a negative offset (the default) means the
        newest `max_items`. A page older than memory holds is read from SQLite, an end the
        database has not taken yet (`finish`, a full disk) laid over its row (`_Unwritten`)."""
        rows = self.recent_history(max_items, offset)
        if rows is not None:
            return rows
        max_items, offset = _paging(max_items, offset)
        limit = -1 if max_items is None else max_items
        order = "" if offset >= 0 else " DESC"  # the newest, read newest first
        with self._lock:  # the unwritten ends taken with the rows they lie over
            unwritten = self._unwritten()
            status, status_args = unwritten.column("status")
            finished, finished_args = unwritten.column("finished_ms")
            rows = self._decode(self._db.execute(
                f"SELECT * FROM prompts WHERE {status} IN (?, ?, ?)"
                f" ORDER BY {finished}{order}, seq{order} LIMIT ? OFFSET ?",
                (*status_args, *FINISHED, *finished_args, limit, max(offset, 0))))  # fmt: skip
        rows = unwritten.shown(rows)
        if offset < 0:
            rows.reverse()
        return rows

    def delete_history(self, ids: list[str] | None = None) -> int:
        """Delete finished prompts (every one when `ids` is None), then give the space back
        when it is worth it (`_give_back_space`: the caller's thread, never the event loop)."""
        n = self._delete_history(ids)
        self._give_back_space(truncate_wal=n > 0)
        return n

    def _delete_history(self, ids: list[str] | None) -> int:
        with self._lock:
            if ids is None:
                n = self._write("DELETE FROM prompts WHERE status IN (?, ?, ?)", FINISHED).rowcount
                self._finished -= n
                with self._mem:
                    self._recent, self._recent_all, self._recent_bytes = {}, True, 0
                return n
            n = 0
            for pid in map(str, ids):
                gone = self._write(
                    "DELETE FROM prompts WHERE id = ? AND status IN (?, ?, ?)", (pid, *FINISHED)
                ).rowcount
                self._finished -= gone
                n += gone
                with self._mem:
                    old = self._recent.pop(pid, None)
                    self._recent_bytes -= old.size if old is not None else 0
            return n

    def _bound_history(self) -> int:
        """Delete the oldest finished prompts while more than `max_history` are stored,
        `_PRUNE_BATCH` per transaction (the connection free between them), then give the
        space back. Returns how many were deleted. Never raises: a delete that fails (a full
        disk) is logged and tried again when the next prompt ends."""
        deleted = 0
        while True:
            with self._lock:
                excess = self._finished - self.max_history
                if excess <= 0:
                    break
                try:
                    rows = self._db.execute(_OLDEST, (*FINISHED, min(excess, _PRUNE_BATCH)))
                    oldest = rows.fetchall()
                    if not oldest:  # none to delete (an end not written yet, `flush`)
                        self._finished = self._count_finished()
                        break
                    gone = self._write(f"DELETE FROM prompts WHERE seq IN "
                                       f"({','.join('?' * len(oldest))})",
                                       tuple(row["seq"] for row in oldest)).rowcount  # fmt: skip
                except (sqlite3.Error, StoreWriteError) as exc:
                    log.error("could not delete the oldest finished prompts beyond %s (%d) from "
                              "%s (%s); tried again when the next prompt ends",
                              server_limit_label("max_history"), self.max_history, self.path, exc)  # fmt: skip
                    break
                self._finished -= gone
                deleted += gone
                with self._mem:
                    for row in oldest:
                        old = self._recent.pop(row["id"], None)
                        self._recent_bytes -= old.size if old is not None else 0
        if deleted > 1:
            log.info("deleted the %d oldest finished prompts from the history: it keeps %d "
                     "(%s)", deleted, self.max_history, server_limit_label("max_history"))  # fmt: skip
        if deleted:
            self._give_back_space()
        return deleted

    def _give_back_space(self, *, truncate_wal: bool = False) -> None:
        """Give the pages deletes freed back to the filesystem once they are a quarter of the
        file and at least `_GIVE_BACK_PAGES` (fewer are reused by the next rows), then
        truncate the WAL, which keeps its largest size otherwise (up to 4 MB between SQLite's
        checkpoints); `truncate_wal`: that also when no pages are given back (a POST /history or
        /queue delete, whose WAL the user sees). A database made by this code
        (`auto_vacuum=INCREMENTAL`) gives them back `_VACUUM_BATCH` pages per transaction, the
        connection free between them; an older one is rewritten once by VACUUM, which makes it
        incremental. Runs in the caller's thread (the dispatcher's, or a request's in the
        threadpool). Never raises: the pages stay free, SQLite reuses them, the log says why."""
        if self.path in ("", ":memory:"):
            return
        try:
            with self._lock:
                free = self._pragma("freelist_count")
                worth = free >= _GIVE_BACK_PAGES and free * 4 >= self._pragma("page_count")
                if not (worth or truncate_wal):
                    return
                incremental = self._pragma("auto_vacuum") == _INCREMENTAL
                if worth and not incremental:
                    log.info("rewriting the queue database %s once (VACUUM) to give back %d "
                             "free pages; later deletes give theirs back as they go",
                             self.path, free)  # fmt: skip
                    self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                    self._db.execute("VACUUM")
            while worth and incremental and free:
                with self._lock:
                    # executescript steps the pragma to its end: execute frees one page
                    self._db.executescript(f"PRAGMA incremental_vacuum({_VACUUM_BATCH})")
                    free, before = self._pragma("freelist_count"), free
                if free >= before:
                    break
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except (sqlite3.Error, OSError) as exc:
            log.warning("could not give the free space of the queue database %s back (%s); "
                        "SQLite reuses it for new prompts", self.path, exc)  # fmt: skip

    def _count_finished(self) -> int:
        """Finished prompts stored; the caller holds `_lock`."""
        query = "SELECT COUNT(*) FROM prompts WHERE status IN (?, ?, ?)"
        return self._db.execute(query, FINISHED).fetchone()[0]

    def _pragma(self, name: str) -> int:
        """A pragma's integer value; the caller holds `_lock`."""
        return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    def jobs(
        self, statuses: list[str] | None, limit: int, offset: int, newest_first: bool = True
    ) -> tuple[list[PromptRecord], int]:
        """Records whose status is in `statuses` (row statuses), paged; also the total count.
        A prompt whose end the database could not take yet (`finish`, a full disk) is as
        /history shows it (memory), not as its row still says (running). Rows found unreadable
        are out of the pages and the total, the page read again without them, and so is the
        row after the page: a total counting them, and pages one short, made a client paging
        by the entries it got ask forever. The total counts the rows not read yet, so it is
        more than the page's end only while a readable row follows it."""
        order = "DESC" if newest_first else "ASC"
        with self._lock:
            unwritten = self._unwritten()
            while True:
                known = len(self._unreadable)
                where, args = [], ()
                if statuses:  # on each row's status, an unwritten end's as memory has it
                    status, args = unwritten.column("status")
                    where.append(f"{status} IN ({','.join('?' * len(statuses))})")
                    args = (*args, *statuses)
                if self._unreadable:
                    where.append(f"seq NOT IN ({','.join(map(str, self._unreadable))})")
                clause = f"WHERE {' AND '.join(where)}" if where else ""
                count = self._db.execute(f"SELECT COUNT(*) FROM prompts {clause}", args)
                total = count.fetchone()[0]
                rows = self._decode(self._db.execute(
                    f"SELECT * FROM prompts {clause} ORDER BY created_ms {order}, seq {order}"
                    " LIMIT ? OFFSET ?", (*args, int(limit) + 1, int(offset))))  # fmt: skip
                if len(self._unreadable) == known:
                    return unwritten.shown(rows[: int(limit)]), int(total)

    def _unwritten(self) -> _Unwritten:
        """The ends `finish` could not write yet, to lay over rows read; the caller holds
        `_lock`."""
        with self._mem:
            known = {pid: self._queued.get(pid) or self._recent.get(pid)
                     for pid in self._unsaved}  # fmt: skip
        return _Unwritten(dict(self._unsaved), known)
