"""What a worker runs on, for /system_stats: each device's name and memory, read in the worker
(the HTTP process never imports torch) and reported with its `Ready` message."""

from __future__ import annotations

import sys

from .workers import Device


def memory() -> tuple[int, int]:
    """This machine's RAM: (total, available) bytes, from /proc/meminfo (0, 0 elsewhere)."""
    try:
        fields = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0]) * 1024
        return fields.get("MemTotal", 0), fields.get("MemAvailable", 0)
    except (OSError, ValueError, IndexError):
        return 0, 0


def worker_devices(device: str) -> tuple[Device, ...]:
    """The device a worker set to `device` ("auto", "cpu", "cuda:1", "mps") runs on. A GPU is
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
    kind = "mps" if device == "mps" else "cpu"
    return (Device(kind, kind, None, total, free, total, free),)
