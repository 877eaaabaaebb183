"""`latentgraph cache` shows the disk cache `run` writes and the built-in models built beside it,
and `cache clear` empties it of cached outputs and of the built-in models only an earlier
version used: this version's builds, a newer one's and any other file stay."""

import errno
import os
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
    # nor the entries' empty two-hex-digit folders; the bound's record stays
    assert list(store.iterdir()) == [store / "limit.json"]
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
    assert list((root / "outputs").iterdir()) == [root / "outputs" / "limit.json"]


def test_cache_lists_and_clear_removes_the_temp_files_of_killed_writes(cli, tmp_path,
                                                                       monkeypatch):  # fmt: skip
    """`run` killed while it wrote an entry (or the store's `limit.json`) leaves the temp file,
    up to a whole entry: `cache` counted none, and `cache clear` said it removed everything and
    left them, and their folder. `cache` lists them now, and `cache clear` removes and counts
    them, a young one too; the next `run` removes those over an hour old."""
    import json
    import time

    from latentgraph.cache_command import size_text
    from latentgraph.graph.files import STALE_PARTIAL_SECONDS

    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(tmp_path / "root"))  # its models/ too
    path = write(tmp_path, "good.yaml", GOOD)
    store = tmp_path / "cache"
    key = "bd" + "4" * 62
    partials = {store / "bd" / f".{key}.0123456789abcdef.tmp": 4 << 20,
                store / ".limit.json.fedcba9876543210.tmp": 26}  # fmt: skip

    def killed(age: float) -> None:
        for partial, size in partials.items():
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(b"\0" * size)
            os.utime(partial, (time.time() - age, time.time() - age))

    assert cli("run", str(path), "-q")[0] == 0
    made = [p for p in entries(store) if p not in partials]
    killed(60)
    size = size_text(sum(p.stat().st_size for p in made))
    code, out, err = cli("cache", "--cache-dir", str(store))
    assert code == 0, err
    assert f"entries: {len(made)}\n" in out
    assert ("partial: 2 file(s), 4 MiB: writes killed or under way (a run writing here removes "
            "those over an hour old; `cache clear` removes them all)\n") in out  # fmt: skip
    info = json.loads(cli("cache", "--json", "--cache-dir", str(store))[1])
    assert (info["partial_files"], info["partial_bytes"]) == (2, (4 << 20) + 26)
    code, out, err = cli("cache", "clear", "--cache-dir", str(store))
    assert code == 0, err
    assert out.startswith(f"cleared {store}: removed {len(made)} cached output(s), {size}, and 2 "
                          "partial file(s) of writes killed or under way, 4 MiB\n")  # fmt: skip
    assert list(store.iterdir()) == [store / "limit.json"]  # nor the folder only a temp file was in
    killed(60)
    cleared = json.loads(cli("cache", "clear", "--json", "--cache-dir", str(store))[1])
    assert (cleared["removed_partial_files"], cleared["removed_partial_bytes"]) == (
        2, (4 << 20) + 26)  # fmt: skip
    assert "partial:" not in cli("cache", "--cache-dir", str(store))[1]
    killed(STALE_PARTIAL_SECONDS + 60)
    code, _, err = cli("run", str(path), "-q")
    assert code == 0 and f"removed 1 partial file(s) a killed cache write left in {store}" in err
    assert not any(p.exists() for p in partials)


@pytest.mark.parametrize("refused, words", [
    (OSError(errno.EROFS, "Read-only file system"),
     "the folder is on a read-only file system (Read-only file system)"),
    (PermissionError(errno.EACCES, "Permission denied"),
     "no permission to write in the folder (Permission denied)"),
])  # fmt: skip
def test_cache_clear_of_a_store_it_cannot_remove_from_says_so(cli, tmp_path, monkeypatch,
                                                              refused, words):  # fmt: skip
    """On a read-only cache folder (a read-only mount; a folder the user may not write)
    `cache clear` said `removed 7 cached output(s), 222 KiB`, exit 0, and removed nothing.
    It counts what it removed, names what it could not and why on stderr, exit 1 (as for a
    built-in model it cannot remove); `--json` gives both."""
    import json

    from latentgraph.cache_command import size_text

    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(tmp_path / "root"))  # its models/ too
    path = write(tmp_path, "good.yaml", GOOD)
    assert cli("run", str(path), "-q")[0] == 0  # the cli fixture adds --cache-dir cache
    store = tmp_path / "cache"
    made = entries(store)
    size = sum(p.stat().st_size for p in made)
    unlink = os.unlink

    def machine(target, *args, **kwargs):  # the OS refusing, under the store only
        if Path(target).is_relative_to(store):
            raise type(refused)(refused.errno, refused.strerror, str(target))
        return unlink(target, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", machine)
    code, out, err = cli("cache", "clear", "--cache-dir", str(store))
    assert (code, out) == (1, f"could not clear {store}: removed 0 cached output(s), 0 B\n")
    assert err == (f"latentgraph: error: cannot remove {len(made)} cached output(s), "
                   f"{size_text(size)} in {store}: {words}\n")  # fmt: skip
    assert sorted(entries(store)) == sorted(made)
    code, out, err = cli("cache", "clear", "--json", "--cache-dir", str(store))
    cleared = json.loads(out)
    assert code == 1 and (cleared["removed_entries"], cleared["removed_bytes"]) == (0, 0)
    assert (cleared["not_removed_entries"], cleared["not_removed_bytes"]) == (len(made), size)
    assert cleared["not_removed_error"] == words
    monkeypatch.undo()
    code, out, err = cli("cache", "clear", "--json", "--cache-dir", str(store))
    cleared = json.loads(out)
    assert (code, cleared["removed_entries"], cleared["not_removed_entries"]) == (0, len(made), 0)
    assert cleared["not_removed_error"] is None and entries(store) == []


@pytest.mark.parametrize("action", ["info", "clear"])
def test_cache_refuses_a_cache_dir_that_is_a_file_as_run_does(cli, tmp_path, action):
    (tmp_path / "afile").write_text("x")
    code, out, err = cli("cache", action, "--cache-dir", "afile")
    assert code == 2 and out == ""
    assert "latentgraph: error: --cache-dir afile: a file is there; expected a folder" in err


def test_run_and_cache_take_the_disk_bound_in_mib(cli, tmp_path):
    """`run --cache-disk-mb N` keeps the store to N MiB and records it; `cache` reports the
    bound the folder was last written with, or the one it is told, also after a `cache clear`
    (a server still writing with its bound writes the record once only: `cache` said the
    default)."""
    path = write(tmp_path, "good.yaml", GOOD)
    store = tmp_path / "cache"
    code, _, err = cli("run", str(path), "-q", "--cache-disk-mb", "3", "--cache-memory-mb", "64")
    assert code == 0, err
    out = cli("cache", "--cache-dir", str(store))[1]
    assert "of 3 MiB (as last written; past it the least recently used entries go)\n" in out
    out = cli("cache", "--cache-dir", str(store), "--cache-disk-mb", "20")[1]
    assert "of 20 MiB (--cache-disk-mb; past it" in out
    cli("cache", "clear", "--cache-dir", str(store))
    out = cli("cache", "--cache-dir", str(store))[1]
    assert "entries: 0\n" in out and "of 3 MiB (as last written; past it" in out
    (store / "limit.json").unlink()
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


def _folder_build(path: Path, weights: bytes = b"w" * 3000) -> Path:
    """A built-in model's folder as a build leaves it: its weights, model_index.json."""
    (path / "unet").mkdir(parents=True)
    (path / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(weights)
    (path / "model_index.json").write_text("{}")
    return path


@pytest.fixture
def old_builds(tmp_path, monkeypatch):
    """A cache folder holding an earlier version's builds of tiny-sd (a folder) and of the tiny
    LoRA (a file, its recipe taken as one version newer here), this version's and a newer
    version's tiny-sd, and things named like builds that are none."""
    from latentgraph.graph import paths
    from latentgraph.nodes import model_presets, tiny_addons, tiny_sd2

    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(tmp_path / "root"))
    monkeypatch.setattr(tiny_addons, "BUILD_VERSION", tiny_addons.BUILD_VERSION + 1)
    monkeypatch.setattr(tiny_sd2, "BUILD_VERSION", tiny_sd2.BUILD_VERSION + 2)
    # tiny-sd-v2: its version, not ours
    current = model_presets.builtin_path(model_presets.BUILTIN_TINY)
    stem, version, _ = paths.built_model_parts(current.name)
    assert version >= 2
    models = paths.built_models_dir()
    lora = paths.built_model("tiny-lora", tiny_addons.BUILD_VERSION - 1, ".safetensors")
    models.mkdir(parents=True)
    lora.write_bytes(b"lora" * 100)
    sd2_old = tiny_sd2.BUILD_VERSION - 2  # below this version's: only no build of ours
    linked = _folder_build(tmp_path / "elsewhere" / "model")
    not_builds = [
        _folder_build(models / "my-model-v1"),  # no built-in model's name
        paths.built_model("tiny-sd2-v", sd2_old),  # no model_index.json: not a whole build
        paths.built_model(stem, version - 1, ".safetensors"),  # a file named as a folder build
        models / f".{stem}-v{version - 1}-0123456789abcdef.tmp",  # a build under way
        tmp_path / "root" / "configs" / f"{stem}-v{version - 1}",  # not in models/
    ]
    (not_builds[1] / "unet").mkdir(parents=True)
    not_builds[2].write_bytes(b"mine")
    _folder_build(not_builds[3])
    _folder_build(not_builds[4])
    link = paths.built_model("tiny-sd2-v", sd2_old + 1)  # a link: the user's, not a build
    link.symlink_to(linked, target_is_directory=True)
    return {"old": _folder_build(paths.built_model(stem, version - 1)), "lora": lora,
            "current": _folder_build(current), "newer": _folder_build(paths.built_model(
                stem, version + 1)), "not builds": [*not_builds, link, linked]}  # fmt: skip


def _listed(out: str) -> dict[str, str]:
    """`cache`'s models lines: name -> what it says of it."""
    rows = [row for row in out.split("(the built-in models)\n", 1)[1].splitlines()
            if row.startswith("  ")]  # fmt: skip
    return {row.split()[0]: row.split("  ")[-1].strip() for row in rows}


def test_cache_lists_the_built_models_and_clear_removes_the_ones_earlier_versions_built(
    cli, old_builds
):
    """After an upgrade that changed tiny-sd's recipe, its earlier build stayed for good,
    unlisted: `cache` lists each build with its size and what it is to this version, and
    `cache clear` removes the earlier versions' builds, saying so, and nothing else."""
    old, lora, current, newer = (old_builds[k] for k in ("old", "lora", "current", "newer"))
    code, out, err = cli("cache")
    assert code == 0, err
    assert f"models:  {current.parent} (the built-in models)\n" in out
    removes = "an earlier version's, not used by this one: `cache clear` removes it"
    assert _listed(out) == {old.name: removes, lora.name: removes,
                            current.name: "used by this version",
                            newer.name: "a newer version's: kept"}  # fmt: skip
    assert f"  {old.name}  " in out and "2.9 KiB" in out  # its size: 3000 + 2 bytes
    code, out, err = cli("cache", "clear")
    assert (code, err) == (0, "")
    assert f"removed {old} (2.9 KiB): a built-in model an earlier version built" in out
    assert f"removed {lora} (400 B): a built-in model an earlier version built" in out
    assert out.endswith(f"kept in {current.parent}: the 1 built-in model(s) this version uses, "
                        f"{newer.name} (a newer version's)\n")  # fmt: skip
    assert not os.path.lexists(old) and not os.path.lexists(lora)
    assert (current / "model_index.json").is_file() and (newer / "model_index.json").is_file()
    for path in old_builds["not builds"]:
        assert os.path.lexists(path), path
    assert sorted(p.name for p in current.parent.iterdir() if p.name.startswith(".")) == [
        old_builds["not builds"][3].name
    ]  # nothing left aside
    assert set(_listed(cli("cache")[1])) == {current.name, newer.name}


def test_cache_clear_keeps_another_users_earlier_build(cli, old_builds, monkeypatch):
    """A shared cache folder: another account's earlier build may still be read by it."""
    monkeypatch.setattr(os, "getuid", lambda: os.stat(old_builds["old"]).st_uid + 1)
    out = cli("cache")[1]
    assert _listed(out)[old_builds["old"].name] == "an earlier version's, another user's: kept"
    code, out, err = cli("cache", "clear")
    assert (code, err) == (0, "") and "removed" not in out.replace("removed 0 cached", "")
    assert (old_builds["old"] / "model_index.json").is_file() and old_builds["lora"].is_file()


def test_cache_clear_that_cannot_remove_a_build_says_so_and_puts_it_back(cli, old_builds,
                                                                         monkeypatch):  # fmt: skip
    """A folder is renamed aside, then deleted: one that cannot be deleted goes back under its
    name (listed, tried again next time), the failure one line on stderr, exit 1."""
    import shutil

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "rmtree", refuse)
    old = old_builds["old"]
    code, out, err = cli("cache", "clear")
    assert code == 1 and "Traceback" not in err
    assert err == (f"latentgraph: error: cannot remove {old}: no permission to write in the "
                   "folder (Permission denied)\n")  # fmt: skip
    assert (old / "model_index.json").is_file() and not old_builds["lora"].exists()
    assert old.name in _listed(cli("cache")[1])


def test_the_builds_cache_lists_are_the_ones_the_loaders_use(cli, tmp_path, monkeypatch):
    """`builtin_builds.used_builds` asks each builder where it builds: with every one of them
    made, each built-in name loads from one of those paths (nothing built), and `cache`
    lists them all as used."""
    from latentgraph.nodes import builtin_builds, model_presets, tiny_addons, tiny_control
    from latentgraph.nodes.tiny_upscaler import builtin_upscaler_path

    monkeypatch.setenv("LATENTGRAPH_CACHE_DIR", str(tmp_path / "root"))
    used = builtin_builds.used_builds()
    for path in used:
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"weights")
        else:
            _folder_build(path)
    loaded = [*map(model_presets.builtin_folder, model_presets.BUILTINS),
              *map(tiny_addons.builtin_lora, tiny_addons.BUILTIN_LORAS),
              *map(tiny_control.builtin_control, tiny_control.BUILTIN_CONTROLS),
              builtin_upscaler_path(None)]  # fmt: skip
    assert sorted(loaded) == sorted(used)
    listed = _listed(cli("cache")[1])
    assert listed == {path.name: "used by this version" for path in used}


def test_a_build_an_interrupted_clear_left_aside_is_listed_and_cleared(cli, old_builds,
                                                                       monkeypatch):  # fmt: skip
    """`cache clear` renames a folder build aside, hidden, then deletes it: killed in between
    (SIGTERM, SIGKILL), it left `.tiny-sd-v1-<hex>.removing`, which no later `cache` listed nor
    `cache clear` removed. Such a folder is listed as what it is and removed by the next clear;
    a hidden folder not named exactly so, or a link named so, is the user's and stays."""
    import shutil

    from latentgraph.nodes import builtin_builds

    old = old_builds["old"]
    models = old.parent
    linked = _folder_build(models.parent / "mine")
    lookalikes = [models / name for name in (
        f".{old.name}-0123456789ABCDEF.removing",  # not the hex `secrets.token_hex` writes
        f".{old.name}-0123456789abcde.removing",  # one digit short
        f".{old.name}-0123456789abcdef.removing.bak",
        f".{old.name}.removing",
        f"{old.name}-0123456789abcdef.removing",  # not hidden
        ".my-model-v1-0123456789abcdef.removing",  # no built-in model's name
        f".{old_builds['lora'].name}-0123456789abcdef.removing",  # a file build is never aside
    )]  # fmt: skip
    for path in lookalikes:
        _folder_build(path)
    link = models / f".{old.name}-fedcba9876543210.removing"
    link.symlink_to(linked, target_is_directory=True)

    def killed(path, *args, **kwargs):  # stopped part-way through deleting the folder
        (Path(path) / "model_index.json").unlink()
        raise KeyboardInterrupt

    build = next(b for b in builtin_builds.found_builds() if b.path == old)
    with monkeypatch.context() as patched:
        patched.setattr(shutil, "rmtree", killed)
        with pytest.raises(KeyboardInterrupt):
            builtin_builds.remove_build(build)
    assert not os.path.lexists(old)
    (aside,) = set(models.glob(f".{old.name}-*.removing")) - {*lookalikes, link}
    left = "left by an interrupted `cache clear`"
    code, out, err = cli("cache")
    assert code == 0, err
    assert _listed(out)[aside.name] == f"{left}: `cache clear` removes it"
    assert not {p.name for p in [*lookalikes, link]} & set(_listed(out))
    code, out, err = cli("cache", "clear")
    assert (code, err) == (0, "")
    assert f"removed {aside} (2.9 KiB): {left}\n" in out  # 3000 bytes of weights
    assert not os.path.lexists(aside)
    for path in [*lookalikes, link, linked / "model_index.json", *old_builds["not builds"]]:
        assert os.path.lexists(path), path
    assert aside.name not in _listed(cli("cache")[1])


def test_another_users_build_left_aside_is_listed_and_kept(cli, old_builds, monkeypatch):
    aside = old_builds["old"].with_name(f".{old_builds['old'].name}-0123456789abcdef.removing")
    old_builds["old"].rename(aside)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(aside).st_uid + 1)
    left = "left by an interrupted `cache clear`"
    assert _listed(cli("cache")[1])[aside.name] == f"{left}, another user's: kept"
    code, out, err = cli("cache", "clear")
    assert (code, err) == (0, "") and f"{aside.name} ({left}, another user's)" in out
    assert (aside / "model_index.json").is_file()


def test_cache_json_gives_the_store_and_its_limit_in_exact_bytes(cli, tmp_path):
    """`cache --json` was `unrecognized arguments`: a CI job checking or trimming the cache
    parsed `size: 422.8 KiB of 10 GiB (...)`. One JSON object now, sizes in bytes, the
    limit's source named; `cache clear --json` what it removed, in the same units."""
    import json

    path = write(tmp_path, "good.yaml", GOOD)
    assert cli("run", str(path), "-q")[0] == 0  # the cli fixture adds --cache-dir cache
    store = tmp_path / "cache"
    made = entries(store)
    size = sum(p.stat().st_size for p in made)
    code, out, err = cli("cache", "--json", "--cache-dir", str(store))
    assert code == 0, err
    info = json.loads(out)
    assert {k: info[k] for k in ("folder", "made", "entries", "bytes", "limit")} == {
        "folder": str(store), "made": True, "entries": len(made), "bytes": size,
        "limit": {"bytes": 10 << 30, "from": "last_written"}}  # fmt: skip
    assert isinstance(info["models"], list) and info["models_folder"]
    limit = json.loads(cli("cache", "--json", "--cache-dir", str(store),
                           "--cache-disk-mb", "3")[1])["limit"]  # fmt: skip
    assert limit == {"bytes": 3 << 20, "from": "--cache-disk-mb"}
    code, out, err = cli("cache", "clear", "--json", "--cache-dir", str(store))
    assert code == 0, err
    cleared = json.loads(out)
    assert (cleared["folder"], cleared["removed_entries"], cleared["removed_bytes"]) == (
        str(store), len(made), size)  # fmt: skip
    assert cleared["models_not_removed"] == [] and entries(store) == []


def test_cache_json_lists_each_build_and_what_clear_did_with_it(cli, old_builds):
    """The builds as `cache` lists them, each with its exact size, its state as a key, and
    whether `cache clear` removes it; `clear --json` says which it removed and kept."""
    import json

    old, lora, current, newer = (old_builds[k] for k in ("old", "lora", "current", "newer"))
    code, out, err = cli("cache", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["models_folder"] == str(current.parent)
    listed = {m["name"]: (m["state"], m["clear_removes"]) for m in info["models"]}
    assert listed == {old.name: ("earlier", True), lora.name: ("earlier", True),
                      current.name: ("used", False), newer.name: ("newer", False)}  # fmt: skip
    assert {m["name"]: m["bytes"] for m in info["models"]}[lora.name] == 400
    code, out, err = cli("cache", "clear", "--json")
    assert (code, err) == (0, "")
    cleared = json.loads(out)
    assert sorted(m["path"] for m in cleared["models_removed"]) == sorted([str(old), str(lora)])
    assert sorted(m["name"] for m in cleared["models_kept"]) == sorted([current.name, newer.name])


def _killed_build(dest: Path, file: bool = False) -> None:
    """Build `dest` in another process (a folder build as every built-in model's folder is
    built, `build_folder`; a file build as the LoRAs are, `write_file`), killed (SIGKILL) part
    way: what a cron job's timeout during a first run leaves."""
    import subprocess
    import sys

    script = f"""
import os, signal
from pathlib import Path
from latentgraph.graph.files import write_file
from latentgraph.nodes.tiny_model import build_folder

def killed(folder):
    (folder / "unet").mkdir()
    (folder / "unet" / "weights.safetensors").write_bytes(b"w" * 3000)
    os.kill(os.getpid(), signal.SIGKILL)

def killed_file(tmp):
    tmp.write_bytes(b"l" * 400)
    os.kill(os.getpid(), signal.SIGKILL)

dest = Path({str(dest)!r})
if {file!r}:
    write_file(dest, killed_file)
else:
    build_folder(dest, killed)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr


def _aged(path: Path, seconds: float) -> None:
    """`path` and everything in it last written `seconds` ago."""
    import time

    when = time.time() - seconds
    for found in [*path.rglob("*"), path] if path.is_dir() else [path]:
        os.utime(found, (when, when), follow_symlinks=False)


def test_a_build_killed_part_way_is_listed_and_cleared_once_an_hour_old(cli, old_builds):
    """A model build killed part way left `models/.tiny-sd-v2-<hex>.tmp` (14 MB) for good:
    `cache` did not list it and `cache clear` did not remove it, nor a killed LoRA build's temp
    file. `cache` counts them, with those under way; `cache clear` removes the user's own last
    written over an hour ago (builds take no lock: a younger one may be a build under way)."""
    import json

    from latentgraph.graph import paths
    from latentgraph.graph.files import STALE_PARTIAL_SECONDS

    current, models = old_builds["current"], old_builds["current"].parent
    under_way = old_builds["not builds"][3]  # the fixture's `.NAME-<hex>.tmp`, just written
    _killed_build(current.with_name("tiny-sd-v99"))
    lora = paths.built_model("tiny-lora", 99, ".safetensors")
    _killed_build(lora, file=True)
    killed = sorted(set(models.glob(".*.tmp")) - {under_way})
    assert [p.name.split(".")[1].split("-")[:2] for p in killed] == [["tiny", "lora"],
                                                                       ["tiny", "sd"]]  # fmt: skip
    lookalikes = [models / name for name in (
        f".{current.name}-0123456789ABCDEF.tmp",  # not the hex a temp name has
        f".{current.name}-0123456789abcdef.tmp.bak",
        ".my-model-v1-0123456789abcdef.tmp",  # no built-in model's name
        f".{lora.name}-0123456789abcdef.tmp",  # a file build is never built in a folder
    )]  # fmt: skip
    for path in lookalikes:
        _folder_build(path)
    as_file = models / f".{current.name}-fedcba9876543210.tmp"  # named as a folder's: a file
    as_file.write_bytes(b"mine")
    for path in [*killed, *lookalikes, as_file]:
        _aged(path, 60)
    code, out, err = cli("cache")
    assert code == 0, err
    assert ("partial: 3 build(s) in models/, 6.3 KiB: killed part way or under way (`cache "
            "clear` removes those last written over an hour ago: 0 now)\n") in out  # fmt: skip
    code, out, err = cli("cache", "clear")
    assert (code, err) == (0, "") and "killed part way" not in out
    assert all(p.exists() for p in killed)
    for path in [*killed, *lookalikes, as_file]:
        _aged(path, STALE_PARTIAL_SECONDS + 60)
    info = json.loads(cli("cache", "--json")[1])
    assert {p["path"]: (p["name"], p["bytes"], p["clear_removes"])
            for p in info["partial_builds"]} == {
        str(killed[0]): (lora.name, 400, True), str(killed[1]): ("tiny-sd-v99", 3000, True),
        str(under_way): (under_way.name[1:-21], 3002, False)}  # fmt: skip
    assert "over an hour ago: 2 now)\n" in cli("cache")[1]
    code, out, err = cli("cache", "clear")
    assert (code, err) == (0, "")
    assert (f"removed {killed[1]} (2.9 KiB): a build of tiny-sd-v99 killed part way (last "
            "written over an hour ago)\n") in out  # fmt: skip
    assert f"removed {killed[0]} (400 B): a build of {lora.name} killed part way" in out
    assert not any(os.path.lexists(p) for p in killed)
    assert all(os.path.lexists(p) for p in [under_way, *lookalikes, as_file])
    assert "partial: 1 build(s) in models/, 2.9 KiB" in cli("cache")[1]


def test_a_killed_build_clear_cannot_remove_or_another_users_is_kept(cli, old_builds,
                                                                      monkeypatch):  # fmt: skip
    """One `cache clear` cannot remove says so on stderr, exit 1, as a build it cannot remove;
    another user's, in a shared cache folder, is never removed."""
    import json
    import shutil

    from latentgraph.graph.files import STALE_PARTIAL_SECONDS

    current = old_builds["current"]
    _killed_build(current.with_name("tiny-sd-v99"))
    (killed,) = set(current.parent.glob(".tiny-sd-v99-*.tmp"))
    _aged(killed, STALE_PARTIAL_SECONDS + 60)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    with monkeypatch.context() as patched:
        patched.setattr(shutil, "rmtree", refuse)
        code, out, err = cli("cache", "clear", "--json")
    assert code == 1 and err.endswith(f"latentgraph: error: cannot remove {killed}: no "
                                      "permission to write in the folder (Permission denied)\n")  # fmt: skip
    assert json.loads(out)["partial_builds_not_removed"] == [
        {"name": "tiny-sd-v99", "path": str(killed), "bytes": 3000, "clear_removes": True,
         "error": "no permission to write in the folder (Permission denied)"}]  # fmt: skip
    monkeypatch.setattr(os, "getuid", lambda: os.stat(killed).st_uid + 1)
    assert "over an hour ago: 0 now)" in cli("cache")[1]
    code, out, err = cli("cache", "clear")
    assert (code, err) == (0, "") and (killed / "unet").is_dir()
