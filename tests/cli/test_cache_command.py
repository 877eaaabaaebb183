"""`latentgraph cache` shows the disk cache `run` writes, and `cache clear` empties it of cached
outputs only: the built tiny models beside them stay."""

from pathlib import Path

import pytest

from .conftest import write
from .test_cli import GOOD


def entries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


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
    assert "of 10 GiB (past it the least recently used entries go)" in out
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
