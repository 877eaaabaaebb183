"""TextEncode: prompts → CONDITIONING, one row per prompt.

Prompts use ComfyUI's syntax (nodes/prompt_syntax.py): `(word:1.3)`, `((word))`, `\\(`
escapes and `embedding:NAME`. A weight w moves a token's output vector away from the empty
prompt's vector at the same position: e + (v - e) * w, as ComfyUI does; an embedding's vectors
replace token-embedding inputs. A prompt using none of the syntax is tokenized and encoded
exactly as diffusers' pipeline does.

Prompts longer than the tokenizer's limit (77 tokens for CLIP) are truncated, with a warning
event naming how many tokens were dropped: chunking would change results versus diffusers'
pipeline, which truncates too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from latentgraph.graph import CLIP, CONDITIONING, Output, Settings, Socket, String, node
from latentgraph.graph.problems import quoted

from . import runtime
from .prompt_syntax import embedding_names, is_plain, parse_prompt
from .values import ClipModel, Conditioning, input_error


def split_prompts(text: str | list[str]) -> list[str]:
    """A list of prompts gives a batch. Accepts a list, or a JSON list written as a string."""
    if isinstance(text, list):
        return [str(t) for t in text]
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            value = json.loads(stripped)
        except ValueError:
            return [text]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    return [text]


@dataclass
class Tokens:
    """One prompt, tokenized: ids padded to the limit, a weight per position, and the
    embedding vectors to put in place of the token inputs at some positions."""

    ids: list[int]
    weights: list[float]
    inserts: dict[int, Any] = field(default_factory=dict)


EXCERPT_CHARS = 60  # of the dropped text a truncation warning quotes
# A byte-level BPE token holds at least one byte of a character of at most 4: decoding this many
# of the dropped tokens gives the excerpt's characters and one more, without decoding them all.
_EXCERPT_TOKENS = 4 * (EXCERPT_CHARS + 1)


def _warn_truncated(ctx: Any, tok: Any, index: int, count: int, dropped: list[int]) -> None:
    """Warn that prompt `index` (`count` tokens) lost the token ids `dropped`, quoting at most
    the first EXCERPT_CHARS characters of their text (a 99,999-character prompt made a 100 KB
    line). The dropped tokens are decoded together, and a character the cut fell inside (its
    bytes split between kept and dropped tokens: CJK text) decodes to replacement characters,
    left out so the excerpt starts at a whole character."""
    span = dropped[:_EXCERPT_TOKENS]
    text = tok.decode(span, skip_special_tokens=True).lstrip("\ufffd")
    if len(span) < len(dropped):  # the span's end may split a character too
        text = text.rstrip("\ufffd")
    excerpt = ""
    if text:
        more = len(text) > EXCERPT_CHARS or len(span) < len(dropped)
        excerpt = f", starting {quoted(text[:EXCERPT_CHARS])}" + (" ..." if more else "")
    limit = tok.model_max_length
    ctx.warn(f"prompt {index} is {count} tokens, longer than the limit of {limit}: "
             f"truncated, dropping {len(dropped)} tokens{excerpt}")  # fmt: skip


def tokenize(ctx: Any, clip: ClipModel, index: int, prompt: str, part: str = "clip_l",
             input_name: str = "text") -> Tokens:  # fmt: skip
    """A prompt's pieces as tokens: text through the tokenizer, embeddings as vectors (their
    `part` for this encoder: nodes/embeddings.py; errors name `input_name`)."""
    from .embeddings import EmbeddingError, load_embedding

    tok = clip.tokenizer
    width = clip.text_encoder.config.hidden_size
    content: list[tuple[int, float, Any]] = []
    for piece in parse_prompt(prompt):
        if piece.embedding:
            try:
                vectors = load_embedding(piece.text, width, ctx.settings.models_dirs, part)
            except EmbeddingError as exc:
                raise input_error(ctx, input_name, str(exc)) from None
            # The placeholder id is never read (its input vector is replaced); bos is not eos,
            # so the pooled output still comes from the end token.
            content += [(tok.bos_token_id, piece.weight, v) for v in vectors]
        else:
            ids = tok(piece.text, add_special_tokens=False).input_ids
            content += [(i, piece.weight, None) for i in ids]
    limit = tok.model_max_length
    room = limit - 2
    if len(content) > room:
        # an embedding's placeholder (bos, a special token) has no text in the excerpt
        _warn_truncated(ctx, tok, index, len(content) + 2, [c[0] for c in content[room:]])
        content = content[:room]
    ids = [tok.bos_token_id] + [c[0] for c in content] + [tok.eos_token_id]
    weights = [1.0] + [c[1] for c in content] + [1.0]
    pad = limit - len(ids)
    inserts = {pos + 1: c[2] for pos, c in enumerate(content) if c[2] is not None}
    return Tokens(ids + [tok.pad_token_id] * pad, weights + [1.0] * pad, inserts)


@contextmanager
def inserted(te: Any, inserts: list[dict[int, Any]]) -> Iterator[None]:
    """While inside, `inserts[row][pos]` replaces the text encoder's token-embedding input at
    that position (embeddings' vectors), through a forward hook held only that long."""

    def replace(module: Any, args: Any, output: Any) -> Any:
        output = output.clone()
        for row, vectors in enumerate(inserts):
            for pos, vector in vectors.items():
                output[row, pos] = vector.to(output.device, output.dtype)
        return output

    hook = te.get_input_embeddings().register_forward_hook(replace) if any(inserts) else None
    try:
        yield
    finally:
        if hook is not None:
            hook.remove()


def _run_encoder(ctx: Any, clip: ClipModel, ids: Any, layer: int,
                 inserts: list[dict[int, Any]]) -> Any:  # fmt: skip
    """Last hidden state (layer -1), or an earlier layer through the final layer norm (ComfyUI's
    CLIP skip), with the embeddings' vectors `inserts` (see `inserted`)."""
    import torch

    te = clip.text_encoder
    with inserted(te, inserts):
        with torch.inference_mode(), runtime.in_use(ctx.settings, clip.device, te):
            device = te.device
            attention = None
            if getattr(te.config, "use_attention_mask", False):
                attention = torch.ones_like(ids).to(device)
            if layer == -1:
                return te(ids.to(device), attention_mask=attention)[0]
            out = te(ids.to(device), attention_mask=attention, output_hidden_states=True)
            return te.final_layer_norm(out.hidden_states[layer])


def plain_ids(ctx: Any, tok: Any, prompts: list[str], warn: bool = True) -> Any:
    """Token ids [B, limit] of plain prompts, padded and truncated exactly as diffusers'
    pipelines do; a warning names what truncation dropped."""
    limit = tok.model_max_length
    ids = tok(prompts, padding="max_length", max_length=limit, truncation=True,
              return_tensors="pt").input_ids  # fmt: skip
    for i, prompt in enumerate(prompts if warn else []):
        full_ids = tok(prompt).input_ids
        if len(full_ids) > limit:
            _warn_truncated(ctx, tok, i, len(full_ids), full_ids[limit - 1 : -1])
    return ids


def weighted(embeds: Any, tokens: list[Tokens], encode_empty: Any) -> Any:
    """Output vectors with their tokens' weights applied: e + (v - e) * w, e the empty
    prompt's vector at the same position (`encode_empty()`, run only when a weight is not 1)."""
    import torch

    weights = torch.tensor([t.weights for t in tokens], device=embeds.device)
    if not bool((weights != 1.0).any()):
        return embeds
    base = encode_empty()
    w = weights.unsqueeze(-1).to(embeds.dtype)
    return torch.where(w != 1.0, (embeds - base) * w + base, embeds)


def encode(ctx, clip: ClipModel, prompts: list[str], layer: int = -1):
    import torch

    tok = clip.tokenizer
    limit = tok.model_max_length
    te = clip.text_encoder
    parsed = [parse_prompt(p) for p in prompts]
    if all(is_plain(p, pieces) for p, pieces in zip(prompts, parsed, strict=True)):
        ids = plain_ids(ctx, tok, prompts)
        return _run_encoder(ctx, clip, ids, layer, []).to(dtype=te.dtype).cpu()
    tokens = [tokenize(ctx, clip, i, p) for i, p in enumerate(prompts)]
    ids = torch.tensor([t.ids for t in tokens])
    embeds = _run_encoder(ctx, clip, ids, layer, [t.inserts for t in tokens])
    empty = tok([""], padding="max_length", max_length=limit, return_tensors="pt").input_ids
    embeds = weighted(embeds, tokens, lambda: _run_encoder(ctx, clip, empty, layer, []))
    return embeds.to(dtype=te.dtype).cpu()  # cached on the CPU; UNetDenoise moves it back


def embedding_problems(inputs: dict[str, Any], settings: Settings) -> list[tuple[str | None, str]]:
    """Missing embedding files, at validation time (for a literal prompt)."""
    from .embeddings import EmbeddingError, embedding_path

    text = inputs.get("text")
    if not isinstance(text, str):
        return []
    problems: list[tuple[str | None, str]] = []
    for prompt in split_prompts(text):
        for name in embedding_names(prompt):
            try:
                embedding_path(name, settings.models_dirs)
            except EmbeddingError as exc:
                problems.append(("text", str(exc)))
    return problems


def embedding_identity(inputs: dict[str, Any], settings: Settings) -> str:
    """The embedding files a literal prompt reads, so replacing one re-encodes the prompt."""
    from .embeddings import file_identity

    text = inputs.get("text")
    if not isinstance(text, str):
        return ""
    names = [n for p in split_prompts(text) for n in embedding_names(p)]
    return "|".join(file_identity(n, settings.models_dirs) for n in names)


@node(
    "TextEncode",
    category="conditioning",
    inputs=[
        Socket("clip", CLIP),
        String(
            "text",
            "",
            multiline=True,
            description="a prompt, or a JSON list of prompts for a batch; (word:1.3) and "
            "((word)) weights, \\( for a literal parenthesis, embedding:NAME for "
            "embeddings/NAME.safetensors",
        ),  # fmt: skip
    ],
    outputs=[Output("conditioning", CONDITIONING)],
    identity=embedding_identity,
    check=embedding_problems,
)
def text_encode(ctx, clip: ClipModel, text: str):
    """Encode a prompt (or a list of prompts, one per batch image) with the CLIP text encoder
    (SDXL: both encoders, plus the pooled embedding)."""
    prompts = split_prompts(text)
    if not prompts:
        raise input_error(ctx, "text", "expected at least one prompt")
    if clip.is_sdxl:
        from .sdxl import encode_sdxl

        return encode_sdxl(ctx, clip, prompts)
    return Conditioning.of(encode(ctx, clip, prompts), prompts)
