"""GPU-readiness fixtures: a private model manager, and a mocked `torch.cuda` (no GPU here)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

GIB = 2**30


@pytest.fixture
def fresh_manager(monkeypatch):
    """The loaders' process-wide manager replaced by an empty one for this test, so unloading
    here never evicts the session's tiny model other tests share."""
    from latentgraph.nodes import model_manager

    mine = model_manager.ModelManager()
    monkeypatch.setattr(model_manager, "_manager", mine)
    return mine


@dataclass
class FakeCuda:
    """Two GPUs as `torch.cuda` reports them: total and free bytes per index."""

    total: dict[int, int] = field(default_factory=lambda: {0: 10 * GIB, 1: 4 * GIB})
    free: dict[int, int] = field(default_factory=lambda: {0: 10 * GIB, 1: 4 * GIB})
    emptied: int = 0

    def mem_get_info(self, device=None):
        index = int(str(device).partition(":")[2] or 0)
        return self.free[index], self.total[index]

    def empty_cache(self) -> None:
        self.emptied += 1


@pytest.fixture
def fake_cuda(monkeypatch) -> FakeCuda:
    import torch

    fake = FakeCuda()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(fake.total))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", fake.mem_get_info)
    monkeypatch.setattr(torch.cuda, "empty_cache", fake.empty_cache)
    return fake
