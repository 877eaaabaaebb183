"""Bad workflow files for the CLI: one case per file, each with what the error must name.

`expect` holds regular expressions that must all match the CLI's stderr; `{file}` stands for
the case file's name (so a case can require `file:line`). Every case must exit with code 2 and
print no traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

BASE = """\
version: 1
params:
  seed: 1
nodes:
  model:
    type: LoadModel
  pos:
    type: TextEncode
    clip: model.clip
    text: a fox
  neg:
    type: TextEncode
    clip: model.clip
    text: blurry
  noise:
    type: LatentNoise
    vae: model.vae
    width: 64
    height: 64
    batch_size: 1
    seed: $seed
  sampler:
    type: SchedulerSelect
    scheduler: model.scheduler
    name: euler
  denoise:
    type: UNetDenoise
    unet: model.unet
    scheduler: sampler
    positive: pos
    negative: neg
    latent: noise
    steps: 2
    guidance: 7.5
    seed: 1
  decode:
    type: VAEDecode
    vae: model.vae
    samples: denoise
  save:
    type: SaveImage
    images: decode
    filename_prefix: corpus
"""


def swap(old: str, new: str, text: str = BASE) -> str:
    """BASE with one line replaced (the old text must be there: a typo fails loudly)."""
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


@dataclass(frozen=True)
class CliCase:
    id: str
    content: bytes | str
    expect: tuple[str, ...]
    suffix: str = ".yaml"
    command: str = "validate"
    args: tuple[str, ...] = ()
    files: tuple[tuple[str, bytes], ...] = ()  # written next to the workflow (the cwd)

    def data(self) -> bytes:
        return self.content if isinstance(self.content, bytes) else self.content.encode()


def _at(text: str, fragment: str) -> str:
    """Regex: `{file}:<line of fragment>`."""
    return "{file}:" + str(line_of(text, fragment)) + r"\b"


def _alias_bomb() -> str:
    rows = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        rows.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    rows.append("nodes: {}")
    return "\n".join(rows) + "\n"


def _api(prompt: dict) -> str:
    return json.dumps(prompt, indent=1)


_API_OK = {
    "1": {"class_type": "LoadModel", "inputs": {}},
    "2": {"class_type": "TextEncode", "inputs": {"clip": ["1", 1], "text": "a"}},
    "3": {"class_type": "LatentNoise", "inputs": {"width": 64, "height": 64, "seed": 0}},
    "4": {"class_type": "SchedulerSelect", "inputs": {"scheduler": ["1", 3], "name": "euler"}},
    "5": {"class_type": "UNetDenoise", "inputs": {"unet": ["1", 0], "scheduler": ["4", 0],
          "positive": ["2", 0], "negative": ["2", 0], "latent": ["3", 0], "steps": 2}},
    "6": {"class_type": "VAEDecode", "inputs": {"vae": ["1", 2], "samples": ["5", 0]}},
    "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "api"}},
}  # fmt: skip


def _api_with(node: str, **inputs) -> str:
    prompt = json.loads(json.dumps(_API_OK))
    prompt[node]["inputs"].update(inputs)
    return _api(prompt)


def _deep_block(depth: int) -> str:
    lines = ["version: 1", "nodes:", "  a:", "    type: LatentNoise", "    width:"]
    for i in range(depth):
        lines.append("  " * (i + 3) + f"k{i}:")
    lines.append("  " * (depth + 3) + "end")
    return "\n".join(lines) + "\n"


# A pickle that runs `touch PWNED` in the current folder if anything ever unpickles it.
PICKLE_BOMB = b"cos\nsystem\n(S'touch PWNED'\ntR."
# safetensors: 8-byte little-endian header length, JSON header, data. This one promises 4096
# bytes of tensor data and stops after 16.
_HEADER = b'{"w": {"dtype": "F32", "shape": [32, 32], "data_offsets": [0, 4096]}}'
TRUNCATED = len(_HEADER).to_bytes(8, "little") + _HEADER + b"\0" * 16
HEADER_LIES = (2**62).to_bytes(8, "little") + b"{}"
RUN_ARGS = ("--no-cache", "-q", "--output-dir", "output", "--input-dir", "input")


def _model_case(id_: str, source: str, data: bytes | None, message: str) -> CliCase:
    """A run whose LoadModel points at `source` (written with `data` when given)."""
    text = swap("    type: LoadModel\n", f"    type: LoadModel\n    source: {source}\n")
    files: tuple[tuple[str, bytes], ...] = ((source, data),) if data is not None else ()
    if source == "somefolder":
        files = (("somefolder/readme.txt", b"not a model"),)
    return CliCase(id_, text, ("'model'", "source", message), command="run", args=RUN_ARGS,
                   files=files)  # fmt: skip


CASES: list[CliCase] = [
    # --- syntax and encoding -----------------------------------------------------------
    CliCase("yaml-unclosed-flow", "version: 1\nnodes:\n  a: [\n", (r"{file}:\d+", "YAML")),
    CliCase(
        "yaml-bad-indent",
        swap("    type: LoadModel\n", "    type: LoadModel\n   x: 1\n"),
        (r"{file}:\d+",),
    ),  # fmt: skip
    CliCase("yaml-tab-indent", "version: 1\nnodes:\n\ta:\n\t\ttype: LoadModel\n", (r"{file}:3",)),
    CliCase(
        "yaml-unclosed-quote", swap("    text: a fox\n", '    text: "a fox\n'), (r"{file}:\d+",)
    ),  # fmt: skip
    CliCase("yaml-alias-bomb", _alias_bomb(), (r"{file}:3", "alias")),
    CliCase(
        "yaml-simple-alias", swap("    text: blurry\n", "    text: *x\n"), (r"{file}:\d+", "alias")
    ),  # fmt: skip
    CliCase(
        "yaml-python-tag",
        swap("    text: a fox\n", "    text: !!python/object/apply:os.system [echo hi]\n"),
        (r"{file}:\d+",),
    ),  # fmt: skip
    CliCase(
        "yaml-deep-flow",
        "version: 1\nnodes:\n  a:\n    type: X\n    w: " + "[" * 3000 + "]" * 3000 + "\n",
        (r"{file}:5", "nested"),
    ),  # fmt: skip
    CliCase("yaml-deep-block", _deep_block(80), (r"{file}:\d+", "nested")),
    CliCase(
        "json-deep",
        '{"version": 1, "nodes": ' + '{"a": ' * 3000 + "1" + "}" * 3000 + "}",
        (r"{file}", "nested"),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "yaml-duplicate-node",
        BASE + "  save:\n    type: SaveImage\n",
        ("{file}:" + str(BASE.count("\n") + 1), "'save'"),
    ),  # fmt: skip
    CliCase(
        "yaml-duplicate-input",
        swap("    steps: 2\n", "    steps: 2\n    steps: 3\n"),
        ("{file}:" + str(line_of(BASE, "    steps: 2\n") + 1), "steps"),
    ),  # fmt: skip
    CliCase(
        "json-duplicate-key",
        '{"version": 1, "nodes": {"a": {"type": "LoadModel"}, "a": {"type": "LoadModel"}}}',
        (r"{file}", "'a'"),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "non-utf8-latin1",
        swap("    text: a fox\n", "    text: caf\xe9\n").encode("latin-1"),
        (_at(BASE, "    text: a fox\n"), "UTF-8"),
    ),  # fmt: skip
    CliCase("non-utf8-binary", b"\x00\xff\xfe\x00garbage\x80\x81", (r"{file}",)),
    CliCase("utf16", BASE.encode("utf-16"), (r"{file}",)),
    CliCase("empty-file", b"", (r"{file}", "empty")),
    CliCase("only-comments", "# nothing here\n\n", (r"{file}",)),
    CliCase("top-level-list", "- a\n- b\n", (r"{file}",)),
    CliCase("top-level-scalar", "hello\n", (r"{file}",)),
    CliCase("nodes-not-mapping", "version: 1\nnodes: [1, 2]\n", (r"{file}:2",)),
    CliCase("node-not-mapping", "version: 1\nnodes:\n  a: 5\n", (r"{file}:3", "'a'")),
    CliCase("future-version", swap("version: 1\n", "version: 99\n"), (r"{file}:1", "version")),
    CliCase("json-syntax", '{"version": 1, "nodes": {', (r"{file}:1",), suffix=".json"),
    CliCase(
        "json-trailing-comma", '{"version": 1,\n "nodes": {},\n}', (r"{file}:3",), suffix=".json"
    ),  # fmt: skip
    CliCase(
        "huge-file",
        "version: 1\n# " + "x" * (17 * 1024 * 1024) + "\nnodes: {}\n",
        (r"{file}", "larger than"),
    ),  # fmt: skip
    # --- nodes, inputs, literals ---------------------------------------------------------
    CliCase(
        "unknown-node-type",
        swap("    type: VAEDecode\n", "    type: VAEDecoder\n"),
        (_at(BASE, "  decode:\n"), "'decode'", "VAEDecoder"),
    ),  # fmt: skip
    CliCase("missing-type", swap("    type: VAEDecode\n", ""), (r"{file}:\d+", "'decode'")),
    CliCase(
        "unknown-input",
        swap("    steps: 2\n", "    stepz: 2\n"),
        (_at(BASE, "    steps: 2\n"), "'denoise'", "stepz"),
    ),  # fmt: skip
    CliCase(
        "missing-required-link",
        swap("    latent: noise\n", ""),
        (r"{file}:\d+", "'denoise'", "latent"),
    ),  # fmt: skip
    CliCase(
        "int-given-text",
        swap("    steps: 2\n", "    steps: many\n"),
        (_at(BASE, "    steps: 2\n"), "'denoise'", "steps"),
    ),  # fmt: skip
    CliCase(
        "int-given-float",
        swap("    width: 64\n", "    width: 64.5\n"),
        (_at(BASE, "    width: 64\n"), "'noise'", "width"),
    ),  # fmt: skip
    CliCase(
        "int-given-bool",
        swap("    steps: 2\n", "    steps: true\n"),
        (_at(BASE, "    steps: 2\n"), "steps"),
    ),  # fmt: skip
    CliCase(
        "int-given-list",
        swap("    steps: 2\n", "    steps: [1, 2]\n"),
        (_at(BASE, "    steps: 2\n"), "steps"),
    ),  # fmt: skip
    CliCase(
        "string-given-mapping",
        swap("    text: a fox\n", "    text: {a: 1}\n"),
        (_at(BASE, "    text: a fox\n"), "'pos'", "text"),
    ),  # fmt: skip
    CliCase(
        "choice-not-listed",
        swap("    name: euler\n", "    name: eulerian\n"),
        (_at(BASE, "    name: euler\n"), "'sampler'", "name"),
    ),  # fmt: skip
    CliCase(
        "negative-steps",
        swap("    steps: 2\n", "    steps: -3\n"),
        (_at(BASE, "    steps: 2\n"), "'denoise'", "steps"),
    ),  # fmt: skip
    CliCase("zero-steps", swap("    steps: 2\n", "    steps: 0\n"), (_at(BASE, "    steps: 2\n"),)),
    CliCase(
        "guidance-nan",
        swap("    guidance: 7.5\n", "    guidance: .nan\n"),
        (_at(BASE, "    guidance: 7.5\n"), "'denoise'", "guidance"),
    ),  # fmt: skip
    CliCase(
        "guidance-inf",
        swap("    guidance: 7.5\n", "    guidance: .inf\n"),
        (_at(BASE, "    guidance: 7.5\n"), "guidance"),
    ),  # fmt: skip
    CliCase(
        "guidance-minus-inf",
        swap("    guidance: 7.5\n", "    guidance: -.inf\n"),
        (_at(BASE, "    guidance: 7.5\n"), "guidance"),
    ),  # fmt: skip
    CliCase(
        "width-zero",
        swap("    width: 64\n", "    width: 0\n"),
        (_at(BASE, "    width: 64\n"), "'noise'", "width"),
    ),  # fmt: skip
    CliCase(
        "width-100000",
        swap("    width: 64\n", "    width: 100000\n"),
        (_at(BASE, "    width: 64\n"), "'noise'", "width"),
    ),  # fmt: skip
    CliCase(
        "pixels-over-limit",
        swap(
            "    height: 64\n", "    height: 16384\n", swap("    width: 64\n", "    width: 16384\n")
        ),
        ("'noise'", "limit"),
    ),  # fmt: skip
    CliCase(
        "batch-10000",
        swap("    batch_size: 1\n", "    batch_size: 10000\n"),
        (_at(BASE, "    batch_size: 1\n"), "'noise'", "batch_size"),
    ),  # fmt: skip
    CliCase(
        "batch-over-limit",
        swap("    batch_size: 1\n", "    batch_size: 1000\n"),
        ("'noise'", "batch_size", "limit"),
    ),  # fmt: skip
    CliCase(
        "steps-huge",
        swap("    steps: 2\n", "    steps: 10000000000000000000000\n"),
        (_at(BASE, "    steps: 2\n"), "steps"),
    ),  # fmt: skip
    CliCase(
        "seed-negative",
        swap("    guidance: 7.5\n    seed: 1\n", "    guidance: 7.5\n    seed: -1\n"),
        ("'denoise'", "seed"),
    ),  # fmt: skip
    # --- links -----------------------------------------------------------------------------
    CliCase(
        "cycle",
        swap("    latent: noise\n", "    latent: enc\n")
        + "  enc:\n    type: VAEEncode\n    vae: model.vae\n    pixels: decode\n",
        ("cycle", "denoise", "enc"),
    ),  # fmt: skip
    CliCase(
        "cycle-two-nodes",
        BASE + "  c1:\n    type: VAEDecode\n    vae: model.vae\n"
        "    samples: c2\n  c2:\n    type: VAEEncode\n    vae: model.vae\n"
        "    pixels: c1\n  s2:\n    type: SaveImage\n    images: c1\n",
        ("cycle", "c1", "c2"),
    ),  # fmt: skip
    CliCase(
        "self-link",
        swap("    samples: denoise\n", "    samples: decode\n"),
        ("'decode'", "samples"),
    ),  # fmt: skip
    CliCase(
        "link-missing-node",
        swap("    latent: noise\n", "    latent: nois.latent\n"),
        (_at(BASE, "    latent: noise\n"), "'denoise'", "nois"),
    ),  # fmt: skip
    CliCase(
        "link-missing-output",
        swap("    latent: noise\n", "    latent: noise.image\n"),
        (_at(BASE, "    latent: noise\n"), "'denoise'", "image"),
    ),  # fmt: skip
    CliCase(
        "link-wrong-type",
        swap("    latent: noise\n", "    latent: pos\n"),
        (_at(BASE, "    latent: noise\n"), "'denoise'", "latent"),
    ),  # fmt: skip
    CliCase(
        "dangling-param",
        swap("    text: a fox\n", "    text: $prompt\n"),
        (_at(BASE, "    text: a fox\n"), "prompt"),
    ),  # fmt: skip
    CliCase("set-unknown-param", BASE, ("nope",), args=("--set", "nope=3")),
    CliCase("set-bad-syntax", BASE, ("--set", "seed"), args=("--set", "seed")),
    CliCase("set-wrong-type", BASE, ("seed",), args=("--set", "seed=abc")),
    CliCase("param-wrong-type", swap("  seed: 1\n", "  seed: abc\n"), ("seed", "'noise'")),
    # --- ComfyUI formats -------------------------------------------------------------------
    CliCase(
        "api-link-one-element",
        _api_with("6", samples=["5"]),
        (r"{file}", "'6'", "samples"),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "api-link-three-elements",
        _api_with("6", samples=["5", 0, 1]),
        (r"{file}", "'6'", "samples"),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "api-link-bad-index",
        _api_with("6", samples=["5", 7]),
        (r"{file}", "'6'", "samples"),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "api-link-missing-node",
        _api_with("6", samples=["55", 0]),
        (r"{file}", "'6'", "55"),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "api-missing-class-type",
        _api({**_API_OK, "8": {"inputs": {}}}),
        (r"{file}", "'8'"),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "api-unknown-class",
        _api({**_API_OK, "8": {"class_type": "Nope", "inputs": {}}}),
        (r"{file}", "'8'", "Nope"),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "api-inputs-not-object",
        _api({**_API_OK, "8": {"class_type": "LoadModel", "inputs": [1]}}),
        (r"{file}", "'8'"),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "api-out-of-range", _api_with("5", steps=-1), (r"{file}", "'5'", "steps"), suffix=".json"
    ),  # fmt: skip
    CliCase(
        "editor-bad-links",
        json.dumps(
            {"nodes": [{"id": 1, "type": "LoadModel"}], "links": [[1, 2]], "last_node_id": 1}
        ),
        (r"{file}",),
        suffix=".json",
    ),  # fmt: skip
    CliCase(
        "editor-nodes-not-list",
        json.dumps({"nodes": {"1": 2}, "links": [], "last_node_id": 1}),
        (r"{file}",),
        suffix=".json",
    ),  # fmt: skip
    CliCase("png-lying-extension", b"this is not a png at all", (r"{file}",), suffix=".png"),
    CliCase(
        "png-truncated",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00",
        (r"{file}",),
        suffix=".png",
    ),  # fmt: skip
    # --- files named by the workflow ---------------------------------------------------------
    _model_case("model-pickle-ckpt", "model.ckpt", PICKLE_BOMB, "pickle"),
    _model_case("model-pickle-pt-relative", "../weights/model.pt", None, "pickle"),
    _model_case("model-pickle-bin", "model.bin", PICKLE_BOMB, "pickle"),
    _model_case(
        "model-pickle-as-safetensors",
        "model.safetensors",
        PICKLE_BOMB,
        "not a valid|could not load",
    ),
    _model_case(
        "model-random-bytes",
        "noise.safetensors",
        bytes(range(256)) * 64,
        "not a valid|could not load",
    ),
    _model_case("model-truncated", "cut.safetensors", TRUNCATED, "not a valid|could not load"),
    _model_case("model-header-lies", "lies.safetensors", HEADER_LIES, "not a valid|could not load"),
    _model_case("model-empty-file", "empty.safetensors", b"", "not a valid|could not load"),
    _model_case("model-missing", "nowhere/none.safetensors", None, "not found"),
    _model_case("model-folder-not-diffusers", "somefolder", None, "not a diffusers"),
    CliCase(
        "save-prefix-hidden",
        swap("    filename_prefix: corpus\n", "    filename_prefix: .hidden\n"),
        (
            _at(BASE, "    filename_prefix: corpus\n"),
            "'save'",
            "filename_prefix",
            "starts with '.'",
        ),
    ),  # fmt: skip
    CliCase(
        "save-prefix-too-deep",
        swap("    filename_prefix: corpus\n", f"    filename_prefix: {'a/' * 40}x\n"),
        (_at(BASE, "    filename_prefix: corpus\n"), "'save'", "40 folders deep"),
    ),  # fmt: skip
    CliCase(
        "run-save-prefix-traversal",
        swap("    filename_prefix: corpus\n", "    filename_prefix: ../../escape\n"),
        ("'save'", "filename_prefix", "outside"),
        command="run",
        args=RUN_ARGS,
    ),  # fmt: skip
    CliCase(
        "run-save-prefix-absolute",
        swap("    filename_prefix: corpus\n", "    filename_prefix: /tmp/lg-h7-escape\n"),
        ("'save'", "filename_prefix", "outside"),
        command="run",
        args=RUN_ARGS,
    ),  # fmt: skip
]

# The unbroken documents the cases are made from: they must validate (a guard against the
# corpus passing for the wrong reason when node declarations change).
VALID = [CliCase("base-yaml", BASE, ()), CliCase("base-api", _api(_API_OK), (), suffix=".json")]
