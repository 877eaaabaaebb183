"""A ComfyUI models folder moved here as it is: names written on Windows (`SD1.5\\foo`), links
(a broken one too), pickled embeddings, mistyped embedding names, and how refusals show them."""

from __future__ import annotations

import json
import os

import pytest

from latentgraph.graph import Settings
from latentgraph.nodes import embeddings, models_dirs
from latentgraph.server.prompts import PromptRejected, check_prompt
from latentgraph.wiring import node_registry

from .conftest import run_cli

CKPT = "SD1.5\\foo.safetensors"  # as ComfyUI on Windows lists it
LORA = "My Styles\\style one.safetensors"


@pytest.fixture(scope="module")
def registry():
    return node_registry()


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A models root with a checkpoint and a LoRA in sub-folders (spaces in the names), a
    pickled embedding and a broken link."""
    from latentgraph.nodes.tiny_addons import write_models_folder

    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    root = tmp_path / "models"
    write_models_folder(root)
    (root / "checkpoints" / "SD1.5").mkdir(parents=True)
    (root / "checkpoints" / "SD1.5" / "foo.safetensors").write_bytes(b"")
    (root / "loras" / "My Styles").mkdir()
    os.rename(root / "loras" / "tiny-lora-kohya.safetensors",
              root / "loras" / "My Styles" / "style one.safetensors")  # fmt: skip
    (root / "embeddings" / "oldemb.pt").write_bytes(b"pickle")
    (root / "checkpoints" / "broken.safetensors").symlink_to(tmp_path / "gone.safetensors")
    return root


def lora_prompt(ckpt: str, lora: str) -> dict:
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
            "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                  "lora_name": lora, "strength_model": 1.0, "strength_clip": 1.0}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}}  # fmt: skip


def test_a_windows_model_name_is_the_listed_one_for_every_model_dropdown(models, registry):
    """`\\` in a model name reads as `/`: accepted by every ComfyUI model dropdown, keyed as the
    listed name (one cache entry for both spellings)."""
    settings = Settings(models_dirs=[models])
    check_prompt(lora_prompt(CKPT, LORA), registry, settings)  # no PromptRejected
    for node_type, name in (("CheckpointLoaderSimple", "ckpt_name"), ("LoraLoader", "lora_name"),
                            ("VAELoader", "vae_name"), ("ControlNetLoader", "control_net_name"),
                            ("UpscaleModelLoader", "model_name")):  # fmt: skip
        decl = registry.get(node_type).input(name)
        assert decl.also_accepts is not None and decl.canonical is not None, node_type
        keyed = registry.get(node_type).key_literals({name: "a\\b.safetensors"}, settings)
        assert keyed == {name: "a/b.safetensors"}, node_type


def test_a_windows_lora_name_runs(models, tmp_path, capsys):
    """The CLI runs a ComfyUI API prompt naming a LoRA in a sub-folder with a backslash."""
    prompt = lora_prompt("builtin:tiny-sd", LORA)
    path = tmp_path / "prompt.json"
    path.write_text(json.dumps(prompt))
    code, out, err = run_cli(capsys, "run", path, "--models-dir", models, "--device", "cpu",
                             "--no-cache", "--output-dir", tmp_path / "out")  # fmt: skip
    assert code == 0, err


def test_a_refused_name_is_shown_as_sent_and_names_the_folders_searched(models, registry):
    """A value not listed is quoted as the user wrote it (one backslash, not repr's two), a
    folder starting in n too, unless a backslash would read as a code-point escape (`\\u00e9`):
    then every backslash is doubled, so it is not read as the character (`problems.printable`)."""
    settings = Settings(models_dirs=[models])
    for name, shown in [("SD1.5\\gone.safetensors", "'SD1.5\\gone.safetensors'"),
                        ("SD1.5\\nope.safetensors", "'SD1.5\\nope.safetensors'"),
                        ("SD1.5\\u00e9.safetensors", "'SD1.5\\\\u00e9.safetensors'")]:  # fmt: skip
        with pytest.raises(PromptRejected) as caught:
            check_prompt(lora_prompt(name, LORA), registry, settings)
        [error] = caught.value.body["node_errors"]["1"]["errors"]
        assert error["message"].startswith(f"{shown} is not one of: "), error["message"]
        assert error["message"].count("\\") == shown.count("\\")


def test_a_broken_link_is_not_listed_and_naming_it_says_it_is_one(models, tmp_path):
    assert "broken.safetensors" not in models_dirs.list_files("checkpoints", [models])
    with pytest.raises(models_dirs.ModelNotFound, match="is a link to a missing file") as caught:
        models_dirs.resolve("checkpoints", "broken.safetensors", [models])
    assert str(tmp_path / "gone.safetensors") in str(caught.value)


def test_a_pickled_embedding_is_named_and_refused_as_a_pickle(models):
    with pytest.raises(embeddings.EmbeddingError) as caught:
        embeddings.embedding_path("oldemb", [models])
    assert str(caught.value) == ("embedding 'oldemb': " + models_dirs.pickle_refusal("oldemb.pt"))
    assert "convert it to .safetensors" in str(caught.value)


def test_a_mistyped_embedding_gets_a_did_you_mean(models):
    with pytest.raises(embeddings.EmbeddingError, match="did you mean 'tiny-embedding'"):
        embeddings.embedding_path("tiny-embeding", [models])
    with pytest.raises(embeddings.EmbeddingError) as caught:
        embeddings.embedding_path("nothing-like-it", [models])
    assert "did you mean" not in str(caught.value)


def test_a_mistyped_embedding_is_suggested_once_as_a_prompt_names_it(models, tmp_path):
    """It said "did you mean" twice, in two spellings ('neg/x.safetensors' mid-sentence, then
    'neg/x'), and advised --extra-models-dir for folders an extra_model_paths.yaml gave: one
    suggestion, as typed after `embedding:`, and advice naming the file's entry."""
    from latentgraph.graph.paths import KindFolder

    (models / "embeddings" / "neg").mkdir()
    os.rename(models / "embeddings" / "tiny-embedding.safetensors",
              models / "embeddings" / "neg" / "easynegative.safetensors")  # fmt: skip
    folder = KindFolder("embeddings", models / "embeddings", "comfyui.embeddings")
    for typed in ("easynegativ", "easynegativ.safetensors"):
        with pytest.raises(embeddings.EmbeddingError) as caught:
            embeddings.embedding_path(typed, [folder])
        message = str(caught.value)
        assert message.count("did you mean") == 1, message
        assert "did you mean 'neg/easynegative'?" in message, message
        assert "--extra-models-dir" not in message, message
        assert "comfyui.embeddings" in message, message
    with pytest.raises(embeddings.EmbeddingError) as caught:
        embeddings.embedding_path("easynegativ", [models])
    assert str(caught.value) == (
        "embedding 'easynegativ' not found: no 'easynegativ.safetensors' or 'easynegativ.sft'"
        f"; did you mean 'neg/easynegative'? (looked in {models / 'embeddings'}; pass "
        "--extra-models-dir DIR to look in another models folder too (or --extra-model-paths "
        "FILE to read ComfyUI's extra_model_paths.yaml))"
    )


def test_an_embedding_refusal_shows_a_windows_name_with_one_backslash(models):
    """EmbeddingError quotes NAME as it was written (`graph.problems.quoted`): repr doubled the
    backslash of `SD1.5\\foo`, a name nobody wrote."""
    import torch
    from safetensors.torch import save_file

    (models / "embeddings" / "SD1.5").mkdir()
    save_file(
        {"emb_params": torch.zeros(2, 4)}, str(models / "embeddings" / "SD1.5" / "foo.safetensors")
    )
    with pytest.raises(embeddings.EmbeddingError) as caught:
        embeddings.load_embedding("SD1.5\\foo", 768, [models])
    assert str(caught.value).startswith("embedding 'SD1.5\\foo' has vectors of width 4, ")
    assert "\\\\" not in str(caught.value)


def test_a_model_name_typed_in_another_unicode_form_is_the_listed_file(models, registry, tmp_path,
                                                                       capsys):  # fmt: skip
    """A LoRA copied from macOS is named decomposed on disk (NFD: `e` + a combining accent)
    and typed composed (NFC `é`): LoraLoader said "'é.safetensors' is not one of: ...,
    'é.safetensors'". It is accepted, keyed as the listed spelling, and loaded."""
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "café.safetensors")
    typed = unicodedata.normalize("NFC", "café.safetensors")
    os.rename(models / "loras" / "My Styles" / "style one.safetensors",
              models / "loras" / decomposed)  # fmt: skip
    settings = Settings(models_dirs=[models])
    check_prompt(lora_prompt("builtin:tiny-sd", typed), registry, settings)  # no PromptRejected
    keyed = registry.get("LoraLoader").key_literals({"lora_name": typed}, settings)
    assert keyed == {"lora_name": decomposed}
    assert models_dirs.resolve("loras", typed, [models]) == models / "loras" / decomposed
    path = tmp_path / "prompt.json"
    path.write_text(json.dumps(lora_prompt("builtin:tiny-sd", typed)))
    code, out, err = run_cli(capsys, "run", path, "--models-dir", models, "--device", "cpu",
                             "--no-cache", "--output-dir", tmp_path / "out")  # fmt: skip
    assert code == 0, err


def test_an_embedding_named_with_a_space_is_named_when_its_first_word_is_not_found(models):
    """GET /embeddings lists `emb space.safetensors` as 'emb space', but `embedding:emb space`
    in a prompt names 'emb' (the word ends at the space, as in ComfyUI): 'emb' not found said
    nothing of the file meant. It says names in prompts end at a space: rename the file."""
    import shutil

    folder = models / "embeddings"
    shutil.copy(folder / "tiny-embedding.safetensors", folder / "emb space.safetensors")
    with pytest.raises(embeddings.EmbeddingError) as caught:
        embeddings.embedding_path("emb", [models])
    assert (
        "; 'emb space' is listed, but an embedding's name in a prompt ends at a space: "
        "rename the file without spaces (looked in "
    ) in str(caught.value)
