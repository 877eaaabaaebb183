"""Prompt weights, escapes and textual-inversion embeddings in TextEncode and CLIPTextEncode."""

from __future__ import annotations

import pytest

from latentgraph.nodes import text
from latentgraph.nodes.prompt_syntax import Piece, embedding_names, parse_prompt


@pytest.mark.parametrize(
    ("prompt", "pieces"),
    [
        ("a red car", [Piece("a red car")]),
        ("a (red:1.3) car", [Piece("a "), Piece("red", 1.3), Piece(" car")]),
        ("(red)", [Piece("red", 1.1)]),
        ("((red))", [Piece("red", 1.1 * 1.1)]),
        ("((red:0.5))", [Piece("red", 0.5)]),  # an explicit weight is absolute
        ("(a (b) c:2)", [Piece("a ", 2.0), Piece("b", 2.2), Piece(" c", 2.0)]),
        ("(red: 1.25)", [Piece("red", 1.25)]),
        ("(a:b)", [Piece("a:b", 1.1)]),  # not a number: emphasis, colon kept
        ("(a:nan)", [Piece("a:nan", 1.1)]),
        ("[blue]", [Piece("[blue]")]),  # ComfyUI has no bracket de-emphasis
        (r"a \(red\) car", [Piece("a (red) car")]),
        (r"(\(x\):1.5)", [Piece("(x)", 1.5)]),
        ("a (red car", [Piece("a (red car")]),  # unbalanced: literal
        ("a red) car", [Piece("a red) car")]),
        ("embedding:tiny, a car",
         [Piece("tiny", embedding=True), Piece(", a car")]),
        ("(embedding:tiny:1.2) x", [Piece("tiny", 1.2, embedding=True), Piece(" x")]),
        ("xembedding:tiny", [Piece("xembedding:tiny")]),
    ],
)  # fmt: skip
def test_parse_prompt(prompt, pieces):
    assert parse_prompt(prompt) == pieces


def test_embedding_names_in_order_without_repeats():
    assert embedding_names("embedding:a (embedding:b:1.1) embedding:a,") == ["a", "b"]


def encoded(make_ctx, clip, prompt, **settings):
    return text.text_encode(make_ctx("TextEncode", **settings), clip, prompt).embeds


def reference(tiny_folder, prompts, embedding=None):
    """diffusers' own prompt encoding (optionally after load_textual_inversion)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_folder, safety_checker=None,
                                                   requires_safety_checker=False)  # fmt: skip
    if embedding is not None:
        pipe.load_textual_inversion(str(embedding[0]), token=embedding[1])
    return [pipe.encode_prompt(p, "cpu", 1, False)[0].detach() for p in prompts]


def test_plain_and_escaped_prompts_match_diffusers(make_ctx, tiny, tiny_folder):
    clip = tiny[1]
    plain, escaped = reference(tiny_folder, ["a red car", "a (red) car"])
    assert encoded(make_ctx, clip, "a red car").numpy().tobytes() == plain.numpy().tobytes()
    ours = encoded(make_ctx, clip, r"a \(red\) car")
    assert ours.numpy().tobytes() == escaped.numpy().tobytes()
    # Weight 1 everywhere: the pieces are tokenized one by one, yet give the same tokens.
    same = encoded(make_ctx, clip, "a (red:1.0) car")
    assert same.numpy().tobytes() == plain.numpy().tobytes()


def test_weight_moves_the_token_away_from_the_empty_prompt(make_ctx, tiny):
    import torch

    clip = tiny[1]
    plain = encoded(make_ctx, clip, "a red car")
    empty = encoded(make_ctx, clip, "")
    weighted = encoded(make_ctx, clip, "a (red:1.5) car")
    red = 2  # bos, "a", "red"
    assert torch.allclose(weighted[0, red], empty[0, red] + (plain[0, red] - empty[0, red]) * 1.5,
                          atol=1e-6)  # fmt: skip
    others = [i for i in range(77) if i != red]
    assert torch.equal(weighted[0, others], plain[0, others])
    assert torch.equal(encoded(make_ctx, clip, "a ((red)) car"),
                       encoded(make_ctx, clip, f"a (red:{1.1 * 1.1!r}) car"))  # fmt: skip


def test_weights_work_in_a_batch_and_with_clip_skip(make_ctx, tiny):
    import torch

    from latentgraph.nodes.comfy import clip_set_last_layer, clip_text_encode

    clip = tiny[1]
    batch = encoded(make_ctx, clip, '["a (red:1.4) car", "a blue car"]')
    assert torch.equal(batch[0], encoded(make_ctx, clip, "a (red:1.4) car")[0])
    assert torch.equal(batch[1], encoded(make_ctx, clip, "a blue car")[0])
    skip = clip_set_last_layer(make_ctx("CLIPSetLastLayer"), clip, -2)
    a = clip_text_encode(make_ctx("CLIPTextEncode"), "a (red:1.4) car", skip).embeds
    b = clip_text_encode(make_ctx("CLIPTextEncode"), "a red car", skip).embeds
    assert a.shape == b.shape == (1, 77, 32) and not torch.equal(a, b)
    assert not torch.equal(b, encoded(make_ctx, clip, "a red car"))


@pytest.fixture
def addons(tmp_path):
    from latentgraph.nodes.tiny_addons import write_models_folder

    write_models_folder(tmp_path / "models")
    return tmp_path / "models"


def test_embedding_matches_diffusers_textual_inversion(make_ctx, tiny, tiny_folder, addons):
    path = addons / "embeddings" / "tiny-embedding.safetensors"
    [ref] = reference(tiny_folder, ["<tiny> a car"], embedding=(path, "<tiny>"))
    ours = encoded(make_ctx, tiny[1], "embedding:tiny-embedding a car", models_dirs=[addons])
    assert ours.numpy().tobytes() == ref.numpy().tobytes()


def test_sdxl_embedding_uses_its_clip_l_vectors(make_ctx, tiny, addons, tmp_path):
    from safetensors.torch import load_file

    from latentgraph.nodes.tiny_addons import save_atomic

    sdxl = load_file(addons / "embeddings" / "tiny-embedding-sdxl.safetensors")
    save_atomic({"emb_params": sdxl["clip_l"]}, addons / "embeddings" / "as-sd1.safetensors")
    a = encoded(make_ctx, tiny[1], "embedding:tiny-embedding-sdxl, x", models_dirs=[addons])
    b = encoded(make_ctx, tiny[1], "embedding:as-sd1, x", models_dirs=[addons])
    assert a.numpy().tobytes() == b.numpy().tobytes()
    save_atomic({"clip_g": sdxl["clip_g"]}, addons / "embeddings" / "g-only.safetensors")
    with pytest.raises(ValueError, match="clip_g"):
        encoded(make_ctx, tiny[1], "embedding:g-only", models_dirs=[addons])


def test_embedding_of_another_width_is_refused(make_ctx, tiny, addons):
    import torch

    from latentgraph.nodes.tiny_addons import save_atomic

    save_atomic({"emb_params": torch.zeros(1, 768)}, addons / "embeddings" / "sd15.safetensors")
    with pytest.raises(ValueError, match=r"node 'n1' \(TextEncode\) input 'text'.*width 768.*32"):
        encoded(make_ctx, tiny[1], "embedding:sd15", models_dirs=[addons])


def test_missing_embedding_is_named_at_validation_and_at_run(make_ctx, tiny, addons, monkeypatch):
    from latentgraph.graph.comfy_api import graph_from_prompt
    from latentgraph.graph.validate import validate

    monkeypatch.setenv("LATENTGRAPH_MODELS_DIRS", str(addons))
    for node_type in ("TextEncode", "CLIPTextEncode"):
        prompt = {"1": {"class_type": "LoadModel", "inputs": {"source": "builtin:tiny-sd"}},
                  "2": {"class_type": node_type,
                        "inputs": {"clip": ["1", 1], "text": "embedding:nope (embedding:tiny-embedding)"}}}  # fmt: skip
        found = [p for p in validate(graph_from_prompt(prompt)) if p.severity == "error"
                 and p.code != "prompt_no_outputs"]  # fmt: skip
        assert [(p.node_id, p.input_name) for p in found] == [("2", "text")]
        assert "'nope' not found" in found[0].message
    with pytest.raises(ValueError, match="embedding 'nope' not found"):
        encoded(make_ctx, tiny[1], "a embedding:nope", models_dirs=[addons])


def test_replacing_an_embedding_file_changes_the_cache_key(addons):
    import os

    from latentgraph.graph import Settings

    settings = Settings(models_dirs=[addons])
    before = text.embedding_identity({"text": "embedding:tiny-embedding"}, settings)
    path = addons / "embeddings" / "tiny-embedding.safetensors"
    os.utime(path, ns=(1, 1))
    assert text.embedding_identity({"text": "embedding:tiny-embedding"}, settings) != before
    assert text.embedding_identity({"text": "no embeddings"}, settings) == ""


def test_an_sft_embedding_listed_by_get_embeddings_is_found_by_its_name(make_ctx, tiny, addons):
    """GET /embeddings lists embeddings/ files of every weight suffix (.sft too) by name
    without the extension; `embedding:NAME` finds each of them (it looked for NAME.safetensors
    only: 'embedding 'style' not found')."""
    import os
    import shutil

    from latentgraph.graph import Settings
    from latentgraph.nodes import models_dirs

    folder = addons / "embeddings"
    shutil.copy(folder / "tiny-embedding.safetensors", folder / "style.sft")
    listed = models_dirs.list_files("embeddings", [addons])
    assert "style.sft" in listed
    settings = Settings(models_dirs=[addons])
    for name in {os.path.splitext(n)[0] for n in listed}:  # as GET /embeddings names them
        assert text.embedding_problems({"text": f"embedding:{name}"}, settings) == [], name
    want = encoded(make_ctx, tiny[1], "embedding:tiny-embedding, x", models_dirs=[addons])
    for prompt in ("embedding:style, x", "embedding:style.sft, x"):
        got = encoded(make_ctx, tiny[1], prompt, models_dirs=[addons])
        assert got.numpy().tobytes() == want.numpy().tobytes(), prompt


@pytest.mark.parametrize("prompt", ["word " * 20_000, "(word:1.1) " * 20_000],
                         ids=["plain", "weighted"])  # fmt: skip
def test_a_truncation_warning_quotes_an_excerpt_and_the_dropped_count(make_ctx, tiny, prompt):
    """A 100,000-character prompt wrote all its dropped text into one warning (a 100 KB log
    line): the warning says how many tokens were dropped and quotes a short excerpt."""
    ctx = make_ctx("TextEncode")
    text.text_encode(ctx, tiny[1], prompt)
    [warning] = ctx.rec.warnings
    assert len(warning) < 300, len(warning)
    assert "tokens, longer than the limit of" in warning
    assert warning.startswith("prompt 0 is 20002 tokens, longer than the limit of 77: "
                              "truncated, dropping 19925 tokens")  # fmt: skip
    assert warning.endswith(f", starting {('word ' * 12)!r} ...")  # weighted or not


@pytest.mark.parametrize("template", ["{}", "({}:1.2)"], ids=["plain", "weighted"])
def test_a_truncation_warning_on_cjk_text_quotes_whole_characters(make_ctx, tiny, template):
    """A long Japanese prompt's cut fell inside a character's bytes (byte-level BPE): the
    excerpt began with replacement characters, '\ufffd\ufffdけの海辺...'. It starts at the first
    whole character; a weighted prompt (CLIPTextEncode's `(cat:1.2)`) quoted no excerpt at all."""
    phrase = "夕焼けの海辺を歩く猫"
    ctx = make_ctx("TextEncode")
    text.text_encode(ctx, tiny[1], " ".join([template.format(phrase)] * 40))
    [warning] = ctx.rec.warnings
    excerpt = warning.split(", starting ", 1)[1]
    assert "\ufffd" not in excerpt
    assert excerpt.startswith("'けの海辺を歩く猫 夕焼け") and excerpt.endswith("' ..."), excerpt
    assert len(excerpt) == len("'' ...") + text.EXCERPT_CHARS


def test_a_long_prompt_says_only_our_truncation_warning(make_ctx, tiny):
    """transformers printed "Token indices sequence length is longer than the specified
    maximum sequence length ... will result in indexing errors" before our own warning."""
    import logging

    from latentgraph.nodes.quiet import quiet_libraries

    quiet_libraries()
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("transformers.tokenization_utils_base")
    tok = tiny[1].tokenizer
    tok.deprecation_warnings.pop("sequence-length-is-longer-than-the-specified-maximum", None)
    logger.addHandler(handler)
    try:
        ctx = make_ctx("TextEncode")
        text.text_encode(ctx, tiny[1], "word " * 100)
    finally:
        logger.removeHandler(handler)
    assert [w.split(":")[0] for w in ctx.rec.warnings] == [
        "prompt 0 is 102 tokens, longer than the limit of 77"]  # fmt: skip
    assert said == []


def test_a_truncation_excerpt_quotes_a_backslash_as_written(make_ctx, tiny):
    """The excerpt is quoted as the user wrote it (`graph.problems.quoted`), not by repr,
    which doubled a backslash ('c:\\\\dir')."""
    ctx = make_ctx("TextEncode")
    text.text_encode(ctx, tiny[1], "word " * 80 + "c:\\dir " * 20)
    [warning] = ctx.rec.warnings
    excerpt = warning.split(", starting ", 1)[1]
    assert "\\" in excerpt and "\\\\" not in excerpt, excerpt
