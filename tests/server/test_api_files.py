"""/view and /upload/image in process: every refusal's text, previews, and how uploads are named.

The file routes read only the server's config, so these tests mount them alone (the real error
handlers and body-size guard, no worker processes): a whole run takes about a second, which is
what the mutation run of server/api_files.py needs. test_containment.py covers symlinks.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import warnings
from types import SimpleNamespace

import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from latentgraph.graph.problems import quoted
from latentgraph.server import api_files
from latentgraph.server.config import ServerConfig
from latentgraph.server.errors import exception_handlers
from latentgraph.server.hosts import HostGuard
from latentgraph.server.middleware import GuardMiddleware

from ..full_disk import fill
from ..image_headers import header_only_png


def _image(mode: str = "RGB", size: tuple[int, int] = (16, 12)) -> Image.Image:
    """A gradient with some noise: lossy encoders give different bytes at each quality."""
    img = Image.new(mode, size)
    w, h = size
    for x in range(w):
        for y in range(h):
            value = (x * 37 + y * 91 + (x * y) % 13) % 256
            img.putpixel((x, y), (value, 255 - value, (value * 7) % 256, 128)[: len(mode)])
    return img


def _png(mode: str = "RGB", size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    _image(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _encoded(data: bytes, pil_format: str, quality: int, mode: str | None = None) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert(mode) if mode else img.copy()
    buf = io.BytesIO()
    img.save(buf, format=pil_format, quality=quality)
    return buf.getvalue()


@pytest.fixture
def config(tmp_path) -> ServerConfig:
    config = ServerConfig(data_dir=tmp_path / "data", max_image_pixels=16 * 12,
                          max_upload_bytes=4096, max_body_bytes=16 * 1024)  # fmt: skip
    config.ensure_dirs()
    return config


@pytest.fixture
def client(config):
    app = Starlette(routes=api_files.routes, exception_handlers=exception_handlers,
                    middleware=[Middleware(GuardMiddleware, max_body_bytes=config.max_body_bytes,
                                           auth_token=None, hosts=HostGuard("127.0.0.1"))])  # fmt: skip
    app.state.lg = SimpleNamespace(config=config)  # what get_state(request).config reads
    with TestClient(app, base_url="http://127.0.0.1:8188", raise_server_exceptions=False) as c:
        yield c


def _error(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()["error"]


# /view -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["output", "input", "temp"])
def test_view_serves_each_folder(client, config, kind):
    (config.dir_for(kind) / "sub").mkdir()
    (config.dir_for(kind) / "sub" / "a.png").write_bytes(_png())
    r = client.get("/view", params={"filename": "a.png", "subfolder": "sub", "type": kind})
    assert r.status_code == 200 and r.content == _png()
    assert r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("params", [{}, {"type": ""}])
def test_view_without_a_type_is_the_output_folder(client, config, params):
    (config.output_dir / "o.png").write_bytes(_png())
    r = client.get("/view", params={"filename": "o.png", **params})
    assert r.status_code == 200 and r.content == _png()
    missing = client.get("/view", params={"filename": "nope.png", **params})
    assert _error(missing, 404)["message"] == "no file 'nope.png' in output"


def test_view_serves_other_files_as_attachments(client, config):
    (config.output_dir / "page.html").write_text("<script>alert(1)</script>")
    r = client.get("/view", params={"filename": "page.html"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == "attachment"


def test_view_refusals_name_the_problem(client, config):
    assert _error(client.get("/view"), 400) == {
        "type": "bad_request", "message": "the 'filename' query parameter is required",
        "details": "", "extra_info": {}}  # fmt: skip
    assert _error(client.get("/view", params={"filename": ""}), 400)["message"] == (
        "the 'filename' query parameter is required")  # fmt: skip
    bad_type = _error(client.get("/view", params={"filename": "a.png", "type": "models"}), 400)
    assert bad_type["type"] == "invalid_type"
    assert bad_type["message"] == "type must be output, input or temp, not 'models'"
    missing = _error(client.get("/view", params={"filename": "nope.png", "type": "input"}), 404)
    assert missing == {"type": "not_found", "message": "no file 'nope.png' in input",
                       "details": "", "extra_info": {}}  # fmt: skip
    missing = _error(client.get("/view", params={"filename": "nope.png"}), 404)
    assert missing["message"] == "no file 'nope.png' in output"
    (config.output_dir / "folder.png").mkdir()
    assert _error(client.get("/view", params={"filename": "folder.png"}), 404)["type"] == (
        "not_found")  # fmt: skip
    (config.output_dir / "data").symlink_to(config.data_dir)
    escape = _error(client.get("/view", params={"filename": "../server.sqlite3"}), 400)
    assert escape["type"] == "invalid_path" and escape["message"].startswith("filename ")
    escape = _error(client.get("/view", params={"filename": "data"}), 400)
    assert escape == {"type": "invalid_path", "message": "filename leaves its folder",
                      "details": "", "extra_info": {}}  # fmt: skip


@pytest.mark.parametrize("fmt, pil_format, mime", [
    ("webp", "WEBP", "image/webp"), ("jpeg", "JPEG", "image/jpeg"), ("jpg", "JPEG", "image/jpeg"),
    ("png", "PNG", "image/png"), ("JPEG", "JPEG", "image/jpeg")])  # fmt: skip
def test_preview_reencodes_at_quality_90_by_default(client, config, fmt, pil_format, mime):
    data = _png()
    (config.output_dir / "a.png").write_bytes(data)
    r = client.get("/view", params={"filename": "a.png", "preview": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == mime
    assert r.headers["x-content-type-options"] == "nosniff"
    mode = "RGB" if pil_format == "JPEG" else None
    assert r.content == _encoded(data, pil_format, 90, mode)
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.format == pil_format and img.size == (16, 12)


@pytest.mark.parametrize("spec, quality", [("jpeg;50", 50), ("jpeg;1", 1), ("jpeg;0", 1),
                                           ("jpeg;-5", 1), ("jpeg;100", 100), ("jpeg;99", 99),
                                           ("jpeg;500", 100), ("jpeg;", 90)])  # fmt: skip
def test_preview_quality_is_read_and_clamped_to_1_100(client, config, spec, quality):
    data = _png(size=(32, 32))
    (config.output_dir / "a.png").write_bytes(data)
    config.max_image_pixels = 32 * 32
    r = client.get("/view", params={"filename": "a.png", "preview": spec})
    assert r.status_code == 200, r.text
    assert r.content == _encoded(data, "JPEG", quality, "RGB")


def test_preview_quality_over_100_is_100_for_webp_too(client, config):
    data = _png()
    (config.output_dir / "a.png").write_bytes(data)
    r = client.get("/view", params={"filename": "a.png", "preview": "webp;500"})
    assert r.status_code == 200, r.text  # Pillow refuses a WebP quality over 100
    assert r.content == _encoded(data, "WEBP", 100)


def test_preview_keeps_alpha_except_in_jpeg(client, config):
    (config.output_dir / "rgba.png").write_bytes(_png("RGBA"))
    webp = client.get("/view", params={"filename": "rgba.png", "preview": "webp"})
    with Image.open(io.BytesIO(webp.content)) as img:
        assert img.mode == "RGBA"
    jpeg = client.get("/view", params={"filename": "rgba.png", "preview": "jpeg"})
    assert jpeg.status_code == 200, jpeg.text
    with Image.open(io.BytesIO(jpeg.content)) as img:
        assert img.mode == "RGB"


def test_preview_refusals(client, config):
    (config.output_dir / "a.png").write_bytes(_png())
    (config.output_dir / "notes.txt").write_text("not an image")

    def refused(name: str, spec: str) -> dict:
        r = client.get("/view", params={"filename": name, "preview": spec})
        return _error(r, 400)

    assert refused("a.png", "gif;80") == {
        "type": "bad_request", "message": "preview format must be webp, jpeg or png, not 'gif'",
        "details": "", "extra_info": {}}  # fmt: skip
    assert refused("a.png", "webp;high")["message"] == (
        "preview quality must be an integer, not 'high'")  # fmt: skip
    assert refused("notes.txt", "png")["message"].startswith("cannot re-encode this file: ")
    assert refused("notes.txt", "png")["type"] == "bad_request"


def test_preview_pixel_limit_at_its_boundary(client, config):
    (config.output_dir / "a.png").write_bytes(_png(size=(16, 12)))
    config.max_image_pixels = 16 * 12
    assert client.get("/view", params={"filename": "a.png", "preview": "png"}).status_code == 200
    config.max_image_pixels = 16 * 12 - 1
    r = client.get("/view", params={"filename": "a.png", "preview": "png"})
    assert _error(r, 400) == {
        "type": "image_too_large", "details": "", "extra_info": {},
        "message": "no preview of a 16x12 image: 192 pixels is over the server's limit of 191 "
                   "(--max-pixels)"}  # fmt: skip
    (config.output_dir / "big.png").write_bytes(_png(size=(1000, 2)))
    config.max_image_pixels = 1999
    r = client.get("/view", params={"filename": "big.png", "preview": "png"})
    assert "2,000 pixels is over the server's limit of 1,999" in _error(r, 400)["message"]


def _without_bomb_warnings(call):
    """`call()`, and Pillow's decompression-bomb warnings it raised (in any thread)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if "decompression bomb" in str(w.message)]


@pytest.mark.parametrize("side", [13000, 14000, 60000])
@pytest.mark.parametrize("params, refused", [
    ({"preview": "webp;50"}, "no preview of"), ({"channel": "a"}, "no channel 'a' of")])  # fmt: skip
def test_a_header_over_the_pixel_limit_is_our_refusal_whatever_its_size(client, config, side,
                                                                        params, refused):  # fmt: skip
    """Pillow's own check answered first above 178,956,970 pixels (400 bad_request 'cannot
    re-encode this file: ... decompression bomb DOS attack.') and warned above half that."""
    (config.input_dir / "big.png").write_bytes(header_only_png(side, side))
    config.max_image_pixels = 4096 * 4096
    r, warned = _without_bomb_warnings(lambda: client.get(
        "/view", params={"filename": "big.png", "type": "input", **params}))  # fmt: skip
    assert _error(r, 400) == {
        "type": "image_too_large", "details": "", "extra_info": {},
        "message": f"{refused} a {side}x{side} image: {side * side:,} pixels is over the "
                   "server's limit of 16,777,216 (--max-pixels)"}  # fmt: skip
    assert warned == []


# /upload/image -------------------------------------------------------------------------------


def _upload(client, name="up.png", data=None, files=None, **fields):
    files = files if files is not None else {"image": (name, _png() if data is None else data,
                                                       "image/png")}  # fmt: skip
    return client.post("/upload/image", files=files, data=fields)


def test_upload_stores_in_input_by_default(client, config):
    r = _upload(client)
    assert r.status_code == 200 and r.json() == {"name": "up.png", "subfolder": "", "type": "input"}
    assert (config.input_dir / "up.png").read_bytes() == _png()
    assert not [p for p in config.input_dir.iterdir() if p.name.startswith(".upload-")]


def test_upload_to_a_type_and_new_nested_subfolder(client, config):
    r = _upload(client, type="temp", subfolder="a/b")
    assert r.json() == {"name": "up.png", "subfolder": "a/b", "type": "temp"}
    assert (config.temp_dir / "a" / "b" / "up.png").read_bytes() == _png()
    r = _upload(client, name="two.png", type="temp", subfolder="a/b")  # the folder exists now
    assert r.status_code == 200 and (config.temp_dir / "a" / "b" / "two.png").is_file()


@pytest.mark.parametrize("subfolder", ["", "sub", "a/b"])
def test_upload_to_a_full_disk_is_507_logs_the_folder_and_leaves_nothing(client, config,
                                                                         monkeypatch, caplog,
                                                                         subfolder):  # fmt: skip
    """The write fails where a full disk fails it (the temp file is made, writing it is not):
    the answer says why without the server's paths; its log names the file, in its folder;
    a subfolder the upload made is removed again."""
    fill(monkeypatch, config.input_dir)
    with caplog.at_level(logging.ERROR, logger="latentgraph.server"):
        r = _upload(client, subfolder=subfolder)
    assert _error(r, 507)["message"] == ("the server cannot store this request: No space left "
                                         "on device")  # fmt: skip
    target = config.input_dir / subfolder / "up.png" if subfolder else config.input_dir / "up.png"
    said = f"POST /upload/image: cannot write {target}: the disk is full (No space left on device)"
    assert [rec.getMessage() for rec in caplog.records] == [said]
    assert list(config.input_dir.iterdir()) == []


def test_upload_keeps_a_different_file_and_numbers_the_new_one(client, config):
    first, second, third = _png(size=(4, 4)), _png(size=(5, 5)), _png(size=(6, 6))
    assert _upload(client, data=first).json()["name"] == "up.png"
    assert _upload(client, data=second).json()["name"] == "up (1).png"
    assert _upload(client, data=third).json()["name"] == "up (2).png"
    assert _upload(client, data=second).json()["name"] == "up (1).png"  # the same bytes again
    assert _upload(client, data=first).json()["name"] == "up.png"
    folder = config.input_dir
    assert [(folder / n).read_bytes() for n in ("up.png", "up (1).png", "up (2).png")] == [
        first, second, third]  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == ["up (1).png", "up (2).png", "up.png"]


NFC, NFD = "caf\u00e9 nfd.png", "cafe\u0301 nfd.png"  # one name to a person, two on disk


@pytest.mark.parametrize(("overwrite", "stored"), [("", "caf\u00e9 nfd (1).png"), ("true", NFD)])
def test_an_upload_named_as_a_file_in_another_unicode_form_is_that_name(client, config,
                                                                       overwrite, stored):  # fmt: skip
    """`café nfd.png` sent composed (NFC) beside the file stored decomposed (NFD, from a Mac)
    was written as a second file the dropdown listed beside the first, looking the same: it
    is that file's name (`paths.listed_spelling`), numbered as for a same-form clash, or
    written over it with overwrite, and the same bytes again are that file."""
    (config.input_dir / NFD).write_bytes(_png(size=(4, 4)))
    r = _upload(client, name=NFC, overwrite=overwrite)
    assert r.status_code == 200 and r.json()["name"] == stored, r.text
    assert sorted(p.name for p in config.input_dir.iterdir()) == sorted({NFD, stored})
    assert (config.input_dir / stored).read_bytes() == _png()
    again = _upload(client, name=NFC, data=(config.input_dir / NFD).read_bytes())
    assert again.json()["name"] == NFD


def test_view_serves_an_input_file_by_its_name_in_another_unicode_form(client, config):
    """/view?filename=<NFC> answered 404 for the file stored NFD, which LoadImage reads."""
    (config.input_dir / NFD).write_bytes(_png())
    r = client.get("/view", params={"filename": NFC, "type": "input"})
    assert r.status_code == 200 and r.content == _png(), r.text


DE_NFC, DE_NFD = "d\u00e9", "de\u0301"  # a subfolder `dé` typed, and made on a Mac


@pytest.mark.parametrize(("first", "second"), [(DE_NFD, DE_NFC), (DE_NFC, DE_NFD)])
def test_an_upload_into_a_subfolder_in_another_unicode_form_goes_into_that_folder(
        client, config, first, second):  # fmt: skip
    """Uploading into subfolder `dé` once decomposed and once composed made two folders that
    look the same, and LoadImage listed `dé/café nfd.png` twice: the subfolder is the folder
    there in the other form (each of its names, as the file name is), answered as it is
    spelled there, so the editor's widget value is the entry LoadImage lists."""
    from latentgraph.graph import Settings
    from latentgraph.nodes.input_files import image_names

    assert _upload(client, name=NFD, subfolder=first).json() == {
        "name": NFD, "subfolder": first, "type": "input"}  # fmt: skip
    again = _upload(client, name=NFC, subfolder=second)
    assert again.json() == {"name": NFD, "subfolder": first, "type": "input"}, again.text
    nested = _upload(client, name="n.png", subfolder=f"{second}/sous-{second}")
    assert nested.json()["subfolder"] == f"{first}/sous-{second}"
    assert [p.name for p in config.input_dir.iterdir()] == [first]
    assert sorted(p.name for p in (config.input_dir / first).iterdir()) == sorted(
        [NFD, f"sous-{second}"])  # fmt: skip
    listed = image_names(Settings(input_dir=config.input_dir))
    assert listed == [f"{first}/{NFD}", f"{first}/sous-{second}/n.png", "example.png"]


def test_two_uploads_at_once_into_a_new_subfolder_in_two_unicode_forms_make_one_folder(
        client, config, monkeypatch):  # fmt: skip
    """Two uploads at once into a subfolder `dé` not made yet, one composed and one decomposed:
    each spelled the folder before the other had made it, so each made its own (the folder was
    made before the naming lock). The interleaving that did it is forced: the first upload
    makes its folder only once the second has spelled its own, or waits for the lock to."""
    import pathlib
    import threading

    first_spelled, second_arrived = threading.Event(), threading.Event()
    real_listed_name, real_mkdir = api_files._listed_name, pathlib.Path.mkdir

    def listed_name(folder: pathlib.Path, name: str) -> str:
        spelled = real_listed_name(folder, name)
        {DE_NFC: first_spelled, DE_NFD: second_arrived}.get(name, threading.Event()).set()
        return spelled

    class WatchedLock:
        """The naming lock, saying when an upload has to wait for it."""

        def __init__(self) -> None:
            self.lock = threading.Lock()

        def __enter__(self) -> None:
            if not self.lock.acquire(blocking=False):
                second_arrived.set()
                self.lock.acquire()

        def __exit__(self, *exc) -> None:
            self.lock.release()

    def mkdir(self: pathlib.Path, *args, **kwargs) -> None:
        if self == config.input_dir / DE_NFC:
            assert second_arrived.wait(60), "the second upload never came to name its folder"
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(api_files, "_listed_name", listed_name)
    monkeypatch.setattr(api_files, "_PLACING", WatchedLock())
    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    answers = {}

    def upload(name: str, subfolder: str) -> None:
        answers[name] = _upload(client, name=name, subfolder=subfolder)

    first = threading.Thread(target=upload, args=("a.png", DE_NFC))
    first.start()
    assert first_spelled.wait(60), "the first upload never spelled its folder"
    upload("b.png", DE_NFD)
    first.join()
    assert sorted(ascii(p.name) for p in config.input_dir.iterdir()) == [ascii(DE_NFC)]  # one
    assert sorted(p.name for p in (config.input_dir / DE_NFC).iterdir()) == ["a.png", "b.png"]
    assert [(r.status_code, r.json()) for r in (answers["a.png"], answers["b.png"])] == [
        (200, {"name": "a.png", "subfolder": DE_NFC, "type": "input"}),
        (200, {"name": "b.png", "subfolder": DE_NFC, "type": "input"})]  # fmt: skip


@pytest.mark.parametrize(("subfolder", "filename"), [
    (f"{DE_NFC}/x", NFC), (f"{DE_NFC}/x", NFD), ("", f"{DE_NFC}/x/{NFC}"),
    (DE_NFC, f"x/{NFD}"), (f"{DE_NFD}/x", NFC)])  # fmt: skip
def test_view_serves_a_file_whose_subfolder_is_in_another_unicode_form(client, config,
                                                                       subfolder, filename):  # fmt: skip
    """/view found a file by its name in another form only in its own folder: the subfolder
    (the field, or a path in the filename) was used as typed, a 404 for the folder `dé`
    stored decomposed. The mask editor's original_ref names its image the same way."""
    (config.input_dir / DE_NFD / "x").mkdir(parents=True)
    (config.input_dir / DE_NFD / "x" / NFD).write_bytes(_png_of(_alpha_pattern()))
    r = client.get("/view", params={"filename": filename, "subfolder": subfolder, "type": "input"})
    assert r.status_code == 200 and r.content == _png_of(_alpha_pattern()), r.text
    ref = {"filename": filename, "subfolder": subfolder, "type": "input"}
    masked = _upload_mask(client, ref, type="input")
    assert masked.status_code == 200, masked.text


def test_upload_beside_a_folder_of_the_same_name(client, config):
    (config.input_dir / "up.png").mkdir()
    assert _upload(client).json()["name"] == "up (1).png"


@pytest.mark.parametrize("flag, replaced", [("true", True), ("1", True), ("TRUE", True),
                                            ("True", True), ("false", False), ("0", False),
                                            ("", False), ("yes", False)])  # fmt: skip
def test_upload_overwrite_flag(client, config, flag, replaced):
    (config.input_dir / "up.png").write_bytes(_png(size=(4, 4)))
    r = _upload(client, overwrite=flag)
    assert r.json()["name"] == ("up.png" if replaced else "up (1).png")
    assert ((config.input_dir / "up.png").read_bytes() == _png()) is replaced


def test_upload_size_limit_at_its_boundary(client, config):
    data = _png()
    config.max_upload_bytes = len(data)
    assert _upload(client, data=data).status_code == 200
    config.max_upload_bytes = len(data) - 1
    r = _upload(client, name="big.png", data=data)
    assert _error(r, 413) == {
        "type": "too_large", "details": "", "extra_info": {},
        "message": f"the image is larger than {len(data) - 1} bytes (the server's --max-body-mb)"}  # fmt: skip
    assert not (config.input_dir / "big.png").exists()


def test_upload_refusals_name_the_problem(client, config):
    assert _error(_upload(client, data=b"not an image"), 400) == {
        "type": "invalid_image", "message": "the uploaded file is not an image Pillow can read",
        "details": "", "extra_info": {}}  # fmt: skip
    truncated = _png()[:-20]
    assert _error(_upload(client, data=truncated), 400)["type"] == "invalid_image"
    no_image = _upload(client, files={"file": ("a.png", _png(), "image/png")})
    assert _error(no_image, 400)["message"] == "the form needs a file field named 'image'"
    text_field = client.post("/upload/image", data={"image": "a.png"})
    assert _error(text_field, 400)["message"] == "the form needs a file field named 'image'"
    bad_type = _error(_upload(client, type="models"), 400)
    assert bad_type["message"] == "type must be output, input or temp, not 'models'"
    nameless = _error(_upload(client, name=""), 400)  # httpx sends it as a text field
    assert nameless["message"] == "the form needs a file field named 'image'"
    dotted = _error(_upload(client, name=".."), 400)
    assert dotted["type"] == "invalid_filename"
    assert dotted["message"] == "image file name '..' must be a plain file name"
    (config.input_dir / "out").symlink_to(config.output_dir)
    (config.input_dir / "up.png").symlink_to(config.output_dir / "up.png")
    escape = _error(_upload(client, subfolder="out"), 400)
    assert escape == {"type": "invalid_path", "message": "subfolder leaves its folder",
                      "details": "", "extra_info": {}}  # fmt: skip
    escape = _error(_upload(client, overwrite="true"), 400)
    assert escape["message"] == "image file name leaves its folder"
    assert sorted(p.name for p in config.input_dir.iterdir()) == ["out", "up.png"]
    assert sorted(p.name for p in config.output_dir.iterdir()) == []


@pytest.mark.parametrize("name, subfolder", [(".secret 猫.png", ""), ("..png", ""),
                                           (".hidden", ""), ("up.png", ".cache"),
                                           ("up.png", "a/.b"), ("up.png", "a\\.b")])  # fmt: skip
def test_upload_refuses_a_name_the_folder_lists_would_hide(client, config, name, subfolder):
    """A name or folder starting with "." is one LoadImage's list and the editor's file tabs
    leave out (`paths.hidden`): stored, the editor put it into LoadImage's widget and the run
    was refused (value_not_in_list). Refused, nothing stored."""
    error = _error(_upload(client, name=name, subfolder=subfolder), 400)
    why = "LoadImage's list and the editor's file tabs leave it out, so it could not be chosen"
    if subfolder:
        assert error["type"] == "invalid_path"
        assert error["message"] == (f"subfolder {quoted(subfolder)} has a folder starting with "
                                    f"'.': {why}; give one without")  # fmt: skip
    else:
        assert error["type"] == "invalid_filename"
        assert error["message"] == (f"image file name {quoted(name)} starts with '.': {why}; "
                                    "give it a name without the leading '.'")  # fmt: skip
    assert list(config.input_dir.iterdir()) == []


def _raw_upload(client, route: str, filename: str, subfolder: str = ""):
    """A multipart upload written by hand: the file name's characters as they are (a client
    library escapes some)."""
    field = (f'--b\r\nContent-Disposition: form-data; name="subfolder"\r\n\r\n{subfolder}\r\n'
             if subfolder else "")  # fmt: skip
    body = (field + f'--b\r\nContent-Disposition: form-data; name="image"; filename="{filename}"'
            "\r\nContent-Type: image/png\r\n\r\n").encode() + _png() + b"\r\n--b--\r\n"  # fmt: skip
    return client.post(route, content=body,
                       headers={"Content-Type": "multipart/form-data; boundary=b"})  # fmt: skip


@pytest.mark.parametrize("route", ["/upload/image", "/upload/mask"])
@pytest.mark.parametrize(("name", "subfolder", "said"), [
    ("inj\nINFO latentgraph.server: FAKE LINE.png", "", "a control character, U+000A"),
    ("esc\x1b[31mred.png", "", "a control character, U+001B"),
    ("tab\tx.png", "", "a control character, U+0009"),
    ("bidi\u202egnp.exe", "", "a format character, U+202E"),
    ("up.png", "a\nb", "a control character, U+000A"),
    ("up.png", "ok/\u202ecod", "a format character, U+202E"),
    ("photo\u200d.png", "", "a format character, U+200D"),  # showed as 'photo.png'
    ("up.png", "ok/x\u200dz", "a format character, U+200D"),
    ("ls\u2028x.png", "", "a line separator, U+2028"),
])  # fmt: skip
def test_upload_refuses_a_name_that_would_not_show_as_it_is(client, config, route, name,
                                                             subfolder, said):  # fmt: skip
    """All were stored: `ls` of input/ showed `inj` and a forged log line as two names, LoadImage's
    list an `.exe` reading `bidiexe.png`. Refused as the save nodes' filename_prefix is, one
    rule (`paths.unseen_character`), naming the character."""
    error = _error(_raw_upload(client, route, name, subfolder), 400)
    what, value = ("subfolder", subfolder) if subfolder else ("image file name", name)
    assert error["type"] == ("invalid_path" if subfolder else "invalid_filename")
    assert error["message"] == (f"{what} {quoted(value)} contains {said}; file names cannot hold "
                                "control characters (NUL, newline, ...) nor invisible Unicode "
                                "format characters (bidi overrides, zero-width characters)")  # fmt: skip
    assert error["message"].isprintable()
    assert list(config.input_dir.iterdir()) == []


def test_upload_keeps_a_zero_width_joiner_inside_a_name(client, config):
    """The joiners shape Persian and Indic words and emoji: a name may hold them inside, as a
    filename_prefix may."""
    name = "\U0001f469\u200d\U0001f4bb.png"  # one emoji, joined
    assert _raw_upload(client, "/upload/image", name).json()["name"] == name


@pytest.mark.parametrize("name", ["up.png", "a..png", "猫 .png", "x.png.", "_.png"])
def test_an_uploaded_name_is_one_loadimage_and_the_editor_list(client, config, name):
    """What the upload answers, the editor puts into LoadImage's widget: the dropdown and the
    editor's Imported tab list it."""
    from latentgraph.graph import Settings
    from latentgraph.nodes.input_files import image_names

    stored = _upload(client, name=name).json()["name"]
    assert stored in client.get("/internal/files/input").json()
    if name.lower().endswith(".png"):
        assert stored in image_names(Settings(input_dir=config.input_dir))


@pytest.mark.parametrize("side", [13000, 14000, 60000])
def test_upload_over_the_pixel_limit_is_refused_whatever_its_size(client, config, side):
    """LoadImage and /view would refuse it: refused when uploaded, its header read only (a
    14000x14000 header was 'not an image Pillow can read'; 13000x13000 was stored)."""
    config.max_image_pixels = 4096 * 4096
    r, warned = _without_bomb_warnings(
        lambda: _upload(client, name="big.png", data=header_only_png(side, side)))  # fmt: skip
    assert _error(r, 400) == {
        "type": "image_too_large", "details": "", "extra_info": {},
        "message": f"cannot store a {side}x{side} image: {side * side:,} pixels is over the "
                   "server's limit of 16,777,216 (--max-pixels)"}  # fmt: skip
    assert warned == [] and list(config.input_dir.iterdir()) == []


def test_upload_pixel_limit_at_its_boundary(client, config):
    config.max_image_pixels = 16 * 12
    assert _upload(client, name="fits.png").status_code == 200
    config.max_image_pixels = 16 * 12 - 1
    assert _error(_upload(client, name="over.png"), 400)["message"] == (
        "cannot store a 16x12 image: 192 pixels is over the server's limit of 191 (--max-pixels)")  # fmt: skip
    assert sorted(p.name for p in config.input_dir.iterdir()) == ["fits.png"]


def test_upload_with_an_empty_file_name(client, config):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + _png() + b"\r\n--b--\r\n")  # fmt: skip
    r = client.post("/upload/image", content=body,
                    headers={"Content-Type": "multipart/form-data; boundary=b"})  # fmt: skip
    assert _error(r, 400) == {"type": "invalid_filename", "details": "", "extra_info": {},
                              "message": "image file name '' must be a plain file name"}  # fmt: skip
    assert list(config.input_dir.iterdir()) == []


def test_upload_reads_no_more_than_the_limit(client, config, monkeypatch):
    """An upload is read into memory up to one byte past the limit, never whole."""
    from starlette.datastructures import UploadFile

    asked = []
    real_read = UploadFile.read

    async def read(self, size: int = -1) -> bytes:
        asked.append(size)
        return await real_read(self, size)

    monkeypatch.setattr(UploadFile, "read", read)
    assert _upload(client).status_code == 200
    assert asked == [config.max_upload_bytes + 1]


def test_upload_is_written_beside_its_target_then_renamed(client, config, monkeypatch):
    """The temporary file is in the target folder, so the rename is atomic (one filesystem)."""
    renames = []
    real_replace = os.replace

    def replace(src, dst):
        renames.append((src, dst))
        return real_replace(src, dst)

    monkeypatch.setattr(api_files.os, "replace", replace)
    assert _upload(client, subfolder="sub").status_code == 200
    ((src, dst),) = renames
    assert os.path.dirname(src) == str(config.input_dir / "sub") and dst == (
        config.input_dir / "sub" / "up.png")  # fmt: skip
    assert sorted(os.listdir(config.input_dir / "sub")) == ["up.png"]


def test_upload_without_a_multipart_body(client):
    r = client.post("/upload/image", content=b"{}", headers={"Content-Type": "application/json"})
    assert _error(r, 400)["message"] == "the form needs a file field named 'image'"
    r = client.post("/upload/image", content=b"--x\r\nno headers end",
                    headers={"Content-Type": "multipart/form-data"})  # fmt: skip
    assert _error(r, 400)["message"].startswith("expected a multipart form with an 'image' file: ")


def test_upload_form_limits(client, config):
    two = [("image", ("a.png", _png(), "image/png")), ("image", ("b.png", _png(), "image/png"))]
    r = client.post("/upload/image", files=two)
    assert _error(r, 400)["message"].startswith("expected a multipart form with an 'image' file: ")
    fields = {f"f{i}": "x" for i in range(17)}  # with type, subfolder, overwrite: 20 fields
    assert _upload(client, type="input", subfolder="", overwrite="0", **fields).status_code == 200
    r = _upload(client, name="more.png", type="input", subfolder="", overwrite="0", f17="x",
                **fields)  # fmt: skip
    assert _error(r, 400)["message"].startswith("expected a multipart form with an 'image' file: ")
    assert not (config.input_dir / "more.png").exists()


def test_upload_over_the_body_limit_is_the_guards_413(client, config):
    config.max_upload_bytes = 10**6
    big = os.urandom(config.max_body_bytes + 1)  # refused while read, before any check
    r = _upload(client, name="huge.png", data=big)
    assert _error(r, 413)["message"] == \
        f"request body larger than {config.max_body_bytes} bytes (the server's --max-body-mb)"  # fmt: skip
    assert not (config.input_dir / "huge.png").exists()
    # the guard's body is written as every other error body is (it had spaces after ':' and ',')
    other = client.get("/view", params={"filename": "../x.png"})
    assert b'{"error":{"type":"too_large",' in r.content and b'{"error":{"type":' in other.content


def test_an_upload_removes_the_stale_partial_files_a_killed_upload_left(client, config):
    """An upload killed while it wrote (kill -9) left its `.upload-*` file for good: the next
    upload into that folder removes one older than `STALE_PARTIAL_SECONDS`; a younger one may
    be another upload's at work, and stays."""
    from latentgraph.graph.files import STALE_PARTIAL_SECONDS

    killed, live = ".upload-0123456789abcdef.png", ".upload-fedcba9876543210.png"
    for name, age in ((killed, STALE_PARTIAL_SECONDS + 60), (live, STALE_PARTIAL_SECONDS - 60)):
        (config.input_dir / name).write_bytes(b"half")
        os.utime(config.input_dir / name, (time.time() - age, time.time() - age))
    assert _upload(client).status_code == 200
    assert sorted(os.listdir(config.input_dir)) == [live, "up.png"]


def test_a_failed_write_leaves_no_temporary_file(client, config, monkeypatch):
    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(api_files.os, "replace", fail)
    r = _upload(client)
    assert _error(r, 507)["type"] == "insufficient_storage"
    assert sorted(os.listdir(config.input_dir)) == []


def test_concurrent_uploads_of_one_name_each_keep_their_own_file(config, monkeypatch):
    """Ten different images named image.png at once: ten names, each holding its own bytes.
    The rename is slowed so that, unless choosing the name and renaming are one step, every
    upload finds image.png free before any has been placed."""
    import threading

    real_replace = os.replace

    def slow_replace(src, dst):
        time.sleep(0.05)
        return real_replace(src, dst)

    monkeypatch.setattr(api_files.os, "replace", slow_replace)
    folder = config.input_dir / "race2"
    images = [_png(size=(4 + i, 4)) for i in range(10)]
    start = threading.Barrier(len(images))
    names: dict[int, str] = {}

    def upload(i: int) -> None:
        start.wait()
        _, names[i] = api_files._store_upload(config.input_dir, "race2", "image.png", images[i],
                                              False)  # fmt: skip

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names.values()) == sorted(
        ["image.png"] + [f"image ({n}).png" for n in range(1, 10)])  # fmt: skip
    assert all((folder / names[i]).read_bytes() == images[i] for i in range(len(images)))
    assert sorted(p.name for p in folder.iterdir()) == sorted(names.values())


def test_names_the_filesystem_would_refuse_are_400s_naming_the_field(client, config):
    """Each gave a 500 with the OSError (or RecursionError) and the server's absolute path."""
    (config.input_dir / "ok.png").write_bytes(_png())
    cases = [
        (_upload(client, name="x" * 300 + ".png"), "name_too_long", "image file name 'xxx"),
        (_upload(client, subfolder="ok.png"), "not_a_folder",
         "subfolder 'ok.png' is a file, not a folder"),
        (_upload(client, subfolder="a/" * 2000), "name_too_long", "subfolder 'a/a/"),
        (_upload(client, subfolder="ok.png/b"), "not_a_folder",
         "subfolder 'ok.png/b': 'ok.png' is a file, not a folder"),
        (client.get("/view", params={"filename": "z" * 300 + ".png", "type": "input"}),
         "name_too_long", "filename 'zzz"),
        (client.get("/view", params={"filename": "a.png", "subfolder": "ok.png", "type": "input"}),
         "not_a_folder", "subfolder 'ok.png' is a file, not a folder"),
    ]  # fmt: skip
    for r, type_, start in cases:
        error = _error(r, 400)
        assert error["type"] == type_ and error["message"].startswith(start), error
        assert str(config.data_dir) not in r.text and len(r.text) < 400
    assert sorted(p.name for p in config.input_dir.iterdir()) == ["ok.png"]


def test_a_second_upload_of_a_longest_name_is_numbered_within_the_limit(client, config):
    name = "x" * 249 + ".png"  # 253 bytes: `name (1).png` would be 257
    assert _upload(client, name=name, data=_png(size=(4, 4))).json()["name"] == name
    second = _upload(client, name=name, data=_png(size=(5, 5))).json()["name"]
    assert second == "x" * 247 + " (1).png"
    assert (config.input_dir / second).read_bytes() == _png(size=(5, 5))


def test_view_reads_the_folder_a_filenames_annotation_names_over_the_type(client, config):
    """'x.png [output]' (as ComfyUI's editor names a file) is the output folder's x.png, whatever
    `type` says, as ComfyUI's /view reads it (folder_paths.annotated_filepath); the subfolder
    still applies."""
    for n, folder in enumerate((config.input_dir, config.output_dir, config.temp_dir)):
        (folder / "run").mkdir()
        (folder / "x.png").write_bytes(_png(size=(n + 1, 1)))
        (folder / "run" / "x.png").write_bytes(_png(size=(1, n + 1)))
    r = client.get("/view", params={"filename": "x.png [output]", "type": "input"})
    assert r.status_code == 200 and r.content == (config.output_dir / "x.png").read_bytes()
    r = client.get("/view", params={"filename": "x.png [temp]"})
    assert r.status_code == 200 and r.content == (config.temp_dir / "x.png").read_bytes()
    r = client.get("/view", params={"filename": "x.png [input]", "subfolder": "run"})
    assert r.status_code == 200 and r.content == (config.input_dir / "run" / "x.png").read_bytes()
    missing = _error(client.get("/view", params={"filename": "nope.png [temp]"}), 404)
    assert missing["message"] == "no file 'nope.png' in temp"


def test_a_bad_or_escaping_annotated_filename_is_a_400_naming_it(client, config):
    (config.output_dir / "x.png").write_bytes(_png())
    (config.data_dir / "secret.png").write_bytes(_png())
    for bad in ("x.png [models]", "x.png [Output]"):
        refused = _error(client.get("/view", params={"filename": bad, "type": "output"}), 400)
        annotation = bad.split(" ")[1]
        assert refused == {"type": "invalid_filename", "details": "", "extra_info": {},
                           "message": f"filename {bad!r} ends in the folder annotation "
                           f"{annotation}, which names no folder; expected one of [input], "
                           "[output], [temp]"}  # fmt: skip
    for escaping in ("../secret.png [output]", "../data/secret.png [input]",
                     "/etc/passwd [output]", "run/../../x.png [temp]"):  # fmt: skip
        refused = _error(client.get("/view", params={"filename": escaping}), 400)
        assert refused["type"] == "invalid_path" and refused["message"].startswith("filename ")


def test_view_names_the_subfolder_when_it_is_the_subfolder_that_is_refused(client):
    r = client.get("/view", params={"filename": "secret.txt", "subfolder": ".."})
    error = _error(r, 400)
    assert error["message"] == "subfolder '..' must be a relative path inside its folder"
    r = client.get("/view", params={"filename": "../secret.txt", "subfolder": "a"})
    assert _error(r, 400)["message"].startswith("filename '../secret.txt' ")


NOT_SERVED = ("files and folders starting with '.' are not served (a save's or an upload's "
              "partial file, .saving-*, .upload-*, or one the system keeps)")  # fmt: skip


@pytest.mark.parametrize("kind, subfolder, filename, refused", [
    ("output", "", ".saving-x.png", "filename '.saving-x.png' starts with '.'"),
    ("input", "", ".upload-0123456789abcdef.png",
     "filename '.upload-0123456789abcdef.png' starts with '.'"),
    ("temp", "", ".latentgraph-temp", "filename '.latentgraph-temp' starts with '.'"),
    ("output", "", "run/.saving-x.png", "filename 'run/.saving-x.png' has a name starting with '.'"),
    ("output", "run", ".saving-x.png", "filename '.saving-x.png' starts with '.'"),
    ("output", ".thumbs", "a.png", "subfolder '.thumbs' has a folder starting with '.'"),
])  # fmt: skip
def test_view_refuses_a_partial_write_and_any_name_starting_with_a_dot(client, config, kind,
                                                                       subfolder, filename,
                                                                       refused):  # fmt: skip
    """A save killed while it wrote (kill -9) left output/.saving-x.png, half a PNG, and /view
    served it with 200: a name starting with "." (`paths.hidden`, what the folder lists leave
    out) is a partial write or the system's, refused as a traversal is, with a 400 saying so."""
    path = config.dir_for(kind) / subfolder / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png())
    for params in ({}, {"preview": "webp;50"}, {"channel": "a"}):
        r = client.get("/view", params={"filename": filename, "subfolder": subfolder,
                                        "type": kind, **params})  # fmt: skip
        error = _error(r, 400)
        assert error["message"] == f"{refused}: {NOT_SERVED}"
        assert error["type"] == ("invalid_path" if refused.startswith("subfolder") else
                                 "invalid_filename")  # fmt: skip
    annotated = client.get("/view", params={"filename": f"{filename} [{kind}]",
                                            "subfolder": subfolder})  # fmt: skip
    assert _error(annotated, 400)["message"] == f"{refused}: {NOT_SERVED}"


def test_an_unexpected_os_error_answers_500_without_the_servers_paths(client, config, monkeypatch):
    def fail(src, dst):
        raise FileExistsError(17, "File exists", str(dst))

    monkeypatch.setattr(api_files.os, "replace", fail)
    r = _upload(client)
    assert _error(r, 500) == {"type": "internal_error", "details": "", "extra_info": {},
        "message": "internal error: FileWriteError: File exists (details in the server log)"}  # fmt: skip
    assert str(config.data_dir) not in r.text


def test_a_full_disk_answers_507_without_the_servers_paths(client, config, monkeypatch):
    def fail(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(api_files.os, "replace", fail)
    r = _upload(client)
    assert _error(r, 507)["message"] == (
        "the server cannot store this request: No space left on device")  # fmt: skip


# /internal/files/{directory_type} ----------------------------------------------------------


def _dated(path, data: bytes, mtime: float) -> None:
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


@pytest.mark.parametrize("kind", ["output", "input", "temp"])
def test_internal_files_lists_a_folder_newest_first(client, config, kind):
    folder = config.dir_for(kind)
    _dated(folder / "old.png", b"1", 1_000_000)
    _dated(folder / "new.png", b"2", 3_000_000)
    _dated(folder / "mid.webp", b"3", 2_000_000)
    _dated(folder / "b-tie.png", b"4", 2_000_000)
    r = client.get(f"/internal/files/{kind}")
    assert r.status_code == 200
    assert r.json() == ["new.png", "b-tie.png", "mid.webp", "old.png"]


def test_internal_files_skips_hidden_files_folders_and_outside_links(client, config, tmp_path):
    folder = config.input_dir
    (folder / "a.png").write_bytes(b"a")
    (folder / ".upload-x1").write_bytes(b"partial")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.png").write_bytes(b"d")
    (tmp_path / "secret.txt").write_text("outside")
    (folder / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "inside.png").symlink_to(folder / "a.png")
    (folder / "dangling.png").symlink_to(folder / "gone.png")
    assert sorted(client.get("/internal/files/input").json()) == ["a.png", "inside.png"]


def test_internal_files_of_an_empty_folder_and_an_unknown_type(client, config):
    assert client.get("/internal/files/temp").json() == []
    config.temp_dir.rmdir()
    assert client.get("/internal/files/temp").json() == []
    error = _error(client.get("/internal/files/models"), 400)
    assert error["message"] == "type must be output, input or temp, not 'models'"


# The mask editor: /view?channel= and /upload/mask ------------------------------------------


def _alpha_pattern(size: tuple[int, int] = (16, 12)) -> Image.Image:
    """An RGBA image whose alpha differs from pixel to pixel (0 and 255 among the values)."""
    img = _image("RGBA", size)
    alpha = Image.new("L", size)
    alpha.putdata([(x * 17 + y * 29) % 256 if (x + y) % 5 else 0 for y in range(size[1])
                   for x in range(size[0])])  # fmt: skip
    img.putalpha(alpha)
    return img


def _png_of(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **params)
    return buf.getvalue()


def _decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.copy()


def test_view_channel_rgb_is_the_picture_without_alpha(client, config):
    picture = _alpha_pattern()
    (config.input_dir / "rgba.png").write_bytes(_png_of(picture))
    r = client.get("/view", params={"filename": "rgba.png", "type": "input", "channel": "rgb"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    rgb = _decoded(r.content)
    assert rgb.mode == "RGB" and rgb.size == picture.size
    assert rgb.tobytes() == picture.convert("RGB").tobytes()


def test_view_channel_a_is_the_alpha_alone(client, config):
    picture = _alpha_pattern()
    data = _png_of(picture)
    (config.input_dir / "rgba.png").write_bytes(data)
    r = client.get("/view", params={"filename": "rgba.png", "type": "input", "channel": "a"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.content != data
    alpha = _decoded(r.content)
    assert alpha.mode == "RGBA" and alpha.size == picture.size
    assert alpha.getchannel("A").tobytes() == picture.getchannel("A").tobytes()
    assert alpha.convert("RGB").getextrema() == ((0, 0),) * 3  # the colour is not sent


def test_view_channel_a_of_a_grey_image_with_alpha(client, config):
    picture = _alpha_pattern().convert("LA")
    (config.input_dir / "la.png").write_bytes(_png_of(picture))
    r = client.get("/view", params={"filename": "la.png", "type": "input", "channel": "a"})
    alpha = _decoded(r.content)
    assert alpha.mode == "RGBA"
    assert alpha.getchannel("A").tobytes() == picture.getchannel("A").tobytes()


def test_view_channel_a_of_an_image_without_alpha_is_opaque(client, config):
    (config.output_dir / "rgb.png").write_bytes(_png())
    r = client.get("/view", params={"filename": "rgb.png", "channel": "a"})
    assert r.status_code == 200, r.text
    assert _decoded(r.content).getchannel("A").getextrema() == (255, 255)


@pytest.mark.parametrize("params", [{"channel": "rgba"}, {"channel": ""}, {}])
def test_view_channel_rgba_is_the_file_as_it_is(client, config, params):
    data = _png_of(_alpha_pattern())
    (config.output_dir / "rgba.png").write_bytes(data)
    r = client.get("/view", params={"filename": "rgba.png", **params})
    assert r.status_code == 200 and r.content == data


def test_view_channel_with_a_preview(client, config):
    picture = _alpha_pattern()
    (config.output_dir / "rgba.png").write_bytes(_png_of(picture))
    rgb = client.get("/view", params={"filename": "rgba.png", "channel": "rgb", "preview": "png"})
    assert _decoded(rgb.content).tobytes() == picture.convert("RGB").tobytes()
    a = client.get("/view", params={"filename": "rgba.png", "channel": "a", "preview": "jpeg"})
    assert a.status_code == 200 and a.headers["content-type"] == "image/webp"  # keeps alpha
    with Image.open(io.BytesIO(a.content)) as img:
        assert img.mode == "RGBA"


def test_view_channel_refusals(client, config):
    (config.output_dir / "a.png").write_bytes(_png())
    (config.output_dir / "notes.txt").write_text("not an image")
    r = client.get("/view", params={"filename": "a.png", "channel": "alpha"})
    assert _error(r, 400) == {"type": "invalid_channel", "details": "", "extra_info": {},
                              "message": "channel must be rgba, rgb or a, not 'alpha'"}  # fmt: skip
    r = client.get("/view", params={"filename": "notes.txt", "channel": "a"})
    assert _error(r, 400)["message"].startswith("cannot re-encode this file: ")
    r = client.get("/view", params={"filename": "../x.png", "channel": "a"})
    assert _error(r, 400)["type"] == "invalid_path"
    config.max_image_pixels = 16 * 12 - 1
    r = client.get("/view", params={"filename": "a.png", "channel": "rgb"})
    assert _error(r, 400)["message"] == (
        "no channel 'rgb' of a 16x12 image: 192 pixels is over the server's limit of 191 "
        "(--max-pixels)")  # fmt: skip


def _mask(size: tuple[int, int] = (16, 12)) -> Image.Image:
    """What the mask editor sends: black, its alpha the painted mask."""
    mask = Image.new("RGBA", size)
    mask.putalpha(Image.new("L", size, 255))
    for x in range(size[0] // 2):
        for y in range(size[1]):
            mask.putpixel((x, y), (0, 0, 0, 0 if (x + y) % 3 else 128))
    return mask


def _upload_mask(client, original_ref, name="clipspace-mask-1.png", mask=None, **fields):
    data = _png_of(_mask() if mask is None else mask) if not isinstance(mask, bytes) else mask
    if not isinstance(original_ref, str):
        original_ref = json.dumps(original_ref)
    return client.post("/upload/mask", files={"image": (name, data, "image/png")},
                       data={"original_ref": original_ref, **fields})  # fmt: skip


def test_upload_mask_puts_the_masks_alpha_into_the_original(client, config):
    from PIL.PngImagePlugin import PngInfo

    picture = _image("RGB")
    info = PngInfo()
    info.add_text("workflow", '{"nodes": []}')
    (config.input_dir / "photo.png").write_bytes(_png_of(picture, pnginfo=info))
    ref = {"filename": "photo.png", "subfolder": "", "type": "input"}
    r = _upload_mask(client, ref, type="input", subfolder="clipspace")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "clipspace-mask-1.png", "subfolder": "clipspace", "type": "input"}
    with Image.open(config.input_dir / "clipspace" / "clipspace-mask-1.png") as stored:
        assert stored.format == "PNG" and stored.mode == "RGBA"
        assert stored.text == {"workflow": '{"nodes": []}'}  # the original's chunks are kept
        assert stored.getchannel("A").tobytes() == _mask().getchannel("A").tobytes()
        assert stored.convert("RGB").tobytes() == picture.tobytes()
    again = _upload_mask(client, ref, type="input", subfolder="clipspace")
    assert again.json()["name"] == "clipspace-mask-1.png"  # the same result: not stored twice
    other = _upload_mask(client, ref, mask=_mask().transpose(Image.FLIP_TOP_BOTTOM),
                         type="input", subfolder="clipspace")  # fmt: skip
    assert other.json()["name"] == "clipspace-mask-1 (1).png"  # /upload/image's naming


def test_upload_mask_original_ref_type_defaults_to_output_and_takes_a_subfolder(client, config):
    (config.output_dir / "run").mkdir()
    (config.output_dir / "run" / "o.png").write_bytes(_png_of(_alpha_pattern()))
    r = _upload_mask(client, {"filename": "o.png", "subfolder": "run"})
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "clipspace-mask-1.png", "subfolder": "", "type": "input"}
    with Image.open(config.input_dir / "clipspace-mask-1.png") as stored:
        assert stored.getchannel("A").tobytes() == _mask().getchannel("A").tobytes()


def test_upload_mask_refusals_name_original_ref(client, config):
    (config.input_dir / "photo.png").write_bytes(_png())
    (config.input_dir / "notes.txt").write_text("not an image")
    (config.output_dir / "secret.png").write_bytes(_png())

    def refused(original_ref, **kwargs) -> dict:
        return _error(_upload_mask(client, original_ref, **kwargs), 400)

    missing = refused({"filename": "nope.png", "type": "input"})
    assert missing == {"type": "invalid_original_ref", "details": "", "extra_info": {},
                       "message": "original_ref names no file: 'nope.png' is not in input"}  # fmt: skip
    assert refused({"filename": "nope.png", "subfolder": "a", "type": "temp"})["message"] == (
        "original_ref names no file: 'a/nope.png' is not in temp")  # fmt: skip
    escape = refused({"filename": "../output/secret.png", "type": "input"})
    assert escape["type"] == "invalid_path"
    assert escape["message"].startswith("original_ref filename '../output/secret.png' ")
    escape = refused({"filename": "secret.png", "subfolder": "../output", "type": "input"})
    assert escape["message"].startswith("original_ref subfolder '../output' ")
    assert refused({"filename": "photo.png", "type": "models"})["message"] == (
        "original_ref type must be output, input or temp, not 'models'")  # fmt: skip
    not_json = refused("{filename: photo.png}")
    assert not_json["type"] == "invalid_original_ref"
    assert not_json["message"].startswith("original_ref is not JSON: ")
    assert refused('["photo.png"]')["message"] == (
        "original_ref must be a JSON object with 'filename', 'subfolder' and 'type'")  # fmt: skip
    assert refused({"subfolder": "", "type": "input"})["message"] == (
        "original_ref needs a 'filename'")  # fmt: skip
    assert refused({"filename": 3, "type": "input"})["message"] == (
        "original_ref filename must be a string, not 3")  # fmt: skip
    assert refused({"filename": "notes.txt", "type": "input"})["message"] == (
        "original_ref filename 'notes.txt' is not an image Pillow can read")  # fmt: skip
    absent = _error(client.post("/upload/mask", files={"image": ("m.png", _png(), "image/png")}),
                    400)  # fmt: skip
    assert absent["message"] == ("the form needs a field 'original_ref': JSON naming the masked "
                                 'image ({"filename", "subfolder", "type"})')  # fmt: skip
    ref = {"filename": "photo.png", "type": "input"}
    small = refused(ref, mask=_mask((8, 8)))
    assert small == {"type": "size_mismatch", "details": "", "extra_info": {},
                     "message": "the mask is 8x8 but original_ref's image is 16x12: they must be "
                                "the same size"}  # fmt: skip
    assert refused(ref, name="mask.jpg")["message"] == (
        "image file name 'mask.jpg': a mask is stored as PNG, so the name must end in .png")  # fmt: skip
    assert refused(ref, mask=b"not an image")["type"] == "invalid_image"
    assert sorted(p.name for p in config.input_dir.iterdir()) == ["notes.txt", "photo.png"]


def test_upload_mask_original_ref_naming_a_partial_write_is_refused(client, config):
    """original_ref reads its image and stores it with the mask: naming a killed save's
    output/.saving-x.png (or a folder starting with ".") is refused as /view refuses it."""
    (config.output_dir / ".saving-x.png").write_bytes(_png())
    (config.output_dir / ".run").mkdir()
    (config.output_dir / ".run" / "o.png").write_bytes(_png())
    for ref, type_, message in (
        ({"filename": ".saving-x.png"}, "invalid_filename",
         "original_ref filename '.saving-x.png' starts with '.'"),
        ({"filename": "o.png", "subfolder": ".run"}, "invalid_path",
         "original_ref subfolder '.run' has a folder starting with '.'"),
    ):  # fmt: skip
        error = _error(_upload_mask(client, ref), 400)
        assert error["type"] == type_ and error["message"] == f"{message}: {NOT_SERVED}"
    assert list(config.input_dir.iterdir()) == []


def test_upload_mask_original_ref_filename_annotation_names_its_folder(client, config):
    """original_ref {"filename": "photo.png [input]"} is the input folder's photo.png over
    its `type` (output by default), as ComfyUI's /upload/mask reads it; a bad annotation, or
    one leaving its folder, is a 400 naming original_ref's filename."""
    picture = _alpha_pattern()
    (config.input_dir / "photo.png").write_bytes(_png_of(picture))
    (config.output_dir / "photo.png").write_bytes(_png())
    for ref in ({"filename": "photo.png [input]"},
                {"filename": "photo.png [input]", "subfolder": "", "type": "output"}):  # fmt: skip
        r = _upload_mask(client, ref, name="m.png", overwrite="true")
        assert r.status_code == 200, r.text
        with Image.open(config.input_dir / "m.png") as stored:
            assert stored.convert("RGB").tobytes() == picture.convert("RGB").tobytes()
            assert stored.getchannel("A").tobytes() == _mask().getchannel("A").tobytes()
    bad = _error(_upload_mask(client, {"filename": "photo.png [models]"}), 400)
    assert bad == {"type": "invalid_filename", "details": "", "extra_info": {},
                   "message": "original_ref filename 'photo.png [models]' ends in the folder "
                              "annotation [models], which names no folder; expected one of "
                              "[input], [output], [temp]"}  # fmt: skip
    escape = _error(_upload_mask(client, {"filename": "../output/photo.png [input]"}), 400)
    assert escape["type"] == "invalid_path"
    assert escape["message"].startswith("original_ref filename '../output/photo.png' ")


def _undecodable_png(size: tuple[int, int] = (16, 12)) -> bytes:
    """A PNG whose chunks all check (Pillow's verify passes) but whose pixels do not decode."""
    import struct
    import zlib

    data = _png_of(_mask(size))
    at = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[at - 4 : at])
    body = bytes(b ^ 0x55 for b in data[at + 4 : at + 4 + length])
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + body))
    return data[: at + 4] + body + crc + data[at + 8 + length :]


def test_upload_mask_that_does_not_decode_is_a_400(client, config):
    (config.input_dir / "photo.png").write_bytes(_png())
    r = _upload_mask(client, {"filename": "photo.png", "type": "input"}, mask=_undecodable_png())
    assert _error(r, 400) == {"type": "invalid_image", "details": "", "extra_info": {},
                              "message": "the uploaded file is not an image Pillow can read"}  # fmt: skip
    assert sorted(p.name for p in config.input_dir.iterdir()) == ["photo.png"]


def test_upload_mask_has_the_upload_limits(client, config):
    (config.input_dir / "photo.png").write_bytes(_png())
    ref = {"filename": "photo.png", "type": "input"}
    data = _png_of(_mask())
    config.max_upload_bytes = len(data) - 1
    assert _error(_upload_mask(client, ref, mask=data), 413)["type"] == "too_large"
    config.max_upload_bytes = 4096
    config.max_image_pixels = 16 * 12 - 1
    assert _error(_upload_mask(client, ref), 400)["message"] == (
        "cannot store a 16x12 image: 192 pixels is over the server's limit of 191 "
        "(--max-pixels)")  # fmt: skip
    config.max_image_pixels = 16 * 12
    (config.input_dir / "wide.png").write_bytes(_png(size=(32, 12)))
    assert _error(_upload_mask(client, {"filename": "wide.png", "type": "input"}), 400)[
        "message"] == ("no mask on a 32x12 image: 384 pixels is over the server's limit of 192 "
                       "(--max-pixels)")  # fmt: skip
    (config.input_dir / "huge.png").write_bytes(header_only_png(60000, 60000))
    assert _error(_upload_mask(client, {"filename": "huge.png", "type": "input"}), 400)[
        "message"] == ("no mask on a 60000x60000 image: 3,600,000,000 pixels is over the "
                       "server's limit of 192 (--max-pixels)")  # fmt: skip
    assert _error(_upload_mask(client, ref, subfolder="../x"), 400)["message"].startswith(
        "subfolder '../x' ")  # fmt: skip
    assert sorted(p.name for p in config.input_dir.iterdir()) == ["huge.png", "photo.png",
                                                                   "wide.png"]  # fmt: skip


# One picture for the mask editor, a stored mask and LoadImage: upright by its EXIF
# orientation, 16-bit grayscale at full precision (`graph.pictures`).
EXIF_ORIENTATION = 0x0112


def _sideways_jpeg() -> tuple[bytes, Image.Image]:
    """A phone photo: stored 16x12 with EXIF Orientation 6 (turn 90° clockwise to show it),
    and the 12x16 picture it shows (its decoded pixels so turned, read here by hand)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    buf = io.BytesIO()
    _image("RGB").save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    with Image.open(io.BytesIO(buf.getvalue())) as stored:
        shown = stored.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    assert shown.size == (12, 16)
    return buf.getvalue(), shown


def _sixteen_bit_png() -> tuple[bytes, Image.Image]:
    """A 16-bit grayscale gradient over all of 0..65535 (Pillow's mode I;16), and the 8-bit
    picture it is: each value x 255 / 65535, rounded (what LoadImage's 0..1 is in 8 bits)."""
    import numpy as np

    values = np.linspace(0, 65535, 16 * 12).round().astype(np.uint16).reshape(12, 16)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, format="PNG")
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        assert img.mode == "I;16"
    levels = np.rint(values.astype(np.float64) * 255 / 65535).astype(np.uint8)
    return buf.getvalue(), Image.fromarray(levels, "L").convert("RGB")


def _view(client, filename: str, **params) -> Image.Image:
    r = client.get("/view", params={"filename": filename, "type": "input", **params})
    assert r.status_code == 200, r.text
    with Image.open(io.BytesIO(r.content)) as img:
        assert img.getexif().get(EXIF_ORIENTATION) is None  # shown as it is, nothing to turn
        return img.copy()


def test_view_channels_and_previews_show_an_exif_rotated_photo_upright(client, config):
    """The mask editor opens channel=rgb and channel=a: they were the stored 16x12 pixels
    without the EXIF tag, so it showed a phone photo sideways where the node showed it upright
    (the browser turns the file /view serves as it is)."""
    data, shown = _sideways_jpeg()
    (config.input_dir / "phone.jpg").write_bytes(data)
    rgb = _view(client, "phone.jpg", channel="rgb")
    assert rgb.size == (12, 16) and rgb.tobytes() == shown.tobytes()
    alpha = _view(client, "phone.jpg", channel="a")
    assert alpha.size == (12, 16) and alpha.getchannel("A").getextrema() == (255, 255)
    preview = _view(client, "phone.jpg", preview="png")
    assert preview.size == (12, 16) and preview.convert("RGB").tobytes() == shown.tobytes()
    assert _view(client, "phone.jpg", preview="webp;90").size == (12, 16)


def test_view_channel_rgb_and_the_webp_preview_keep_a_16_bit_gradient(client, config):
    """Pillow's convert("RGB") clips 16-bit values to 255: the mask editor opened on a white
    picture (99.6 % of it 254-255), and so did the webp preview, where LoadImage reads the
    gradient at full precision."""
    import numpy as np

    data, levels = _sixteen_bit_png()
    (config.input_dir / "deep.png").write_bytes(data)
    rgb = _view(client, "deep.png", channel="rgb")
    assert rgb.mode == "RGB" and rgb.tobytes() == levels.tobytes()
    webp = _view(client, "deep.png", preview="webp;90").convert("RGB")
    difference = np.abs(np.asarray(webp, dtype=np.int16) - np.asarray(levels, dtype=np.int16))
    assert difference.mean() < 4, difference.mean()  # lossy, but the gradient (clipped: ~127)


def test_upload_mask_on_an_exif_rotated_photo_is_upright_at_its_upright_size(client, config):
    """The mask is painted on the upright picture /view shows, so it has the upright size:
    that size was refused (size_mismatch), and a mask of the stored size was put onto the
    stored pixels without the tag, a PNG LoadImage then read sideways."""
    data, shown = _sideways_jpeg()
    (config.input_dir / "phone.jpg").write_bytes(data)
    ref = {"filename": "phone.jpg", "type": "input"}
    r = _upload_mask(client, ref, mask=_mask((12, 16)))
    assert r.status_code == 200, r.text
    with Image.open(config.input_dir / r.json()["name"]) as stored:
        assert stored.format == "PNG" and stored.size == (12, 16)
        assert stored.getexif().get(EXIF_ORIENTATION) is None  # upright pixels, no turn left
        assert stored.convert("RGB").tobytes() == shown.tobytes()
        assert stored.getchannel("A").tobytes() == _mask((12, 16)).getchannel("A").tobytes()
    sideways = _error(_upload_mask(client, ref, name="m2.png", mask=_mask((16, 12))), 400)
    assert sideways == {"type": "size_mismatch", "details": "", "extra_info": {},
                        "message": "the mask is 16x12 but original_ref's image is 12x16: they "
                                   "must be the same size"}  # fmt: skip


def test_upload_mask_on_a_16_bit_picture_stores_its_levels(client, config):
    data, levels = _sixteen_bit_png()
    (config.input_dir / "deep.png").write_bytes(data)
    r = _upload_mask(client, {"filename": "deep.png", "type": "input"})
    assert r.status_code == 200, r.text
    with Image.open(config.input_dir / r.json()["name"]) as stored:
        assert stored.convert("RGB").tobytes() == levels.tobytes()  # was almost all white


def test_the_mask_editors_picture_its_stored_mask_and_loadimage_agree(client, config):
    """LoadImage of a phone photo or a 16-bit picture, /view's channel=rgb of it, and LoadImage
    of the mask stored on it are one picture (LoadImage's 0..1 in 8 bits)."""
    import numpy as np

    from latentgraph.graph import CancelToken, Context, Settings
    from latentgraph.nodes.images import load_image

    settings = Settings(input_dir=config.input_dir, output_dir=config.output_dir,
                        temp_dir=config.temp_dir)  # fmt: skip

    def loaded(name: str) -> np.ndarray:
        pixels, _ = load_image(Context("1", "LoadImage", settings, CancelToken()), name)
        return (pixels[0].numpy() * 255).round().astype(np.uint8)

    for name, (data, _) in {"phone.jpg": _sideways_jpeg(), "deep.png": _sixteen_bit_png()}.items():
        (config.input_dir / name).write_bytes(data)
        original = loaded(name)
        assert original.shape == ((16, 12, 3) if name == "phone.jpg" else (12, 16, 3))
        view = np.asarray(_view(client, name, channel="rgb"))
        assert np.array_equal(view, original), name
        mask = _mask((original.shape[1], original.shape[0]))
        r = _upload_mask(client, {"filename": name, "type": "input"}, name=f"m-{name}.png",
                         mask=mask)  # fmt: skip
        assert r.status_code == 200, r.text
        assert np.array_equal(loaded(r.json()["name"]), original), name


# A refused upload in the server's log: the editor's toast shows only the status line.


@pytest.fixture
def refusals(caplog):
    """The log lines of refused uploads, as the server's log and the Logs panel show them."""
    caplog.set_level(logging.WARNING, logger="latentgraph.server")
    return lambda: [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]


def test_a_refused_upload_is_logged_naming_the_file_and_why(client, config, refusals):
    assert _upload(client, name="notes.png", data=b"not an image").status_code == 400
    config.max_image_pixels = 16 * 12 - 1
    assert _upload(client, name="big.png", subfolder="sub").status_code == 400
    assert _upload(client, name=".hidden.png").status_code == 400
    assert refusals() == [
        "upload refused (invalid_image): POST /upload/image 'notes.png' into 'input': the "
        "uploaded file is not an image Pillow can read",
        "upload refused (image_too_large): POST /upload/image 'sub/big.png' into 'input': "
        "cannot store a 16x12 image: 192 pixels is over the server's limit of 191 "
        "(--max-pixels)",
        "upload refused (invalid_filename): POST /upload/image '.hidden.png' into 'input': "
        "image file name '.hidden.png' starts with '.': LoadImage's list and the editor's "
        "file tabs leave it out, so it could not be chosen; give it a name without the "
        "leading '.'",
    ]  # fmt: skip


def test_a_refused_mask_or_form_is_logged_and_a_sent_name_cannot_forge_a_line(client, config,
                                                                               refusals):  # fmt: skip
    (config.input_dir / "photo.png").write_bytes(_png())
    r = _upload_mask(client, {"filename": "photo.png", "type": "input"}, mask=_mask((12, 16)))
    assert _error(r, 400)["type"] == "size_mismatch"
    forged = "x\x1b[2K\u202egnp.png"  # clears the terminal's line, turns the rest around
    assert _upload(client, name=forged).status_code == 400
    assert client.post("/upload/image", data={"image": "a.png"}).status_code == 400
    said = refusals()
    assert said[0] == ("upload refused (size_mismatch): POST /upload/mask 'clipspace-mask-1.png' "
                       "into 'input': the mask is 12x16 but original_ref's image is 16x12: they "
                       "must be the same size")  # fmt: skip
    assert said[1].isprintable()
    assert said[1].startswith("upload refused (invalid_filename): POST /upload/image "
                              "'x\\u001b[2K\\u202egnp.png' into 'input': ")  # fmt: skip
    assert said[2] == ("upload refused (bad_request): POST /upload/image: the form needs a file "
                       "field named 'image'")  # fmt: skip


def test_refusals_show_a_sent_backslash_as_one(client, config):
    """Values the client sent are quoted as sent (`graph.problems.quoted`): repr doubled a
    Windows-style `sub\\x.png`, a name nobody sent."""
    missing = _error(client.get("/view", params={"filename": "sub\\x.png"}), 404)
    assert missing["message"] == "no file 'sub\\x.png' in output"
    bad_type = _error(client.get("/view", params={"filename": "a.png", "type": "out\\put"}), 400)
    assert bad_type["message"] == "type must be output, input or temp, not 'out\\put'"
    (config.output_dir / "a.png").write_bytes(_png())
    channel = _error(client.get("/view", params={"filename": "a.png", "channel": "rg\\b"}), 400)
    assert channel["message"] == "channel must be rgba, rgb or a, not 'rg\\b'"
    preview = _error(client.get("/view", params={"filename": "a.png", "preview": "we\\bp"}), 400)
    assert preview["message"] == "preview format must be webp, jpeg or png, not 'we\\bp'"
    quality = client.get("/view", params={"filename": "a.png", "preview": "png;9\\0"})
    assert _error(quality, 400)["message"] == "preview quality must be an integer, not '9\\0'"
