"""Conversion between the workflow formats: `latentgraph convert`.

Reads anything `formats.load_file` reads; writes API JSON, editor JSON (with an automatic
layout) or YAML, atomically; or, to `-`, no file: the text is handed back to the caller,
which puts it where it wants (`latentgraph convert SRC -` on stdout).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from .comfy_api import prompt_from_graph
from .comfy_editor import editor_from_graph
from .declare import Registry, registry_or_default
from .files import write_atomic
from .formats import load_file
from .model import Graph
from .problems import WorkflowError, WorkflowWarning, printable
from .validate import unknown_type_problem
from .workflow import Workflow, dump_document, dump_workflow

FORMATS = ("api", "editor", "yaml")
COMFY_FORMATS = {"api": "ComfyUI's API format", "editor": "ComfyUI's editor format"}
# How a caller names the target format, for the message asking for one: the Python keyword
# (`convert(..., to="api")`); the CLI passes its flag's wording, "--to {}".
PYTHON_WORDING = "to={!r}"
# The destination that is no file: `convert` writes nothing, its caller has the text.
NO_FILE = "-"


@dataclass(frozen=True)
class Converted:
    """What `convert` made: the format written (one of `FORMATS`) and the document's text."""

    format: str
    text: str


def _target(dst: str | Path, to: str | None, wording: str = PYTHON_WORDING) -> str:
    """The format to write: `to`, else the one `dst`'s suffix names; a ValueError asking for
    one in the caller's `wording` (a format string given each format name) otherwise."""
    if to is not None:
        if to not in FORMATS:
            raise ValueError(f"unknown target format {to!r}; one of {', '.join(FORMATS)}")
        return to
    suffix = Path(str(dst)).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "api"
    *first, last = (wording.format(f) for f in FORMATS)
    raise ValueError(f"cannot tell the target format from {str(dst)!r}: give "
                     f"{', '.join(first)} or {last}")  # fmt: skip


# A UTF-16 surrogate code point on its own: a string holds one only when it was read from an
# escape with no partner (`"\ud800"` in JSON); it has no UTF-8 form.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_text(value: object) -> str:
    """`value` as the JSON a person reads and edits: indented, non-ASCII text written as itself
    (as ComfyUI saves, so a Japanese title is no wall of `\\u` escapes), a lone surrogate kept
    as its escape so the text encodes as UTF-8 and reads back the same."""
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _refuse_unknown(graph: Graph, registry: Registry) -> None:
    problems = [unknown_type_problem(n, registry, graph.dialect) for n in graph
                if n.type not in registry]  # fmt: skip
    if problems:
        raise WorkflowError(problems)


def _ours_as_yaml(text: str) -> str:
    """Our document's text as YAML: as written (comments kept) unless it was written as JSON,
    which is rewritten as YAML with its params and `$` references as they were."""
    try:
        document = json.loads(text)
    except ValueError:
        return text
    return dump_document(document)


def params_written_in(workflow: Workflow, fmt: str, source: str | Path) -> str | None:
    """Why converting `workflow` (read from `source`) to `fmt` loses its params, or None: the
    ComfyUI formats have none, so each `$param` is written in as its current value and a
    round trip back to YAML has no `params:` for `--set` and `--sweep` to set. Names them and
    how to keep them."""
    if fmt not in COMFY_FORMATS or workflow.format != "yaml" or not workflow.params:
        return None
    *first, last = (printable(name) for name in workflow.params)
    which = (f"the current values of {', '.join(first)} and {last} are" if first
             else f"the current value of {last} is")  # fmt: skip
    return (f"{printable(str(source))}: {COMFY_FORMATS[fmt]} has no params, so {which} written "
            "in where used; convert to YAML (.yaml) to keep params")  # fmt: skip


def _warn_params_written_in(workflow: Workflow, fmt: str, source: str | Path) -> None:
    why = params_written_in(workflow, fmt, source)
    if why is not None:  # the CLI prints it as its own warning line (`WorkflowWarning`)
        warnings.warn(why, WorkflowWarning, stacklevel=3)


def render(graph: Graph, to: str, registry: Registry | None = None) -> str:
    """The text of `graph` in format `to`."""
    registry = registry_or_default(registry)
    if to == "api":
        return _json_text(prompt_from_graph(graph, registry))
    if to == "editor":
        return _json_text(editor_from_graph(graph, registry))
    return dump_workflow(graph, registry)


def convert(src_path: str | Path, dst_path: str | Path, to: str | None = None,
            registry: Registry | None = None,
            wording: str = PYTHON_WORDING) -> Converted:  # fmt: skip
    """Convert a workflow file into `dst_path`, written atomically; `dst_path` "-" (`NO_FILE`)
    writes no file. Returns the format and the text either way: where "-" goes (the CLI's
    stdout) is the caller's to say, as a library writes to no stream of the process.

    An editor workflow converted to editor format is copied unchanged (layout kept), as is our
    YAML converted to YAML (comments kept). `wording` is how the caller names `to` when asking
    for it (the CLI's "--to {}")."""
    registry = registry_or_default(registry)
    fmt = _target(dst_path, to, wording)
    workflow = load_file(Path(src_path), registry=registry)
    graph, extra = workflow.graph, workflow.extra
    _refuse_unknown(graph, registry)
    if fmt in COMFY_FORMATS:
        _warn_params_written_in(workflow, fmt, src_path)
    if fmt == "editor" and "workflow" in extra:  # an editor document is copied as it is
        text = _json_text(extra["workflow"])
    elif fmt == "yaml" and "latentgraph" in extra:  # our document, with its params
        text = _ours_as_yaml(extra["latentgraph"])
    else:
        text = render(graph, fmt, registry)
    if str(dst_path) != NO_FILE:
        write_atomic(Path(dst_path), text)
    return Converted(fmt, text)
