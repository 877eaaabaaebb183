"""The example workflows (workflows/*.yaml) as the editor's templates.

The editor's Templates dialog reads `/templates/index.json` (a list of categories, each with
`moduleName`, `title`, `type` and `templates`: `name`, `title`, `description`, `mediaType`,
`mediaSubtype`), shows `/templates/<name>-1.<mediaSubtype>` as each card's picture and opens
`/templates/<name>.json`, an editor-format workflow. `/api/workflow_templates` lists the
templates of custom-node packages (`{package: [names]}`): latentgraph has none, and any other
shape (an error body included) breaks the editor's run button with `n.forEach is not a
function`. `index_logo.json` (logos of model providers) is an empty object.

Each workflow is converted with the same code as `latentgraph convert --to editor`; its
picture is drawn from the workflow (title and node chain), since running it would cost a
model load per card.

The first card, `default` (ComfyUI's own name for it), is ComfyUI's classic default graph on
the built-in tiny model: the graph the editor opens on a first visit (editor.py sends the page
there), since the frontend's own built-in default graph is a Z-Image one latentgraph cannot run.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .collector import in_thread
from .errors import ApiError
from .state import get_state

MODULE = "default"  # the editor's name for its core templates
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"index(\.[A-Za-z-]+)?\.json")  # index.json, or a locale's index.fr.json
DEFAULT_TEMPLATE = "default"  # the name ComfyUI's templates give this graph
# ComfyUI's classic default graph (its editor's default before the Z-Image one), as an API
# prompt with the same node ids and values, on the built-in tiny model instead of
# v1-5-pruned-emaonly.safetensors.
CLASSIC_DEFAULT: dict[str, dict[str, Any]] = {
    "3": {"class_type": "KSampler",
          "inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8.0, "sampler_name": "euler",
                     "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                     "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "builtin:tiny-sd"}},
    "5": {"class_type": "EmptyLatentImage",
          "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode",
          "inputs": {"text": "beautiful scenery nature glass bottle landscape, , purple galaxy "
                             "bottle,", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}  # fmt: skip
# Its layout, as ComfyUI's: the loader; the two text encoders and the empty latent stacked;
# the KSampler; VAE Decode over Save Image (ComfyUI puts those two side by side in narrower
# nodes). Four columns (1,460 px) keep it above the editor's low-quality zoom when fitted to
# a 1400x900 window (71%); five by depth (1,840 px) would show untitled grey boxes.
CLASSIC_COLUMNS = (("4",), ("6", "7", "5"), ("3",), ("8", "9"))


def _workflows(folder: Path | None) -> dict[str, Path]:
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))
            if _NAME.fullmatch(p.stem) and p.stem != DEFAULT_TEMPLATE}  # fmt: skip


def _about(path: Path, registry: Any) -> tuple[str, str]:
    """(title, description): the `description:` line, and the opening comment as prose."""
    from latentgraph.graph.workflow import load_workflow

    comments = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if "yaml-language-server" not in line:
            comments.append(line.lstrip("#").strip())
    try:
        title = load_workflow(path, registry=registry).description or path.stem
    except Exception:  # noqa: BLE001 - a broken example still gets a card, by its file name
        title = path.stem
    return title, " ".join(comments)


def _card(name: str, title: str, description: str) -> dict[str, Any]:
    return {"name": name, "title": title, "description": description, "mediaType": "image",
            "mediaSubtype": "png"}  # fmt: skip


def index(folder: Path | None, registry: Any) -> list[dict[str, Any]]:
    """The templates: ComfyUI's classic default graph first, then the example workflows."""
    templates = [_card(DEFAULT_TEMPLATE, "Image Generation",
                       "ComfyUI's classic default graph, on the built-in tiny model (its "
                       "images are noise): pick a checkpoint to make real ones.")]  # fmt: skip
    for name, path in _workflows(folder).items():
        templates.append(_card(name, *_about(path, registry)))
    return [{"moduleName": MODULE, "title": "latentgraph examples", "type": "image",
             "category": "latentgraph", "isEssential": True, "templates": templates}]  # fmt: skip


def _graph(path: Path | None, registry: Any) -> Any:
    """The graph of a template: the workflow at `path`, or (None) the classic default."""
    if path is None:
        from latentgraph.graph.comfy_api import graph_from_prompt

        return graph_from_prompt(CLASSIC_DEFAULT, registry, source=f"template {DEFAULT_TEMPLATE}")
    from latentgraph.graph.workflow import load_workflow

    return load_workflow(path, registry=registry).graph


def editor_workflow(path: Path | None, registry: Any) -> dict[str, Any]:
    """The template as the editor opens it. The classic default graph's seed is `randomize`d
    after each queueing, as ComfyUI's default graph's is (a new seed per press of Run); an
    example keeps its seed (`fixed`, as `latentgraph convert --to editor` writes it): its seed
    is part of the example, and it makes what `latentgraph run` of the file makes.

    The editor fits a template into its window whatever view it carries: an example is laid
    out for that fit (`editor_from_graph(fitted=True)`) to be readable, where one column per
    depth opened at 27-56% in a 1400x900 window, every node an untitled grey box."""
    from latentgraph.graph.comfy_editor import editor_from_graph

    graph = _graph(path, registry)
    if path is None:
        return editor_from_graph(graph, registry, seed_control="randomize",
                                 columns=CLASSIC_COLUMNS)  # fmt: skip
    return editor_from_graph(graph, registry, seed_control="fixed", fitted=True)


def thumbnail(path: Path | None, registry: Any) -> bytes:
    """A 256x256 card: the workflow's nodes in order (the dialog prints the title below it,
    and its own badge covers the top left corner)."""
    from PIL import Image, ImageDraw

    graph = _graph(path, registry)
    img = Image.new("RGB", (256, 256), (32, 34, 40))
    draw = ImageDraw.Draw(img)
    for row, node in enumerate(list(graph)[:13]):
        y = 44 + row * 15
        draw.rectangle((12, y, 244, y + 12), fill=(58, 62, 74))
        draw.text((16, y), f"{node.id}: {node.type}"[:36], fill=(200, 210, 230))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _template(request: Request, name: str) -> Path | None:
    """The workflow file of template `name` (None for the classic default); 404 if none."""
    if name == DEFAULT_TEMPLATE:
        return None
    path = _workflows(get_state(request).config.templates_dir).get(name)
    if path is None:
        raise ApiError(404, f"no template {name!r}", "not_found")
    return path


async def template_file(request: Request) -> Response:
    """/templates/<file>: the index, a workflow (<name>.json) or its picture (<name>-1.png)."""
    state = get_state(request)
    file = request.path_params["file"]
    if _INDEX.fullmatch(file):
        return JSONResponse(await in_thread(index, state.config.templates_dir, state.registry))
    if file == "index_logo.json":
        return JSONResponse({})
    stem, dot, suffix = file.rpartition(".")
    if dot and suffix == "json" and _NAME.fullmatch(stem):
        path = _template(request, stem)
        return JSONResponse(await in_thread(editor_workflow, path, state.registry))
    if dot and suffix == "png" and stem.endswith("-1") and _NAME.fullmatch(stem):
        path = _template(request, stem[: -len("-1")])
        return Response(await in_thread(thumbnail, path, state.registry),
                        media_type="image/png")  # fmt: skip
    raise ApiError(404, f"no template file {file!r}", "not_found")


async def custom_node_templates(request: Request) -> JSONResponse:
    return JSONResponse({})


routes = [Route("/workflow_templates", custom_node_templates, methods=["GET"])]
# Outside /api: the editor asks for these next to its own static files.
static_routes = [Route("/templates/{file}", template_file, methods=["GET"])]
