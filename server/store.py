"""The queue and the history, in one SQLite table that survives restarts.

Every prompt is a row from the moment it is accepted until it is deleted: pending, running,
then success / error / interrupted. The worker thread and the event loop share one connection
behind a lock; WAL mode keeps readers from waiting on the writer.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PENDING = "pending"
RUNNING = "running"
SUCCESS = "success"
ERROR = "error"
INTERRUPTED = "interrupted"
FINISHED = (SUCCESS, ERROR, INTERRUPTED)

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
"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class PromptRecord:
    """One queued or finished prompt, as stored."""

    id: str
    number: int | None
    prompt: dict[str, Any]
    extra_data: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    client_id: str | None = None
    targets: list[str] | None = None
    status: str = PENDING
    created_ms: int = 0
    started_ms: int | None = None
    finished_ms: int | None = None
    ui: dict[str, Any] = field(default_factory=dict)
    messages: list[list[Any]] = field(default_factory=list)
    error: str | None = None
    seq: int = 0

    def queue_item(self) -> list[Any]:
        """The [number, id, prompt, extra_data, outputs] tuple of /queue and /history."""
        return [self.number, self.id, self.prompt, self.extra_data, self.outputs]


def _record(row: sqlite3.Row) -> PromptRecord:
    return PromptRecord(
        id=row["id"],
        number=row["number"],
        prompt=json.loads(row["prompt"]),
        extra_data=json.loads(row["extra_data"]),
        outputs=json.loads(row["outputs"]),
        client_id=row["client_id"],
        targets=json.loads(row["targets"]) if row["targets"] else None,
        status=row["status"],
        created_ms=row["created_ms"],
        started_ms=row["started_ms"],
        finished_ms=row["finished_ms"],
        ui=json.loads(row["ui"]),
        messages=json.loads(row["messages"]),
        error=row["error"],
        seq=row["seq"],
    )


class Store:
    """Queue + history persistence. All methods are thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        # Where an unreadable database was moved at start (None when it opened fine).
        self.backup: Path | None = None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if self.path == ":memory:":
                raise
            self.backup = self._set_aside(exc)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            if self.path != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
                row = db.execute("PRAGMA quick_check").fetchone()
                if row is None or row[0] != "ok":
                    raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else '?'}")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, exc: Exception) -> Path:
        """Move a corrupt database (and its WAL files) aside, keeping it for inspection."""
        main = Path(self.path)
        backup = main.with_name(f"{main.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while backup.exists():
            backup = backup.with_name(f"{backup.name.split('~')[0]}~{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            part = Path(self.path + suffix)
            if part.exists():
                os.replace(part, str(backup) + suffix)
        log.error("the queue/history database %s could not be read (%s); it was moved to %s "
                  "and a new, empty one was started", main, exc, backup)  # fmt: skip
        return backup

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _rows(self, sql: str, args: tuple = ()) -> list[PromptRecord]:
        with self._lock:
            return [_record(r) for r in self._db.execute(sql, args).fetchall()]

    # --- queue -------------------------------------------------------------------------

    def add(self, record: PromptRecord, *, front: bool = False) -> PromptRecord:
        """Insert a pending prompt. Without an explicit number it goes to the back (or front)."""
        with self._lock:
            if front:
                low = self._db.execute(
                    "SELECT MIN(number) FROM prompts WHERE status = ?", (PENDING,)
                ).fetchone()[0]
                record.number = (low if low is not None else 0) - 1
            elif record.number is None:
                high = self._db.execute("SELECT MAX(number) FROM prompts").fetchone()[0]
                record.number = (high if high is not None else -1) + 1
            record.created_ms = record.created_ms or now_ms()
            cur = self._db.execute(
                "INSERT INTO prompts (id, number, client_id, prompt, extra_data, outputs, targets,"
                " status, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.number,
                    record.client_id,
                    json.dumps(record.prompt),
                    json.dumps(record.extra_data),
                    json.dumps(record.outputs),
                    json.dumps(record.targets) if record.targets is not None else None,
                    PENDING,
                    record.created_ms,
                ),
            )
            record.seq = cur.lastrowid or 0
            record.status = PENDING
            return record

    def exists(self, prompt_id: str) -> bool:
        return bool(self._exec("SELECT 1 FROM prompts WHERE id = ?", (prompt_id,)).fetchone())

    def next_pending(self) -> PromptRecord | None:
        rows = self._rows(
            "SELECT * FROM prompts WHERE status = ? ORDER BY number, seq LIMIT 1", (PENDING,)
        )
        return rows[0] if rows else None

    def pending(self) -> list[PromptRecord]:
        return self._rows("SELECT * FROM prompts WHERE status = ? ORDER BY number, seq", (PENDING,))

    def running(self) -> list[PromptRecord]:
        return self._rows("SELECT * FROM prompts WHERE status = ? ORDER BY seq", (RUNNING,))

    def count_queued(self) -> int:
        row = self._exec(
            "SELECT COUNT(*) FROM prompts WHERE status IN (?, ?)", (PENDING, RUNNING)
        ).fetchone()
        return int(row[0])

    def mark_running(self, prompt_id: str) -> bool:
        cur = self._exec(
            "UPDATE prompts SET status = ?, started_ms = ? WHERE id = ? AND status = ?",
            (RUNNING, now_ms(), prompt_id, PENDING),
        )
        return cur.rowcount == 1

    def finish(
        self,
        prompt_id: str,
        status: str,
        *,
        ui: dict[str, Any] | None = None,
        messages: list[list[Any]] | None = None,
        error: str | None = None,
    ) -> None:
        self._exec(
            "UPDATE prompts SET status = ?, finished_ms = ?, ui = ?, messages = ?, error = ?"
            " WHERE id = ?",
            (
                status,
                now_ms(),
                json.dumps(ui or {}, default=str),
                json.dumps(messages or [], default=str),
                error,
                prompt_id,
            ),
        )

    def delete_pending(self, ids: list[str] | None = None) -> int:
        """Remove pending prompts (all of them when `ids` is None)."""
        if ids is None:
            return self._exec("DELETE FROM prompts WHERE status = ?", (PENDING,)).rowcount
        n = 0
        for pid in ids:
            n += self._exec(
                "DELETE FROM prompts WHERE id = ? AND status = ?", (str(pid), PENDING)
            ).rowcount
        return n

    def recover(self, message: str = "interrupted by shutdown") -> list[str]:
        """At start: prompts left running by a dead process become errors. Returns their ids."""
        ids = [r.id for r in self.running()]
        for pid in ids:
            msg = [["execution_error", {"prompt_id": pid, "exception_message": message,
                                        "exception_type": "Shutdown", "timestamp": now_ms()}]]  # fmt: skip
            self.finish(pid, ERROR, messages=msg, error=message)
        return ids

    # --- history -----------------------------------------------------------------------

    def get(self, prompt_id: str) -> PromptRecord | None:
        rows = self._rows("SELECT * FROM prompts WHERE id = ?", (prompt_id,))
        return rows[0] if rows else None

    def history(self, max_items: int | None = None, offset: int = 0) -> list[PromptRecord]:
        """Finished prompts, oldest first (the order ComfyUI's /history uses)."""
        limit = -1 if max_items is None else max(0, int(max_items))
        # Paging counts from the newest so `max_items=N` gives the N most recent.
        rows = self._rows(
            "SELECT * FROM prompts WHERE status IN (?, ?, ?) ORDER BY finished_ms DESC, seq DESC"
            " LIMIT ? OFFSET ?",
            (*FINISHED, limit, max(0, int(offset))),
        )
        rows.reverse()
        return rows

    def delete_history(self, ids: list[str] | None = None) -> int:
        if ids is None:
            return self._exec("DELETE FROM prompts WHERE status IN (?, ?, ?)", FINISHED).rowcount
        n = 0
        for pid in ids:
            n += self._exec(
                "DELETE FROM prompts WHERE id = ? AND status IN (?, ?, ?)", (str(pid), *FINISHED)
            ).rowcount
        return n

    def jobs(
        self, statuses: list[str] | None, limit: int, offset: int, newest_first: bool = True
    ) -> tuple[list[PromptRecord], int]:
        """Rows whose status is in `statuses` (row statuses), paged; also the total count."""
        where, args = "", ()
        if statuses:
            where = f"WHERE status IN ({','.join('?' * len(statuses))})"
            args = tuple(statuses)
        order = "DESC" if newest_first else "ASC"
        total = self._exec(f"SELECT COUNT(*) FROM prompts {where}", args).fetchone()[0]
        rows = self._rows(
            f"SELECT * FROM prompts {where} ORDER BY created_ms {order}, seq {order}"
            " LIMIT ? OFFSET ?",
            (*args, int(limit), int(offset)),
        )
        return rows, int(total)
