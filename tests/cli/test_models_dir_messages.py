"""What validate and run say about models folders: a workflow with a reading problem judges
its model names by the folders given (not the default one), the advice on finding a model
names the flag that can still be given, and `$LATENTGRAPH_MODELS_DIRS` is warned about as
the flags are."""

from __future__ import annotations

from pathlib import Path

from .test_models_folder_flags import home, put  # noqa: F401 - the fixture, used by name below


def validate_file(capsys, name: str, *args: str) -> tuple[int, str]:
    from latentgraph.cli import main

    try:
        code = main(["validate", name, *args])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_a_link_error_leaves_the_model_names_to_the_folders_given(home, capsys):  # noqa: F811
    """With a link error in the file, LoadModel and LoadLoRA were judged by the default models
    folder and said "not found" for files --models-dir holds."""
    put(home / "models" / "checkpoints" / "sub" / "t2.safetensors")
    put(home / "models" / "loras" / "SD1.5" / "foo.safetensors")
    (home / "w.yaml").write_text(
        "version: 1\n"
        "nodes:\n"
        "  model: {type: LoadModel, source: 'sub/t2.safetensors'}\n"
        "  lora:  {type: LoadLoRA, lora: 'SD1.5/foo.safetensors', unet: model.unet,"
        " clip: model.clip}\n"
        "  p:     {type: PreviewAny, source: lora}\n"
    )
    code, err = validate_file(capsys, "w.yaml", "--models-dir", "models")
    assert code == 2
    assert "node 'p' input 'source': node 'lora' (LoadLoRA) has outputs unet, clip" in err
    assert "not found" not in err and str(Path("data")) not in err
    assert err.count("error:") == 1
    # the same names with a missing models folder are still refused once the file reads
    (home / "w.yaml").write_text(
        (home / "w.yaml").read_text().replace("source: lora}", "source: lora.unet}")
    )
    assert validate_file(capsys, "w.yaml", "--models-dir", "models") == (0, "")
    code, err = validate_file(capsys, "w.yaml")
    assert code == 2 and "'sub/t2.safetensors'" in err
