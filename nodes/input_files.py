"""The input folder LoadImage reads: which one, what it lists, and the example picture.

The folder is the run's `Settings.input_dir`: the LoadImage dropdown (/object_info), validation
and the cache identity are given the same settings the run reads from its Context, so they
list and read the same files.

`example.png` is always offered: when the folder has no file of that name, LoadImage uses a
picture drawn here (no file shipped, nothing downloaded), so img2img runs on a fresh install.
The server writes it into its input folder at start so the editor can preview it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from latentgraph.graph import Choice, Input, Settings
from latentgraph.graph.files import file_sha256, write_file
from latentgraph.graph.paths import inside, listed_names, listed_spelling, split_annotation
from latentgraph.graph.problems import printable, quoted

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
EXAMPLE = "example.png"
EXAMPLE_SIZE = (128, 128)  # a multiple of 8: SD's VAE factor, so VAEEncode needs no crop
_MAX_FILES = 10_000


def located(image: str, settings: Settings) -> tuple[Path, str]:
    """The folder a LoadImage value reads from and the name inside it: the input folder, or
    the one a trailing ' [input]', ' [output]' or ' [temp]' names (`paths.split_annotation`,
    the server's /view reads too), or, for a name that is no file in the input folder, the
    folder a path to an existing file lies in (`by_path`: output/x.png is 'x.png [output]').
    A bad annotation is part of a name in the input folder: not a listed file, so validation
    refuses it among the choices. A name of the input folder's list in another Unicode form
    (`é` typed, decomposed on disk) is read as the listed file (`graph.paths.listed_spelling`)."""
    try:
        name, kind = split_annotation(image)
    except ValueError:
        return Path(settings.input_dir), image
    folders = _folders(settings)
    in_input = inside(Path(settings.input_dir), name)
    if kind is None and (in_input is None or Path(name).is_absolute() or not in_input.is_file()):
        found = by_path(name, folders)
        if found is not None:
            return found
        if not name.isascii():  # listing the folder only for a name that may be spelled so
            name = listed_spelling(name, image_names(settings)) or name
    return Path(folders[kind or "input"]), name


def within(folder: Path, name: str) -> Path | None:
    """The file a `located` (folder, name) names, resolved; None when the name is empty,
    absolute or leaves its folder (`inside`): LoadImage refuses those."""
    if not name or Path(name).is_absolute():
        return None
    return inside(folder, name)


def readable(folder: Path, name: str) -> bool:
    """Whether the run reads the file `name` of `folder` (`within`: not linked out of it)."""
    link = os.path.islink(folder / name)  # only a link can lead out: the others not resolved
    return not link or ((path := within(folder, name)) is not None and path.is_file())


def canonical(value: Any, settings: Settings) -> Any:
    """LoadImage's value in its cache key (`Input.canonical`): for a value naming an existing
    file inside the input, output or temp folder, [folder kind, its POSIX name inside that
    folder], the same for every spelling of it ('output/x.png', './output/x.png', its
    absolute path, 'x.png [output]'), so they run LoadImage once and what is saved from it is
    not saved again. The first of the input, output and temp folders holding it (one nested
    in another, or two the same, give one form). Any other value is kept as written: a list
    is never text, so it shares no key with a file's form. Reads no file (its content is in
    `identity`)."""
    if not isinstance(value, str):
        return value
    path = within(*located(value, settings))
    if path is None or not path.is_file():
        return value
    for kind, folder in _folders(settings).items():
        base = folder.resolve()
        if base in path.parents:
            return [kind, path.relative_to(base).as_posix()]
    return value


def _folders(settings: Settings) -> dict[str, Path]:
    return {"input": Path(settings.input_dir), "output": Path(settings.output_dir),
            "temp": Path(settings.temp_dir)}  # fmt: skip


def by_path(text: str, folders: dict[str, Path]) -> tuple[Path, str] | None:
    """(folder, name in it) of a path, relative to the working folder or absolute, to an
    existing file inside one of `folders` (symlinks followed: one leading out is in none), as
    a shell completes a file you made (`--set image=output/txt2img_00003_.png`); None for
    any other text."""
    try:
        target = Path(text).resolve()
        if not target.is_file():
            return None
        for folder in folders.values():
            base = folder.resolve()
            if base in target.parents:
                return folder, target.relative_to(base).as_posix()
    except (OSError, ValueError):  # an unreadable folder, a NUL in the text
        return None
    return None


def annotated_file(value: str, settings: Settings) -> bool:
    """An annotated value, a path to a file in the input, output or temp folder, or a listed
    name in another Unicode form (`located`), naming an image file inside its folder: what
    LoadImage takes besides the input folder's files it lists (`Input.also_accepts`)."""
    folder, name = located(value, settings)
    if name == value:  # no annotation (or a bad one), no path into a folder
        return False
    path = inside(folder, name)
    return path is not None and path.is_file() and name.lower().endswith(IMAGE_SUFFIXES)


def refusal_hint(value: Any, settings: Settings) -> str:
    """What LoadImage takes, for a value it refused: the input folder's images, that folder
    named (the list alone did not say where a name was looked for, nor how to look in
    another: `--input-dir`); and a saved image, named with the run's real output folder and a
    path to `value`'s file there written as this process would read it (from the working
    folder), since `output/x.png` is a path, not a folder name: with `--output-dir
    /tmp/v/output` it is `/tmp/v/output/x.png` (or its path from where the command runs), and
    `x.png [output]` names it anywhere."""
    try:
        name = Path(split_annotation(value)[0]).name if isinstance(value, str) else ""
    except ValueError:  # a bad annotation
        name = ""
    name = name or "name.png"
    output = Path(settings.output_dir)
    try:
        shown = os.path.relpath(output / name)
    except ValueError:  # another drive (Windows): no relative path
        shown = str((output / name).absolute())
    return (
        f"the images in the input folder ({Path(settings.input_dir).absolute()}; --input-dir "
        f"names another), or a saved image as {quoted(name + ' [output]')} (or [temp]), or the "
        "path of an image in "
        f"the output folder ({output.absolute()}) or the temp folder, from the working "
        f"folder or absolute: {printable(shown)}"
    )


def image_names(settings: Settings) -> list[str]:
    """The LoadImage dropdown: image files in the input folder (POSIX names, sorted), and
    example.png. A link to a file outside the folder is left out (`readable`: the run
    refuses it), as /internal/files/input leaves it out; linked folders are not entered."""
    base = Path(settings.input_dir)
    names: list[str] = []
    if base.is_dir():
        for top, dirs, files in os.walk(base):
            images = [f for f in files if f.lower().endswith(IMAGE_SUFFIXES)]
            shown = set(listed_names(top, [*dirs, *images]))
            dirs[:] = sorted(d for d in dirs if d in shown)
            rel = Path(top).relative_to(base)
            names += [(rel / f).as_posix() for f in images
                      if f in shown and readable(base, (rel / f).as_posix())]  # fmt: skip
            if len(names) > _MAX_FILES:
                break
    if EXAMPLE not in names:
        names.append(EXAMPLE)
    return sorted(names, key=str.lower)


def identity(inputs: dict[str, Any], settings: Settings) -> str:
    """Cache identity of a LoadImage: the sha256 of the file it reads, as ComfyUI's IS_CHANGED
    hashes it, so a picture replaced under the same name is noticed, while one touched, or
    copied over with the same bytes, is still a cache hit (the name is among the literals)."""
    name = str(inputs.get("image", ""))
    path = within(*located(name, settings))
    if path is None or not path.is_file():
        return name
    return content_sha256(path)


def image_choice() -> Input:
    """The `image` input of every node reading a picture LoadImage's way (LoadImage,
    LoadImageMask), declared once: they read a value alike (`located`), so they list, accept,
    key (`canonical`) and refuse (`refusal_hint`) it alike, and say so alike."""
    return Choice("image", image_names, image_upload=True, also_accepts=annotated_file,
                  canonical=canonical, hint=refusal_hint,
                  description="an image file in the input folder (example.png is built in), "
                              "or 'name [output]' / '[temp]' / '[input]' naming its folder, "
                              "or the path (from the working folder, or absolute) of a file "
                              "in one of them (output/x.png with the default output folder)")  # fmt: skip


# sha256 of the files hashed in this process, by path, with the stat fields that say the file
# is unchanged since: (device, inode, size, mtime, ctime). Re-validation and re-runs then stat
# an unchanged picture instead of reading it again. A file changed within the last
# _SETTLED_NS is not remembered: a second write in the same timestamp tick would keep its
# stat fields (what git calls racy).
_hashed: dict[Path, tuple[tuple[int, ...], str]] = {}
_hashed_lock = threading.Lock()
_SETTLED_NS = 2_000_000_000


def content_sha256(path: Path) -> str:
    """`file_sha256` of the file at `path`, remembered while its stat fields stay the same."""
    st = path.stat()
    stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _hashed_lock:
        known = _hashed.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    digest = file_sha256(path)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
        with _hashed_lock:
            if len(_hashed) >= _MAX_FILES:  # a bound, far above what one input folder holds
                _hashed.clear()
            _hashed[path] = (stamp, digest)
    return digest


def example_picture() -> Any:
    """The example picture (a PIL image): a lighthouse on a hill by the sea, at dusk."""
    from PIL import Image, ImageDraw

    w, h = EXAMPLE_SIZE
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    horizon = h * 5 // 8
    for y in range(horizon):  # sky: deep blue to orange
        t = y / horizon
        draw.line([(0, y), (w, y)], fill=(int(40 + 200 * t), int(60 + 90 * t), int(140 - 60 * t)))
    for y in range(horizon, h):  # sea
        t = (y - horizon) / (h - horizon)
        draw.line([(0, y), (w, y)], fill=(int(20 + 20 * t), int(70 + 30 * t), int(110 + 40 * t)))
    draw.ellipse([w * 0.55, h * 0.5, w * 1.3, h * 1.0], fill=(60, 90, 50))  # hill
    x0, x1, top = int(w * 0.72), int(w * 0.82), int(h * 0.22)
    draw.polygon([(x0, h * 0.62), (x1, h * 0.62), (x1 - 2, top), (x0 + 2, top)],
                 fill=(235, 235, 225))  # fmt: skip
    for k in range(3):  # red bands
        y = top + 8 + k * 10
        draw.rectangle([x0, y, x1, y + 4], fill=(190, 40, 40))
    draw.rectangle([x0 + 1, top - 8, x1 - 1, top], fill=(255, 230, 120))  # lamp
    draw.polygon([(x0 - 2, top - 8), (x1 + 2, top - 8), ((x0 + x1) // 2, top - 16)],
                 fill=(80, 30, 30))  # fmt: skip
    return img


def write_example(folder: Path) -> Path:
    """Write example.png into `folder` unless a file of that name exists (atomic)."""
    target = folder / EXAMPLE
    if target.exists():
        return target
    return write_file(target, lambda tmp: example_picture().save(tmp, format="PNG"))
