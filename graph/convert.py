"""Any supported workflow file → `Graph`, and conversion between the formats.

Sources: latentgraph YAML/JSON, a ComfyUI API prompt (bare or as a POST /prompt body), a
ComfyUI editor workflow, or a PNG whose text chunks hold `prompt` (API), `workflow` (editor)
or `latentgraph` (our document). `load_any` is what `latentgraph run` uses; `convert` writes
API JSON, editor JSON (with an automatic layout) or YAML, atomically.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from .declare import Registry
from .files import write_atomic
from .model import Graph, Location
from .problems import Problem, WorkflowError

FORMATS = ("api", "editor", "yaml")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES = 256 * 2**20


def _registry(registry: Registry | None) -> Registry:
    from .comfy_api import _registry as resolve

    return resolve(registry)


def _error(source: str, message: str, code: str = "syntax") -> WorkflowError:
    return WorkflowError([Problem(code, message, location=Location(source))])


def png_text(path: Path) -> dict[str, str]:
    """The text chunks (tEXt/iTXt/zTXt) of a PNG file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise _error(str(path), f"not a PNG image (it is {img.format})")
            text = getattr(img, "text", None) or {}
            return {k: v for k, v in text.items() if isinstance(v, str)}
    except (UnidentifiedImageError, OSError) as exc:
        raise _error(str(path), f"cannot read the PNG: {exc}") from None


def detect(data: Any) -> str:
    """ "api", "editor" or "yaml" (latentgraph's own document) for a parsed document."""
    from .comfy_editor import is_editor_workflow
    from .workflow import _prompt_body

    if is_editor_workflow(data):
        return "editor"
    if isinstance(data, dict) and _prompt_body(data) is not None:
        return "api"
    return "yaml"


def _apply_overrides(graph: Graph, overrides: dict[str, Any], source: str) -> None:
    """`node.input=value` overrides for ComfyUI formats, which have no params."""
    problems = []
    for key, value in overrides.items():
        node_id, _, name = str(key).rpartition(".")
        if not node_id or node_id not in graph:
            problems.append(Problem(
                "unknown_param",
                f"--set {key}: ComfyUI workflows have no params; write <node id>.<input>=value "
                f"(node ids: {', '.join(list(graph.nodes)[:20])})",
                location=Location(source),
            ))  # fmt: skip
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        graph[node_id].inputs[name] = value
    if problems:
        raise WorkflowError(problems)


def _comfy_extra(graph: Graph, registry: Registry, prompt: Any = None, workflow: Any = None,
                 ) -> dict[str, Any]:  # fmt: skip
    """What SaveImage embeds: the prompt (rebuilt when the source had none) and the workflow."""
    from .comfy_api import prompt_from_graph

    extra: dict[str, Any] = {}
    if prompt is None:
        try:
            prompt = prompt_from_graph(graph, registry)
        except (WorkflowError, KeyError, ValueError, TypeError):
            prompt = None
    if prompt is not None:
        extra["prompt"] = prompt
    if workflow is not None:
        extra["workflow"] = workflow
    return extra


def _from_data(data: Any, source: str, registry: Registry, overrides: dict[str, Any],
               text: str | None) -> tuple[Graph, dict[str, Any], str]:  # fmt: skip
    from .comfy_api import graph_from_prompt
    from .comfy_editor import graph_from_editor
    from .workflow import _prompt_body, load_workflow

    kind = detect(data)
    if kind == "editor":
        graph = graph_from_editor(data, registry, source=source)
        _apply_overrides(graph, overrides, source)
        return graph, _comfy_extra(graph, registry, None, data), kind
    if kind == "api":
        prompt = _prompt_body(data)
        graph = graph_from_prompt(prompt, registry, source=source)
        workflow = None
        if isinstance(data.get("extra_data"), dict):
            workflow = (data["extra_data"].get("extra_pnginfo") or {}).get("workflow")
        if overrides:
            _apply_overrides(graph, overrides, source)
            prompt = None
        return graph, _comfy_extra(graph, registry, prompt, workflow), kind
    wf = load_workflow(source, text=text, overrides=overrides or None, registry=registry)
    extra = {"latentgraph": with_params(text, wf.raw.get("params"), wf.params)} if text else {}
    return wf.graph, extra, kind


def with_params(text: str, declared: Any, params: dict[str, Any]) -> str:
    """Our workflow document as written (comments and all), with the params a run used in
    place of the declared ones: what a saved PNG embeds, so the image re-runs as it was made."""
    import yaml

    changed = {k: v for k, v in params.items()
               if not isinstance(declared, dict) or declared.get(k) != v}  # fmt: skip
    if not changed:
        return text
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # already read once: no aliases, sized
    block = next((v for k, v in root.value if k.value == "params"), None)
    edits = [(v.start_mark.index, v.end_mark.index, changed[k.value])
             for k, v in (block.value if block is not None else []) if k.value in changed]  # fmt: skip
    for start, end, value in sorted(edits, reverse=True):
        tail = "\n" if text[start:end].endswith("\n") else ""  # a block scalar ends a line
        text = text[:start] + _flow(value) + tail + text[end:]
    return text


def _flow(value: Any) -> str:
    """A value as one-line YAML that reads back the same (JSON, except non-finite floats)."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return json.dumps(value, ensure_ascii=False)


def _read_text(path: Path) -> str:
    """The file as text, with the workflow loader's checks: size limit, UTF-8 (line:column)."""
    from .workflow import _read, _Refused

    try:
        return _read(path, None)
    except _Refused as refused:
        raise WorkflowError([refused.problem]) from None


def _parse(path: Path) -> tuple[Any, str | None]:
    """(parsed document or None for YAML left to the workflow loader, raw text)."""
    text = _read_text(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        return None, text
    return _parse_text(text)


def _parse_text(text: str) -> tuple[Any, str | None]:
    if not text.lstrip().startswith("{"):
        return None, text
    try:
        return json.loads(text), text
    except (ValueError, RecursionError):
        return None, text  # let the workflow loader report the JSON error with line:column


def _is_png(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == PNG_SIGNATURE
    except OSError:
        return False


def load_any(path: str | Path, overrides: dict[str, Any] | None = None,
             registry: Registry | None = None) -> tuple[Graph, dict[str, Any]]:  # fmt: skip
    """Load any supported workflow file. Returns (graph, extra); `extra` carries the ComfyUI
    `prompt` and `workflow` to embed in saved PNGs (Context.extra)."""
    graph, extra, _ = _load(Path(path), overrides or {}, _registry(registry))
    return graph, extra


def load_text(text: str, source: str = "<request>", overrides: dict[str, Any] | None = None,
              registry: Registry | None = None) -> tuple[Graph, dict[str, Any]]:  # fmt: skip
    """Like `load_any`, for a document already in memory (our YAML/JSON, ComfyUI API or
    editor JSON), e.g. the body of a request."""
    data, text = _parse_text(text)
    graph, extra, _ = _from_data(data, source, _registry(registry), overrides or {}, text)
    return graph, extra


def _load(path: Path, overrides: dict[str, Any],
          registry: Registry) -> tuple[Graph, dict[str, Any], Any]:  # fmt: skip
    """(graph, extra, the original document when it is kept as is on conversion)."""
    source = str(path)
    if _is_png(path):
        if path.stat().st_size > MAX_PNG_BYTES:
            raise _error(source, f"PNG larger than {MAX_PNG_BYTES // 2**20} MB")
        chunks = png_text(path)
        for key in ("latentgraph", "prompt", "workflow"):  # ours first: it keeps the params
            if key not in chunks:
                continue
            try:
                data = json.loads(chunks[key])
            except RecursionError:
                raise _error(source, f"the PNG's {key!r} text is nested too deeply",
                             "limit_exceeded") from None  # fmt: skip
            except ValueError:
                if key == "latentgraph":  # our own document may be YAML text
                    graph, extra, _ = _from_data(None, source, registry, overrides, chunks[key])
                    return graph, extra, None
                raise _error(source, f"the PNG's {key!r} text is not valid JSON") from None
            text = chunks[key] if key == "latentgraph" else None
            graph, extra, _ = _from_data(data, source, registry, overrides, text)
            if "workflow" in chunks and "workflow" not in extra:
                try:
                    extra["workflow"] = json.loads(chunks["workflow"])
                except ValueError:
                    pass
            return graph, extra, None
        raise _error(source, "this PNG carries no workflow (no 'prompt', 'workflow' or "
                             "'latentgraph' text chunk)")  # fmt: skip
    data, text = _parse(path)
    graph, extra, kind = _from_data(data, source, registry, overrides, text)
    return graph, extra, data if kind == "editor" and not overrides else None


def _target(dst: str | Path, to: str | None) -> str:
    if to is not None:
        if to not in FORMATS:
            raise ValueError(f"unknown target format {to!r}; one of {', '.join(FORMATS)}")
        return to
    suffix = Path(str(dst)).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "api"
    raise ValueError(f"cannot tell the target format from {str(dst)!r}: give --to api, "
                     "--to editor or --to yaml (to= in Python)")  # fmt: skip


def _refuse_unknown(graph: Graph, registry: Registry) -> None:
    unknown = sorted({n.type for n in graph if n.type not in registry})
    if unknown:
        problems = [Problem("unknown_node_type",
                            f"node type {n.type!r} is not installed, so node {n.id!r} cannot be "
                            "converted without losing its settings", node_id=n.id,
                            location=n.location, node_type=n.type)
                    for n in graph if n.type in unknown]  # fmt: skip
        raise WorkflowError(problems)


def render(graph: Graph, to: str, registry: Registry | None = None) -> str:
    """The text of `graph` in format `to`."""
    registry = _registry(registry)
    if to == "api":
        from .comfy_api import prompt_from_graph

        return json.dumps(prompt_from_graph(graph, registry), indent=2) + "\n"
    if to == "editor":
        from .comfy_editor import editor_from_graph

        return json.dumps(editor_from_graph(graph, registry), indent=2) + "\n"
    from .workflow import dump_workflow

    return dump_workflow(graph, registry)


def convert(src_path: str | Path, dst_path: str | Path, to: str | None = None,
            registry: Registry | None = None) -> str:  # fmt: skip
    """Convert a workflow file; `dst_path` "-" writes to stdout. Returns the format written.

    An editor workflow converted to editor format is copied unchanged (layout kept)."""
    registry = _registry(registry)
    fmt = _target(dst_path, to)
    graph, extra, original = _load(Path(src_path), {}, registry)
    _refuse_unknown(graph, registry)
    if fmt == "editor" and (original is not None or "workflow" in extra):
        text = json.dumps(original if original is not None else extra["workflow"], indent=2) + "\n"
    elif fmt == "yaml" and "latentgraph" in extra:  # our document, as written, with its params
        text = extra["latentgraph"]
    else:
        text = render(graph, fmt, registry)
    if str(dst_path) == "-":
        sys.stdout.write(text)
    else:
        write_atomic(Path(dst_path), text)
    return fmt
