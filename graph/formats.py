"""The one table of workflow format readers: any supported file or text → `Workflow`.

Documents: latentgraph YAML/JSON (ours), a ComfyUI API prompt (bare or as a POST /prompt
body), a ComfyUI editor workflow. Containers: a PNG whose text chunks hold `latentgraph` (our
document, with the params of the run), `prompt` (API) or `workflow` (editor), tried in that
order (a `prompt` that is not JSON gives way to a `workflow` beside it, with a warning); a
WEBP whose EXIF holds them as ComfyUI writes them (`prompt:<json>`, `workflow:<json>`). Any
other image (JPEG, GIF, ...) is refused as an image with no workflow in it, not read as
text. The CLI, the Python
facade (`latentgraph.load`), `latentgraph convert` and POST /latentgraph/prompt all read
through `load_file` / `load_text`, so they accept the same things.

Overrides: our format has params (`--set seed=7`); the ComfyUI formats have none, so an
override there is `node_id.input=value`. `given_as` says how the caller was given them, for
the messages about them: `--set` (the CLI, the default), `param` (a Python caller). An
editor workflow a run carries into its images holds the overridden values
(`editor_with_values`), or is left out when they cannot be placed in it.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .comfy_api import graph_from_prompt, prompt_body, prompt_from_graph
from .comfy_editor import editor_with_values, graph_from_editor, is_editor_workflow
from .declare import Registry, registry_or_default
from .model import Graph, Location
from .problems import EditorLocation, Problem, WorkflowError, WorkflowWarning, node_name
from .workflow import (
    GivenLocation,
    Workflow,
    load_workflow,
    override_value,
    read_source,
    text_with_params,
    unknown_override,
)
from .workflow.building import given_name, other_problems, shown_value

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The largest image (PNG or WEBP) read for its workflow.
MAX_PNG_BYTES = 256 * 2**20
# The most pixels an image read for its workflow may claim (8192 x 8192), checked before
# Pillow's own DecompressionBombError can crash the read (a tiny PNG may claim any size).
MAX_PNG_PIXELS = 8192 * 8192
# Text chunks (WEBP: EXIF entries) holding a workflow, by priority: ours first, it keeps the
# params and comments.
PNG_KEYS = ("latentgraph", "prompt", "workflow")
# Images recognised (by Pillow) as images, not workflow text; only the WORKFLOW_IMAGES carry a
# workflow. Formats with a signature only, so no text file is ever taken for one of them.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
WORKFLOW_IMAGES = {"PNG": "text chunk", "WEBP": "EXIF entry"}  # where each keeps it
NO_WORKFLOW = "latentgraph and ComfyUI save theirs in PNG text chunks and WEBP EXIF"


@dataclass(frozen=True)
class OverrideLocation(GivenLocation, EditorLocation):
    """Where a ComfyUI file's input was given its value: the override alone (`--set
    3.steps=abc`, from Python `param 3.steps='abc'`), the file holds no `$param` for it; a
    sweep names its own flag (`given_by`). In an editor file a problem there names the node
    as one in the file is named: with its title, and the PrimitiveNode the override set
    (`--set 30.value=abc`: "node '3' "My sampler" (KSampler) input 'seed': ... (the value
    comes from node '30' "Seed prim" (PrimitiveNode))")."""

    def __str__(self) -> str:
        return f"{given_name(self.flag, self.param)}={self.value}"

    def written(self) -> Location:
        """Itself: the override names the input it sets (`--set 3.steps`), so a problem
        with that input is the override's too (`Location.written`)."""
        return self


@dataclass(frozen=True)
class Reader:
    """One document format: whether a parsed document is in it, and how to read it."""

    name: str
    recognises: Callable[[Any], bool]
    read: Callable[[Any, str, str | None, Registry, dict[str, Any], str], Workflow]


def _error(source: str, message: str, code: str = "syntax") -> WorkflowError:
    return WorkflowError([Problem(code, message, location=Location(source))])


def _apply_overrides(graph: Graph, overrides: dict[str, Any], source: str,
                     registry: Registry, given_as: str) -> dict[str, Any]:  # fmt: skip
    """`node.input=value` overrides for ComfyUI formats, which have no params; each value
    typed by the input it sets (`override_value`). An editor PrimitiveNode is folded into the
    inputs it feeds: `<its id>.value` sets each of them, as editing it in the editor does.
    Returns the overrides as the `node.input` keys they set. One naming nothing the file has
    is refused with the graph's other problems, the other overrides applied (`--set nonode.x`
    hid `--set 3.steps=abc`), as our format's loader reports an unknown param."""
    problems = []
    plan: list[tuple[str, Any, list[tuple[str, str]]]] = []  # key, value, inputs it sets
    for key, value in overrides.items():
        node_id, _, name = str(key).rpartition(".")
        fed = [] if node_id in graph.nodes else _primitive_targets(graph, node_id)
        if fed and name != "value":
            inputs = ", ".join(f"{n}.{i}" for n, i in fed)
            problems.append(Problem("unknown_param", f"{given_name(given_as, key)}: "
                f"{node_name(node_id, 'PrimitiveNode')} is folded into the inputs it feeds "
                f"({inputs}): set its value, all of them, with "
                f"{given_name(given_as, node_id + '.value')}=...",
                location=Location(source)))  # fmt: skip
            continue
        unknown = None if fed else unknown_override(given_as, key, None, graph.nodes)
        if unknown:
            problems.append(Problem("unknown_param", unknown, location=Location(source)))
            continue
        plan.append((str(key), value, fed or [(node_id, name)]))
    applied: dict[str, Any] = {}
    for key, value, inputs in plan:
        for node_id, name in inputs:
            node = graph[node_id]
            node_type = registry.get(node.type)
            decl = node_type.input(name) if node_type is not None else None
            node.inputs[name] = override_value(value, decl is not None and decl.takes_text)
            node.input_locations[name] = _override_place(node.location,
                node.input_locations.get(name), key, given_as, value, source)  # fmt: skip
            applied[f"{node_id}.{name}"] = value
    if problems:
        raise WorkflowError(problems + other_problems(graph, registry, problems, set()))
    return applied


def _override_place(node_place: Location | None, input_place: Location | None, key: str,
                    given_as: str, value: Any, source: str) -> OverrideLocation:  # fmt: skip
    """Where override `key` gave an input its value: named by the override, with the node's
    editor title (`node_place`), and, when `key` is a PrimitiveNode's `<id>.value`, that
    PrimitiveNode (`input_place`, where the file's value came from it)."""
    node = node_place if isinstance(node_place, EditorLocation) else EditorLocation()
    fed = input_place if isinstance(input_place, EditorLocation) else EditorLocation()
    primitive = fed.primitive if fed.primitive and key == f"{fed.primitive}.value" else ""
    return OverrideLocation(source, param=key, flag=given_as, value=shown_value(given_as, value),
                            title=node.title, node_type=node.node_type, primitive=primitive,
                            primitive_title=fed.primitive_title if primitive else "")  # fmt: skip


def _primitive_targets(graph: Graph, node_id: str) -> list[tuple[str, str]]:
    """The (node id, input) pairs the editor's PrimitiveNode `node_id` sets (the inputs
    `graph_from_editor` placed at an `EditorLocation` naming it)."""
    return [(node.id, name) for node in graph for name, where in node.input_locations.items()
            if isinstance(where, EditorLocation) and where.primitive == node_id]  # fmt: skip


def _carried(workflow: Any, workflow_format: str, graph: Graph, overrides: dict[str, Any],
             registry: Registry) -> Any:  # fmt: skip
    """The editor workflow a run's images carry: the one read; with overrides, the same
    holding the values they gave (`editor_with_values`), or None, left out (the prompt saved
    beside it is the run) when they cannot be placed in it or are params of ours."""
    if workflow is None or not overrides:
        return workflow
    if workflow_format == "yaml" or not is_editor_workflow(workflow):
        return None
    values = {}
    for key in overrides:
        node_id, _, name = str(key).rpartition(".")
        if node_id not in graph.nodes:  # a PrimitiveNode's `.value`: not an input of the graph
            return None
        values[node_id, name] = graph[node_id].inputs[name]
    return editor_with_values(workflow, values, registry)


def _comfy_extra(graph: Graph, prompt: Any, workflow: Any) -> dict[str, Any]:
    """What SaveImage embeds: the prompt (rebuilt from the graph when the source had none, or
    overrides changed it) and the editor workflow, if any."""
    extra: dict[str, Any] = {"prompt": prompt_from_graph(graph) if prompt is None else prompt}
    if workflow is not None:
        extra["workflow"] = workflow
    return extra


def _read_editor(data: Any, source: str, text: str | None, registry: Registry,
                 overrides: dict[str, Any], given_as: str) -> Workflow:  # fmt: skip
    graph = graph_from_editor(data, registry, source=source)
    overrides = _apply_overrides(graph, overrides, source, registry, given_as)
    extra = _comfy_extra(graph, None, _carried(data, "editor", graph, overrides, registry))
    return Workflow(graph, dict(overrides), raw=data, extra=extra, format="editor")


def _read_api(data: Any, source: str, text: str | None, registry: Registry,
              overrides: dict[str, Any], given_as: str) -> Workflow:  # fmt: skip
    prompt = prompt_body(data)
    graph = graph_from_prompt(prompt, registry, source=source)
    workflow = None
    if isinstance(data.get("extra_data"), dict):
        workflow = (data["extra_data"].get("extra_pnginfo") or {}).get("workflow")
    if overrides:
        _apply_overrides(graph, overrides, source, registry, given_as)
        prompt = None
    extra = _comfy_extra(graph, prompt, _carried(workflow, "api", graph, overrides, registry))
    return Workflow(graph, dict(overrides), raw=data, extra=extra, format="api")


def _read_ours(data: Any, source: str, text: str | None, registry: Registry,
               overrides: dict[str, Any], given_as: str) -> Workflow:  # fmt: skip
    workflow = load_workflow(source, text=text, overrides=overrides or None, registry=registry,
                             given_as=given_as)  # fmt: skip
    if text:  # what SaveImage embeds: the document as written, with this run's params
        workflow.extra["latentgraph"] = text_with_params(text, workflow.raw.get("params"),
                                                    workflow.params)  # fmt: skip
    return workflow


def embedded(workflow: Workflow | Graph) -> dict[str, Any]:
    """The documents a run's saved files carry (its `ctx.extra`; SaveImage's PNG text chunks):
    the workflow's own (`Workflow.extra`: our document with the run's params, the editor
    workflow), with the API prompt built from the graph when it has none (ours); a Graph given
    as it is carries that prompt only. `latentgraph run`, `run --ray` and `latentgraph.run`
    all embed these, so what any of them saves reloads."""
    if isinstance(workflow, Graph):
        return {"prompt": prompt_from_graph(workflow)}
    extra = dict(workflow.extra)
    extra.setdefault("prompt", prompt_from_graph(workflow.graph))
    return extra


def _is_api(data: Any) -> bool:
    return isinstance(data, dict) and prompt_body(data) is not None


def _is_json_schema(data: Any) -> bool:
    """A JSON Schema document (workflows/schema.json, `latentgraph schema`'s output): a
    top-level `$schema` with no `nodes` beside it (our workflows may name their schema with
    `$schema`, but they hold nodes). `validate workflows/*.json` read ours as a workflow and
    printed eight errors, `unknown top-level key '$id'`..."""
    return isinstance(data, dict) and "$schema" in data and "nodes" not in data


def _refuse_json_schema(data: Any, source: str, text: str | None, registry: Registry,
                        overrides: dict[str, Any], given_as: str) -> Workflow:  # fmt: skip
    raise _error(source, "this is a JSON Schema (the workflow format's description), not a "
                 "workflow", code="syntax")  # fmt: skip


OURS = Reader("yaml", lambda data: True, _read_ours)  # last: its loader reports what is wrong
READERS: tuple[Reader, ...] = (
    Reader("editor", is_editor_workflow, _read_editor),
    Reader("api", _is_api, _read_api),
    Reader("json-schema", _is_json_schema, _refuse_json_schema),
    OURS,
)


def _reader(data: Any) -> Reader:
    return next(reader for reader in READERS if reader.recognises(data))


def detect(data: Any) -> str:
    """ "api", "editor" or "yaml" (latentgraph's own document) for a parsed document
    ("json-schema": a JSON Schema, which no reader reads)."""
    return _reader(data).name


def _read(data: Any, source: str, text: str | None, registry: Registry,
          overrides: dict[str, Any], given_as: str, twice: list[str] | None = None) -> Workflow:  # fmt: skip
    """Read parsed document `data` (its text: `text`) with the reader of its format. `twice`:
    the keys `_parse_text` found written twice in one object, refused in a ComfyUI file."""
    reader = _reader(data)
    if reader is not OURS and twice:  # ours: its loader says where, with line:column
        raise WorkflowError([
            Problem("syntax", f"key {key!r} is written twice in one object (JSON would keep the "
                    "last without a word): keep the one you mean", location=Location(source))
            for key in dict.fromkeys(twice)
        ])  # fmt: skip
    return reader.read(data, source, text, registry, overrides, given_as)


def _parse_text(text: str) -> tuple[Any, list[str]]:
    """The parsed JSON document, or None (YAML, or JSON the workflow loader reports with
    line:column), and the keys it writes twice in one object, parsed once: a ComfyUI file
    holding one is refused (JSON keeps the last silently: a hand edit's `"mode": 0, "mode": 2`
    muted the node), as our JSON is."""
    twice: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                twice.append(key)
            seen.add(key)
        return dict(items)

    if not text.lstrip().startswith("{"):
        return None, []
    try:
        return json.loads(text, object_pairs_hook=pairs), twice
    except (ValueError, RecursionError):
        return None, []


def png_text(path: Path) -> dict[str, str]:
    """The text chunks (tEXt/iTXt/zTXt) of a PNG file. Pillow decodes the image to reach the
    chunks after its pixels, so its header must claim at most `MAX_PNG_PIXELS`; a file cut
    short in its pixels gives the chunks before them (read with the header, where latentgraph
    and ComfyUI write theirs) when they hold a workflow, as the editor reads it."""
    from PIL import UnidentifiedImageError

    from .pictures import ImageTooLarge, open_image

    try:
        with open_image(path, MAX_PNG_PIXELS) as img:
            if img.format != "PNG":
                raise _error(str(path), f"not a PNG image (it is {img.format})")
            before_pixels = {k: v for k, v in img.info.items() if isinstance(v, str)}
            try:
                return dict(img.text)
            except OSError:
                if any(key in before_pixels for key in PNG_KEYS):
                    return before_pixels
                raise
    except ImageTooLarge as exc:
        raise _error(str(path), f"cannot read the PNG's text: the image is {exc}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise _error(str(path), f"cannot read the PNG: {exc}") from None


def webp_text(path: Path) -> dict[str, str]:
    """The workflow entries of a WEBP's EXIF, as ComfyUI's SaveAnimatedWEBP (and ours) writes
    them: text tags `<key>:<json>` (`prompt:` in 0x0110, `workflow:` in 0x010F, any other
    extra in the tags below; ours `latentgraph:<text>`, UTF-8), each read by its prefix as the
    editor reads them. Pillow reads the EXIF with the header, no frame decoded; the header must
    claim at most `MAX_PNG_PIXELS`."""
    from PIL import UnidentifiedImageError

    from .pictures import ImageTooLarge, open_image

    try:
        with open_image(path, MAX_PNG_PIXELS) as img:
            exif = img.getexif()
    except ImageTooLarge as exc:
        raise _error(str(path), f"cannot read the WEBP's EXIF: the image is {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _error(str(path), f"cannot read the WEBP: {exc}") from None
    entries: dict[str, str] = {}
    for value in exif.values():
        text = _exif_text(value) if isinstance(value, str) else ""
        key, sep, text = text.partition(":")
        if sep and key in PNG_KEYS:
            entries.setdefault(key, text)
    return entries


def _exif_text(value: str) -> str:
    """An EXIF text tag read as UTF-8, as ComfyUI's editor reads each: our document is written
    as its UTF-8 bytes (`café`, comments and layout as written), which Pillow reads as Latin-1.
    ASCII (ComfyUI's entries, a document saved escaped before) reads the same either way; bytes
    that are not UTF-8 are kept as Pillow read them."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def image_signature(head: bytes) -> str | None:
    """The image format ("PNG", "WEBP", "JPEG") bytes begin with the signature of (12 are
    enough), None otherwise: read without Pillow, so a broken image is still one, and bytes
    with no file (a pipe's) are named too."""
    if head[:8] == PNG_SIGNATURE:
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    return None


def _image_format(path: Path) -> str | None:
    """The file's image format ("PNG", "JPEG", ... of IMAGE_FORMATS), None for anything else;
    whatever size its header claims (Pillow's decompression-bomb error was a crash)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return None  # the text reader reports it
    signed = image_signature(head)
    if signed:
        return signed
    from PIL import UnidentifiedImageError

    from .pictures import open_image

    try:
        with open_image(path, sys.maxsize, IMAGE_FORMATS) as img:
            return img.format
    except (UnidentifiedImageError, OSError):
        return None


def _chunk_json(source: str, image: str, key: str, text: str) -> Any:
    """The JSON document in an image's `key` text, or the error naming the text."""
    try:
        return json.loads(text)
    except RecursionError:
        raise _error(source, f"the {image}'s {key!r} text is nested too deeply",
                     "limit_exceeded") from None  # fmt: skip
    except ValueError:
        raise _error(source, f"the {image}'s {key!r} text is not valid JSON") from None


def _comfy_document(source: str, image: str, chunks: dict[str, str], key: str) -> tuple[str, Any]:
    """(the text read, its JSON) for ComfyUI text `key`: a `prompt` that is not JSON gives way
    to a `workflow` beside it (the editor, too, opens the workflow), with a warning naming it."""
    try:
        return key, _chunk_json(source, image, key, chunks[key])
    except WorkflowError as exc:
        if key != "prompt" or "workflow" not in chunks:
            raise
        try:
            data = _chunk_json(source, image, "workflow", chunks["workflow"])
        except WorkflowError:
            raise exc from None
        warnings.warn(f"{source}: {exc.problems[0].message}: running its 'workflow' text",
                      WorkflowWarning, stacklevel=4)  # fmt: skip
        return "workflow", data


def _load_image(path: Path, image: str, overrides: dict[str, Any], registry: Registry,
                given_as: str) -> Workflow:  # fmt: skip
    source = str(path)
    chunks, key = _workflow_image(path, image)
    if key == "latentgraph":  # our own document may be YAML text
        try:
            data = json.loads(chunks[key])
        except RecursionError:
            raise _error(source, f"the {image}'s {key!r} text is nested too deeply",
                         "limit_exceeded") from None  # fmt: skip
        except ValueError:
            data = None
    else:
        key, data = _comfy_document(source, image, chunks, key)
    reader = _reader(data)
    if key != "latentgraph" and reader is OURS:  # ours is only ever in its own chunk
        raise _error(source, f"the {image}'s {key!r} text is not a ComfyUI prompt or workflow")
    # Lines and columns are the embedded text's, not the image file's: say so where they show.
    embedded = f"{source} (embedded workflow)"
    workflow = reader.read(data, embedded, chunks[key], registry, overrides, given_as)
    workflow.graph.source = source  # what `reload` reads again
    if "workflow" in chunks and "workflow" not in workflow.extra:
        try:
            carried = json.loads(chunks["workflow"])
        except (ValueError, RecursionError):  # only carried along: left out when broken
            carried = None
        carried = _carried(carried, workflow.format, workflow.graph, overrides, registry)
        if carried is not None:
            workflow.extra["workflow"] = carried
    return workflow


def _workflow_image(path: Path, image: str) -> tuple[dict[str, str], str]:
    """A workflow image's texts (PNG text chunks, WEBP EXIF entries), and which holds the
    workflow to run: the first of `PNG_KEYS` it has."""
    source = str(path)
    if path.stat().st_size > MAX_PNG_BYTES:
        raise _error(source, f"{image} larger than {MAX_PNG_BYTES // 2**20} MB")
    chunks = png_text(path) if image == "PNG" else webp_text(path)
    for key in PNG_KEYS:
        if key in chunks:
            return chunks, key
    raise _error(source, f"a {image} image with no workflow in it (no 'prompt', 'workflow' or "
                         f"'latentgraph' {WORKFLOW_IMAGES[image]}; {NO_WORKFLOW})")  # fmt: skip


def _refuse_image(path: Path, image: str | None) -> None:
    """An image that cannot carry a workflow (not one of WORKFLOW_IMAGES) holds none we read."""
    if image is not None:
        raise _error(str(path), f"a {image} image with no workflow in it ({NO_WORKFLOW})")


def workflow_text(path: str | Path) -> str:
    """A workflow file's text as a server reads it (`latentgraph submit` sends it): a PNG's
    or WEBP's workflow text, the one `load_file` runs; any other file as `read_source` reads
    it."""
    path = Path(path)
    image = _image_format(path)
    if image in WORKFLOW_IMAGES:
        chunks, key = _workflow_image(path, image)
        return chunks[key]
    _refuse_image(path, image)
    return read_source(path)


def load_file(path: str | Path, overrides: dict[str, Any] | None = None,
              registry: Registry | None = None, given_as: str = "--set") -> Workflow:  # fmt: skip
    """Read any supported workflow file; `overrides` are params (ours) or `node.input`
    assignments (ComfyUI formats), given as `given_as` says."""
    path = Path(path)
    registry = registry_or_default(registry)
    image = _image_format(path)
    if image in WORKFLOW_IMAGES:
        return _load_image(path, image, overrides or {}, registry, given_as)
    _refuse_image(path, image)
    text = read_source(path)
    data, twice = (None, []) if path.suffix.lower() in (".yaml", ".yml") else _parse_text(text)
    return _read(data, str(path), text, registry, overrides or {}, given_as, twice)


def load_text(text: str, source: str = "<request>", overrides: dict[str, Any] | None = None,
              registry: Registry | None = None, given_as: str = "--set") -> Workflow:  # fmt: skip
    """Like `load_file`, for a document already in memory (our YAML/JSON, ComfyUI API or
    editor JSON), e.g. the body of a request."""
    registry = registry_or_default(registry)
    data, twice = _parse_text(text)
    return _read(data, source, text, registry, overrides or {}, given_as, twice)


def reload(workflow: Workflow, overrides: dict[str, Any], registry: Registry | None = None,
           given_as: str = "--set") -> Workflow:  # fmt: skip
    """`workflow` read again with `overrides` on top of its own (params are substituted at
    load time): from its file when it came from one, else from its document."""
    merged = {**workflow.params, **overrides}
    source = workflow.graph.source
    if Path(source).is_file():
        return load_file(source, merged, registry, given_as)
    return load_text(json.dumps(workflow.raw), source, merged, registry, given_as)
