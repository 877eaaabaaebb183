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

Only an earlier version's build is removed (its VERSION below the one this version builds):
a newer one is a newer latentgraph's sharing the cache folder, which still reads it. An earlier
latentgraph still running on the same folder builds its model again when it next loads it: a
folder is renamed aside before it is deleted, so it sees the whole folder or none.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from latentgraph.graph import paths


@dataclass(frozen=True)
class Build:
    """One built-in model's build found in the cache: its recipe `version`, the one this
    version builds under its stem (`used_version`), its bytes, and whether it is the user's
    own (another user's, in a shared cache folder, is never removed)."""

    path: Path
    version: int
    used_version: int
    size: int
    own: bool

    @property
    def used(self) -> bool:
        return self.version == self.used_version

    @property
    def earlier(self) -> bool:
        """An earlier version's build, which this one never reads: `remove_build` takes it."""
        return self.version < self.used_version


def used_builds() -> list[Path]:
    """The paths this version builds its built-in models at, built or not, each asked of its
    builder: the checkpoints (`loaders.builtin_path`), the LoRAs, the control models and the
    upscaler."""
    from . import loaders, tiny_addons, tiny_control, tiny_upscaler

    return [
        *map(loaders.builtin_path, loaders.BUILTINS),
        *map(tiny_addons.builtin_lora_path, tiny_addons.BUILTIN_LORAS),
        *map(tiny_control.builtin_control_path, tiny_control.BUILTIN_CONTROLS),
        tiny_upscaler.builtin_upscaler_file(),
    ]


def found_builds() -> list[Build]:
    """The builds in `paths.built_models_dir()`, this version's and other versions' (the module's
    docstring says which entries are builds), sorted by name and version."""
    used: dict[tuple[str, str], int] = {}
    for path in used_builds():
        parts = paths.built_model_parts(path.name)
        assert parts is not None, f"{path.name} is not named as `paths.built_model` names builds"
        stem, version, suffix = parts
        used[stem, suffix] = version
    try:
        entries = list(os.scandir(paths.built_models_dir()))
    except OSError:  # none built yet, or not a folder: nothing of ours is there
        return []
    found: list[Build] = []
    for entry in entries:
        parts = paths.built_model_parts(entry.name)
        if parts is None or (parts[0], parts[2]) not in used:
            continue
        stem, version, suffix = parts
        try:
            own = _is_build(Path(entry.path), file=bool(suffix))
        except OSError:  # removed meanwhile, or unreadable: not one to list
            continue
        if own is not None:
            path = Path(entry.path)
            found.append(Build(path, version, used[stem, suffix], _size(path), own))
    return sorted(found, key=lambda b: paths.built_model_parts(b.path.name))


def remove_build(build: Build) -> None:
    """Remove an earlier version's build (`Build.earlier`, the user's own): a file unlinked, a
    folder renamed aside (a reader sees it whole or gone) and deleted there; one that cannot
    be deleted is put back under its name, to be listed and tried again. Raises the OSError."""
    if not (build.earlier and build.own):
        raise ValueError(f"{build.path} is not an earlier version's build of the user's own")
    if not build.path.is_dir() or build.path.is_symlink():
        build.path.unlink()
        return
    aside = build.path.with_name(f".{build.path.name}-{secrets.token_hex(8)}.removing")
    os.rename(build.path, aside)
    try:
        shutil.rmtree(aside)
    except OSError:
        os.rename(aside, build.path)
        raise


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
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _size(path: Path) -> int:
    """The bytes of a build's files (links not followed)."""
    if not path.is_dir():
        return os.lstat(path).st_size
    total = 0
    for parent, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                continue
    return total
