"""What node code receives: progress, cancellation, warnings and run settings.

Node functions take a `Context` as their first argument. Through it they report progress (the
scheduler turns it into events), check for cancellation between steps, and read where to write
files and which device/dtype to use. The engine stays free of torch: device and dtype are
strings that the diffusion nodes interpret.
"""

from __future__ import annotations

import math
import operator
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from os import PathLike
from pathlib import Path
from typing import Any

from .paths import KindFolder
from .problems import did_you_mean


class Cancelled(Exception):
    """Raised inside node code when the run was interrupted."""


class CancelToken:
    """A flag shared between whoever may interrupt a run and the node code checking it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def reset(self) -> None:
        self._event.clear()


DEVICES = "auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("auto", "fp32", "fp16", "bf16")


def check_device(text: str) -> str:
    """`text` as a device name (trimmed, lower case), or ValueError naming the accepted ones.
    Checked when Settings are made, so `--device gpu` fails before anything loads."""
    name = str(text).strip().lower()
    if not _DEVICE.match(name):
        raise ValueError(f"device {text!r} is not one of {DEVICES}")
    return name


_TRUE, _FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")


def _bool(value: Any) -> bool:
    """A switch: true/false, on/off, yes/no, 1/0 (any case), or a Python bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{value!r} is not a switch; write true or false (also on/off, 1/0)")


def _auto_or_bool(value: Any) -> str | bool:
    """`auto`, or a switch."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return _bool(value)
    except ValueError:
        raise ValueError(f"{value!r} is not auto, true or false") from None


def _gigabytes(value: Any) -> float:
    """A non-negative, finite number of GB."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a number of GB (0 or more, e.g. 1.5)")
    return number


@dataclass(frozen=True)
class Option:
    """A run option the diffusion nodes read (`--option NAME=VALUE`, docs/gpu.md): how a
    value is read (`parse`, text from the command line or a typed Python value) and what an
    unset option means."""

    name: str
    parse: Callable[[Any], Any]
    default: Any


# Every run option, declared once: Settings refuses any other name and any bad value.
OPTIONS: dict[str, Option] = {o.name: o for o in [
    Option("cpu_offload", _bool, False),
    Option("tf32", _bool, False),
    Option("compile", _bool, False),
    Option("sdpa", _bool, True),
    Option("attention_slicing", _bool, False),
    Option("channels_last", _bool, False),
    Option("vae_tiling", _bool, False),
    Option("vae_slicing", _bool, False),
    Option("vae_fp32", _auto_or_bool, "auto"),
    Option("vram_headroom_gb", _gigabytes, None),  # None: the model manager's own (1 GB)
    Option("ram_budget_gb", _gigabytes, None),  # None: from the machine's RAM (model manager)
    Option("previews", _bool, False),
]}  # fmt: skip


class ParsedOptions(dict):
    """Run options already read by their declarations: what `parse_options` returns. Settings
    keep them as read instead of reading them again, so options are read once, by whoever can
    name them best in a message (the CLI's `--option`); any other mapping is read by Settings."""


def parse_options(options: dict[str, Any], label: str = "option") -> ParsedOptions:
    """`options` with each value read by its declaration, or ValueError naming the option
    (`label` says how the caller calls it; an unknown name with a did-you-mean, a bad value
    with what was expected)."""
    parsed = ParsedOptions()
    for name, value in options.items():
        declared = OPTIONS.get(name)
        if declared is None:
            hint = did_you_mean(str(name), list(OPTIONS))
            raise ValueError(f"{label} {name}: no such option{hint} (options: "
                             f"{', '.join(OPTIONS)})")  # fmt: skip
        try:
            parsed[name] = declared.parse(value)
        except ValueError as exc:
            raise ValueError(f"{label} {name}: {exc}") from None
    return parsed


@dataclass
class Settings:
    """Run-wide settings: directories, device and numeric precision, limits, options.

    `device` is "auto", "cpu", "cuda", "cuda:1", "mps"; `dtype` is "auto", "fp32", "fp16"
    or "bf16". `options` carries feature switches that only the diffusion nodes interpret
    (e.g. {"attention_slicing": True, "compile": "off"}): each is read by its declaration in
    `OPTIONS` when Settings are made (a bad name or value is a ValueError), unless they come
    already read (`ParsedOptions`, from `parse_options`), and node code reads the typed value
    with `option(name)`. The folders may be given as str (kept as Path); the limits are
    integers of at least 1. Anything else is a ValueError naming the field, when Settings are
    made, not when a run meets it.
    """

    output_dir: Path = field(default_factory=lambda: Path("output"))
    input_dir: Path = field(default_factory=lambda: Path("input"))
    temp_dir: Path = field(default_factory=lambda: Path("temp"))
    models_dirs: list[Path | KindFolder] = field(default_factory=list)
    device: str = "auto"
    dtype: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)
    # Limits enforced at validation (before any model work) on the inputs that declare them
    # (`Input.limit`), see graph/validate.py.
    max_image_pixels: int = 4096 * 4096
    max_batch: int = 64
    max_steps: int = 1000
    # Pixels of a whole batch (width x height x images; an animation's frames x pixels): what
    # one prompt's images take in memory (16.8M pixels: 200 MB as float32 RGB, more in the
    # nodes' working copies). 4096x4096 lets normal use through (SDXL 1024x1024 x 16,
    # 2048x2048 x 4, one 4096x4096 image, 512x512 x 64) while 4096x4096 x 64 (10 GB) is refused.
    max_batch_pixels: int = 4096 * 4096
    # The longest text a node may return (a STRING output), checked as each node returns
    # (`socket_checks.SIZES`): twelve StringConcatenate nodes, each joining the one before
    # with itself, made 200 million characters of a 99,000-character literal, which the server
    # kept in its history. The server bounds every string a prompt holds by it too.
    max_string_chars: int = 100_000
    # How messages name each limit (limit -> label): the Settings field by default
    # (`Settings.max_steps`); the CLI and the server pass their flags (`LIMIT_FLAGS`).
    limit_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _FOLDERS:
            setattr(self, name, _folder(name, getattr(self, name)))
        self.models_dirs = _folders("models_dirs", self.models_dirs)
        for name in LIMITS:
            setattr(self, name, limit_value(f"settings.{name}", getattr(self, name)))
        unknown = sorted(set(self.limit_labels) - set(LIMITS))
        if unknown:
            raise ValueError(f"settings.limit_labels: unknown limit {unknown[0]!r}; known: "
                             f"{', '.join(LIMITS)}")  # fmt: skip
        self.limit_labels = dict(self.limit_labels)
        self.device = check_device(self.device)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if isinstance(self.options, ParsedOptions):  # read once already: kept (a copy)
            self.options = ParsedOptions(self.options)
        else:
            self.options = parse_options(self.options)

    def option(self, name: str) -> Any:
        """The typed value of run option `name` (one of `OPTIONS`), or its default."""
        return self.options.get(name, OPTIONS[name].default)

    def limit(self, name: str) -> int:
        """The value of the run limit `name` (one of `LIMITS`)."""
        if name not in LIMITS:
            raise KeyError(name)
        return getattr(self, name)


_FOLDERS = ("output_dir", "input_dir", "temp_dir")


def _folder(field_name: str, value: Any) -> Path:
    """A Settings folder as a Path (a str is one, as `Path` reads it), or ValueError naming
    the field."""
    if isinstance(value, (str, PathLike)) and not isinstance(value, bytes):
        return Path(value)
    raise ValueError(f"settings.{field_name}: expected a folder (a str or a Path), got {value!r}")


def _folders(field_name: str, value: Any) -> list[Path | KindFolder]:
    """`models_dirs`: a list of folders, each a Path (a models root) or a `KindFolder` (one
    kind's folder, from an extra_model_paths.yaml); one folder alone is refused (a str would
    be read as one folder per character)."""
    if isinstance(value, (str, PathLike)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"settings.{field_name}: expected a list of folders, got {value!r}"
                         + (f"; write [{value!r}]" if isinstance(value, (str, PathLike)) else ""))  # fmt: skip
    return [item if isinstance(item, KindFolder) else _folder(f"{field_name}[{i}]", item)
            for i, item in enumerate(value)]  # fmt: skip


def limit_value(label: str, value: Any) -> int:
    """A limit: an integer (numpy's too) of at least 1, or ValueError naming it by `label`
    (`settings.max_steps`, `Cache memory_bytes`): the one rule for every limit given in Python."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < 1:
        raise ValueError(f"{label}: expected an integer of at least 1, got {value!r}")
    return number


# The Settings limits an input may declare it is bounded by (`Input.limit`), with the unit a
# message counts in. Inputs of one node bounded by the same limit are bounded together, by the
# product of their values (width and height by max_image_pixels).
# An input may be bounded by several (batch_size by max_batch and max_batch_pixels).
LIMITS: dict[str, str] = {"max_image_pixels": "pixels", "max_batch": "images",
                          "max_batch_pixels": "pixels", "max_steps": "steps",
                          "max_string_chars": "characters"}  # fmt: skip
# The command-line flag setting each limit (the same for `run`, `validate` and `serve`, in the
# order their --help lists them): the CLI makes its flags from this (`app/arguments.py`
# `add_limit_args`, `limit_values`), and the CLI and the server name them in messages
# (`Settings.limit_labels`).
LIMIT_FLAGS: dict[str, str] = {"max_steps": "--max-steps", "max_batch": "--max-batch",
                               "max_image_pixels": "--max-pixels",
                               "max_batch_pixels": "--max-batch-pixels",
                               "max_string_chars": "--max-string-chars"}  # fmt: skip

# What bounds an image's width and height, and its batch size, where a node makes a batch
# (EmptyLatentImage): each picture's pixels, the batch's images, and the batch's pixels.
SIZE_LIMITS = ("max_image_pixels", "max_batch_pixels")
BATCH_LIMITS = ("max_batch", "max_batch_pixels")


def limit_defaults() -> dict[str, int]:
    """Each run limit's default (limit -> value), as its `Settings` field declares it: the one
    place the numbers are written, which the CLI's flags and `ServerConfig` take theirs from."""
    declared = {f.name: f.default for f in fields(Settings)}
    return {name: declared[name] for name in LIMITS}


def limit_label(settings: Settings, limit: str) -> str:
    """How a message names run limit `limit` to whoever set `settings`: the CLI's or the
    server's flag (`--max-steps`) when they passed theirs in `limit_labels`, else the Settings
    field (`Settings.max_steps`), as Python code sets it."""
    return settings.limit_labels.get(limit, f"Settings.{limit}")


class Context:
    """Passed to every node function as its first argument."""

    def __init__(
        self,
        node_id: str,
        node_type: str,
        settings: Settings,
        cancel: CancelToken,
        *,
        emit_progress: Callable[[int, int, Any], None] | None = None,
        emit_warning: Callable[[str], None] | None = None,
        extra: dict[str, Any] | None = None,
        earlier_ui: dict[str, Any] | None = None,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.settings = settings
        self._cancel = cancel
        self._emit_progress = emit_progress
        self._emit_warning = emit_warning
        # Anything the caller wants node code to see (e.g. the ComfyUI prompt and workflow to
        # embed in saved PNGs, under "prompt" and "workflow"; the run's params, under "params";
        # "previews": True when the caller sends progress previews somewhere; "send_image": the
        # server's send_image(node_id, png) to the prompt's websocket client, SaveImageWebsocket).
        self.extra = extra or {}
        # The ui of this node's cached result when its `reuse` hook refused it for this run (a
        # save whose files were deleted since): what it reported then, so a save writes again
        # only the files that are missing, under the names they had. None otherwise.
        self.earlier_ui = earlier_ui
        self.cacheable = True

    def do_not_cache(self) -> None:
        """Keep this node's result, and everything computed from it in this run, out of the
        cache: for a result that is wrong but still worth passing on (NaN from fp16), so the
        next run computes it again instead of serving it."""
        self.cacheable = False

    @property
    def cancelled(self) -> bool:
        return self._cancel.cancelled

    def check_cancelled(self) -> None:
        """Raise `Cancelled` if the run was interrupted. Call it between steps."""
        if self._cancel.cancelled:
            raise Cancelled(f"interrupted in node {self.node_id}")

    def progress(self, value: int, total: int,
                 preview: Callable[[], Any] | None = None) -> None:  # fmt: skip
        """Report step `value` of `total`. `preview` builds a PIL image; it is called only
        when this report is sent (progress is throttled), so a preview costs nothing otherwise."""
        if self._emit_progress is not None:
            self._emit_progress(value, total, preview)

    def warn(self, message: str) -> None:
        if self._emit_warning is not None:
            self._emit_warning(message)
