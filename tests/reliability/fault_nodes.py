"""A toy output node that breaks things inside the worker process running it, the way the GPU
or the OS would: the fault tests queue it to arm a fault in the worker, and again with "none"
to disarm every fault. (Prompts run in worker processes: a monkeypatch in the test process
would not reach them.)"""

from __future__ import annotations

import errno
import os

from latentgraph.graph import Choice, Registry, node

FAULTS = ["none", "unet_oom", "link_ENOSPC", "link_EROFS", "link_EACCES"]
_undo: list = []  # (object, attribute, original) armed in this process


def _arm(owner, name: str, replacement) -> None:
    _undo.append((owner, name, getattr(owner, name)))
    setattr(owner, name, replacement)


def _disarm() -> None:
    while _undo:
        owner, name, original = _undo.pop()
        setattr(owner, name, original)


def register_faults(registry: Registry) -> Registry:
    @node("InjectFault", inputs=[Choice("fault", FAULTS, "none")], outputs=[],
          output_node=True, deterministic=False, category="toy", registry=registry)  # fmt: skip
    def inject_fault(ctx, fault):
        _disarm()
        if fault == "unet_oom":
            import torch
            from diffusers import UNet2DConditionModel

            def oom(self, *args, **kwargs):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

            _arm(UNet2DConditionModel, "forward", oom)
        elif fault.startswith("link_"):
            code = getattr(errno, fault.removeprefix("link_"))

            def failing_link(src, dst, *a, **kw):
                raise OSError(code, os.strerror(code), str(src), None, str(dst))

            _arm(os, "link", failing_link)

    return registry
