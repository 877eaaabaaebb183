"""The built-in models' builds in the cache (`graph.paths.built_models_dir`): the ones this
version uses, and the ones other versions left there, which `latentgraph cache` lists and
`cache clear` removes when an earlier version made them.

A builder names its build `STEM-vVERSION` (a folder) or `STEM-vVERSION.safetensors` (a file),
VERSION its recipe's (`paths.built_model`), so a changed recipe builds anew beside the old build,
which nothing reads again. Which builds this version uses is asked of the builders themselves
(`used_builds`), never listed twice. Another version's build is an entry of that folder named
with one of those stems and another version, of the same kind (a folder holding the
`model_index.json` every build writes last, or a plain file): anything else there (a link, the
user's own file, a build half done) is not a build and is left alone.

A build half done is the temp folder (`files.new_sibling`'s `.NAME-<hex>.tmp`) or file
(`files.write_file`'s `.NAME.<hex>.tmp`) a build fills before it takes its name, NAME read back
by `files.sibling_temp_target` or `files.write_temp_target`: one killed part way (a cron job's
timeout during its first run) left it, up to a whole model, or a build is under way in it now.
Builds take no lock (two at once each build, the first to finish is kept), so which is which is
told by age, as the disk store's and the output folder's partial files are
(`files.STALE_PARTIAL_SECONDS`): one last written over an hour ago, far longer than a build
takes, is a killed build's (`PartialBuild.stale`), which `cache clear` removes; a younger one
is listed and kept.

Only an earlier version's build is removed (its VERSION below the one this version builds):
a newer one is a newer latentgraph's sharing the cache folder, which still reads it. An earlier
latentgraph still running on the same folder builds its model again when it next loads it: a
folder is renamed aside before it is deleted (`_aside_name`), so it sees the whole folder or
none. A removal stopped there (a killed `cache clear`) leaves that hidden folder: it is found as
well (`Build.left_aside`), by that name only, and the next `cache clear` finishes it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from latentgraph.graph import paths
from latentgraph.graph.files import STALE_PARTIAL_SECONDS, sibling_temp_target, write_temp_target

_TOKEN_BYTES = 8  # the random part of `_aside_name`: 16 hex digits


def _aside_name(name: str, token: str) -> str:
    """The hidden name `remove_build` gives folder build `name` before deleting it, `token`
    (random hex) keeping two removals apart; `_ASIDE`, beside it, reads exactly these names
    back."""
    return f".{name}-{token}.removing"


_ASIDE = re.compile(rf"\.(?P<name>.+)-(?P<token>[0-9a-f]{{{2 * _TOKEN_BYTES}}})\.removing")


@dataclass(frozen=True)
class Build:
    """One built-in model's build found in the cache: its recipe `version`, the one this
    version builds under its stem (`used_version`), its bytes, and whether it is the user's
    own (another user's, in a shared cache folder, is never removed). `left_aside`: a folder
    `remove_build` renamed aside and was stopped before deleting it (`path` is the hidden
    name, `_aside_name`), which nothing reads whatever its version."""

    path: Path
    version: int
    used_version: int
    size: int
    own: bool
    left_aside: bool = False

    @property
    def name(self) -> str:
        """The build's name (`paths.built_model`), also for one left aside under another."""
        if self.left_aside:
            found = _ASIDE.fullmatch(self.path.name)
            assert found is not None, self.path
            return found["name"]
        return self.path.name

    @property
    def used(self) -> bool:
        return not self.left_aside and self.version == self.used_version

    @property
    def earlier(self) -> bool:
        """An earlier version's build, which this one never reads."""
        return self.version < self.used_version

    @property
    def removable(self) -> bool:
        """What `remove_build` takes: the user's own earlier version's build, or what an
        interrupted removal left aside."""
        return self.own and (self.earlier or self.left_aside)


@dataclass(frozen=True)
class PartialBuild:
    """What a build killed part way, or one under way, has in the models folder (the module's
    docstring): `path` (the temp folder or file), the build's `name` it was to take, its bytes,
    when anything in it was last written (`written`, a timestamp), and whether it is the user's
    own (another user's is never removed)."""

    path: Path
    name: str
    size: int
    written: float
    own: bool

    @property
    def stale(self) -> bool:
        """Last written over an hour ago: a killed build's, no build under way."""
        return self.written < time.time() - STALE_PARTIAL_SECONDS

    @property
    def removable(self) -> bool:
        """What `remove_partial_build` takes: the user's own stale one."""
        return self.own and self.stale


def used_builds() -> list[Path]:
    """The paths this version builds its built-in models at, built or not, each asked of its
    builder: the checkpoints (`model_presets.builtin_path`), the LoRAs, the control models and the
    upscaler."""
    from . import model_presets, tiny_addons, tiny_control, tiny_upscaler

    return [
        *map(model_presets.builtin_path, model_presets.BUILTINS),
        *map(tiny_addons.builtin_lora_path, tiny_addons.BUILTIN_LORAS),
        *map(tiny_control.builtin_control_path, tiny_control.BUILTIN_CONTROLS),
        tiny_upscaler.builtin_upscaler_file(),
    ]


def _used_versions() -> dict[tuple[str, str], int]:
    """The (stem, suffix) of each build `used_builds` names, and the version this one builds."""
    used: dict[tuple[str, str], int] = {}
    for path in used_builds():
        parts = paths.built_model_parts(path.name)
        assert parts is not None, f"{path.name} is not named as `paths.built_model` names builds"
        stem, version, suffix = parts
        used[stem, suffix] = version
    return used


def found_builds() -> list[Build]:
    """The builds in `paths.built_models_dir()`, this version's and other versions' (the module's
    docstring says which entries are builds), sorted by name and version."""
    used = _used_versions()
    try:
        entries = list(os.scandir(paths.built_models_dir()))
    except OSError:  # none built yet, or not a folder: nothing of ours is there
        return []
    found: list[Build] = []
    for entry in entries:
        aside = _aside_of(entry.name)
        parts = paths.built_model_parts(entry.name if aside is None else aside)
        if parts is None or (parts[0], parts[2]) not in used:
            continue
        stem, version, suffix = parts
        path = Path(entry.path)
        try:
            own = _is_build(path, file=bool(suffix)) if aside is None else _is_aside(path)
        except OSError:  # removed meanwhile, or unreadable: not one to list
            continue
        if own is not None:
            size = _size_written(path, os.lstat(path))[0]
            found.append(Build(path, version, used[stem, suffix], size, own,
                               left_aside=aside is not None))  # fmt: skip
    return sorted(found, key=lambda b: (paths.built_model_parts(b.name), b.left_aside, b.path))


def found_partial_builds() -> list[PartialBuild]:
    """The partial builds in `paths.built_models_dir()` (the module's docstring): an entry
    named as the temp folder of a folder build (a real folder) or the temp file of a file build
    (a regular file) of one of the built-in models' stems, any version; sorted by path."""
    stems = _used_versions()
    try:
        entries = list(os.scandir(paths.built_models_dir()))
    except OSError:  # none built yet, or not a folder
        return []
    found: list[PartialBuild] = []
    for entry in entries:
        building = sibling_temp_target(entry.name)  # a folder build's, else a file build's
        folder = building is not None
        name = building if building is not None else write_temp_target(entry.name)
        parts = paths.built_model_parts(name) if name is not None else None
        if parts is None or (parts[0], parts[2]) not in stems or folder == bool(parts[2]):
            continue
        try:
            st = os.lstat(entry.path)
        except OSError:  # gone meanwhile: its build finished, or a clear removed it
            continue
        if (stat.S_ISDIR if folder else stat.S_ISREG)(st.st_mode):
            size, written = _size_written(Path(entry.path), st)
            found.append(PartialBuild(Path(entry.path), name, size, written, _own(st)))
    return sorted(found, key=lambda p: p.path)


def remove_partial_build(partial: PartialBuild) -> None:
    """Remove a stale partial build of the user's own (`PartialBuild.removable`); a folder
    that cannot be removed whole keeps the rest, listed again. Raises the OSError."""
    if not partial.removable:
        raise ValueError(f"{partial.path} is no partial build of the user's own, an hour old")
    if stat.S_ISDIR(os.lstat(partial.path).st_mode):
        shutil.rmtree(partial.path)
    else:
        partial.path.unlink()


def remove_build(build: Build) -> None:
    """Remove an earlier version's build or a left-aside one (`Build.removable`): a file
    unlinked, a folder renamed aside (a reader sees it whole or gone) and deleted there; one
    that cannot be deleted is put back under its name, to be listed and tried again (one
    already aside stays there, listed as such). Raises the OSError."""
    if not build.removable:
        raise ValueError(f"{build.path} is not an earlier version's build of the user's own")
    if build.left_aside:
        shutil.rmtree(build.path)
        return
    if not build.path.is_dir() or build.path.is_symlink():
        build.path.unlink()
        return
    aside = build.path.with_name(_aside_name(build.path.name, secrets.token_hex(_TOKEN_BYTES)))
    os.rename(build.path, aside)
    try:
        shutil.rmtree(aside)
    except OSError:
        os.rename(aside, build.path)
        raise


def _aside_of(name: str) -> str | None:
    """The folder build's name an entry named `name` held before `remove_build` renamed it
    aside (`_aside_name`), None for any other name (a build's, the user's own hidden ones)."""
    found = _ASIDE.fullmatch(name)
    if found is None:
        return None
    parts = paths.built_model_parts(found["name"])
    return found["name"] if parts is not None and not parts[2] else None


def _is_aside(path: Path) -> bool | None:
    """Whether `path`, named as a folder left aside, is one (a real folder: it may have lost
    its `model_index.json` already): None when it is not, else whether it is the user's own."""
    st = os.lstat(path)
    return _own(st) if stat.S_ISDIR(st.st_mode) else None


def _is_build(path: Path, file: bool) -> bool | None:
    """Whether `path`, named as a build, is one (a regular file for a file build; a real
    folder holding a regular `model_index.json`, the file a build writes last, for a folder
    build): None when it is not, else whether it is the user's own."""
    st = os.lstat(path)
    if file:
        if not stat.S_ISREG(st.st_mode):
            return None
    elif not stat.S_ISDIR(st.st_mode) or not _regular(path / "model_index.json"):
        return None
    return _own(st)


def _own(st: os.stat_result) -> bool:
    """Whether the entry `st` describes is the user's own (another user's is never removed)."""
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _size_written(path: Path, st: os.stat_result) -> tuple[int, float]:
    """The bytes of the files in `path` (a file: its own), and when it or anything in it was
    last written: a build under way writes in its subfolders, not in the folder itself."""
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size, st.st_mtime
    size, written = 0, st.st_mtime
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                found = os.lstat(os.path.join(parent, name))
            except OSError:
                continue
            written = max(written, found.st_mtime)
            if stat.S_ISREG(found.st_mode):
                size += found.st_size
    return size, written
