"""Opening an image file someone else gave (LoadImage's input, a server upload, a file /view
re-encodes) within the pixel limit, before a pixel is decoded: `open_image`, the one way such
files are opened.

Pillow reads only the header when it opens a file, so the size is known undecoded; but its
own decompression-bomb check (`PIL.Image.MAX_IMAGE_PIXELS`, about 89 million pixels) runs
inside `Image.open` before the caller sees the size: it warns on stderr above that and raises
`DecompressionBombError` above twice that, which would speak instead of our limit (our
`max_image_pixels`, --max-pixels, always set, is mostly lower, but may be set higher). Here
Pillow's check is off only while `Image.open` reads the header, our limit is checked right
after, and Pillow's bound is back in force for everything else (other frames, other callers).

Also the one rule for a name a PNG text chunk may have (`text_key_problem`): SaveImage writes
each of a prompt's `extra_pnginfo` entries under its key, and POST /prompt refuses a key that
cannot be one before the prompt is queued.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Held while Pillow's own bound is lifted, so two opens never restore each other's value.
_PILLOW_BOUND = threading.Lock()


class ImageTooLarge(ValueError):
    """An image whose header gives more pixels than the limit; nothing of it was decoded."""

    def __init__(self, width: int, height: int, limit: int) -> None:
        self.width, self.height, self.limit = width, height, limit
        self.pixels = width * height
        super().__init__(f"{width}x{height} = {self.pixels:,} pixels, over the limit of {limit:,}")


@contextmanager
def open_image(source: str | Path | IO[bytes], max_pixels: int,
               formats: tuple[str, ...] | None = None) -> Iterator[Any]:  # fmt: skip
    """The PIL image of `source` (a path or a binary file), its header read and nothing
    decoded, closed on leaving; `ImageTooLarge` if it has more than `max_pixels` pixels,
    whatever its size (Pillow's own limit neither raises nor warns first). `formats`: the
    formats tried (Pillow's names), all when None. Errors reading the file are Pillow's
    (`UnidentifiedImageError`, `OSError`, ...)."""
    from PIL import Image

    with _PILLOW_BOUND:
        bound, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            img = Image.open(source, formats=formats)
        finally:
            Image.MAX_IMAGE_PIXELS = bound
    with img:
        if img.width * img.height > max_pixels:
            raise ImageTooLarge(img.width, img.height, max_pixels)
        yield img


# A PNG text chunk's keyword (the PNG specification, 11.3.4): 1 to 79 Latin-1 characters, each
# printable (a space, or 33-126, 161-255), no space at either end, none doubled.
PNG_KEY_MAX_CHARS = 79


def text_key_problem(key: str) -> str | None:
    """Why `key` cannot name a PNG text chunk, or None. Pillow writes some such keys anyway
    (a longer one, one holding NUL, which readers cut there) and raises for others (`日本`)."""
    if not 0 < len(key) <= PNG_KEY_MAX_CHARS:
        return f"a PNG text chunk's name has 1 to {PNG_KEY_MAX_CHARS} characters, not {len(key)}"
    if any(not (c == " " or "!" <= c <= "~" or "\xa1" <= c <= "\xff") for c in key):
        return (
            "a PNG text chunk's name holds printable Latin-1 characters only (letters, "
            "digits, punctuation, spaces)"
        )
    if key != key.strip(" ") or "  " in key:
        return "a PNG text chunk's name has no space at either end and no two spaces together"
    return None
