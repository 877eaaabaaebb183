"""SaveAnimatedWEBP: an image batch saved as one animated WEBP (pillow), ComfyUI's node.

Written like SaveImage's PNGs: a checked file name prefix inside the output folder, numbered
files, each written to a temporary name and linked into place; written again when a cached
run finds the file gone or changed, or the output folder changed. The workflow travels in the
file's EXIF as ComfyUI puts it ("prompt:..." in Model, "workflow:..." in Make, each other
extra_pnginfo entry "key:..." in the tags below), so ComfyUI's editor can load it back; our own
document with the run's params ("latentgraph:...", below the workflow) as a saved PNG carries
it, so `latentgraph run clip.webp --set ...` re-runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latentgraph.graph import IMAGE, Bool, Choice, Float, Int, NodeResult, Socket, node

from .images import (
    PNG_OTHER_CHUNKS,
    SAVES,
    document_text,
    filename_prefix_input,
    other_entries,
    output_files,
    row_image,
    to_uint8,
)

METHODS = {"default": 4, "fastest": 0, "slowest": 6}  # pillow's WEBP effort, 0..6
EXIF_MAKE, EXIF_MODEL = 0x010F, 0x0110


# The run's documents the WEBP carries in EXIF, as ComfyUI writes them, our own document (with
# the run's params, as a saved PNG carries it), and the prompt's other extra_pnginfo entries:
# declared (`embeds`), so a run of another document (a node moved, a param set, an API client's
# other entry) saves a file carrying it.
WEBP_EXIF_KEYS = ("prompt", "workflow", "latentgraph")


def _entry_tags() -> list[int]:
    """The EXIF tags the extra_pnginfo entries go in, as ComfyUI's SaveAnimatedWEBP puts them:
    Make (0x010F) first, then each tag below it; one Pillow writes as a number (0x010A
    FillOrder, ...) is skipped, where ComfyUI's save failed from a sixth entry on. The editor
    reads an entry from any text tag, by its `key:` prefix."""
    from PIL import TiffTags

    return [t for t in range(EXIF_MAKE, 0, -1) if TiffTags.lookup(t).type in (None, TiffTags.ASCII)]


def _exif(ctx: Any) -> Any:
    """The prompt in Model, then the workflow, our document (`latentgraph:<text>`) and the other
    extra_pnginfo entries (`other_entries`), each `key:<json>` in the next entry tag (as
    ComfyUI writes them: in ASCII, another character a `?`); entries past the last tag left
    out, with a warning. Ours alone (`document_text`) is UTF-8, as written: comments, layout
    and a `café ☕` prompt come back from `latentgraph convert clip.webp` as from a PNG. Pillow
    writes bytes in an ASCII tag as they are (a str it writes in ASCII, another character a
    `?`); `webp_text` reads them back as UTF-8, as ComfyUI's editor reads every text tag. It
    goes in Make or ImageDescription, text (ASCII) tags both: a tag of no known type Pillow
    would write as a BYTE one, and an editor before its `typeof` check failed on a non-text
    (UNDEFINED) tag and loaded no workflow at all."""
    from PIL import Image

    extra = ctx.extra
    exif = Image.Exif()
    if extra.get("prompt") is not None:
        exif[EXIF_MODEL] = "prompt:" + json.dumps(extra["prompt"])
    texts: list[str | bytes] = []
    if extra.get("workflow") is not None:
        texts.append("workflow:" + json.dumps(extra["workflow"]))
    ours = document_text(extra)
    if ours is not None:
        texts.append(b"latentgraph:" + ours.encode("utf-8"))
    entries = texts + [f"{key}:{json.dumps(value)}" for key, value in other_entries(extra)]
    tags = _entry_tags()
    for tag, entry in zip(tags, entries, strict=False):
        exif[tag] = entry
    if len(entries) > len(tags):
        ctx.warn(f"{len(entries) - len(tags)} extra_pnginfo entries left out of the WEBP: its "
                 f"EXIF has room for {len(tags)}")  # fmt: skip
    return exif


@node(
    "SaveAnimatedWEBP",
    display_name="Save Animated WEBP",
    category="image/animation",
    inputs=[Socket("images", IMAGE, description="the frames, in batch order"),
            filename_prefix_input("ComfyUI"),
            Float("fps", 6.0, min=0.01, max=1000.0, step=0.01),
            Bool("lossless", True),
            Int("quality", 80, min=0, max=100, description="with lossless: effort, else quality"),
            Choice("method", list(METHODS), "default",
                   description="compression effort: slower is smaller")],
    outputs=[],
    embeds=(*WEBP_EXIF_KEYS, PNG_OTHER_CHUNKS),
    **SAVES,
)  # fmt: skip
def save_animated_webp(ctx, images, filename_prefix: str = "ComfyUI", fps: float = 6.0,
                       lossless: bool = True, quality: int = 80, method: str = "default"):  # fmt: skip
    """Save an image batch as one animated WEBP in the output folder."""

    frames = [row_image(row) for row in to_uint8(images)]
    exif = _exif(ctx)
    root = Path(ctx.settings.output_dir)
    files = output_files(ctx, filename_prefix, root, "output", ".webp", record_contents=True,
                         size=frames[0].size)  # fmt: skip

    def save(tmp: Path) -> None:
        frames[0].save(tmp, format="WEBP", save_all=True, append_images=frames[1:],
                       duration=max(1, round(1000.0 / fps)), loop=0, lossless=lossless,
                       quality=quality, method=METHODS[method], exif=exif)  # fmt: skip

    record = files.write(save)
    return NodeResult(values=(), ui={"images": [record], "animated": [True]})
