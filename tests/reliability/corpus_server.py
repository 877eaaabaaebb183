"""Bad HTTP requests: one case each, with the 4xx status (and error type) the server must give.

The server under test runs the real node types plus the toy nodes of tests/server (Number, Add,
Slow, Fail, Show), with small limits (see test_server_corpus.SERVER_LIMITS).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Req:
    id: str
    method: str
    path: str
    status: int
    type: str | None = None
    json: Any = None
    content: bytes | None = None
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None  # must appear in error.message


def toy(value: Any = 1, **more: Any) -> dict:
    """Number -> Add -> Show, with extra/replaced nodes."""
    p = {
        "1": {"class_type": "Number", "inputs": {"value": value}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["1", 0]}},
        "9": {"class_type": "Show", "inputs": {"x": ["2", 0], "prefix": "corpus"}},
    }
    p.update(more)
    return p


def body(prompt: Any, **extra: Any) -> dict:
    return {"prompt": prompt, "client_id": "corpus", **extra}


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0,
            0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def slow(steps: Any = 2, delay: Any = 0.0) -> dict:
    return toy(1, **{"3": {"class_type": "Slow", "inputs": {"x": ["2", 0], "steps": steps,
                                                             "delay": delay}},
                     "9": {"class_type": "Show", "inputs": {"x": ["3", 0]}}})  # fmt: skip


def _up(name: str, data: bytes, **form: str) -> dict:
    return {"files": {"image": (name, io.BytesIO(data), "image/png")}, "data": form}


SD = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64,
                                                       "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["4", 1]}},
    "7": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 1, "steps": 2,
          "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "positive": ["6", 0],
          "negative": ["6", 0], "latent_image": ["5", 0], "denoise": 1.0}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["4", 2]}},
    "10": {"class_type": "SaveImage", "inputs": {"images": ["8", 0],
                                                 "filename_prefix": "corpus"}},
}  # fmt: skip


def sd(node: str, **inputs: Any) -> dict:
    prompt = json.loads(json.dumps(SD))
    prompt[node]["inputs"].update(inputs)
    return prompt


def load_image(image: str) -> dict:
    """LoadImage of `image` -> SaveImage."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
    }


P, INV, FAILED = "/prompt", "invalid_prompt", "prompt_outputs_failed_validation"

CASES: list[Req] = [
    # --- POST /prompt bodies ---------------------------------------------------------------
    Req("prompt-not-json", "POST", P, 400, "invalid_json", content=b"{nope"),
    Req("prompt-empty-body", "POST", P, 400, "invalid_json", content=b""),
    Req("prompt-binary-body", "POST", P, 400, "invalid_json", content=b"\xff\xfe\x00\x01"),
    # an integer past Python's 4,300-digit conversion limit: a ValueError, not a JSON error
    Req(
        "prompt-huge-integer",
        "POST",
        P,
        400,
        "invalid_json",
        message="4300 digits",
        content=b'{"prompt": {"1": {"class_type": "T", "inputs": {"a": ' + b"9" * 5000 + b"}}}}",
    ),
    Req("settings-huge-integer", "POST", "/settings/x", 400, "invalid_json", content=b"9" * 5000),
    Req("prompt-body-list", "POST", "/api/prompt", 400, INV, json=[1, 2]),
    Req("prompt-missing", "POST", P, 400, "no_prompt", json={"client_id": "x"}),
    Req("prompt-empty-object", "POST", P, 400, "no_prompt", json=body({})),
    Req("prompt-is-string", "POST", P, 400, "no_prompt", json=body("Number")),
    Req("node-is-string", "POST", P, 400, INV, json=body({"1": "Number"})),
    Req("missing-class-type", "POST", P, 400, INV, json=body(toy(1, **{"5": {"inputs": {}}}))),
    Req(
        "class-type-not-string",
        "POST",
        P,
        400,
        INV,
        json=body(toy(1, **{"5": {"class_type": 7, "inputs": {}}})),
    ),  # fmt: skip
    Req(
        "unknown-class",
        "POST",
        P,
        400,
        "missing_node_type",  # ComfyUI's type for it: the editor lists the missing nodes
        json=body(toy(1, **{"5": {"class_type": "Nope", "inputs": {}}})),
    ),  # fmt: skip
    Req(
        "inputs-not-object",
        "POST",
        P,
        400,
        None,
        json=body(toy(1, **{"2": {"class_type": "Add", "inputs": [1, 2]}})),
    ),  # fmt: skip
    Req(
        "link-one-element",
        "POST",
        P,
        400,
        FAILED,
        json=body(toy(1, **{"2": {"class_type": "Add", "inputs": {"a": ["1"], "b": ["1", 0]}}})),
    ),
    Req(
        "link-three-elements",
        "POST",
        P,
        400,
        FAILED,
        json=body(
            toy(1, **{"2": {"class_type": "Add", "inputs": {"a": ["1", 0, 0], "b": ["1", 0]}}})
        ),
    ),  # fmt: skip
    Req(
        "link-string-index",
        "POST",
        P,
        400,
        FAILED,
        json=body(
            toy(1, **{"2": {"class_type": "Add", "inputs": {"a": ["1", "0"], "b": ["1", 0]}}})
        ),
    ),  # fmt: skip
    Req(
        "link-missing-node",
        "POST",
        P,
        400,
        FAILED,
        json=body(
            toy(1, **{"2": {"class_type": "Add", "inputs": {"a": ["77", 0], "b": ["1", 0]}}})
        ),
    ),  # fmt: skip
    Req(
        "link-bad-index",
        "POST",
        P,
        400,
        FAILED,
        json=body(toy(1, **{"2": {"class_type": "Add", "inputs": {"a": ["1", 5], "b": ["1", 0]}}})),
    ),  # fmt: skip
    Req(
        "self-link",
        "POST",
        P,
        400,
        None,
        json=body(toy(1, **{"2": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": ["1", 0]}}})),
    ),  # fmt: skip
    Req(
        "cycle",
        "POST",
        P,
        400,
        None,
        json=body(
            toy(
                1,
                **{
                    "2": {"class_type": "Add", "inputs": {"a": ["3", 0], "b": ["1", 0]}},
                    "3": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": ["1", 0]}},
                },
            )
        ),
    ),  # fmt: skip
    Req(
        "missing-required",
        "POST",
        P,
        400,
        FAILED,
        json=body(toy(1, **{"2": {"class_type": "Add", "inputs": {"a": ["1", 0]}}})),
    ),
    Req("literal-wrong-type", "POST", P, 400, FAILED, json=body(toy("seven"))),
    Req("literal-list", "POST", P, 400, FAILED, json=body(toy([1, 2, 3]))),
    Req("literal-object", "POST", P, 400, FAILED, json=body(toy({"a": 1}))),
    Req("literal-text-for-int", "POST", P, 400, FAILED, json=body(toy("true"))),
    Req("literal-decimal-text-for-int", "POST", P, 400, FAILED, json=body(toy("1.5"))),
    Req("literal-too-big", "POST", P, 400, FAILED, json=body(toy(10**30))),
    Req("negative-steps", "POST", P, 400, FAILED, json=body(slow(steps=-3))),
    Req("steps-over-limit", "POST", P, 400, FAILED, json=body(slow(steps=5000))),
    Req(
        "nan-literal",
        "POST",
        P,
        400,
        "invalid_json",
        content=json.dumps(body(slow(delay=float("nan")))).encode(),
        message="prompt.3.inputs.delay",
    ),  # fmt: skip
    Req(
        "nan-in-extra-data",
        "POST",
        P,
        400,
        "invalid_json",
        content=json.dumps(body(toy(), extra_data={"x": [float("nan")]})).encode(),
        message="extra_data.x.0",
    ),  # fmt: skip
    Req("nan-in-settings", "POST", "/settings", 400, "invalid_json", content=b'{"a": NaN}'),
    Req(
        "nan-in-run-params",
        "POST",
        "/latentgraph/run",
        400,
        "invalid_json",
        content=b'{"workflow": "version: 1", "params": {"g": -Infinity}}',
        headers={"content-type": "application/json"},
    ),  # fmt: skip
    Req(
        "infinity-literal",
        "POST",
        P,
        400,
        "invalid_json",
        content=json.dumps(body(slow(delay=float("inf")))).encode(),
    ),  # fmt: skip
    Req(
        "huge-exponent",
        "POST",
        P,
        400,
        "invalid_json",
        content=json.dumps(body(slow(delay=0))).replace('"delay": 0', '"delay": 1e999').encode(),
    ),
    Req("sd-width-zero", "POST", P, 400, FAILED, json=body(sd("5", width=0))),
    Req("sd-width-100000", "POST", P, 400, FAILED, json=body(sd("5", width=100000))),
    Req(
        "sd-pixels-over-limit", "POST", P, 400, FAILED, json=body(sd("5", width=2048, height=2048))
    ),  # fmt: skip
    Req("sd-batch-10000", "POST", P, 400, FAILED, json=body(sd("5", batch_size=10000))),
    Req(
        "sd-cfg-nan",
        "POST",
        P,
        400,
        "invalid_json",
        content=json.dumps(body(sd("7", cfg=float("nan")))).encode(),
    ),  # fmt: skip
    Req("sd-steps-negative", "POST", P, 400, FAILED, json=body(sd("7", steps=-1))),
    Req("sd-ckpt-traversal", "POST", P, 400, FAILED, json=body(sd("4", ckpt_name="../x"))),
    Req(
        "sd-ckpt-absolute", "POST", P, 400, FAILED, json=body(sd("4", ckpt_name="/etc/passwd"))
    ),  # fmt: skip
    Req(
        "sd-ckpt-pickle", "POST", P, 400, FAILED, json=body(sd("4", ckpt_name="model.ckpt"))
    ),  # fmt: skip
    Req(
        "sd-load-image-traversal",
        "POST",
        P,
        400,
        FAILED,
        json=body(load_image("../../server.sqlite3")),
    ),  # fmt: skip
    Req(
        "sd-sampler-unknown", "POST", P, 400, FAILED, json=body(sd("7", sampler_name="rm -rf"))
    ),  # fmt: skip
    Req("client-id-not-string", "POST", P, 400, INV, json={"prompt": toy(), "client_id": 5}),
    Req("prompt-id-not-string", "POST", P, 400, INV, json=body(toy(), prompt_id=["x"])),
    Req("prompt-id-too-long", "POST", P, 400, INV, json=body(toy(), prompt_id="x" * 500)),
    Req("number-not-number", "POST", P, 400, INV, json=body(toy(), number="first")),
    Req("extra-data-not-object", "POST", P, 400, INV, json=body(toy(), extra_data=[1])),
    Req(
        "targets-not-list", "POST", P, 400, INV, json=body(toy(), partial_execution_targets="9")
    ),  # fmt: skip
    Req(
        "targets-unknown-node",
        "POST",
        P,
        400,
        INV,
        json=body(toy(), partial_execution_targets=["404"]),
    ),  # fmt: skip
    Req(
        "no-output-node",
        "POST",
        P,
        400,
        "prompt_no_outputs",
        json=body({"1": {"class_type": "Number", "inputs": {"value": 1}}}),
    ),  # fmt: skip
    Req(
        "deep-nested-literal",
        "POST",
        P,
        400,
        "invalid_json",
        content=(
            b'{"prompt": {"1": {"class_type": "Number", "inputs": {"value": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}}}}"
        ),
    ),  # fmt: skip
    Req("body-too-large", "POST", P, 413, "too_large", content=b"x" * 1_100_000),
    Req(
        "body-too-large-chunked",
        "POST",
        P,
        413,
        "too_large",
        content=None,
        headers={"x-chunked": "1"},
    ),  # fmt: skip
    Req(
        "latentgraph-run-bad-yaml",
        "POST",
        "/latentgraph/run",
        400,
        None,
        content=b"version: 1\nnodes: [",
        headers={"content-type": "application/yaml"},
    ),
    Req(
        "latentgraph-run-alias-bomb",
        "POST",
        "/latentgraph/run",
        400,
        None,
        content=b"version: 1\na: &a [1, 1]\nb: [*a, *a]\nnodes: {}\n",
        headers={"content-type": "application/yaml"},
    ),  # fmt: skip
    # --- /view -------------------------------------------------------------------------------
    Req("view-no-filename", "GET", "/view", 400),
    Req("view-dotdot", "GET", "/view?filename=../server.sqlite3", 400, "invalid_path"),
    Req("view-dotdot-encoded", "GET", "/view?filename=%2e%2e%2fserver.sqlite3", 400),
    Req("view-absolute", "GET", "/view?filename=/etc/passwd", 400),
    Req("view-backslash", "GET", "/view?filename=..%5C..%5Cserver.sqlite3", 400),
    Req("view-subfolder-dotdot", "GET", "/view?filename=server.sqlite3&subfolder=..", 400),
    Req("view-subfolder-absolute", "GET", "/view?filename=passwd&subfolder=/etc", 400),
    Req("view-type-traversal", "GET", "/view?filename=server.sqlite3&type=../", 400),
    Req("view-type-unknown", "GET", "/view?filename=x.png&type=models", 400),
    Req("view-nul", "GET", "/view?filename=x%00.png", 400),
    Req("view-drive", "GET", "/view?filename=C:%5Cwindows%5Cwin.ini", 400),
    Req("view-missing-file", "GET", "/view?filename=nothing.png", 404, "not_found"),
    Req("view-bad-preview", "GET", "/view?filename=seed.png&type=input&preview=bmp;9", 400),
    Req("view-api-dotdot", "GET", "/api/view?filename=../../etc/passwd", 400),
    # --- /upload/image ---------------------------------------------------------------------
    Req(
        "upload-not-image",
        "POST",
        "/upload/image",
        400,
        "invalid_image",
        **_up("a.png", b"just text"),
    ),  # fmt: skip
    Req(
        "upload-lying-png-header",
        "POST",
        "/upload/image",
        400,
        "invalid_image",
        **_up("b.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
    ),  # fmt: skip
    Req(
        "upload-truncated-png",
        "POST",
        "/upload/image",
        400,
        "invalid_image",
        **_up("c.png", png(64, 64)[:60]),
    ),  # fmt: skip
    Req(
        "upload-html-as-png",
        "POST",
        "/upload/image",
        400,
        "invalid_image",
        **_up("d.png", b"<html><script>alert(1)</script></html>"),
    ),  # fmt: skip
    Req(
        "upload-too-large",
        "POST",
        "/upload/image",
        413,
        "too_large",
        **_up("e.png", png() + b"\0" * 300_000),
    ),  # fmt: skip
    Req(
        "upload-name-traversal", "POST", "/upload/image", 400, None, **_up("../evil.png", png())
    ),  # fmt: skip
    Req(
        "upload-name-absolute", "POST", "/upload/image", 400, None, **_up("/tmp/evil.png", png())
    ),  # fmt: skip
    Req("upload-name-empty", "POST", "/upload/image", 400, None, **_up("", png())),
    Req(
        "upload-subfolder-traversal",
        "POST",
        "/upload/image",
        400,
        "invalid_path",
        **_up("f.png", png(), subfolder="../../.."),
    ),  # fmt: skip
    Req(
        "upload-subfolder-absolute",
        "POST",
        "/upload/image",
        400,
        "invalid_path",
        **_up("g.png", png(), subfolder="/tmp"),
    ),  # fmt: skip
    Req(
        "upload-type-unknown",
        "POST",
        "/upload/image",
        400,
        "invalid_type",
        **_up("h.png", png(), type="../users"),
    ),  # fmt: skip
    Req(
        "upload-not-multipart",
        "POST",
        "/upload/image",
        400,
        None,
        content=b"raw bytes",
        headers={"content-type": "application/octet-stream"},
    ),  # fmt: skip
    Req(
        "upload-bad-boundary",
        "POST",
        "/upload/image",
        400,
        None,
        content=b"--x\r\ngarbage",
        headers={"content-type": "multipart/form-data; boundary=x"},
    ),  # fmt: skip
    Req(
        "upload-no-image-field",
        "POST",
        "/upload/image",
        400,
        None,
        files={"file": ("a.png", io.BytesIO(png()), "image/png")},
    ),  # fmt: skip
    # --- /userdata and settings ------------------------------------------------------------
    Req("userdata-get-dotdot", "GET", "/userdata/..%2F..%2Fserver.sqlite3", 400),
    Req("userdata-get-dotdot-plain", "GET", "/api/userdata/%2e%2e/%2e%2e/server.sqlite3", 400),
    Req(
        "userdata-post-dotdot", "POST", "/userdata/..%2F..%2F..%2Fevil.json", 400, content=b"{}"
    ),  # fmt: skip
    Req("userdata-post-absolute", "POST", "/userdata/%2Ftmp%2Fevil.json", 400, content=b"{}"),
    Req("userdata-post-nul", "POST", "/userdata/a%00.json", 400, content=b"{}"),
    Req("userdata-delete-dotdot", "DELETE", "/userdata/..%2F..%2Fserver.sqlite3", 400),
    Req("userdata-move-out", "POST", "/userdata/workflows%2Fa.json/move/..%2F..%2Fa.json", 400),
    Req("userdata-list-dotdot", "GET", "/userdata?dir=../..", 400),
    Req("userdata-empty-path", "POST", "/userdata/", 400, content=b"{}"),
    Req("settings-not-object", "POST", "/settings", 400, json=[1, 2]),
    Req("settings-not-json", "POST", "/settings", 400, "invalid_json", content=b"{"),
    # --- queue, history, interrupt -----------------------------------------------------------
    Req("queue-delete-not-list", "POST", "/queue", 400, json={"delete": "abc"}),
    Req("queue-not-object", "POST", "/queue", 400, json=[1]),
    Req("history-max-items-text", "GET", "/history?max_items=lots", 400),
    Req("history-not-json", "POST", "/history", 400, content=b"{"),
    Req("interrupt-not-json", "POST", "/interrupt", 400, content=b"{"),
    Req("free-not-json", "POST", "/free", 400, content=b"{"),
    Req("unknown-route", "GET", "/no/such/route", 404),
    Req("wrong-method", "DELETE", "/prompt", 405),
    # --- issue 11: found by probing the server from outside -----------------------------------
    # DNS rebinding: a Host that is not ours, with an Origin that matches it.
    *[
        Req(
            f"host-not-ours-{m.lower()}-{path.strip('/').split('?')[0].replace('/', '-')}",
            m,
            path,
            403,
            "forbidden_host",
            headers={"host": "evil.example:8188", "origin": "http://evil.example:8188"},
            json=content,
            message="--allow-host evil.example",
        )
        for m, path, content in (
            ("POST", P, body(toy())),
            ("GET", "/history", None),
            ("GET", "/view?filename=seed.png&type=input", None),
            ("GET", "/userdata?dir=", None),
            ("POST", "/userdata/w.json", {"a": 1}),
        )
    ],  # fmt: skip
    Req(
        "host-look-alike",
        "GET",
        "/queue",
        403,
        "forbidden_host",
        headers={"host": "127.0.0.1.evil.example"},
    ),  # fmt: skip
    Req("host-malformed", "GET", "/queue", 403, "forbidden_host", headers={"host": "[::1"}),
    # Lone surrogates: accepted, they broke every later /queue, /history, /jobs and /settings.
    Req(
        "prompt-lone-surrogate",
        "POST",
        P,
        400,
        "invalid_json",
        content=json.dumps(body(toy())).replace('"corpus"}', '"\\ud800"}', 1).encode(),
        message="prompt.9.inputs.prefix",
    ),  # fmt: skip
    Req(
        "prompt-lone-low-surrogate-key",
        "POST",
        P,
        400,
        "invalid_json",
        content=b'{"prompt": {"1": {"class_type": "Number", "inputs": {"\\udc00": 1}}}}',
        message="prompt.1.inputs",
    ),  # fmt: skip
    Req(
        "extra-data-lone-surrogate",
        "POST",
        P,
        400,
        "invalid_json",
        content=json.dumps(body(toy(), extra_data={"x": "SUR"})).replace("SUR", "\\udfff").encode(),
        message="extra_data.x",
    ),  # fmt: skip
    Req(
        "settings-lone-surrogate",
        "POST",
        "/settings",
        400,
        "invalid_json",
        content=b'{"Comfy.Name": "a\\ud800b"}',
        message="Comfy.Name",
    ),  # fmt: skip
    Req(
        "setting-lone-surrogate",
        "POST",
        "/settings/Comfy.Name",
        400,
        "invalid_json",
        content=b'"\\ud800"',
    ),  # fmt: skip
    # Numbers beyond SQLite's integers.
    Req("number-1e300", "POST", P, 400, INV, json=body(toy(), number=1e300)),
    Req("number-2-pow-63", "POST", P, 400, INV, json=body(toy(), number=2**63)),
    Req("number-below-int64", "POST", P, 400, INV, json=body(toy(), number=-(2**63) - 1)),
    Req("history-offset-overflow", "GET", "/history?offset=99999999999999999999", 400),
    Req("history-max-items-overflow", "GET", "/history?max_items=99999999999999999999", 400),
    Req("jobs-offset-overflow", "GET", "/jobs?offset=99999999999999999999", 400),
    Req("jobs-offset-huge-digits", "GET", "/jobs?offset=" + "9" * 5000, 400),
    # Sizes (the corpus server's limits: 1,000 characters, 20,000 bytes of extra_data).
    Req(
        "string-over-limit",
        "POST",
        P,
        400,
        FAILED,
        json=body(
            toy(1, **{"9": {"class_type": "Show", "inputs": {"x": ["2", 0], "prefix": "p" * 1001}}})
        ),
    ),  # fmt: skip
    Req(
        "string-over-limit-in-list",
        "POST",
        P,
        400,
        FAILED,
        json=body(toy(1, **{"5": {"class_type": "Number", "inputs": {"value": ["x" * 1001]}}})),
    ),  # fmt: skip
    Req(
        "node-id-over-limit",
        "POST",
        P,
        400,
        FAILED,
        json=body(toy(1, **{"n" * 1001: {"class_type": "Number", "inputs": {"value": 1}}})),
    ),  # fmt: skip
    Req(
        "extra-data-over-limit",
        "POST",
        P,
        413,
        "too_large",
        json=body(toy(), extra_data={"extra_pnginfo": {"workflow": {"x": "w" * 20_000}}}),
    ),  # fmt: skip
    # SaveImage prefixes that fail only when the image is written.
    Req("sd-prefix-dot", "POST", P, 400, FAILED, json=body(sd("10", filename_prefix="."))),
    Req("sd-prefix-sub-dot", "POST", P, 400, FAILED, json=body(sd("10", filename_prefix="a/."))),
    Req("sd-prefix-nul", "POST", P, 400, FAILED, json=body(sd("10", filename_prefix="a\x00b"))),
    Req("sd-prefix-newline", "POST", P, 400, FAILED, json=body(sd("10", filename_prefix="a\nb"))),
    Req("sd-prefix-300", "POST", P, 400, FAILED, json=body(sd("10", filename_prefix="x" * 300))),
    # ... and ones the run saved where /view serves nothing (a name starting with '.', more
    # folders than a subfolder may have).
    Req("sd-prefix-hidden", "POST", P, 400, FAILED, json=body(sd("10", filename_prefix=".x"))),
    Req(
        "sd-prefix-deep",
        "POST",
        P,
        400,
        FAILED,
        json=body(sd("10", filename_prefix="a/" * 40 + "x")),
    ),
    # ... and ones validation said ok to: the run refused them (test_server_corpus.py makes the
    # links: output/ldir and input/link2.png lead out of their folders).
    *[
        Req(
            f"sd-prefix-{name}", "POST", P, 400, FAILED, json=body(sd("10", filename_prefix=prefix))
        )
        for name, prefix in (
            ("date-dotdot", "%date:..%/escaped"),
            ("date-dotdot-2", "%date:../..%/x"),
            ("dates-dotdot", "x/%date:..%/%date:..%/y"),
            ("linked-out", "ldir/pwn7"),
        )
    ],  # fmt: skip
    Req(
        "sd-load-image-linked-out",
        "POST",
        P,
        400,
        FAILED,
        json=body(load_image("link2.png")),
    ),  # fmt: skip
    # Origins that do not parse, or name another scheme.
    *[
        Req(
            f"origin-{name}",
            "POST",
            P,
            403,
            "forbidden",
            json=body(toy()),
            headers={"origin": origin},
        )
        for name, origin in (
            ("port-99999", "http://x:99999"),
            ("port-abc", "http://x:abc"),
            ("ipv6-unclosed", "http://[::1"),
            ("no-host", "http://"),
            ("scheme-ftp", "ftp://127.0.0.1"),
        )
    ],  # fmt: skip
    # Pixels checked before decoding (the corpus server's limit is 512x512).
    Req(
        "view-preview-too-many-pixels",
        "GET",
        "/view?filename=big.png&type=input&preview=webp;50",
        400,
        "image_too_large",
    ),  # fmt: skip
]
