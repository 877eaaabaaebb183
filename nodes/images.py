"""Image nodes: LoadImage, SaveImage, PreviewImage, SaveImageWebsocket, ImageGrid.

LoadImage, SaveImage and PreviewImage have ComfyUI's names, inputs and outputs, so saved ComfyUI
workflows map onto them unchanged. Files are only read from the input directory and written
under the output (or temp) directory: names are resolved and checked to stay inside, so `../`
can never escape. Saved PNGs carry the workflow as text chunks ("prompt"/"workflow" as ComfyUI
names them, and "latentgraph" for our own workflow document + params), so an image can be re-run.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from latentgraph.graph import (
    IMAGE,
    MASK,
    Input,
    Int,
    NodeResult,
    Output,
    Settings,
    Socket,
    String,
    node,
)
from latentgraph.graph.context import limit_label
from latentgraph.graph.files import (
    MAX_DEPTH,
    SAVING_PREFIX,
    file_records,
    file_sha256,
    remove_folders,
    remove_stale_partials,
    write_new,
)
from latentgraph.graph.numbered_files import (
    COUNTER,
    link_numbered,
    next_number,
    number_in,
    numbered_name,
)
from latentgraph.graph.paths import hidden, inside, unseen_problem
from latentgraph.graph.pictures import (
    SIXTEEN_BIT_MODES,
    ImageTooLarge,
    gray_levels,
    open_image,
    text_key_problem,
    upright,
)
from latentgraph.graph.problems import quoted

from . import input_files, temp_folder
from .values import input_error


def to_uint8(images: Any) -> Any:
    """[B, H, W, C] floats in 0..1 → uint8 numpy (rounded, as diffusers' pipelines do)."""
    import torch

    return (images.float().cpu() * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def row_image(row: Any) -> Any:
    """One image of `to_uint8`'s batch as the PIL image every saver writes (PNG, animated
    WEBP, the websocket's PNG): RGBA with a fourth channel (JoinImageWithAlpha's alpha kept,
    as ComfyUI saves it), RGB with three, else grayscale."""
    from PIL import Image

    channels = row.shape[-1]
    return Image.fromarray(row[..., :4] if channels >= 3 else row[..., 0])


# Formats whose further frames are not more pictures: ComfyUI reads only an MPO's (a camera's
# multi-picture JPEG: previews, a stereo pair) first.
FIRST_FRAME_ONLY = ("MPO",)


def pil_to_tensor(img: Any) -> Any:
    """A PIL image as IMAGE [1, H, W, 3] floats in 0..1 (16-bit grayscale at full precision,
    `pictures.gray_levels`, the levels /view shows the mask editor)."""
    import numpy as np
    import torch

    if img.mode in SIXTEEN_BIT_MODES:
        gray = gray_levels(img)
        return torch.from_numpy(np.ascontiguousarray(np.repeat(gray[..., None], 3, -1)))[None]
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr)[None]


def _mask(img: Any) -> Any:
    """ComfyUI's MASK from a PIL image: 1 where alpha (or a palette's transparent colour) is 0;
    64x64 zeros without alpha."""
    import numpy as np
    import torch

    if "A" not in img.getbands() and img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if "A" in img.getbands():
        alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        return (1.0 - torch.from_numpy(alpha))[None]
    return torch.zeros((1, 64, 64), dtype=torch.float32)


@node(
    "LoadImage",
    display_name="Load Image",
    category="image",
    inputs=[input_files.image_choice()],
    outputs=[Output("IMAGE", IMAGE), Output("MASK", MASK)],
    identity=input_files.identity,
)  # fmt: skip
def load_image(ctx, image: str):
    """An image from the input folder as IMAGE [frames, H, W, 3], and its mask (alpha 0 → 1):
    every frame of an animated GIF/PNG/WebP or multi-page TIFF of the first frame's size
    (others skipped, as ComfyUI does), at most --max-batch; 16-bit grayscale read as 0..1."""
    import torch

    images, masks = [], []
    for frame in input_frames(ctx, image):
        images.append(pil_to_tensor(frame))
        masks.append(_mask(frame))
    shapes = {tuple(m.shape) for m in masks}
    if len(shapes) > 1:  # some frames have alpha, others not: those get none at full size
        full = max(shapes, key=lambda shape: shape != (1, 64, 64))
        masks = [m if tuple(m.shape) == full else m.new_zeros(full) for m in masks]
    return torch.cat(images), torch.cat(masks)


def _input_path(ctx, image: str) -> Path | None:
    """The file LoadImage's value `image` names (input "image"), checked to stay in its
    folder; None for example.png when the input folder has no such file (the drawn one)."""
    folder, name = input_files.located(image, ctx.settings)
    path = input_files.within(folder, name)
    if path is None:
        raise input_error(ctx, "image", f"{quoted(image)} is outside its folder ({folder})")
    if not path.is_file():
        if image == input_files.EXAMPLE:
            return None
        raise input_error(ctx, "image", f"no such file in its folder ({folder}): {quoted(name)}")
    return path


def input_frames(ctx, image: str, every: bool = True) -> Iterator[Any]:
    """The pictures of the input file `image` (input "image") as PIL images, EXIF-rotated and
    read in full, one frame at a time: with `every` each frame of the first frame's size (a
    frame of another size is skipped, as ComfyUI's LoadImage does), at most the run's
    max_batch frames and max_batch_pixels pixels in all (refused beyond, so a long or large
    animation never fills memory), else the first."""
    from PIL import ImageSequence, UnidentifiedImageError

    path = _input_path(ctx, image)
    if path is None:
        yield input_files.example_picture()
        return
    try:
        with open_image(path, ctx.settings.max_image_pixels) as img:  # nothing decoded yet
            every = every and img.format not in FIRST_FRAME_ONLY
            frames = ImageSequence.Iterator(img) if every else [img]
            settings = ctx.settings
            size, count, most = None, 0, settings.max_batch
            for frame in frames:
                picture = upright(frame)  # a copy of this frame, read in full
                size = size or picture.size
                if picture.size != size:
                    continue
                count += 1
                if count > most:
                    raise input_error(ctx, "image", f"{quoted(image)} has {img.n_frames} frames, over "
                                      f"the limit of {most} images in a batch "
                                      f"({limit_label(settings, 'max_batch')})")  # fmt: skip
                if count * size[0] * size[1] > settings.max_batch_pixels:
                    raise input_error(ctx, "image", _batch_pixels_refusal(
                        image, img.n_frames, size, settings))  # fmt: skip
                yield picture
    except ImageTooLarge as exc:  # the limit as the caller sets it: a flag, or Settings field
        raise input_error(ctx, "image", f"{quoted(image)} is {exc} "
                                        f"({limit_label(ctx.settings, 'max_image_pixels')})") from None  # fmt: skip
    except (UnidentifiedImageError, OSError) as exc:
        raise input_error(ctx, "image", f"cannot read {quoted(image)} as an image: {exc}") from exc


def _batch_pixels_refusal(image: str, frames: int, size: tuple[int, int], settings: Any) -> str:
    """Why an animation's frames are refused as one batch: their pixels in all (frames x
    width x height, counting the frames of the first one's size read so far)."""
    width, height = size
    return (f"{quoted(image)} has {frames} frames of {width}x{height}, over the limit of "
            f"{settings.max_batch_pixels:,} pixels in a batch "
            f"({limit_label(settings, 'max_batch_pixels')})")  # fmt: skip


def read_input_image(ctx, image: str) -> Any:
    """The input folder's file `image` (input "image"), or the folder its annotation names,
    as a PIL image (its first frame), EXIF-rotated and read in full; example.png is drawn when
    the input folder has no such file."""
    return next(input_frames(ctx, image, every=False))


# The run's documents a saved PNG carries as text chunks, from `ctx.extra`: the ComfyUI
# prompt and editor workflow (as ComfyUI writes them), and our own document; `pnginfo`, the
# other entries of a prompt's extra_pnginfo, each a chunk of its key, its value as JSON (as
# ComfyUI writes every entry). SaveImage declares them (`embeds`), so a run of another
# document saves a PNG carrying it; SaveAnimatedWEBP and SaveCheckpoint write the other
# entries too (`other_entries`), each as ComfyUI's node writes them into its format.
PNG_TEXT_KEYS = ("prompt", "workflow", "latentgraph")
PNG_OTHER_CHUNKS = "pnginfo"


def other_entries(extra: dict[str, Any]) -> list[tuple[str, Any]]:
    """The other extra_pnginfo entries a saved file carries, in their order: one named as a
    document of the run's own (`PNG_TEXT_KEYS`) left out, the run's is written; so is a key
    no PNG text chunk can have (`text_key_problem`, which POST /prompt refuses), the one rule
    for every save's keys."""
    entries = (extra.get(PNG_OTHER_CHUNKS) or {}).items()
    return [(k, v) for k, v in entries if k not in PNG_TEXT_KEYS and text_key_problem(k) is None]


def document_text(extra: dict[str, Any]) -> str | None:
    """Our workflow document (`extra["latentgraph"]`) as a saved file carries it: its text as
    sent, or its data as JSON; None when the run has none. One rule for every save."""
    ours = extra.get("latentgraph")
    if ours is None:
        return None
    return ours if isinstance(ours, str) else json.dumps(ours)


def _png_info(ctx) -> Any:
    """The text chunks: the prompt, the workflow, the other extra_pnginfo entries in their
    order (`other_entries`), our document."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    extra = ctx.extra
    for key in ("prompt", "workflow"):
        if extra.get(key) is not None:
            info.add_text(key, json.dumps(extra[key]))
    for key, value in other_entries(extra):
        info.add_text(key, json.dumps(value))
    ours = document_text(extra)
    if ours is not None:
        info.add_text("latentgraph", ours)
    return info


# Longest prefix: a file name is at most 255 bytes, and the counter and suffix add 11.
MAX_PREFIX_CHARS = 200


# Characters Windows refuses in file names: refused everywhere, so outputs copy anywhere.
NOT_IN_NAMES = '<>:"|?*'

# The variables ComfyUI's back end expands in a save node's prefix (get_save_image_path): the
# image's size and the local time. Its editor replaces %date:FORMAT% and %Node.widget% itself
# before queueing a prompt; %date:FORMAT% is expanded here too, for prompts written by hand or
# by API clients (with the editor's tokens: yyyy yy MM M dd d hh h mm m ss s). %Node.widget%
# names another node of the editor's graph, which a prompt does not carry: refused.
PREFIX_VARIABLES = ("width", "height", "year", "month", "day", "hour", "minute", "second")
PREFIX_VARIABLES_TEXT = " ".join(f"%{name}%" for name in PREFIX_VARIABLES) + " %date:FORMAT%"
_PERCENT_NAME = re.compile(r"%([^%]+)%")
_DATE = re.compile(r"%date:([^%]*)%")
_DATE_TOKEN = re.compile(r"dd?|MM?|hh?|mm?|ss?|yyy?y?")


def _date_text(fmt: str, now: time.struct_time) -> str:
    """`fmt` with the editor's date tokens replaced (a token's length pads it with zeros)."""
    fields = {"d": now.tm_mday, "M": now.tm_mon, "h": now.tm_hour, "m": now.tm_min,
              "s": now.tm_sec}  # fmt: skip

    def token(found: re.Match) -> str:
        text = found.group(0)
        if text[0] == "y":
            year = str(now.tm_year)
            return {"yy": year[2:], "yyyy": year}.get(text, text)
        return str(fields[text[0]]).zfill(len(text))

    return _DATE_TOKEN.sub(token, fmt)


def expand_prefix(prefix: str, width: int | str = 0, height: int | str = 0) -> str:
    """`prefix` with ComfyUI's save variables (`PREFIX_VARIABLES`) replaced; the size is the
    first image's (0 for files that are not images, as in ComfyUI; given as `ANY_SIZE`, the
    size variables stay, for a pattern any size matches: `files_unchanged`)."""
    now = time.localtime()
    prefix = _DATE.sub(lambda m: _date_text(m.group(1), now), prefix)
    values = {"width": str(width), "height": str(height), "year": str(now.tm_year),
              "month": f"{now.tm_mon:02d}", "day": f"{now.tm_mday:02d}",
              "hour": f"{now.tm_hour:02d}", "minute": f"{now.tm_min:02d}",
              "second": f"{now.tm_sec:02d}"}  # fmt: skip
    return _PERCENT_NAME.sub(lambda m: values.get(m.group(1), m.group(0)), prefix)


def prefix_problem(prefix: str) -> str | None:
    """Why a file name prefix is unusable (empty, a folder, absolute, leaving the folder,
    control characters or Unicode format characters (category Cf: a bidi override shows
    `a<U+202E>gnp.exe` as `aexe.png`, a zero-width space alone looks like no name), named by
    code point, too long for a file name, a %...% no save node expands, characters
    file names cannot hold)."""
    text = prefix.replace("\\", "/").strip()
    # Its folders as the run names them: a %date:FORMAT%'s tokens are digits, its other
    # characters stay, so a `/` or `..` in one is a folder (`%date:..%/x` is `../x`).
    dated = _DATE.sub(lambda m: _DATE_TOKEN.sub("0", m.group(1)), text).strip()
    if not dated or dated.endswith("/") or dated.split("/")[-1] == ".":
        return "expected a file name prefix, e.g. 'astronaut' or 'portraits/astronaut'"
    unseen = unseen_problem(text)
    if unseen is not None:  # a name showing other than it is: reversed, empty, cut by a newline
        return f"{quoted(prefix[:40])} {unseen}"
    if len(text.encode("utf-8", "replace")) > MAX_PREFIX_CHARS:
        return f"the prefix is longer than {MAX_PREFIX_CHARS} bytes; file names are limited"
    if dated.startswith("/") or re.match(r"^[A-Za-z]:/", dated) or ".." in dated.split("/"):
        return f"{quoted(prefix)} would write outside the output directory"
    text = dated
    unknown = [m.group(0) for m in _PERCENT_NAME.finditer(text)
               if m.group(1) not in PREFIX_VARIABLES]  # fmt: skip
    if unknown:
        return (f"{quoted(prefix)}: {unknown[0]} is not expanded here (ComfyUI's editor replaces "
                f"%Node.widget% before it queues a prompt); a save node expands only "
                f"{PREFIX_VARIABLES_TEXT}")  # fmt: skip
    bad = list(dict.fromkeys(c for c in text if c in NOT_IN_NAMES))  # as they appear
    if bad:
        return (f"{quoted(prefix)} contains {', '.join(quoted(c) for c in bad)}; file names cannot "
                f"hold any of {' '.join(NOT_IN_NAMES)}")  # fmt: skip
    return None


def check_prefix(literals: dict, settings: Settings) -> list[tuple[str | None, str]]:
    """The save nodes' `check`: their `filename_prefix` refused at validation as the run
    refuses it (`prefix_place`, under the run's output folder: a folder in it linked out)."""
    prefix = literals.get("filename_prefix")
    if not isinstance(prefix, str):
        return []
    place = prefix_place(prefix, Path(settings.output_dir))
    return [("filename_prefix", place)] if isinstance(place, str) else []


def prefix_place(prefix: str, root: Path,
                 size: tuple[int, int] = (0, 0)) -> tuple[Path, str, str] | str:  # fmt: skip
    """Where files named by `prefix` go under `root` (`_place`: folder, name, subfolder), its
    variables expanded (`size` the first image's width and height), or why they cannot:
    `prefix_problem`, or the expanded prefix leaving `root` (through a folder linked out of
    it), or the place being one the server does not serve files from (`unserved_problem`).
    The one rule validation (`check_prefix`) and the save nodes (`output_files`) ask."""
    problem = prefix_problem(prefix)
    if problem:
        return problem
    expanded = expand_prefix(prefix, *size).replace("\\", "/").strip()
    place = _place(expanded, root)
    if place is None:
        return f"{quoted(expanded)} would write outside the output directory ({root})"
    return unserved_problem(prefix, place[2], place[1]) or place


def unserved_problem(prefix: str, subfolder: str, name: str) -> str | None:
    """Why the server would not serve the files `prefix` saves as `subfolder/name_00001_...`
    (its file records' names), by the rules /view and the uploads keep: a file or folder name
    starting with '.' (`paths.hidden`), more than `MAX_DEPTH` folders (`server/safepath.py`).
    Such a run said saved and the editor showed a broken image."""
    folders = PurePosixPath(subfolder).parts
    why = ("the server neither serves nor lists files and folders starting with '.'; give a "
           "name without the leading '.'")  # fmt: skip
    if hidden(name):
        return f"{quoted(prefix)}: the file name starts with '.', and {why}"
    start = next((folder for folder in folders if hidden(folder)), None)
    if start is not None:
        return f"{quoted(prefix)}: the folder {quoted(start)} starts with '.', and {why}"
    if len(folders) > MAX_DEPTH:
        return (f"{quoted(prefix)} saves {len(folders)} folders deep; the server serves files "
                f"at most {MAX_DEPTH} folders deep")  # fmt: skip
    return None


@dataclass
class OutputFiles:
    """Where a save node's numbered files go: `<folder>/<name>_00001_<suffix>`, ...; each file
    is written to a temporary name first and linked into place (never half-written, never
    overwriting another writer's file). SaveImage, PreviewImage, SaveAnimatedWEBP and
    SaveCheckpoint all write through it."""

    folder: Path
    name: str
    subfolder: str  # for ComfyUI's file records, "" for the root
    kind: str  # "output" or "temp"
    suffix: str
    counter: int
    # Whether records carry the file's size and sha256, so a cached run can tell that the file
    # at that name still holds what it saved (`files_unchanged`).
    record_contents: bool = False
    root: Path | None = None  # the output (or temp) folder, named so when it is a file
    # The records of an earlier run of this save whose cached result was refused (a file of
    # its batch deleted), one per file to write, in order: each still holding what it saved is
    # kept, each missing one written again under its own name (`write`).
    earlier: list[dict[str, Any]] = field(default_factory=list)
    wanted: str | None = None  # the earlier name the file being written goes to, if free
    # The prefix the node received (a literal, or a link's value), kept in records with their
    # contents: what `files_unchanged` expands now to tell whether they are still its names.
    prefix: str | None = None

    def number(self, filename: str) -> int | None:
        """The counter in `filename` when it is one of these numbered files, else None."""
        return number_in(filename, self.name, self.suffix)

    def final(self) -> Path:
        """The name the file being written gets (a failed write names it)."""
        return self.folder / (self.wanted or numbered_name(self.name, self.counter, self.suffix))

    def write(self, save: Callable[[Path], None]) -> dict[str, Any]:
        """Write one file with `save(temporary path)` (`write_new`: the final file gets the
        umask's permissions, a failure names it: `FileWriteError`); return its ComfyUI-style
        record. With an `earlier` record, a file still holding what it saved is not written
        (its record, marked `kept`), a missing one goes back under its name, unless another
        file holds that name now: then it gets the next number, as a new file does."""
        earlier = self.earlier.pop(0) if self.earlier else None
        if earlier is not None and _file_holds(self.folder / earlier["filename"], earlier):
            return {**earlier, "kept": True}
        self.wanted = earlier["filename"] if earlier is not None else None
        contents: dict[str, Any] = {}

        def place(tmp: Path) -> Path:
            if self.record_contents:
                contents.update(file_contents(tmp), filename_prefix=self.prefix)
            if self.wanted is not None:  # a link refuses to overwrite: no file is clobbered
                final = self.final()
                try:
                    os.link(tmp, final)
                    return final
                except FileExistsError:
                    self.wanted = None  # its earlier name holds another file: a new number
            self.counter = link_numbered(tmp, self.folder, self.name, self.suffix, self.counter)
            return self.final()

        names = {self.root: f"the {self.kind} folder"} if self.root is not None else None
        final = write_new(self.folder, save, place, prefix=SAVING_PREFIX, suffix=self.suffix,
                          target=self.final, names=names)  # fmt: skip
        if self.wanted is None:
            self.counter += 1
        self.wanted = None
        return {"filename": final.name, "subfolder": self.subfolder, "type": self.kind, **contents}


def file_contents(path: Path) -> dict[str, Any]:
    """What a saved file holds, as its record keeps it: size in bytes and sha256."""
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


def output_files(ctx, prefix: str, root: Path, kind: str, suffix: str,
                 input_name: str = "filename_prefix", record_contents: bool = False,
                 size: tuple[int, int] = (0, 0)) -> OutputFiles:  # fmt: skip
    """The checked place under `root` for files named by `prefix` (input `input_name`; its
    variables expanded, `size` the first image's width and height), numbered after the ones
    already there. The partial files a killed save left there are removed once stale
    (`remove_stale_partials`): this folder is where they are."""
    place = prefix_place(prefix, root, size)
    if isinstance(place, str):
        raise input_error(ctx, input_name, place)
    folder, name, subfolder = place
    files = OutputFiles(folder, name, subfolder, kind, suffix, 0, record_contents, root.resolve(),
                        prefix=prefix)  # fmt: skip
    there = os.listdir(folder) if folder.is_dir() else []  # else the first write makes it
    remove_stale_partials(folder, there)
    files.counter = next_number(there, name, suffix)
    files.earlier = [r for r in file_records(ctx.earlier_ui)
                     if r.get("type") == kind and r.get("subfolder") == subfolder
                     and files.number(str(r.get("filename"))) is not None]  # fmt: skip
    return files


def _place(expanded: str, root: Path) -> tuple[Path, str, str] | None:
    """Where files named by the expanded prefix go under `root`: (folder, name, subfolder as
    file records name it, "" for the root); None when that is outside `root`."""
    target = inside(root, expanded)
    if target is None or Path(expanded).is_absolute():
        return None
    subfolder = str(target.parent.relative_to(root.resolve())).replace(os.sep, "/")
    return target.parent, target.name, "" if subfolder == "." else subfolder


def save_images(ctx, images: Any, prefix: str, root: Path, kind: str,
                input_name: str = "filename_prefix") -> list[dict[str, str]]:  # fmt: skip
    """Write PNGs `<prefix>_00001_.png`, ... under `root`; return ComfyUI-style file records."""
    size = (int(images.shape[2]), int(images.shape[1]))  # [B, H, W, C]
    files = output_files(ctx, prefix, root, kind, ".png", input_name, record_contents=True,
                         size=size)  # fmt: skip
    info = _png_info(ctx)
    records: list[dict[str, Any]] = []
    top = root.resolve()  # the prefix's subfolders the first write makes, outermost first:
    made = [p for p in (files.folder, *files.folder.parents) if top in (p, *p.parents)][::-1]
    made = [p for p in made if not p.is_dir()]
    try:
        for row in to_uint8(images):
            img = row_image(row)
            records.append(files.write(lambda tmp, img=img: img.save(
                tmp, format="PNG", pnginfo=info, compress_level=4)))  # fmt: skip
    except BaseException:  # a full disk, Ctrl-C: the batch is saved whole or not at all
        remove_batch(files.folder, records, made)
        raise
    return records


def remove_batch(folder: Path, records: list[dict[str, Any]], made: list[Path]) -> None:
    """Remove the files a save wrote of a batch that failed part way, and the folders (`made`,
    outermost first) made for them: a re-run saves the batch again, and the folder would hold
    its first images twice. Files an earlier run saved (`kept`) stay."""
    for record in records:
        if not record.get("kept"):
            (folder / record["filename"]).unlink(missing_ok=True)
    remove_folders(made)


def output_folder(literals: dict[str, Any], settings: Settings) -> str:
    """The output folder as part of a save node's cache key: another folder, another save."""
    return str(Path(settings.output_dir).resolve())


def files_unchanged(ui: dict[str, Any] | None, literals: dict[str, Any],
                    settings: Settings) -> bool:  # fmt: skip
    """Whether the files a cached save node reports (all its ui's file records: images,
    checkpoints, ...) are the ones it would save now: named as the `filename_prefix` it
    received, which each record keeps (a literal or a link's value alike), expands now (a
    %date% or %hour% prefix names another folder or file as time passes) and still holding
    what it saved in this run's output folder (size, then sha256). A deleted file, another
    expansion, a run into another output folder, or another run's file saved since under
    the same name, makes the node save again (`OutputFiles.write`: only the files missing)
    rather than report it as saved. Every node writing into the output folder declares it,
    with `output_folder`."""
    root, records = Path(settings.output_dir), file_records(ui)
    for record in records:
        prefix = record.get("filename_prefix")
        if isinstance(prefix, str) and not _named_now(prefix, [record], root):
            return False
    return all(_record_holds(r, root) for r in records)


# The size variables as `expand_prefix` leaves them: a name any image size expands to.
ANY_SIZE = ("%width%", "%height%")


def _named_now(prefix: str, records: list[dict[str, Any]], root: Path) -> bool:
    """Whether every record names a numbered file of `prefix` as it expands now (the size
    any: it is the cached images')."""
    place = _place(expand_prefix(prefix, *ANY_SIZE).replace("\\", "/").strip(), root)
    if place is None:
        return False
    _, name, subfolder = place
    parts = re.split("|".join(ANY_SIZE), f"{subfolder}/{name}")
    pattern = re.compile(r"\d+".join(re.escape(p) for p in parts) + COUNTER + r"[^/]*")
    return all(pattern.fullmatch(f"{r.get('subfolder') or ''}/{r.get('filename')}")
               for r in records)  # fmt: skip


def _record_holds(record: dict[str, Any], root: Path) -> bool:
    path = root.joinpath(record.get("subfolder") or "", record.get("filename") or "")
    return _file_holds(path, record)


def _file_holds(path: Path, record: dict[str, Any]) -> bool:
    """Whether the file at `path` holds what `record` says was saved (size, then sha256)."""
    if "size" not in record or "sha256" not in record:  # cached before contents were recorded
        return False
    try:
        if not path.is_file() or path.stat().st_size != record["size"]:
            return False
        return file_contents(path) == {"size": record["size"], "sha256": record["sha256"]}
    except OSError:
        return False


# The save rule, which every node writing files into the output folder declares
# (`@node(..., **SAVES)`): its `filename_prefix` refused at validation as the run refuses it,
# its output folder part of its cache key, and a cached result reused only while its files
# still hold what it saved. A saver missing one is served stale: files reported as saved that
# are gone, or that are in another output folder.
SAVES: dict[str, Any] = {"output_node": True, "check": check_prefix, "identity": output_folder,
                         "reuse": files_unchanged}  # fmt: skip


def filename_prefix_input(default: str) -> Input:
    """A save node's `filename_prefix` input (the one `SAVES` checks and `output_files`
    expands), declared and described alike on every save node."""
    return String("filename_prefix", default,
                  description="file name start inside the output folder, may include a "
                              f"subfolder: 'portraits/fox'; {PREFIX_VARIABLES_TEXT} are replaced")  # fmt: skip


@node(
    "SaveImage",
    display_name="Save Image",
    category="image",
    inputs=[Socket("images", IMAGE), filename_prefix_input("ComfyUI")],
    outputs=[],
    embeds=(*PNG_TEXT_KEYS, PNG_OTHER_CHUNKS),
    **SAVES,
)  # fmt: skip
def save_image(ctx, images, filename_prefix: str = "ComfyUI"):
    """Save PNGs to the output directory (counter file names; the workflow embedded)."""
    records = save_images(ctx, images, filename_prefix, Path(ctx.settings.output_dir), "output")
    return NodeResult(values=(), ui={"images": records})


@node(
    "PreviewImage",
    display_name="Preview Image",
    category="image",
    inputs=[Socket("images", IMAGE)],
    outputs=[],
    output_node=True,
    deterministic=False,
)
def preview_image(ctx, images):
    """Show images without keeping them: PNGs in the temp directory."""
    folder = Path(ctx.settings.temp_dir)
    temp_folder.keep(folder)  # marked as latentgraph's when it makes it: `serve` clears it
    records = save_images(ctx, images, temp_folder.PREVIEW_PREFIX, folder, "temp", "images")
    return NodeResult(values=(), ui={"images": records})


@node(
    "SaveImageWebsocket",
    category="image",
    inputs=[Socket("images", IMAGE)],
    outputs=[],
    output_node=True,
    deterministic=False,
)
def save_image_websocket(ctx, images):
    """Send each image, full size as PNG (no workflow in it), to the websocket client that
    queued the prompt, as binary frames while this node runs (ComfyUI's example node); nothing
    is written to disk. `latentgraph run` has no websocket: it sends nothing and warns once.

    The server passes the run a `send_image(node_id, png)` (`ctx.extra`); headless there is
    none, and the images go nowhere."""
    send = ctx.extra.get("send_image")
    count = int(images.shape[0])
    if send is None:
        ctx.warn(f"SaveImageWebsocket sends images to the websocket client of a prompt queued "
                 f"on the server; this run has none, so its {count} image(s) were neither sent "
                 f"nor saved (SaveImage saves them)")  # fmt: skip
        return None
    for i, row in enumerate(to_uint8(images)):
        buf = io.BytesIO()
        row_image(row).save(buf, format="PNG", compress_level=1)
        send(ctx.node_id, buf.getvalue())
        ctx.progress(i + 1, count)
    return None


GRID_INPUTS = 8


@node(
    "ImageGrid",
    category="image",
    inputs=[Socket("images", IMAGE)]
    + [Socket(f"images_{i}", IMAGE, optional=True) for i in range(2, GRID_INPUTS + 1)]
    + [Int("columns", 0, min=0, max=64, description="0: one row per input")],
    outputs=[Output("image", IMAGE)],
)
def image_grid(ctx, images, columns: int = 0, **more):
    """Lay image batches side by side in one image (e.g. seeds or schedulers compared)."""
    import torch

    parts = [images] + [more[f"images_{i}"] for i in range(2, GRID_INPUTS + 1)
                        if more.get(f"images_{i}") is not None]  # fmt: skip
    shape = parts[0].shape[1:]
    for i, p in enumerate(parts):
        if p.shape[1:] != shape:
            name = "images" if i == 0 else f"images_{i + 1}"
            raise input_error(ctx, name, f"image size {list(p.shape[1:3])} differs from the "
                                         f"first input's {list(shape[:2])}")  # fmt: skip
    cols = columns or (parts[0].shape[0] if len(parts) > 1 else len(parts[0]))
    if len(parts) > 1 and not columns:
        cols = max(p.shape[0] for p in parts)
        rows_of = [list(p) + [torch.zeros(shape)] * (cols - p.shape[0]) for p in parts]
        tiles = [t for row in rows_of for t in row]
    else:
        tiles = [t for p in parts for t in p]
    n_rows = -(-len(tiles) // cols)
    tiles += [torch.zeros(shape)] * (n_rows * cols - len(tiles))
    rows = [torch.cat(tiles[r * cols : (r + 1) * cols], dim=1) for r in range(n_rows)]
    return torch.cat(rows, dim=0)[None]
