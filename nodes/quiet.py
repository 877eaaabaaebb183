"""Silence diffusers' and transformers' own progress bars and info logging, and a few of their
messages that say nothing to a latentgraph user.

Their tqdm bars ("Loading weights", "Loading pipeline components") and info messages interleave
with latentgraph's progress display and JSON lines; our events already report model loading.
Called once per model load (cheap, idempotent); warnings and errors still get through, except
the ones `DROPPED` names, each filtered on the logger that raises it (see there why). Python
warnings (`warnings.warn`) a library raises where our own message already says it are
dropped around the call that raises them, `dropped_warnings`: the filter is not left on
for the process.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# (logger, text of the message): library messages dropped where they are raised, and why
DROPPED = (
    # diffusers logs a failed LoRA load (every tensor of another shape, one line each) and
    # re-raises; LoadLoRA's own error says it in one line (nodes/lora.py `misfit`)
    ("diffusers.loaders.peft", "was unsuccessful with the following error"),
    # LoRA layers the model has no module for: one line of every key (UNet) or a table (text
    # encoder); LoadLoRA's warning names the file, counts them and shows a few (nodes/lora.py
    # `unplaced`)
    ("diffusers.utils.peft_utils", "Loading adapter weights from state_dict led to"),
    ("transformers.integrations.peft", "LOAD REPORT"),
    # importing diffusers' pipelines touches CLIPImageProcessor and SiglipImageProcessor, whose
    # PIL fallback is what we want: torchvision (the advice) does not fit the CPU torch build
    # (docs/upscaling.md), and no image processor is used
    ("transformers.utils.import_utils", "requires torchvision (not installed); falling back"),
    # diffusers warns on every dtype cast of a model, even with no module to keep in fp32
    ("diffusers.models.modeling_utils", "that should be kept in float32: []."),
    # a prompt longer than the tokenizer's limit, tokenized whole to say what truncation drops:
    # TextEncode's own warning says it (nodes/text.py `_warn_truncated`), without "indexing
    # errors" (nothing past the limit reaches the model)
    ("transformers.tokenization_utils_base", "Token indices sequence length is longer than"),
)


# (module raising it, category, start of the message): warnings `dropped_warnings` drops, and why
DROPPED_WARNINGS = (
    # peft: the kohya alphas (or ranks) of LoRA layers the model has no module for, with the
    # library's file and line; LoadLoRA's warning names the file and those layers
    # (nodes/lora.py `unplaced`), and is left out under -q as a node's warning is
    (r"peft\.", RuntimeWarning,
     r"The following (alpha|rank)_pattern keys did not match any targeted module"),
)  # fmt: skip


@contextmanager
def dropped_warnings() -> Iterator[None]:
    """`DROPPED_WARNINGS` ignored inside the block only (the filters are restored on leaving
    it); any other warning shows as before."""
    with warnings.catch_warnings():
        for module, category, message in DROPPED_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        yield


class _Drop(logging.Filter):
    """Drops a logger's records whose message contains `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


_done = False


def quiet_libraries() -> None:
    """Turn off the libraries' progress bars, lower their logging to warnings and drop the
    `DROPPED` messages. Call it before importing diffusers' pipelines."""
    global _done
    if _done:
        return
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.disable_progress_bar()
        lib.set_verbosity_warning()
    for name, text in DROPPED:
        logging.getLogger(name).addFilter(_Drop(text))
    _done = True
