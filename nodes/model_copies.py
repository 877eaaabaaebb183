"""Copies of shared models for LoRA and merging, so the model manager's ones stay untouched.

A LoRA or a merge must never change the base model other nodes and runs share. `copy_module`
makes a new module tree whose parameters are new Parameter objects over the same storage: it
costs almost no memory, and code that replaces a parameter's tensor (`param.data = new`, as
peft's safe merge does) changes only the copy. Nothing may write into a copy's tensors in
place. `new_bytes` counts only what a copy does not share, for the model manager's budget.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any


def copy_module(module: Any) -> Any:
    """A structural copy of `module` sharing every tensor's storage (see module docstring)."""
    import torch

    memo: dict[int, Any] = {}
    for t in itertools.chain(module.parameters(), module.buffers()):
        if isinstance(t, torch.nn.Parameter):
            memo[id(t)] = torch.nn.Parameter(t.data, requires_grad=False)
        else:
            memo[id(t)] = t
    return copy.deepcopy(module, memo)


def new_bytes(module: Any, base: Any) -> int:
    """Bytes of `module`'s parameters and buffers whose storage `base` does not hold."""
    shared = {t.data_ptr() for t in itertools.chain(base.parameters(), base.buffers())}
    return sum(t.numel() * t.element_size()
               for t in itertools.chain(module.parameters(), module.buffers())
               if t.data_ptr() not in shared)  # fmt: skip
