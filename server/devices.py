"""What a worker runs on, for /system_stats: each device's name and memory, read in the worker
(the HTTP process never imports torch) and reported with its `Ready` message."""

from __future__ import annotations

import os
import re
import sys

from .workers import Device


def memory() -> tuple[int, int]:
    """This machine's RAM: (total, available) bytes, from /proc/meminfo (0, 0 elsewhere).
    Read as bytes in one call and searched: a worker reads it as each run ends, and reading
    it line by line as text took 45 us there, this 12 us."""
    try:
        fd = os.open("/proc/meminfo", os.O_RDONLY)
        try:
            text = os.read(fd, 8192)
        finally:
            os.close(fd)
    except OSError:
        return 0, 0
    return _kilobytes(_MEM_TOTAL, text) * 1024, _kilobytes(_MEM_AVAILABLE, text) * 1024


_MEM_TOTAL = re.compile(rb"^MemTotal:\s*(\d+)", re.MULTILINE)
_MEM_AVAILABLE = re.compile(rb"^MemAvailable:\s*(\d+)", re.MULTILINE)


def _kilobytes(field: re.Pattern[bytes], meminfo: bytes) -> int:
    found = field.search(meminfo)
    return int(found.group(1)) if found else 0


def worker_devices(device: str) -> tuple[Device, ...]:
    """The device a worker set to `device` ("auto", "cpu", "cuda:1", "mps") runs on ("auto":
    CUDA, else MPS, else the CPU, as `nodes.runtime.device_name` resolves it). A GPU is
    described only when the worker has imported torch (a worker of pure-Python nodes never
    does); the CPU and MPS count the machine's RAM, as ComfyUI reports them."""
    torch = sys.modules.get("torch")
    cuda = torch is not None and device.startswith(("cuda", "auto")) and torch.cuda.is_available()
    if cuda:
        index = int(device.partition(":")[2] or torch.cuda.current_device())
        free, total = torch.cuda.mem_get_info(index)
        stats = torch.cuda.memory_stats(index)
        reserved = stats.get("reserved_bytes.all.current", 0)
        active = stats.get("active_bytes.all.current", 0)
        name = f"cuda:{index} {torch.cuda.get_device_name(index)}"
        return (Device(name, "cuda", index, total, free, reserved, reserved - active),)
    total, free = memory()
    mps = device == "mps" or (
        device == "auto" and torch is not None and torch.backends.mps.is_available()
    )  # as nodes.runtime resolves it
    kind = "mps" if mps else "cpu"
    return (Device(kind, kind, None, total, free, total, free),)
