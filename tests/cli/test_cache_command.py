"""`latentgraph cache` shows the disk cache `run` writes, and `cache clear` empties it of cached
outputs only: the built tiny models beside them stay."""

from pathlib import Path

import pytest

from .conftest import write
from .test_cli import GOOD


def entries(folder: Path) -> list[Path]:
    """The files under `folder` but the store's record of its bound (`LIMIT_FILE`)."""
    return [p for p in folder.rglob("*") if p.is_file() and p.name != "limit.json"]


def test_cache_shows_and_clears_what_run_cache_dir_wrote(cli, tmp_path):
    """`run --cache-dir DIR` puts the entries directly in DIR; `cache --cache-dir DIR` reads
    the same folder (one resolution: `graph.cache.disk_store_dir`)."""
    path = write(tmp_path, "good.yaml", GOOD)
    assert cli("run", str(path), "-q")[0] == 0  # the cli fixture adds --cache-dir cache
    store = tmp_path / "cache"
    made = entries(store)
    assert made and all(p.parent.parent == store for p in made)
    code, out, err = cli("cache", "--cache-dir", str(store))
    assert code == 0, err
    assert f"folder:  {store}\n" in out and f"entries: {len(made)}\n" in out
    assert "of 10 GiB (as last written; past it the least recently used entries go)" in out
    code, out, err = cli("cache", "clear", "--cache-dir", str(store))
    assert code == 0, err
    assert out.startswith(f"cleared {store}: removed {len(made)} cached output(s), ")
    assert entries(store) == []
    assert list(store.iterdir()) == []  # nor the entries' empty two-hex-digit folders
    assert "entries: 0\n" in cli("cache", "info", "--cache-dir", str(store))[1]


def test_cache_clear_in_the_default_root_keeps_the_built_models(cli, tmp_path, monkeypatch):
    """Without --cache-dir, the store is outputs/ in $LATENTGRAPH_CACHE_DIR, which holds the
    built tiny models too: clearing removes the outputs only (also when --cache-dir names the
    root itself: only files laid out as entries are entries)."""
    from latentgraph.graph.cache import DiskCache

    root = tmp_path / "root"
    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(root))
    model = root / "models" / "tiny-sd-v9" / "unet" / "weights.safetensors"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    addon = root / "models" / "ab.safetensors"  # a two-letter folder would not be one either
    addon.write_bytes(b"lora")
    (root / "ab").mkdir()
    (root / "ab" / "notes.txt").write_text("mine")
    DiskCache(root / "outputs").put("ab" + "1" * 62, ([1, 2],), None)
    code, out, _ = cli("cache")
    assert code == 0 and f"folder:  {root / 'outputs'}\n" in out and "entries: 1\n" in out
    for given in ([], ["--cache-dir", str(root)]):
        code, out, err = cli("cache", "clear", *given)
        assert code == 0, err
    assert entries(root / "outputs") == []
    assert model.read_bytes() == b"weights" and addon.exists()
    assert (root / "ab" / "notes.txt").exists()
    assert list((root / "outputs").iterdir()) == []


@pytest.mark.parametrize("action", ["info", "clear"])
def test_cache_refuses_a_cache_dir_that_is_a_file_as_run_does(cli, tmp_path, action):
    (tmp_path / "afile").write_text("x")
    code, out, err = cli("cache", action, "--cache-dir", "afile")
    assert code == 2 and out == ""
    assert "latentgraph: error: --cache-dir afile: a file is there; expected a folder" in err


def test_run_and_cache_take_the_disk_bound_in_mib(cli, tmp_path):
    """`run --cache-disk-mb N` keeps the store to N MiB and records it; `cache` reports the
    bound the folder was last written with, or the one it is told."""
    path = write(tmp_path, "good.yaml", GOOD)
    store = tmp_path / "cache"
    code, _, err = cli("run", str(path), "-q", "--cache-disk-mb", "3", "--cache-memory-mb", "64")
    assert code == 0, err
    out = cli("cache", "--cache-dir", str(store))[1]
    assert "of 3 MiB (as last written; past it the least recently used entries go)\n" in out
    out = cli("cache", "--cache-dir", str(store), "--cache-disk-mb", "20")[1]
    assert "of 20 MiB (--cache-disk-mb; past it" in out
    cli("cache", "clear", "--cache-dir", str(store))
    assert "of 10 GiB (the default; past it" in cli("cache", "--cache-dir", str(store))[1]


@pytest.mark.parametrize("command", ["run", "cache"])
@pytest.mark.parametrize("value", ["0", "-5", "1.5", "lots"])
def test_a_cache_bound_below_one_mib_is_a_usage_error_naming_the_flag(cli, tmp_path, capsys,
                                                                      command, value):  # fmt: skip
    args = [str(write(tmp_path, "good.yaml", GOOD))] if command == "run" else []
    with pytest.raises(SystemExit) as exit_:
        cli(command, *args, "--cache-disk-mb", value)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert err == ("latentgraph: error: --cache-disk-mb: expected an integer of at least 1, "
                   f"got '{value}'\n")  # fmt: skip
    if command == "run":
        with pytest.raises(SystemExit):
            cli(command, *args, "--cache-memory-mb", value)
        assert "latentgraph: error: --cache-memory-mb: expected an integer of at least 1" in \
            capsys.readouterr().err  # fmt: skip


def test_a_disk_cache_that_cannot_be_written_is_warned_about_once(cli, tmp_path):
    """Every entry's write fails (each two-hex-digit folder is a file here, as a full disk
    fails each): the run succeeds, and stderr says so once, naming the folder and the reason."""
    store = tmp_path / "cache"
    store.mkdir()
    for i in range(256):
        (store / f"{i:02x}").write_text("in the way")
    path = write(tmp_path, "good.yaml", GOOD)
    code, _, err = cli("run", str(path), "-q")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "cannot be written" in line]
    assert warnings == [f"latentgraph: warning: the disk cache at {store} cannot be written "
                        "(Not a directory); results are kept in memory only, not for later runs "
                        "(said once)"], err  # fmt: skip
