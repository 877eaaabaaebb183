"""Writing the files a user keeps (images, converted workflows, downloads, checkpoints), the
one digest of a file's content (`file_sha256`), and which records of a node's ui are files
(`file_records`).

Atomic: data goes to a temp file in the target folder, then is renamed (or hard-linked) into
place, so a crash never leaves half a file under the final name. With the user's permissions:
the final file gets the mode a plain `open()` would give it, 0666 filtered through the umask
(0644 under 022), never `tempfile.mkstemp`'s 0600, which would hide every output from the
other users and services that may read it.

How the mode is known without a race: the temp file is created the way `open()` creates one
(`os.open(..., 0o666)`, the kernel applies the umask), and its mode is read back with `fstat`
at once. Reading the umask with `os.umask` would have to set it to read it, and another thread
creating a file in between would get the wrong permissions. The mode is put back on the temp
file after the writer is done, because some writers replace the file they are given (the
safetensors `save_file` writes its own 0600 temp file and renames it over ours).
`write_new` is the one function all atomic writes go through, so it is also the one place a
write that fails is worded (`FileWriteError`): the file the user would have got, and why in
words ("the disk is full"), never the temp file's name nor a bare `[Errno 28]`, nor the
`SafetensorError` text a Rust writer gives (`write_error`, the one rule, which whatever writes
a whole folder, the built-in models' builds, asks too). Folders it had to make for that file
are removed again when the write fails: a failed write leaves nothing.

A process killed while it writes (`kill -9`, a power cut) runs no `finally`: its temp file
stays. Saves and uploads, which write into the user's folders, name theirs with
`PARTIAL_PREFIXES` and remove the ones an hour old from the folder they write into
(`remove_stale_partials`); the server never serves a name starting with "." (`paths.hidden`).
The disk cache, which writes through `write_file`, removes its own by the same rule
(`write_temp_target` names them).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

# The most bytes one file or folder name may have: NAME_MAX of the usual filesystems.
MAX_NAME_BYTES = 255
# The most names a relative path a client names a file by may have (an output's or an upload's
# subfolder, a user file's path): the server refuses a deeper one (`server/safepath.py`), so
# the save nodes refuse a prefix saving deeper (`nodes/images.prefix_place`), a file the
# server would not serve.
MAX_DEPTH = 32
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
T = TypeVar("T")
# Every temp name is `PREFIX<random hex>SUFFIX` (`_temp_name`): the hex is this many random
# bytes, twice as many digits, and the suffix, unless a writer names its own, TEMP_SUFFIX. The
# patterns telling temp files from the rest (`_PARTIAL`, `_WRITE_TEMP`) are built from these.
TEMP_HEX_BYTES = 8
TEMP_SUFFIX = ".tmp"
_TEMP_HEX = f"[0-9a-f]{{{2 * TEMP_HEX_BYTES}}}"


def _temp_name(prefix: str, suffix: str = TEMP_SUFFIX) -> str:
    """A new temp name: `prefix`, the random hex, `suffix`."""
    return f"{prefix}{secrets.token_hex(TEMP_HEX_BYTES)}{suffix}"


def create_temp(folder: Path, prefix: str = ".tmp-", suffix: str = TEMP_SUFFIX) -> tuple[int, Path]:
    """A new, empty, uniquely named file in `folder`, open for writing, with the mode
    `open()` gives: (fd, path)."""
    while True:
        path = Path(folder) / _temp_name(prefix, suffix)
        try:
            return os.open(path, _FLAGS, 0o666), path
        except FileExistsError:
            continue


# The temp files saves (SaveImage, PreviewImage, ...) and uploads write beside their final
# names in the output, input and temp folders (`create_temp`'s prefix: the hex follows).
SAVING_PREFIX = ".saving-"
UPLOAD_PREFIX = ".upload-"
PARTIAL_PREFIXES = (SAVING_PREFIX, UPLOAD_PREFIX)
_PARTIAL = re.compile("(?:" + "|".join(map(re.escape, PARTIAL_PREFIXES)) + ")" + _TEMP_HEX)
# How long after its last write such a file is taken for one a killed process left. A live
# writer's is younger: Pillow writes as it encodes, and safetensors renames its own file over
# ours when done; an hour leaves room for the slowest disk and for clocks apart on a share.
STALE_PARTIAL_SECONDS = 3600


def _temp_pattern(lead: str, sep: str) -> re.Pattern[str]:
    """What `_named_prefix(NAME, lead, sep)` then `_temp_name`'s hex and suffix make, NAME its
    group: how a temp name is read back as the name it stands for."""
    return re.compile(f"{re.escape(lead)}(.+){re.escape(sep)}{_TEMP_HEX}{re.escape(TEMP_SUFFIX)}")


# The temp file `write_file` fills before it replaces NAME: `.NAME.<hex>.tmp`, as
# `write_temp_target` reads it.
_WRITE_LEAD, _WRITE_SEP = ".", "."
_WRITE_TEMP = _temp_pattern(_WRITE_LEAD, _WRITE_SEP)
# The folder `new_sibling` fills before it takes DEST's place: `.DEST-<hex>.tmp`
# (`_sibling_name`), as `sibling_temp_target` reads it.
_SIBLING_LEAD, _SIBLING_SEP = ".", "-"
_SIBLING_TEMP = _temp_pattern(_SIBLING_LEAD, _SIBLING_SEP)
_log = logging.getLogger("latentgraph.files")


def _is_save_partial(name: str) -> bool:
    """Whether `name` is a save's or an upload's temp file (`PARTIAL_PREFIXES`)."""
    return _PARTIAL.match(name) is not None


def write_temp_target(name: str) -> str | None:
    """The name of the file a `write_file` temp file called `name` was to replace, or None when
    `name` is not one: how the owner of a folder such files are written into (the disk cache)
    tells its own partial files from anything else there."""
    found = _WRITE_TEMP.fullmatch(name)
    return found.group(1) if found else None


def sibling_temp_target(name: str) -> str | None:
    """The name of the folder a `new_sibling` folder called `name` was to become, or None when
    `name` is not one: how the owner of a folder such folders are filled in (the built-in
    models' builds) tells a killed build's folder from anything else there."""
    found = _SIBLING_TEMP.fullmatch(name)
    return found.group(1) if found else None


def remove_stale_partials(folder: Path, names: Iterable[str] | None = None, *,
                          partial: Callable[[str], bool] = _is_save_partial,
                          left_by: str = "a killed save or upload") -> list[str]:  # fmt: skip
    """Remove from `folder` the partial files last written more than `STALE_PARTIAL_SECONDS`
    ago: left by a process killed while it wrote, they would stay forever. Partial files are
    the temp files of saves and uploads (`PARTIAL_PREFIXES`) unless `partial` says which names
    are (another writer's, the disk cache's), `left_by` naming that writer in the log.
    `names`: the folder's entries, when the caller listed it already. Returns the names
    removed, logged in one line; a file that cannot be removed is left."""
    folder = Path(folder)
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:  # missing, or unreadable: the write itself says so
            return []
    removed = []
    before = time.time() - STALE_PARTIAL_SECONDS
    for name in names:
        if not partial(name):
            continue
        path = folder / name
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mtime < before:
                os.unlink(path)
                removed.append(name)
        except OSError:  # gone meanwhile (another cleaner), or not ours to remove
            continue
    if removed:
        _log.warning("removed %d partial file(s) %s left in %s: %s",
                     len(removed), left_by, folder, ", ".join(sorted(removed)))  # fmt: skip
    return removed


# The reasons a write fails that a user can act on, in words (the OS's own text follows).
_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the folder is on a read-only file system",
    errno.EACCES: "no permission to write in the folder",
    errno.EPERM: "no permission to write in the folder",
    errno.ENAMETOOLONG: "a name in the path is longer than the 255 bytes a file system allows",
}
# ... and a read's: the permission missing is to read.
_READ_REASONS = {**_REASONS, errno.EACCES: "no permission to read it",
                 errno.EPERM: "no permission to read it"}  # fmt: skip


class FileWriteError(OSError):
    """A file that could not be written: the machine refused (a full disk, a read-only or
    missing folder), not the workflow. An `OSError` keeping the OS's `errno` and `strerror`
    (a server answers a full disk 507 by them); its text names the file the user would have
    got and says why in words."""

    def __init__(self, path: Path, reason: str, cause: OSError | None = None,
                 saved: Sequence[str] = (), total: int = 0) -> None:  # fmt: skip
        code = cause.errno if cause is not None else errno.ENOTDIR
        super().__init__(code, cause.strerror if cause is not None else os.strerror(code))
        self.path, self.reason, self.saved, self.total = Path(path), reason, list(saved), total

    def __str__(self) -> str:
        text = f"cannot write {self.path}: {self.reason}"
        if self.saved:
            text = f"saved {len(self.saved)} of {self.total}: {', '.join(self.saved)}; {text}"
        return text

    def after_saving(self, saved: Sequence[str], total: int) -> FileWriteError:
        """This failure as the write of a batch says it: the files (`saved`, their names) of
        `total` written before it, which are kept ("saved 2 of 4: a.png, b.png; cannot ...")."""
        return FileWriteError(self.path, self.reason, self, saved, total)


# How a run's failure names a `FileWriteError` (`NodeFailed.exception_type`, an execution_error's):
# the machine refused a file, no code is at fault, so neither the CLI nor the server's log shows
# its class or traceback.
WRITE_FAILED = f"{FileWriteError.__module__}.{FileWriteError.__qualname__}"


def os_error_words(exc: OSError, reading: bool = False) -> str:
    """Why a file could not be written (or, `reading`, read), in words a user acts on, with the
    OS's text: the one wording of an `OSError` (opening a workflow file asks it too), never a
    bare `[Errno 36]`."""
    reasons = _READ_REASONS if reading else _REASONS
    if exc.errno in reasons:
        return f"{reasons[exc.errno]} ({exc.strerror})"
    return exc.strerror or str(exc) or type(exc).__name__


# How a writer written in Rust (safetensors' `save_file`, which diffusers' `save_pretrained`
# calls) reports the OS's error: only in its text, "... No space left on device (os error 28)".
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)\s*$")


def write_error(path: Path, exc: BaseException) -> FileWriteError | None:
    """`exc`, raised while writing `path`, as the `FileWriteError` it is: an `OSError`, or a
    writer's own error carrying the OS's error code in its text (safetensors'
    `SafetensorError`); None for anything else (not the machine refusing: a bug, a bad value)."""
    if isinstance(exc, FileWriteError):
        return FileWriteError(path, exc.reason, exc)
    if not isinstance(exc, OSError):
        found = _RUST_OS_ERROR.search(str(exc))
        if found is None:
            return None
        code = int(found.group(1))
        exc = OSError(code, os.strerror(code))
    return FileWriteError(path, os_error_words(exc), exc)


def make_folders(
    folder: Path, names: Mapping[Path, str] | None = None, *, mode: int = 0o777
) -> list[Path]:
    """Make `folder` and its missing parents; return the ones made, outermost first. A file
    (anything but a folder) in the way is a `FileWriteError` naming it, as `names` calls it
    when it is one of those folders, the path in brackets so a folder named like its label reads
    plainly ("the output folder (output) is a file, not a folder"). `folder` itself is made
    with `mode` (under the umask, as `mkdir`'s), its parents as the umask says: 0o700 for a
    folder no other account may read (the server's data folder); never for one users share."""
    folder = Path(folder)
    missing, existing = [], folder
    while not existing.is_dir():
        if os.path.lexists(existing):
            if existing.is_dir():  # made meanwhile by another writer: a folder after all
                break
            label = (names or {}).get(existing)
            what = f"{label} ({existing})" if label else str(existing)
            raise FileWriteError(folder, f"{what} is a file, not a folder")
        missing.append(existing)
        existing = existing.parent
    made = []
    for path in reversed(missing):
        try:
            path.mkdir(mode=mode if path == folder else 0o777)
        except FileExistsError:  # made meanwhile by another writer: theirs, not ours
            continue
        except OSError as exc:
            remove_folders(made)
            raise FileWriteError(path, os_error_words(exc), exc) from exc
        made.append(path)
    return made


def remove_folders(made: list[Path]) -> None:
    """Remove the folders `make_folders` made (innermost first), those still empty: what a
    failed write leaves behind. Another writer's file in one keeps it."""
    for path in reversed(made):
        try:
            path.rmdir()
        except OSError:
            return


def write_new(folder: Path, save: Callable[[Path], None], place: Callable[[Path], T],
              prefix: str = ".tmp-", suffix: str = TEMP_SUFFIX, *, target: Callable[[], Path],
              names: Mapping[Path, str] | None = None) -> T:  # fmt: skip
    """Write one file atomically with the permissions `open()` would give it: `save(tmp)`
    fills a new temp file in `folder` (by its path; it may replace the file), then `place(tmp)`
    puts it under its final name (`os.replace`, or a hard link) and returns what the caller
    wants back. The temp file is gone afterwards, whether it was placed or something failed.

    Any OS error on the way (the folder, the temp file, writing, closing, placing) is raised
    as a `FileWriteError` naming `target()`, the file it was for (asked when it fails: a
    place that numbers files knows it then), and the folders made for it are removed again;
    `names` say how its message calls some folders (`make_folders`)."""
    folder = Path(folder)
    try:
        made = make_folders(folder, names)
    except FileWriteError as exc:
        raise FileWriteError(target(), exc.reason, exc) from exc
    try:
        try:
            fd, tmp = create_temp(folder, prefix, suffix)
            try:
                mode = stat.S_IMODE(os.fstat(fd).st_mode)  # 0o666 as the umask (or ACL) left it
            finally:
                os.close(fd)
            try:
                save(tmp)
                os.chmod(tmp, mode)
                return place(tmp)
            finally:
                tmp.unlink(missing_ok=True)  # placed by a link, or a writer that failed
        except FileWriteError:
            raise
        except Exception as exc:
            failed = write_error(target(), exc)
            if failed is None:
                raise
            raise failed from exc
    except BaseException:
        remove_folders(made)
        raise


def write_file(path: Path, save: Callable[[Path], None]) -> Path:
    """Replace `path` with the file `save(temporary path)` writes, in one step (`write_new`)."""
    path = Path(path)

    def place(tmp: Path) -> Path:
        os.replace(tmp, path)
        return path

    prefix = _named_prefix(path.name, _WRITE_LEAD, _WRITE_SEP)
    return write_new(path.parent, save, place, prefix=prefix, target=lambda: path)


def write_folder(dest: Path, fill: Callable[[Path], None]) -> Path:
    """Replace the folder `dest` with the one `fill(new folder)` fills, whole or not at all:
    it is filled as a new sibling (made as `mkdir` makes one, with the user's umask), which
    then takes `dest`'s place, an earlier `dest` moved aside first and removed after. A write
    that fails is a `FileWriteError` naming `dest`, and leaves neither the sibling nor the
    folders made for it; an earlier `dest` stays as it was."""
    dest = Path(dest)
    try:
        made = make_folders(dest.parent)
    except FileWriteError as exc:
        raise FileWriteError(dest, exc.reason, exc) from exc
    tmp = None
    try:
        if os.path.lexists(dest) and not dest.is_dir():
            raise FileWriteError(dest, f"{dest} is a file, not a folder")
        tmp = new_sibling(dest)
        fill(tmp)
        old = _sibling_name(dest) if dest.is_dir() else None
        if old is not None:
            os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except BaseException:
            if old is not None:
                os.replace(old, dest)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return dest
    except BaseException as exc:  # Ctrl-C too: nothing half-written left behind
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_folders(made)
        failed = write_error(dest, exc)
        if failed is None:
            raise
        raise failed from exc


def new_sibling(dest: Path) -> Path:
    """A new, empty, uniquely named hidden folder beside `dest`, made as `mkdir` makes one
    (with the user's umask, never `tempfile.mkdtemp`'s 0700, which would hide a folder renamed
    into a shared place from the other users who read it)."""
    while True:
        path = _sibling_name(dest)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def umask_modes(folder: Path) -> None:
    """Give every file under `folder` the mode the umask gives a new file, as `folder`'s own
    mode (made by `mkdir`: 0777 through the umask) tells it without setting the umask: some
    writers (safetensors) make their files 0600 whatever the umask."""
    mode = stat.S_IMODE(os.stat(folder).st_mode) & 0o666
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, mode)


def widen_to_umask(folder: Path) -> None:
    """Give `folder`, the folders and the files in it at least the modes the umask gives new
    ones, when `folder` is the user's own and its mode narrower than that: a built-in model's
    folder an earlier latentgraph built (a 0700 folder of 0600 weights, before its builds
    followed the umask, `umask_modes`) stayed unreadable to the others sharing the cache.
    Another user's folder or file is left as it is, and so is one whose mode cannot be set
    (the folder is read all the same); modes are only widened, never narrowed."""
    mask = _umask()
    if mask is None:
        return
    try:
        owned = os.stat(folder)
        if owned.st_uid != os.getuid() or _has(owned.st_mode, 0o777 & ~mask):
            return
    except OSError:
        return
    for parent, _dirs, files in os.walk(folder):
        _widen(parent, 0o777 & ~mask)
        for name in files:
            _widen(os.path.join(parent, name), 0o666 & ~mask)


def _umask() -> int | None:
    """The process's umask, read without setting it (`os.umask` sets it for every thread: a
    file another one made meanwhile would get the value set): Linux's /proc/self/status; None
    where there is none."""
    try:
        with open("/proc/self/status", encoding="latin-1") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _has(mode: int, want: int) -> bool:
    return stat.S_IMODE(mode) & want == want


def _widen(path: str, want: int) -> None:
    """`path`'s mode with the bits of `want` it lacks added, if it is the user's own (a link
    is left: chmod would change its target)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode) and st.st_uid == os.getuid() and not _has(st.st_mode, want):
            os.chmod(path, stat.S_IMODE(st.st_mode) | want)
    except OSError:
        pass


def _sibling_name(dest: Path) -> Path:
    return dest.with_name(_temp_name(_named_prefix(dest.name, _SIBLING_LEAD, _SIBLING_SEP)))


def _named_prefix(name: str, lead: str, sep: str) -> str:
    """`lead`, `name`, `sep`: the prefix of a temp name (`_temp_name`) standing for `name`, which
    is cut to its start when the whole temp name would be longer than `MAX_NAME_BYTES`: a file
    named up to the limit is written through a temp file too."""
    added = len(lead.encode()) + len(sep.encode()) + 2 * TEMP_HEX_BYTES + len(TEMP_SUFFIX.encode())
    room = MAX_NAME_BYTES - added
    raw = name.encode("utf-8", "surrogateescape")
    start = name if len(raw) <= room else raw[:room].decode("utf-8", "ignore")
    return f"{lead}{start}{sep}"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one step."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_file(path, lambda tmp: tmp.write_bytes(payload))


def file_sha256(path: Path) -> str:
    """The sha256 of the file at `path`, read in 1 MiB blocks: what SaveImage records of each
    file it saves, and LoadImage's cache identity (ComfyUI hashes its inputs the same way)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_records(ui: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The files a node's ui reports, of every kind ("images", "checkpoints", ...): ComfyUI's
    file records, dicts naming a `filename` in a `subfolder` of the folder of their `type`."""
    return [record for values in (ui or {}).values() if isinstance(values, list)
            for record in values
            if isinstance(record, dict) and ("filename" in record or "subfolder" in record)]  # fmt: skip


def record_path(record: Mapping[str, Any], folders: Mapping[str, Path]) -> Path:
    """Where a file record's file is: its `filename` in its `subfolder` of the folder of its
    `type` (`folders`: "output", "temp", ... to the run's folders; a type not among them is
    taken as a folder of that name). The record names no folder of the machine (the server
    sends it to web clients as it is): whoever shows the file asks here."""
    kind = record.get("type", "output")
    base = folders.get(kind, Path(kind))
    return Path(base, record.get("subfolder") or "", record.get("filename", ""))
