"""`latentgraph` in the environment it is started in: a cache or data folder named by the
default or an environment variable (`~` expanded) is checked before any work as a flag's is, and
named by where it came from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import PLUGIN, write
from .test_cli import GOOD

CACHE_ENV, DATA_ENV = "LATENTGRAPH_CACHE_DIR", "LATENTGRAPH_DATA_DIR"
FILE_THERE = "a file is there; expected a folder"


# --- the cache and data folders: checked before any work, named by their origin ----------------


@pytest.fixture
def no_server(monkeypatch):
    """`serve` refused before it starts: a server that would start fails the test at once."""
    from latentgraph.server import run

    def started(*args, **kwargs):
        raise AssertionError("serve started: its folders were not refused")

    monkeypatch.setattr(run, "serve", started)


def test_a_cache_folder_from_the_environment_that_is_a_file_refuses_run_before_any_work(
    cli, tmp_path, monkeypatch
):
    """It failed every run at its LoadModel (exit 1) with no word of $LATENTGRAPH_CACHE_DIR; the
    README promises `--cache-dir`'s refusal, exit 2 before anything runs, for it too."""
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "afile"))
    path = write(tmp_path, "good.yaml", GOOD)
    code, out, err = cli("run", str(path), "--output-dir", "out")
    assert code == 2 and out == ""
    assert err == (f"latentgraph: error: the cache folder {tmp_path / 'afile'} (from "
                   f"${CACHE_ENV}; set it to another folder): {FILE_THERE}\n")  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_the_default_cache_folder_that_cannot_be_made_is_named_as_the_default(cli, tmp_path,
                                                                             monkeypatch):  # fmt: skip
    """The user cache folder (`$XDG_CACHE_HOME/latentgraph`) under a file: refused before the run,
    named as the default, with the variable that chooses another (`--cache-dir` moves the disk
    store only, not the built-in models)."""
    (tmp_path / "afile").write_text("")
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "afile"))
    path = write(tmp_path, "good.yaml", GOOD)
    code, _, err = cli("run", str(path), "--no-cache")
    assert code == 2
    assert err == (f"latentgraph: error: the cache folder {tmp_path / 'afile' / 'latentgraph'} "
                   f"(the default; ${CACHE_ENV} chooses another): {tmp_path / 'afile'} is a "
                   "file; expected a folder\n")  # fmt: skip


def test_a_cache_folder_no_one_can_write_in_refuses_run(cli, tmp_path, monkeypatch):
    """/proc refuses every mkdir, root's too: the service account's HOME=/nonexistent case."""
    monkeypatch.setenv(CACHE_ENV, "/proc/latentgraph-cache")
    code, _, err = cli("run", str(write(tmp_path, "good.yaml", GOOD)))
    assert code == 2
    assert err.startswith(f"latentgraph: error: the cache folder /proc/latentgraph-cache (from "
                          f"${CACHE_ENV}; set it to another folder): cannot write in /proc (")  # fmt: skip


def test_cache_refuses_a_cache_folder_it_could_never_make(cli, tmp_path, monkeypatch):
    """`cache` said `folder: .../afile/outputs (not made yet)`, exit 0, for a place that can
    never be made, and the same for a store whose outputs/ is a file."""
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "afile"))
    for args in ([], ["--json"], ["clear"]):
        code, out, err = cli("cache", *args)
        assert code == 2 and out == "", args
        assert err.startswith(f"latentgraph: error: the cache folder {tmp_path / 'afile'} (from ")
    root = tmp_path / "root"
    (root / "outputs").parent.mkdir()
    (root / "outputs").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(root))
    code, out, err = cli("cache")
    assert code == 2 and out == ""
    assert err == f"latentgraph: error: the disk cache's folder {root / 'outputs'}: {FILE_THERE}\n"


def test_serve_refuses_a_cache_folder_from_the_environment(cli, tmp_path, monkeypatch, no_server):
    """`serve` started without a word and failed every prompt at its LoadModel."""
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "afile"))
    code, _, err = cli("serve", "--port", "0", "--data-dir", str(tmp_path / "data"))
    assert code == 2
    assert err == (f"latentgraph: error: the cache folder {tmp_path / 'afile'} (from "
                   f"${CACHE_ENV}; set it to another folder): {FILE_THERE}\n")  # fmt: skip


@pytest.mark.parametrize("origin", ["environment", "default"])
def test_serve_names_a_data_folder_by_where_it_came_from(
    cli, tmp_path, monkeypatch, origin, no_server
):
    """It said `--data-dir X` when no --data-dir was given: the user searched the command line
    for it in vain."""
    from latentgraph.arguments import USER_FOLDERS
    from latentgraph.graph.paths import CACHE_DIR_ENV, DATA_DIR_ENV

    assert set(USER_FOLDERS) == {CACHE_DIR_ENV, DATA_DIR_ENV}  # written out there, not imported
    (tmp_path / "afile").write_text("")
    if origin == "environment":
        monkeypatch.setenv(DATA_ENV, str(tmp_path / "afile"))
        named = (f"the data folder {tmp_path / 'afile'} (from ${DATA_ENV}; --data-dir DIR "
                 f"chooses another): {FILE_THERE}")  # fmt: skip
    else:
        monkeypatch.delenv(DATA_ENV, raising=False)
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "afile"))
        named = (f"the data folder {tmp_path / 'afile' / 'latentgraph'} (the default; --data-dir "
                 f"DIR or ${DATA_ENV} chooses another): {tmp_path / 'afile'} is a file; "
                 "expected a folder")  # fmt: skip
    code, _, err = cli("serve", "--port", "0")
    assert code == 2 and err == f"latentgraph: error: {named}\n"
    code, _, err = cli("serve", "--port", "0", "--data-dir", "afile")  # the flag: as given
    assert code == 2 and err == f"latentgraph: error: --data-dir afile: {FILE_THERE}\n"


def test_a_tilde_in_the_cache_variable_is_the_home_folder(cli, tmp_path, monkeypatch):
    """`LATENTGRAPH_CACHE_DIR=~/lgc` (systemd's Environment=, docker -e: no shell expands it)
    made a folder named `~` in the working folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(CACHE_ENV, "~/lgc")
    code, out, err = cli("cache", "--json")
    assert code == 0, err
    assert json.loads(out)["folder"] == str(tmp_path / "home" / "lgc" / "outputs")
    assert not (tmp_path / "~").exists()


# --- a cache folder that is there but read-only: used, not refused ------------------------------


def _unprivileged(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m latentgraph ARGS` (`python -c ARGS[1]` when ARGS[0] is "-c") in `tmp_path`
    with `env` added, unable to write a folder without write permission: as root, with every
    capability dropped (`setpriv`), else as is."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root, and no setpriv to drop the right to write anywhere")
        prefix = [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--"]
    command = list(args) if args[0] == "-c" else ["-m", "latentgraph", *args]
    return subprocess.run([*prefix, sys.executable, *command], cwd=tmp_path,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_a_read_only_cache_folder_holding_the_built_models_is_used(tmp_path):
    """A cache on a read-only mount or image (its models built) was refused by run, run
    --no-cache, serve and the bare `cache` listing: `cannot write in ...` (exit 2)."""
    cache = tmp_path / "ro"
    (cache / "models" / "tiny-sd-v2").mkdir(parents=True)
    (cache / "models" / "tiny-sd-v2" / "model_index.json").write_text("{}")
    (cache / "outputs").mkdir()
    for path in (cache / "models" / "tiny-sd-v2", cache / "models", cache / "outputs", cache):
        path.chmod(0o555)
    try:
        probe = _unprivileged(tmp_path, "-c", f"import os; os.mkdir({str(cache / 'x')!r})")
        if probe.returncode == 0:
            pytest.skip("the folder could be written: no way to make one read-only here")
        write(tmp_path, "good.yaml", GOOD)
        for extra in ([], ["--no-cache"]):
            proc = _unprivileged(tmp_path, "run", "good.yaml", "--nodes-dir", str(PLUGIN),
                                 "--output-dir", "out", *extra, **{CACHE_ENV: str(cache)})  # fmt: skip
            assert proc.returncode == 0, (extra, proc.stderr)
        assert "kept in memory only" in _unprivileged(
            tmp_path, "run", "good.yaml", "--nodes-dir", str(PLUGIN), "--set", "x=5",
            **{CACHE_ENV: str(cache)}).stderr  # fmt: skip
        proc = _unprivileged(tmp_path, "cache", **{CACHE_ENV: str(cache)})
        assert proc.returncode == 0, proc.stderr
        assert f"models:  {cache / 'models'}" in proc.stdout and "tiny-sd-v2" in proc.stdout
    finally:
        for path in (cache, cache / "outputs", cache / "models", cache / "models" / "tiny-sd-v2"):
            path.chmod(0o755)


def test_the_default_cache_folder_under_a_home_that_is_not_there_is_refused(cli, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    """A service account's HOME=/nonexistent: the default cache folder can never be made (/proc
    refuses every mkdir, root's too), so run and the listing refuse it, naming the default."""
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/proc/nonexistent")
    named = ("latentgraph: error: the cache folder /proc/nonexistent/.cache/latentgraph (the "
             f"default; ${CACHE_ENV} chooses another): cannot write in /proc (")  # fmt: skip
    for args in (["run", str(write(tmp_path, "good.yaml", GOOD))], ["cache"]):
        code, _, err = cli(*args)
        assert code == 2 and err.startswith(named), err


# --- ~user of no user in a path variable ---------------------------------------------------------


@pytest.mark.parametrize("variable, args", [
    (CACHE_ENV, ["cache"]), (CACHE_ENV, ["run", "good.yaml"]),
    (DATA_ENV, ["serve", "--port", "0"]), ("LATENTGRAPH_MODELS_DIRS", ["run", "good.yaml"])])  # fmt: skip
def test_a_tilde_user_of_no_user_in_a_path_variable_is_a_usage_error(cli, tmp_path, monkeypatch,
                                                                     variable, args, no_server):  # fmt: skip
    """`~nosuchuser/x` was `internal error: RuntimeError: Could not determine home directory`
    (this is a bug), exit 70."""
    write(tmp_path, "good.yaml", GOOD)
    monkeypatch.setenv(variable, "~lg-no-such-user/x")
    code, _, err = cli(*args)
    assert code == 2
    assert err == (f"latentgraph: error: ${variable} '~lg-no-such-user/x': no user "
                   "'lg-no-such-user' on this machine (for ~lg-no-such-user); give the folder's "
                   "full path\n")  # fmt: skip
