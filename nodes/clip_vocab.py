"""The standard CLIP BPE vocabulary, from the merges file shipped in nodes/configs/clip/.

The file (MIT, from OpenAI's CLIP release) lists BPE merges; the vocabulary is derived from it
the way CLIP defines it: 256 byte symbols, the same with an end-of-word mark, one token per
merge, then the start and end tokens. That gives the ids every SD 1.x/2.x text encoder expects.
"""

from __future__ import annotations

import gzip
from pathlib import Path

MERGES_FILE = Path(__file__).parent / "configs" / "clip" / "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def _byte_symbols() -> list[str]:
    """One printable unicode character per byte value (the GPT-2/CLIP byte alphabet)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    # Order matters for the ids: printable bytes first (as themselves), then the rest mapped
    # to code points from 256 up, in byte order.
    symbols = [chr(b) for b in printable]
    extra = 0
    for b in range(256):
        if b not in printable:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def load_merges() -> list[str]:
    """The merges CLIP uses (the first VOCAB_SIZE - 512 - 2 after the header line)."""
    with gzip.open(MERGES_FILE, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    count = VOCAB_SIZE - 512 - 2
    return lines[1 : count + 1]


def load_vocab(merges: list[str]) -> dict[str, int]:
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}


def write_tokenizer_files(folder: Path, pad_token: str = EOS) -> None:
    """Write vocab.json + merges.txt + configs that CLIPTokenizer.from_pretrained reads.
    `pad_token`: SD 1.x pads with the end token; OpenCLIP's tokenizers (SD 2.x, SDXL's
    second one) pad with "!"."""
    import json

    merges = load_merges()
    vocab = load_vocab(merges)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8"
    )
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token}
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
