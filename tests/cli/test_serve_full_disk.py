"""`latentgraph serve` on a --data-dir whose disk is full: refused before anything runs, in
one line naming the file and why, exit 2, nothing left behind."""

from __future__ import annotations

import errno
import os

import pytest


@pytest.mark.parametrize("existing", [False, True])
def test_a_full_disk_under_the_data_dir_is_refused_leaving_no_lock_file(tmp_path, monkeypatch,
                                                                        capsys, existing):  # fmt: skip
    """The lock file's pid, refused by a full disk (ENOSPC from its write), fell into the
    handler for stdout on a full disk: "cannot write the output: the disk is full", exit 1,
    an empty server.sqlite3.lock left behind (in a new data folder, the folder too)."""
    from latentgraph import wiring
    from latentgraph.cli import main

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
    monkeypatch.setattr(wiring, "prepare_server", lambda config, **kw: None)  # no node setup
    data = tmp_path / "full" / "data"
    if existing:
        data.mkdir(parents=True)
    monkeypatch.setattr(os, "pwrite", full)
    code = main(["serve", "--port", "0", "--data-dir", str(data), "--device", "cpu"])
    err = capsys.readouterr().err
    db = data / "server.sqlite3"
    assert (code, err) == (2, f"latentgraph: error: the queue database {db} cannot be opened: "
                              f"its lock file {db}.lock cannot be written: the disk is full "
                              f"({os.strerror(errno.ENOSPC)})\n")  # fmt: skip
    assert (list(data.iterdir()) == []) if existing else not (tmp_path / "full").exists()


@pytest.mark.parametrize("before", ["nothing", "a data folder", "an earlier start's files"])
def test_a_queue_database_the_full_disk_refuses_leaves_only_what_was_there(tmp_path, monkeypatch,
                                                                           capsys, before):  # fmt: skip
    """Room for the lock file but not for the database: refused in one line, exit 2, but an
    empty server.sqlite3, its lock file, users/default (and the new data folder) were left
    behind. The start removes what it made, and nothing that was there before it."""
    import sqlite3

    from latentgraph import wiring
    from latentgraph.cli import main

    connect = sqlite3.connect

    def full(path, *args, **kwargs):  # SQLite makes the file, then cannot write its header
        connect(path).close()
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LATENTGRAPH_AUTH_TOKEN", raising=False)
    monkeypatch.setattr(wiring, "prepare_server", lambda config, **kw: None)  # no node setup
    data = tmp_path / "full" / "data"
    db = data / "server.sqlite3"
    if before != "nothing":
        data.mkdir(parents=True)
        (data / "keep").write_text("mine")
    if before == "an earlier start's files":
        for name in ("server.sqlite3", "server.sqlite3.lock", "users/default/settings.json"):
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            (data / name).write_text(name)
    there = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    monkeypatch.setattr(sqlite3, "connect", full)
    code = main(["serve", "--port", "0", "--data-dir", str(data), "--device", "cpu"])
    err = capsys.readouterr().err
    assert (code, err) == (2, f"latentgraph: error: the queue database {db} cannot be opened "
                              "(database or disk is full)\n")  # fmt: skip
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == there
    if before == "an earlier start's files":  # (its lock file emptied, as every stop leaves it)
        assert db.read_text() == "server.sqlite3"
