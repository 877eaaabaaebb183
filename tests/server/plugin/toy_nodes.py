"""Pure-Python toy nodes for the server tests (no torch).

`register(registry)` adds them to a test registry; imported as a plugin file (the subprocess
restart test) it registers them in the default registry.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

from latentgraph.graph import Float, Int, NodeResult, Output, Registry, Socket, String, node

NUM = "NUM"


def _png(path: Path, shade: int) -> None:
    """A 2x2 grey PNG written without Pillow, atomically."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + bytes([shade % 256] * 2) for _ in range(2))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def register(registry: Registry | None = None) -> Registry | None:
    @node("Number", inputs=[Int("value", 0, min=-1000, max=1000)], outputs=[Output("n", NUM)],
          category="toy", registry=registry)  # fmt: skip
    def number(ctx, value):
        return value

    @node("Add", inputs=[Socket("a", NUM), Socket("b", NUM)], outputs=[Output("n", NUM)],
          category="toy", registry=registry)  # fmt: skip
    def add(ctx, a, b):
        return a + b

    @node("Slow", inputs=[Socket("x", NUM), Int("steps", 10, min=1, max=10000, limit="max_steps"),
                          Float("delay", 0.01, min=0, max=5)],
          outputs=[Output("n", NUM)], category="toy", registry=registry)  # fmt: skip
    def slow(ctx, x, steps, delay):
        for i in range(steps):
            ctx.check_cancelled()
            time.sleep(delay)
            ctx.progress(i + 1, steps)
        return x

    @node("Exit", inputs=[Socket("x", NUM), Int("code", 9, min=0, max=255)],
          outputs=[Output("n", NUM)], category="toy", registry=registry)  # fmt: skip
    def exit_(ctx, x, code):
        """Ends its worker process at once, as a crash in native code does: nothing after it
        runs, no message it would send leaves."""
        os._exit(code)

    @node("Block", inputs=[Socket("x", NUM), Float("seconds", 60, min=0, max=600)],
          outputs=[Output("n", NUM)], category="toy", registry=registry)  # fmt: skip
    def block(ctx, x, seconds):
        """Like a long model call: never checks for cancellation."""
        time.sleep(seconds)
        return x

    @node("Glimpse", inputs=[Socket("x", NUM)], outputs=[Output("n", NUM)], category="toy",
          registry=registry)  # fmt: skip
    def glimpse(ctx, x):
        """One progress step with a preview image (a 4x4 grey square)."""
        from PIL import Image

        ctx.progress(1, 1, preview=lambda: Image.new("RGB", (4, 4), (x % 256,) * 3))
        return x

    @node("Fail", inputs=[Socket("x", NUM), String("why", "boom")], outputs=[Output("n", NUM)],
          category="toy", registry=registry)  # fmt: skip
    def fail(ctx, x, why):
        raise ValueError(why)

    @node("Open", inputs=[Socket("x", NUM), String("name", "cat.png")],
          outputs=[Output("n", NUM)], category="toy", registry=registry)  # fmt: skip
    def open_(ctx, x, name):
        """Fails as a file reader does: quoting the name as given, then the path it looked at
        (in the input folder unless `name` is absolute) and a link's target outside it."""
        folder = Path(ctx.settings.input_dir).absolute()
        path = Path(name) if Path(name).is_absolute() else folder / name
        raise ValueError(f"cannot read {name!r}: {path} is a link to a missing file, "
                         f"/elsewhere/{path.name} (looked in {folder})")  # fmt: skip

    @node("Show", inputs=[Socket("x", NUM), String("prefix", "toy")], outputs=[],
          output_node=True, category="toy", registry=registry)  # fmt: skip
    def show(ctx, x, prefix):
        out = Path(ctx.settings.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}_{x}.png"
        _png(out / name, int(x))
        return NodeResult(
            (), ui={"images": [{"filename": name, "subfolder": "", "type": "output"}]}
        )

    return registry


def toy_registry() -> Registry:
    """A fresh registry of the toy nodes (a server's worker processes build theirs with it)."""
    return register(Registry())


if __name__ != "__main__" and os.environ.get("LATENTGRAPH_TOY_PLUGIN") == "1":
    register()
