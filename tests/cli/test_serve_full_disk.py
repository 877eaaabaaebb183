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
