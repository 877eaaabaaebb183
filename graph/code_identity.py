"""What a node's code is, for its cache key: a digest of the source files it is declared in.

The disk cache outlives the process. Keyed on a node's name and `version` alone, a result
computed by yesterday's code would be served after the code changed (a plugin edited, a
latentgraph upgrade), and two plugins declaring the same name in turn would share results.
So a node's key also holds the digest of its code: the files of the package it is declared in
(sub-packages included: a node's helpers usually live beside it), or the file alone for a
module outside any package (a single-file plugin in a `--nodes-dir` folder). `version` stays
for what the digest cannot see: code outside that package, or a model the node downloads.

The digest is taken once per package per process, when its first node is declared: the files
then on disk are the ones being imported.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A package bigger than this is hashed up to it (a plugin kept inside a large repository):
# the files read first still change the digest when they change.
MAX_BYTES = 64 << 20
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})
_digests: dict[tuple[str, ...], str] = {}


def code_digest(fn: Callable[..., Any]) -> str:
    """The digest of the source files `fn` is declared in; "" when they cannot be found (a
    function made in an interactive session or by `exec`)."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is None:
        return ""
    package = module.__name__ if hasattr(module, "__path__") else module.__package__ or ""
    holder = sys.modules.get(package) if package else None
    if holder is not None and getattr(holder, "__path__", None):
        roots = tuple(str(p) for p in holder.__path__)
    elif getattr(module, "__file__", None):
        roots = (str(module.__file__),)
    else:
        return ""
    if roots not in _digests:
        _digests[roots] = _files_digest(roots)
    return _digests[roots]


def _files_digest(roots: tuple[str, ...]) -> str:
    """sha256 over each Python source file's path (relative to its root) and bytes, in order."""
    h = hashlib.sha256(b"code\0")
    budget = MAX_BYTES
    for root in roots:
        base = Path(root)
        files = [base] if base.is_file() else sorted(_sources(base))
        for file in files:
            try:
                data = file.read_bytes()[: max(budget, 0)]
            except OSError:
                continue
            budget -= len(data)
            name = file.name if file == base else file.relative_to(base).as_posix()
            h.update(f"{name}\0{len(data)}\0".encode())
            h.update(data)
            if budget <= 0:
                return h.hexdigest()
    return h.hexdigest()


def _sources(folder: Path):
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder).parts
        if not any(p in _SKIPPED_DIRS or p.startswith(".") for p in parts[:-1]):
            yield path
