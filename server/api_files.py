"""Image files: /view serves outputs, inputs and temp files (or one image's colour or alpha
alone, for the mask editor); /upload/image stores inputs and /upload/mask a painted mask put
into its image; /internal/files/{type} lists a folder for the editor's media (assets) tabs."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path, PurePosixPath

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from latentgraph.graph.files import (
    SAVING_PREFIX,
    UPLOAD_PREFIX,
    FileWriteError,
    make_folders,
    remove_folders,
    remove_stale_partials,
    write_new,
)
from latentgraph.graph.paths import (
    hidden,
    inside,
    listed_names,
    listed_spelling,
    split_annotation,
)
from latentgraph.graph.pictures import ImageTooLarge, eight_bit, open_image, upright
from latentgraph.graph.problems import printable, quoted, unprintables_escaped

from .collector import in_thread
from .config import server_limit_label
from .errors import ApiError
from .filetypes import served_as
from .safepath import numbered_name, safe_folder, safe_join, stored_path
from .state import get_state

log = logging.getLogger("latentgraph.server")

_FORMATS = {"webp": ("WEBP", "image/webp"), "jpeg": ("JPEG", "image/jpeg"),
            "jpg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png")}  # fmt: skip


def _folder(request: Request, kind: str, what: str = "type") -> Path:
    folder = get_state(request).config.dir_for(kind)
    if folder is None:
        raise ApiError(
            400, f"{what} must be output, input or temp, not {quoted(kind)}", "invalid_type"
        )
    return folder


def _annotated(filename: str, kind: str, what: str) -> tuple[str, str]:
    """(name, folder type) of a client's file name: the folder its annotation names
    ('x.png [output]', `graph.paths.split_annotation`) over `kind` (the `type` given beside
    it), as ComfyUI's /view and /upload/mask read one; a bad annotation is a 400 naming it."""
    try:
        name, named = split_annotation(filename)
    except ValueError as exc:
        raise ApiError(400, f"{what} {exc}", "invalid_filename") from None
    return name, named or kind


@contextmanager
def _opened(source, max_pixels: int, refused: str) -> Iterator:
    """A client's image opened by `graph.pictures.open_image`, nothing decoded yet; one of more
    pixels than `--max-pixels` is a 400 `image_too_large` whatever its size, `refused`
    beginning the message. Pillow's errors reading it are the caller's to answer."""
    try:
        with open_image(source, max_pixels) as img:
            yield img
    except ImageTooLarge as exc:
        raise ApiError(400, f"{refused} a {exc.width}x{exc.height} image: {exc.pixels:,} pixels "
                       f"is over the server's limit of {exc.limit:,} (--max-pixels)",
                       "image_too_large") from None  # fmt: skip


# /view's `channel`, as ComfyUI's mask editor asks for an image: `rgba` the file as it is,
# `rgb` the picture without its alpha, `a` the alpha alone.
CHANNELS = ("rgba", "rgb", "a")


def _channel(value: str | None) -> str:
    channel = value or "rgba"
    if channel not in CHANNELS:
        raise ApiError(
            400, f"channel must be rgba, rgb or a, not {quoted(channel)}", "invalid_channel"
        )
    return channel


def _channel_image(img, channel: str):
    """`img` as `channel` shows it, upright and in 8-bit channels as LoadImage reads it
    (`pictures.upright`, `pictures.eight_bit`): `rgb` without alpha; `a` a black RGBA image
    whose alpha is `img`'s (opaque for an image without one), as ComfyUI answers `channel=a`;
    `rgba` all of it. The mask editor paints on this picture and /upload/mask stores its mask
    on the same one."""
    from PIL import Image

    picture = upright(img)
    if channel == "rgb":
        return eight_bit(picture, "RGB")
    if channel == "a":
        alpha_only = Image.new("RGBA", picture.size)
        alpha_only.putalpha(eight_bit(picture, "RGBA").getchannel("A"))
        return alpha_only
    return eight_bit(picture)


def _preview_format(spec: str, channel: str) -> tuple[str, str, int]:
    """Pillow's format, the media type and the quality a `preview=format;quality` asks for.
    The alpha of `channel=a` needs a format that keeps it: WebP for JPEG, as ComfyUI does."""
    fmt, _, quality = spec.partition(";")
    if fmt.lower() not in _FORMATS:
        raise ApiError(400, f"preview format must be webp, jpeg or png, not {quoted(fmt)}")
    try:
        q = int(quality) if quality else 90
    except ValueError:
        raise ApiError(400, f"preview quality must be an integer, not {quoted(quality)}") from None
    pil_format, mime = _FORMATS[fmt.lower()]
    if channel == "a" and pil_format == "JPEG":
        pil_format, mime = _FORMATS["webp"]
    return pil_format, mime, max(1, min(q, 100))


def _reencode(path: Path, spec: str, channel: str, max_pixels: int) -> tuple[bytes, str]:
    """The image at `path` as `channel` shows it, in the `preview` format, or as PNG."""
    if spec:
        pil_format, mime, quality = _preview_format(spec, channel)
        refused = "no preview of"
    else:
        pil_format, mime, quality = "PNG", "image/png", 90
        refused = f"no channel {quoted(channel)} of"
    try:
        with _opened(path, max_pixels, refused) as img:
            img = _channel_image(img, channel)
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - not an image we can re-encode
        raise ApiError(400, f"cannot re-encode this file: {exc}") from None
    if pil_format == "JPEG":
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format=pil_format, quality=quality)
    return buf.getvalue(), mime


async def view(request: Request) -> Response:
    q = request.query_params
    filename = q.get("filename", "")
    if not filename:
        raise ApiError(400, "the 'filename' query parameter is required")
    channel = _channel(q.get("channel"))
    name, kind = _annotated(filename, q.get("type") or "output", "filename")
    base, subfolder = _folder(request, kind), q.get("subfolder", "")
    path = safe_join(safe_folder(base, subfolder, what="subfolder"), name, what="filename")
    _refuse_hidden(name, subfolder, _NOT_SERVED)
    if not path.is_file():  # a name in another Unicode form, as LoadImage reads it
        path = _stored_file(base, subfolder, name, "subfolder", "filename")
    if not path.is_file():
        raise ApiError(404, f"no file {quoted(name)} in {kind}", "not_found")
    if q.get("preview") or channel != "rgba":
        limit = get_state(request).config.max_image_pixels
        data, mime = await in_thread(_reencode, path, q.get("preview", ""), channel, limit)
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type=mime, headers=headers)
    mime, headers = served_as(path.name)
    return FileResponse(path, media_type=mime, headers={"Cache-Control": "no-cache", **headers})


def _listed_name(folder: Path, name: str) -> str:
    """`name`, a relative path, as `folder` holds it: each of its folder names and its file
    name in the form an entry there has (`paths.listed_spelling`: `é` sent composed, the
    folder or file named decomposed, copied from a Mac), so one name to the editor's dropdown
    is one file here and one folder: what /view serves, where an upload goes and what it
    clashes with. A name no entry is so spelled is kept as given, and so is what follows it
    (a folder not made yet)."""
    if name.isascii():  # only itself
        return name
    spelled: list[str] = []
    parts = _parts(name)
    for i, part in enumerate(parts):
        here = folder.joinpath(*spelled)
        if not part.isascii() and not os.path.lexists(here / part):
            try:
                there = os.listdir(here)
            except OSError:  # no such folder (yet)
                return "/".join([*spelled, *parts[i:]])
            part = listed_spelling(part, there) or part
        spelled.append(part)
    return "/".join(spelled)


def _stored_file(base: Path, subfolder: str, name: str, folder_what: str, what: str) -> Path:
    """The file `name` of `subfolder` in `base`, its folder and file names as `base` spells
    them (`_listed_name`), checked as `safe_folder` and `safe_join` check a client's names
    (`folder_what`, `what`: the fields they came in)."""
    folder = safe_folder(base, _listed_name(base, subfolder), what=folder_what)
    return safe_join(folder, _listed_name(folder, name), what=what)


def _check_image(data: bytes, max_pixels: int) -> None:
    """Refuse (400) an upload Pillow cannot read, or of more pixels than `--max-pixels` (its
    header read: nothing decoded)."""
    try:
        with _opened(io.BytesIO(data), max_pixels, "cannot store") as img:
            img.verify()
    except ApiError:
        raise
    except Exception:  # noqa: BLE001 - anything Pillow cannot read is refused
        raise ApiError(400, "the uploaded file is not an image Pillow can read",
                       "invalid_image") from None  # fmt: skip


# Choosing a free name and renaming onto it are one step for every upload of this process:
# two uploads of one name at once would otherwise both find it free and one would be lost.
# Spelling a subfolder and making it are another (`_upload_folder`).
_PLACING = threading.Lock()


def _upload_folder(base: Path, subfolder: str, name: str) -> tuple[str, Path, list[Path]]:
    """`subfolder` of `base` as `base` spells it (`_listed_name`), made when missing, in one
    step under `_PLACING`: two uploads at once into a new `dé`, one composed and one
    decomposed, each found no folder so spelled and made its own. Returns the spelling, the
    folder (checked as `safe_folder` checks it: the entry found may be a link out) and the
    folders made, for the caller to remove if its write fails (`files.remove_folders`)."""
    with _PLACING:
        subfolder = _listed_name(base, subfolder)
        folder = safe_folder(base, subfolder, what="subfolder")
        try:
            return subfolder, folder, make_folders(folder)
        except FileWriteError as exc:  # named as `write_new` names it: the file it was for
            raise FileWriteError(folder / name, exc.reason, exc) from exc


def _store_upload(base: Path, subfolder: str, name: str, data: bytes,
                  overwrite: bool) -> tuple[str, str]:  # fmt: skip
    """Write `name` into `subfolder` of `base` atomically; keep an existing different file and
    rename this one `name (n).ext`. Returns the subfolder and the name stored, as the folders
    spell them. The bytes are written beside the target first, outside the lock."""
    subfolder, folder, made = _upload_folder(base, subfolder, name)
    try:
        return subfolder, _write_upload(folder, name, data, overwrite)
    except BaseException:
        remove_folders(made)  # those still empty: another upload's file keeps its folder
        raise


def _write_upload(folder: Path, name: str, data: bytes, overwrite: bool) -> str:
    """`_store_upload`'s write into `folder`, which exists: the name stored."""

    def place(tmp: Path) -> str:
        with _PLACING:
            target = folder / _listed_name(folder, name) if overwrite else _free_target(
                folder, name, data)  # fmt: skip
            if overwrite or not target.is_file():  # else the same bytes are already there
                os.replace(tmp, target)
        return target.name

    remove_stale_partials(folder)  # a killed upload's, as a save removes a killed save's
    return write_new(folder, lambda tmp: tmp.write_bytes(data), place, prefix=UPLOAD_PREFIX,
                     target=lambda: folder / name)  # fmt: skip


def _free_target(folder: Path, name: str, data: bytes) -> Path:
    """`name`, or `name (n).ext` for the first n that is free or already holds `data`; each
    as the folder spells it (`_listed_name`: a composed `é` is the decomposed file there)."""
    target = folder / _listed_name(folder, name)
    n = 1
    while target.exists():
        if target.is_file() and target.read_bytes() == data:
            return target
        target = folder / _listed_name(folder, numbered_name(name, n))
        n += 1
    return target


# What /upload/mask does with the upload before it is stored: given the request, the form and
# the name it is stored under, the function turning the uploaded bytes into the stored ones.
_Combine = Callable[[Request, FormData, str], Callable[[bytes], bytes]]


async def _upload(request: Request, combine: _Combine | None = None) -> JSONResponse:
    """Store a multipart form's `image` (or what `combine` makes of it) as /upload/image does:
    its `type` (default input) and `subfolder`, named after the upload, never over a different
    file unless `overwrite`; answered `{name, subfolder, type}`. A refusal is logged
    (`_log_refusal`)."""
    form: FormData | None = None
    try:
        try:
            form = await request.form(max_files=1, max_fields=20)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - malformed multipart
            raise ApiError(400, f"expected a multipart form with an 'image' file: {exc}") from None
        return await _store_form(request, form, combine)
    except ApiError as exc:
        _log_refusal(request, form, exc)
        raise


def _log_refusal(request: Request, form: FormData | None, exc: ApiError) -> None:
    """The line a refused upload leaves in the server's log, and so in the editor's Logs
    panel, as a refused prompt's does (`prompts.log_refusal`): `upload refused (TYPE): POST
    /upload/image 'sub/photo.png' into 'input': MESSAGE`, the file and folder type as the form
    named them (`quoted`, as the message names what the client gave; nothing before the form
    is read). The editor's toast says only "Upload failed: Bad Request" (the status line's
    reason phrase): this line says why."""
    named = f"POST {printable(request.url.path)}"
    upload = form.get("image") if form is not None else None
    if form is not None and isinstance(upload, UploadFile):
        file = "/".join(str(part) for part in (form.get("subfolder"), upload.filename) if part)
        named += f" {quoted(file)} into {quoted(str(form.get('type') or 'input'))}"
    log.warning("upload refused (%s): %s: %s", exc.type, named, unprintables_escaped(exc.message))


async def _store_form(request: Request, form: FormData,
                      combine: _Combine | None) -> JSONResponse:  # fmt: skip
    """`_upload`'s work once the form is read."""
    config = get_state(request).config
    upload = form.get("image")
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "the form needs a file field named 'image'")
    kind = str(form.get("type") or "input")
    folder = _folder(request, kind)
    subfolder = str(form.get("subfolder") or "")
    name = stored_path(folder, subfolder, upload.filename or "", "image file name").name
    _refuse_hidden(name, subfolder, _NOT_LISTED, fixes=_NOT_LISTED_FIXES, what="image file name")
    make = combine(request, form, name) if combine is not None else None
    data = await upload.read(config.max_upload_bytes + 1)
    if len(data) > config.max_upload_bytes:
        raise ApiError(413, f"the image is larger than {config.max_upload_bytes} bytes "
                       f"({server_limit_label('max_upload_bytes')})", "too_large")  # fmt: skip
    await in_thread(_check_image, data, config.max_image_pixels)
    if make is not None:
        data = await in_thread(make, data)
    overwrite = str(form.get("overwrite") or "").lower() in ("true", "1")
    # A folder there in another Unicode form is this one (`dé` typed, `dé` decomposed from a
    # Mac): no second folder looking the same in LoadImage's list. Answered as it is spelled,
    # so the editor's widget value is the entry the list shows.
    subfolder, stored = await in_thread(_store_upload, folder, subfolder, name, data, overwrite)
    return JSONResponse({"name": stored, "subfolder": subfolder, "type": kind})


# Why a name starting with "." is refused (`_refuse_hidden`). An upload: the editor puts the
# name it is answered into LoadImage's widget, and LoadImage lists no such file. /view and
# original_ref: such a file is a save's or an upload's partial write (a killed save's half
# PNG must not be served) or the system's.
_NOT_LISTED = "LoadImage's list and the editor's file tabs leave it out, so it could not be chosen"
_NOT_LISTED_FIXES = ("; give it a name without the leading '.'", "; give one without")
_NOT_SERVED = (f"files and folders starting with '.' are not served (a save's or an upload's "
              f"partial file, {SAVING_PREFIX}*, {UPLOAD_PREFIX}*, or one the system keeps)")  # fmt: skip


def _refuse_hidden(name: str, subfolder: str, why: str, fixes: tuple[str, str] = ("", ""),
                   what: str = "filename", folder_what: str = "subfolder") -> None:  # fmt: skip
    """Refuse (400) a file by a name the folder lists leave out (`paths.hidden`): `name` (a
    relative path) or `subfolder` with a name starting with "."; the message says `why`, then
    the name's or the subfolder's `fixes`. The one rule /upload/image, /upload/mask's
    original_ref and /view refuse such a name by."""
    parts = _parts(name)
    if any(hidden(part) for part in parts):
        how = "starts with" if len(parts) == 1 else "has a name starting with"
        raise ApiError(400, f"{what} {quoted(name)} {how} '.': {why}{fixes[0]}",
                       "invalid_filename")  # fmt: skip
    if any(hidden(part) for part in _parts(subfolder)):
        raise ApiError(400, f"{folder_what} {quoted(subfolder)} has a folder starting with '.': "
                       f"{why}{fixes[1]}", "invalid_path")  # fmt: skip


def _parts(value: str) -> tuple[str, ...]:
    """The names in a client's relative path, `\\` read as `/` (as `safepath` reads it)."""
    return PurePosixPath(value.replace("\\", "/")).parts


async def upload_image(request: Request) -> JSONResponse:
    return await _upload(request)


def _original_ref(request: Request, form: FormData) -> Path:
    """The image file `original_ref` names: JSON `{"filename", "subfolder", "type"}` (type
    output by default, as ComfyUI's; a filename's annotation, 'x.png [input]', names the
    folder instead), inside its folder, or a 400 naming the field."""
    raw = form.get("original_ref")
    if not isinstance(raw, str) or not raw.strip():
        raise ApiError(400, "the form needs a field 'original_ref': JSON naming the masked image "
                       '({"filename", "subfolder", "type"})', "invalid_original_ref")  # fmt: skip
    try:
        ref = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"original_ref is not JSON: {exc}", "invalid_original_ref") from None
    if not isinstance(ref, dict):
        raise ApiError(400, "original_ref must be a JSON object with 'filename', 'subfolder' "
                       "and 'type'", "invalid_original_ref")  # fmt: skip
    fields = {
        key: "" if ref.get(key) is None else ref[key] for key in ("filename", "subfolder", "type")
    }
    for key, value in fields.items():
        if not isinstance(value, str):
            raise ApiError(400, f"original_ref {key} must be a string, not {value!r}",
                           "invalid_original_ref")  # fmt: skip
    if not fields["filename"]:
        raise ApiError(400, "original_ref needs a 'filename'", "invalid_original_ref")
    name, kind = _annotated(fields["filename"], fields["type"] or "output",
                            "original_ref filename")  # fmt: skip
    base = _folder(request, kind, what="original_ref type")
    folder = safe_folder(base, fields["subfolder"], what="original_ref subfolder")
    path = safe_join(folder, name, what="original_ref filename")
    _refuse_hidden(name, fields["subfolder"], _NOT_SERVED, what="original_ref filename",
                   folder_what="original_ref subfolder")  # fmt: skip
    if not path.is_file():  # a name in another Unicode form, as /view reads it
        path = _stored_file(base, fields["subfolder"], name, "original_ref subfolder",
                            "original_ref filename")  # fmt: skip
    if not path.is_file():
        shown = "/".join(p for p in (fields["subfolder"], name) if p)
        raise ApiError(400, f"original_ref names no file: {quoted(shown)} is not in {kind}",
                       "invalid_original_ref")  # fmt: skip
    return path


def _masked(original: Path, max_pixels: int, mask: bytes) -> bytes:
    """The image at `original` with the alpha of the `mask` image, as a PNG keeping the
    original's text chunks (an output's embedded workflow), as ComfyUI stores a mask. The
    picture is the one /view shows the mask editor (`_channel_image`: upright, 8-bit), so the
    mask is of its upright size and the PNG holds upright pixels with no EXIF orientation:
    LoadImage reads it as it read the original."""
    from PIL.PngImagePlugin import PngInfo

    try:
        with _opened(original, max_pixels, "no mask on") as img:
            text = dict(getattr(img, "text", {}))
            picture = eight_bit(upright(img), "RGBA")
    except ApiError:
        raise
    except Exception:  # noqa: BLE001 - anything Pillow cannot read is refused
        raise ApiError(400, f"original_ref filename {quoted(original.name)} is not an image Pillow "
                       "can read", "invalid_original_ref") from None  # fmt: skip
    try:
        with _opened(io.BytesIO(mask), max_pixels, "cannot store") as painted:
            if painted.size != picture.size:
                raise ApiError(400, f"the mask is {painted.width}x{painted.height} but "
                               f"original_ref's image is {picture.width}x{picture.height}: they "
                               "must be the same size", "size_mismatch")  # fmt: skip
            picture.putalpha(painted.convert("RGBA").getchannel("A"))
    except ApiError:
        raise
    except Exception:  # noqa: BLE001 - read its header, but cannot decode it
        raise ApiError(400, "the uploaded file is not an image Pillow can read",
                       "invalid_image") from None  # fmt: skip
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", compress_level=4, pnginfo=info)
    return buf.getvalue()


def _mask_onto_original(request: Request, form: FormData, name: str) -> Callable[[bytes], bytes]:
    if not name.lower().endswith(".png"):
        raise ApiError(400, f"image file name {quoted(name)}: a mask is stored as PNG, so the name must "
                       "end in .png", "invalid_filename")  # fmt: skip
    original = _original_ref(request, form)
    return partial(_masked, original, get_state(request).config.max_image_pixels)


async def upload_mask(request: Request) -> JSONResponse:
    """ComfyUI's mask editor saving: `image` is the painted mask (its alpha is the mask) and
    `original_ref` the image it masks; stored is that image with the mask's alpha."""
    return await _upload(request, _mask_onto_original)


def _visible_files(folder: Path) -> list[str]:
    """The file names directly in `folder`, newest first (ComfyUI's order), without hidden
    files (our uploads' temporary files among them), non-UTF-8 names (`listed_names`) or links
    to anything outside it."""
    found = []
    with os.scandir(folder) as scanned:
        entries = list(scanned)
    shown = set(listed_names(folder, [entry.name for entry in entries]))
    for entry in entries:
        if entry.name not in shown or not entry.is_file():
            continue
        if entry.is_symlink() and inside(folder, entry.name) is None:
            continue
        found.append((-entry.stat().st_mtime, entry.name))
    return [name for _, name in sorted(found)]


async def list_files(request: Request) -> JSONResponse:
    """/internal/files/{directory_type}: what the editor's Imported and Generated tabs show."""
    folder = _folder(request, request.path_params["directory_type"])
    if not folder.is_dir():
        return JSONResponse([])
    return JSONResponse(await in_thread(_visible_files, folder))


routes = [
    Route("/view", view, methods=["GET"]),
    Route("/internal/files/{directory_type}", list_files, methods=["GET"]),
    Route("/upload/image", upload_image, methods=["POST"]),
    Route("/upload/mask", upload_mask, methods=["POST"]),
]
