"""Problems found in a workflow, and the exception that carries them.

Loading and validation collect every problem instead of stopping at the first, so a user fixes
a workflow in one pass. `code` values reuse ComfyUI's error type names where one exists, so the
server can answer POST /prompt in the protocol's shape without translating.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from .model import Location


@dataclass
class Problem:
    """One thing wrong (or suspicious, when `severity` is "warning") with a workflow.

    Codes: "syntax", "duplicate_node", "unknown_node_type", "unknown_input",
    "required_input_missing", "invalid_input_type", "value_not_in_list",
    "value_smaller_than_min", "value_bigger_than_max", "bad_linked_input",
    "return_type_mismatch", "cycle", "prompt_no_outputs", "unknown_param", "limit_exceeded",
    "invalid_value", "unused_node" (warning).
    """

    code: str
    message: str
    node_id: str | None = None
    input_name: str | None = None
    location: Location | None = None
    severity: str = "error"
    received: Any = None
    node_type: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(f"{unprintables_escaped(str(self.location))}: ")
        where = self.location if isinstance(self.location, EditorLocation) else EditorLocation()
        if self.node_id is not None:
            # with its type when the problem is the node's own (`node 'extra' (TextEncode): the
            # node feeds no output node`, as a run's lines name it) or the user titled it
            node_type = self.node_type or where.node_type
            if self.input_name is not None and not where.title:
                node_type = None
            parts.append(node_name(self.node_id, node_type, where.title))
            if self.input_name is not None:
                parts.append(f" input {self.input_name!r}")
            parts.append(": ")
        parts.append(self.message)
        if where.primitive and self.input_name is not None:
            primitive = node_name(where.primitive, "PrimitiveNode", where.primitive_title)
            parts.append(f" (the value comes from {primitive})")
        return "".join(parts)


def problem_line(problem: Problem) -> str:
    """A problem as the one line a command prints for it, as a compiler does: `error: PLACE:
    ...` or `warning: PLACE: ...` (README). Validation's problems and what a run says of a
    node (a warning, a failure) alike, so one format is read for both."""
    return labelled(problem.severity, str(problem))


def problem_row(problem: Problem) -> dict[str, Any]:
    """A problem as the CLI's JSON gives it (`validate --json`, the `workflow_invalid` line of
    `run --json` and `submit --json`): `severity`, `code`, `message`, `node`, `input`,
    `location` (the place its line names, as text)."""
    return {
        "severity": problem.severity,
        "code": problem.code,
        "message": problem.message,
        "node": problem.node_id,
        "input": problem.input_name,
        "location": str(problem.location) if problem.location else None,
    }


def labelled(severity: str, text: str) -> str:
    """A problem's text (`str(problem)`) as `problem_line` prints it, from its severity: also a
    problem a server sent as its `severity` and `text` (`submit`), printed as `run` prints it."""
    label = "error" if severity == "error" else "warning"
    return f"{label}: {text}"


def with_article(word: str) -> str:
    """`word` after "a" or "an", for a message naming a type ("an IMAGE output", "a LATENT
    output"): "an" before a vowel letter, as the socket type names are read (`UPSCALE_MODEL`)."""
    return f"{'an' if word[:1].lower() in ('a', 'e', 'i', 'o', 'u') else 'a'} {word}"


def node_name(node_id: str, node_type: str | None = None, title: str | None = None) -> str:
    """How messages name a node: `node '5'`, with its type `node '5' (EmptyLatentImage)`, and
    with the title the user gave it in the editor (what the editor shows on it)
    `node '5' "Portrait size" (EmptyLatentImage)`. All three come from a workflow file or a
    client: each is shown `printable` (the id `quoted`), so a newline or an escape sequence in
    one cannot begin a forged line in a log or drive the terminal printing it."""
    name = f"node {quoted(node_id)}"
    if title:
        name += f' "{printable(title)}"'
    return f"{name} ({printable(node_type)})" if node_type else name


@dataclass(frozen=True)
class EditorLocation(Location):
    """Where a node of an editor workflow, or one of its inputs, was written: the file (shown
    as such), with the title the user gave the node (`title`, of a node of type `node_type`),
    and for an input a PrimitiveNode sets, that node's id and title (`primitive`,
    `primitive_title`): a problem at this place names them with the node (`node_name`)."""

    title: str = ""
    node_type: str = ""
    primitive: str = ""
    primitive_title: str = ""


class WorkflowError(Exception):
    """A workflow could not be loaded or did not validate. Carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class WorkflowWarning(UserWarning):
    """Something read from a workflow file was not used as it stands (a broken PNG chunk
    beside a good one): the run goes on with the rest. The CLI prints it as its own warning."""


class InputError(ValueError):
    """A node refused a value the user gave, found while it runs (a user error, not a bug):
    reported like a validation problem, at the input's place, without a traceback."""

    def __init__(self, message: str, input_name: str | None = None) -> None:
        super().__init__(message)
        self.input_name = input_name


def refusing_node(node_type: str, node_id: str, input_name: str | None) -> str:
    """How a node's refusal of its input names them, as validation's problems do (`node_name`):
    `node '3' (KSampler) input 'steps'`."""
    where = node_name(node_id, node_type)
    return f"{where} input {input_name!r}" if input_name else where


# A backslash that would read as one of the code-point escapes `escaped` writes for a
# character (`\uhhhh`, `\Uhhhhhhhh`: how a hidden character such as U+202E is shown). Not
# `\n`, `\t` or `\r`, nor `\xhh` (`escaped` writes none): Windows folders often start with n,
# t, r or x64 (`SDXL\realvis`, `C:\tools\x64`), and doubling their backslash would show a name
# nobody typed; a typed `\t` and a real tab still read alike. A doubled backslash is no escape:
# `\\server\share` stays as typed.
_READS_AS_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")


def printable(text: str) -> str:
    r"""`text` as the user wrote it, for messages: CJK, accents and a backslash as typed
    (`C:\models\sd15.safetensors`), unless it needs an escape to be read right: a character
    that cannot be printed (control and format characters: a newline, U+202E turning the rest
    of the line around) or a backslash that would read as a code-point escape (`\u202e`
    typed). Such a text is shown `escaped`, every backslash doubled, so the typed `\u202e`
    (`\\u202e`) and the character (`\u202e`) differ."""
    if text.isprintable() and not _READS_AS_ESCAPE.search(text):
        return text
    return escaped(text)


def escaped(text: str) -> str:
    r"""`text` with every backslash doubled and what cannot be printed escaped: a newline, tab
    and carriage return as `\n`, `\t`, `\r`, a byte that is not UTF-8 as the shell shows it
    (`\xe9`: `_code_point`), any other character by its code point (`\u202e`, `\u001b`: never
    repr's `\x1b`, which a typed Windows folder `\x64` would read as); CJK and accents as typed.
    `printable`'s form for a text needing any escape."""
    return unprintables_escaped(text.replace("\\", "\\\\"))


def unprintables_escaped(text: str) -> str:
    """`text` with only what cannot be printed escaped (`\\u001b`), backslashes left as they
    are: for a text that may hold both a raw name (a workflow file named with ESC, which
    would drive the terminal) and parts already shown `printable` (a `--set` location)."""
    return text if text.isprintable() else "".join(
        c if c.isprintable() else _code_point(c) for c in text)  # fmt: skip


def _code_point(c: str) -> str:
    """How `c`, a character that cannot be printed, is shown. A byte Python kept from a file
    or argument name that is not UTF-8 (`surrogateescape`: a Latin-1 `é` is U+DCE9) as the
    shell shows that name, `caf\\xe9.yaml`, not `caf\\udce9.yaml`: such a byte is 0x80-0xff,
    so a Windows folder typed `\\x64` never reads as one."""
    if c in "\n\t\r":
        return repr(c)[1:-1]
    if "\udc80" <= c <= "\udcff":
        return f"\\x{ord(c) - 0xDC00:02x}"
    return f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"


def error_line(exc: BaseException) -> str:
    """A library's error as one line, for our messages (README: each problem is one line): its
    type and the first non-empty line of its text, a trailing colon (which introduces the
    lines left out) dropped; only its type when it has no text. The rest is advice written
    for that library's users ("Please check your internet connection") or detail (a list of
    tensors): what our message says instead."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    first = unprintables_escaped(first.rstrip(":").rstrip())
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def quoted(text: str) -> str:
    """`text` in quotes as the user wrote it, for messages: a backslash stays one (repr doubled
    it, so `SD1.5\\foo` read as a value nobody sent) unless the text needs escapes to be read
    right (`printable`)."""
    shown = printable(text)
    quote = '"' if "'" in shown and '"' not in shown else "'"
    return f"{quote}{shown}{quote}"


def did_you_mean(name: str, candidates: list[str], *, cutoff: float = 0.6) -> str:
    """The "; did you mean 'x'?" hint for a mistyped name ("" when nothing is close: as
    similar as `cutoff`, difflib's ratio; `closest`)."""
    close = closest(name, candidates, cutoff=cutoff)
    return f"; did you mean {' or '.join(quoted(c) for c in close)}?" if close else ""


def closest(name: str, candidates: list[str], *, cutoff: float = 0.6) -> list[str]:
    """The candidates a mistyped name was likely meant as, closest first (at most 3; none when
    nothing is as similar as `cutoff`, difflib's ratio; else one differing only in case).
    File names with the same extension are compared without it: '.safetensors' alone made
    'v1-5-pruned-emaonly.safetensors' look like 'empty.safetensors'."""
    suffix = PurePosixPath(name).suffix
    stems = {c.removesuffix(suffix): c for c in candidates}  # each candidate as it is compared
    stem = name.removesuffix(suffix)
    close = [stems[c] for c in difflib.get_close_matches(stem, list(stems), n=3, cutoff=cutoff)]
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return close
