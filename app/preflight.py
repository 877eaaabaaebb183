"""What a run's settings must allow before any node runs: an output folder that is one (or can
be made) and a device this machine has. Found at the end instead, they cost the whole run's
work (SaveImage is the last node). `latentgraph run` and `latentgraph.run` both ask here."""

from __future__ import annotations

import os
from pathlib import Path

from latentgraph.graph.context import Settings


def output_dir_problem(folder: Path) -> str | None:
    """Why `folder` cannot take a run's outputs, or None: it is a folder, or its nearest
    existing parent is a folder we may write in. Nothing is created here: a run refused
    later leaves no trace."""
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return (
            "not a folder" if existing == Path(folder).absolute() else f"{existing} is not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} cannot be written"
    return None


def device_problem(settings: Settings) -> str | None:
    """Why the settings' device is not on this machine, or None. `auto` and `cpu` always
    are, and need no torch import to say so."""
    if settings.device in ("auto", "cpu"):
        return None
    from latentgraph.nodes.runtime import device_name

    try:
        device_name(settings)
    except RuntimeError as exc:
        return str(exc)
    return None
