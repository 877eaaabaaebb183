"""Textual-inversion embeddings: `embedding:NAME` in a prompt reads NAME.safetensors (or NAME.sft:
the files the embeddings/ list and GET /embeddings show, `graph.paths.WEIGHT_SUFFIXES`) from the
models folders' embeddings/ and inserts its vectors as extra tokens.

Layouts read: SD 1.x/2.x files (one tensor, usually "emb_params" or "string_to_param.*") and
SDXL files ("clip_l" for the first text encoder, CLIP ViT-L, and "clip_g" for SDXL's second,
OpenCLIP bigG: each encoder reads its own part). Only safetensors, never pickles.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from latentgraph.graph.paths import WEIGHT_SUFFIXES
from latentgraph.graph.problems import did_you_mean, error_line, quoted

from . import models_dirs

# Preferred tensor names, in order; a file with one tensor under any name is read too.
KEYS = ("clip_l", "emb_params")
PREFIX_KEYS = ("string_to_param",)
SECOND_ENCODER = "clip_g"  # SDXL's second encoder reads only this tensor


class EmbeddingError(ValueError):
    """An embedding that is missing or cannot be used with this text encoder."""


def embedding_path(name: str, dirs: Sequence[Path | str] | None = None) -> Path:
    """The file for `embedding:NAME`: NAME with one of `WEIGHT_SUFFIXES` (the files the
    embeddings/ listing shows), or NAME + each of them in turn. Raises EmbeddingError: what
    is wrong with the name, or that no file has it, with one suggestion spelled as a prompt
    names it (`neg/easynegative`) and where it was looked for (`models_dirs.where_looked`)."""
    given = name.lower().endswith(WEIGHT_SUFFIXES)
    file_names = [name] if given else [name + suffix for suffix in WEIGHT_SUFFIXES]
    problem = None
    for file_name in file_names:
        try:
            return models_dirs.resolve("embeddings", file_name, dirs)
        except models_dirs.NotListed:
            continue
        except models_dirs.ModelNotFound as exc:  # a path, a link to nothing, ...
            problem = problem or exc
    if problem is not None:
        raise EmbeddingError(f"embedding {quoted(name)}: {problem}")
    pickled = _pickled_file(name, dirs)
    if pickled is not None:
        raise EmbeddingError(f"embedding {quoted(name)}: {models_dirs.pickle_refusal(pickled)}")
    listed = [PurePosixPath(n).with_suffix("").as_posix()
              for n in models_dirs.list_files("embeddings", dirs)]  # fmt: skip
    typed = models_dirs.model_name(name)
    hint = _listed_hint(str(PurePosixPath(typed).with_suffix("")) if given else typed, listed)
    raise EmbeddingError(f"embedding {quoted(name)} not found: no "
                         f"{' or '.join(quoted(n) for n in file_names)}{hint} "
                         f"({models_dirs.where_looked(('embeddings',), dirs)})")  # fmt: skip


def _listed_hint(name: str, listed: list[str]) -> str:
    """The hint for an embedding `name` not found. A listed one that is `name`, a space and
    more (`emb space.safetensors`, which GET /embeddings lists as 'emb space') was meant: the
    prompt's `embedding:` word ends at the space, as in ComfyUI, so no prompt can name that
    file; the hint says so. Else a "did you mean"."""
    spaced = [n for n in listed if n.startswith(name + " ")]
    if spaced:
        return (f"; {quoted(spaced[0])} is listed, but an embedding's name in a prompt ends at a "
                "space: rename the file without spaces")  # fmt: skip
    return did_you_mean(name, listed)


def _pickled_file(name: str, dirs: Sequence[Path | str] | None) -> str | None:
    """The embeddings/ file a pickled `name` (NAME.pt, ...) has, which is refused, not read:
    the not-found message says it is there and why it is not used."""
    try:
        posix = models_dirs.safe_name(name).as_posix()
    except models_dirs.ModelNotFound:  # a path: no file of the folder
        return None
    for base in models_dirs.folder_paths("embeddings", dirs):
        for suffix in models_dirs.PICKLE_SUFFIXES:
            file_name = posix if posix.lower().endswith(suffix) else posix + suffix
            if (base / file_name).is_file():
                return file_name
    return None


def file_identity(name: str, dirs: Sequence[Path | str] | None = None) -> str:
    """Path, size and mtime of an embedding file, for cache keys; the error text if missing."""
    try:
        path = embedding_path(name, dirs)
    except EmbeddingError as exc:
        return models_dirs.missing_identity(exc)
    return models_dirs.file_identity(path)


def _pick(tensors: dict[str, Any], name: str, part: str) -> Any:
    if part == SECOND_ENCODER:
        if SECOND_ENCODER in tensors:
            return tensors[SECOND_ENCODER]
        raise EmbeddingError(f"embedding {quoted(name)} has no SDXL 'clip_g' vectors for the second "
                             f"text encoder (keys: {', '.join(sorted(tensors))}); an SD 1.x/2.x "
                             "embedding does not fit an SDXL model")  # fmt: skip
    for key in KEYS:
        if key in tensors:
            return tensors[key]
    for key in tensors:
        if key.startswith(PREFIX_KEYS):
            return tensors[key]
    if "clip_g" in tensors:
        raise EmbeddingError(f"embedding {quoted(name)} has only SDXL 'clip_g' vectors; they need an "
                             "SDXL model's second text encoder")  # fmt: skip
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise EmbeddingError(f"embedding {quoted(name)}: no embedding tensor found (keys: "
                         f"{', '.join(sorted(tensors))}; expected {', '.join(KEYS)} or one "
                         "tensor)")  # fmt: skip


def load_embedding(name: str, width: int, dirs: Sequence[Path | str] | None = None,
                   part: str = "clip_l") -> Any:  # fmt: skip
    """The embedding's vectors as a float tensor [tokens, width]: `part` "clip_l" for an SD
    or SDXL first text encoder, "clip_g" for SDXL's second."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = embedding_path(name, dirs)
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise EmbeddingError(f"embedding {quoted(name)} ({path}) is not a readable .safetensors "
                             f"file: {error_line(exc)}") from None  # fmt: skip
    vectors = _pick(tensors, name, part)
    if vectors.ndim == 1:
        vectors = vectors.unsqueeze(0)
    vectors = vectors.reshape(-1, vectors.shape[-1])
    if vectors.shape[-1] != width:
        raise EmbeddingError(f"embedding {quoted(name)} has vectors of width {vectors.shape[-1]}, but "
                             f"this text encoder's width is {width} (made for another model?)")  # fmt: skip
    if vectors.shape[0] == 0:
        raise EmbeddingError(f"embedding {quoted(name)} holds no vectors")
    return vectors
