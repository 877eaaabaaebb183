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

How such a picture's pixels are read is one rule for LoadImage and the server's routes (/view's
channels and previews, /upload/mask), so the mask editor, a stored mask and a run see one
picture: turned upright by its EXIF orientation (`upright`), and 16-bit grayscale read at full
precision, 0..65535 (`gray_levels`; `eight_bit` for 8-bit channels, where Pillow's `convert`
clips it to white).

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


# Modes Pillow gives 16-bit grayscale pictures (PNG, TIFF, PGM) and 32-bit integer ones: read
# as 16-bit values, 0..65535 (larger ones clipped), as the picture shows them.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
SIXTEEN_BIT_MAX = 65535.0


def upright(frame: Any) -> Any:
    """`frame` as it is shown: turned by its EXIF orientation (a phone photo stored sideways,
    its tag saying so), a copy read in full without that tag, so a file saved from it is
    upright without one. LoadImage reads this picture, and /view and /upload/mask show and
    mask it: a mask painted on the upright picture fits what the run loads."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(frame)


def gray_levels(picture: Any) -> Any:
    """A 16-bit grayscale `picture` (`SIXTEEN_BIT_MODES`) as float32 numpy levels [H, W] in
    0..1, at full precision: 0..65535 is 0..1, larger (32-bit) values 1, negative ones 0."""
    import numpy as np

    return np.clip(np.asarray(picture, dtype=np.float32) / SIXTEEN_BIT_MAX, 0.0, 1.0)


def eight_bit(picture: Any, mode: str | None = None) -> Any:
    """`picture` with 8-bit channels, in Pillow's `mode` when given ("RGB", "RGBA"): 16-bit
    grayscale scaled from its `gray_levels` (Pillow's `convert` clips every value over 255,
    and a 0..65535 gradient turned white), any other picture converted by Pillow, or left as
    it is without a `mode`."""
    if picture.mode in SIXTEEN_BIT_MODES:
        import numpy as np
        from PIL import Image

        levels = np.rint(gray_levels(picture) * 255.0).astype(np.uint8)
        picture = Image.fromarray(levels, "L")
    return picture.convert(mode) if mode and picture.mode != mode else picture


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
