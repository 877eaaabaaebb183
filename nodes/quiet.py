"""Silence diffusers' and transformers' own progress bars and info logging.

Their tqdm bars ("Loading weights", "Loading pipeline components") and info messages interleave
with latentgraph's progress display and JSON lines; our events already report model loading.
Called once per model load (cheap, idempotent); warnings and errors still get through.
"""

from __future__ import annotations

_done = False


def quiet_libraries() -> None:
    """Turn off the libraries' progress bars and lower their logging to warnings."""
    global _done
    if _done:
        return
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.disable_progress_bar()
        lib.set_verbosity_warning()
    _done = True
