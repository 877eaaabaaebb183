"""Tiny crafted images whose header claims a huge size: what a decompression bomb looks like
to a reader that trusts the header. Shared by the pixel-limit tests."""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header_only_png(width: int, height: int) -> bytes:
    """A 65-byte RGB PNG whose IHDR says `width` x `height`, with an empty IDAT: Pillow opens
    it and reports that size; decoding it fails (the pixel data is missing)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""))  # fmt: skip
