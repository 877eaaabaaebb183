"""The models folder flags as a ComfyUI user moving a models folder over gives them: a root
that holds no kind folder (the install's root, or checkpoints/ itself) is warned about with
the folder meant; `--models-dir` given twice is refused; a ComfyUI extra_model_paths.yaml
(`--extra-model-paths`, or ComfyUI's `--extra-model-paths-config`) adds its per-kind folders,
its problems named at file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentgraph.cli import main

from .test_serve_flags import serve  # noqa: F401 - the fixture, used by name below


@pytest.fixture
def home(tmp_path, monkeypatch, capsys):
    """A scratch folder, the working one, with an empty user data folder, and a prompt whose
    checkpoint is `sd15.safetensors`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LATENTGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LATENTGRAPH_MODELS_DIRS", raising=False)
    prompt = {"4": {"class_type": "CheckpointLoaderSimple",
                    "inputs": {"ckpt_name": "sd15.safetensors"}},
              "9": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}}  # fmt: skip
    (tmp_path / "wf.json").write_text(json.dumps(prompt))
    return tmp_path


def validate(capsys, *args: str) -> tuple[int, str]:
    """`latentgraph validate wf.json ARGS`: the exit code (argparse's too) and stderr."""
    try:
        code = main(["validate", "wf.json", *args])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def put(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"0")
    return path


def test_a_root_holding_no_kind_folder_is_warned_about_naming_the_folder_meant(home, capsys):
    """`--extra-models-dir ~/ComfyUI` (the install, not its models/) and `--models-dir
    .../models/checkpoints` were taken silently, and then every model was "not one of"."""
    put(home / "ComfyUI" / "models" / "checkpoints" / "sd15.safetensors")
    code, err = validate(capsys, "--extra-models-dir", "ComfyUI")
    assert code == 2
    assert ("latentgraph: warning: --extra-models-dir ComfyUI has none of the models folders' "
            "kind folders (checkpoints/, vae/, loras/, embeddings/, ...); did you mean "
            f"{Path('ComfyUI', 'models')}?") in err  # fmt: skip
    assert err.count("warning:") == 1
    code, err = validate(capsys, "--models-dir", "ComfyUI/models/checkpoints")
    assert code == 2
    assert ("--models-dir ComfyUI/models/checkpoints has none of the models folders' kind "
            "folders (checkpoints/, vae/, loras/, embeddings/, ...): it is a checkpoints "
            f"folder itself; give the models root holding it, {Path('ComfyUI', 'models')}") in err  # fmt: skip
    # the folder meant: no warning, the model found
    assert validate(capsys, "--models-dir", "ComfyUI/models") == (0, "")
    # an empty new root is no error: the warning says what it looked for
    (home / "new").mkdir()
    code, err = validate(capsys, "--models-dir", "ComfyUI/models", "--extra-models-dir", "new")
    assert code == 0
    assert ("--extra-models-dir new has none of the models folders' kind folders "
            "(checkpoints/, vae/, loras/, embeddings/, ...): models in it are found once they "
            "are in such folders") in err  # fmt: skip


def test_serve_warns_about_a_root_holding_no_kind_folder(home, serve):  # noqa: F811
    put(home / "ComfyUI" / "models" / "vae" / "v.safetensors")
    code, err, config = serve("--extra-models-dir", "ComfyUI", "--device", "cpu")
    assert code == 0 and config.models_dirs == [Path("ComfyUI")]
    assert "--extra-models-dir ComfyUI has none of the models folders' kind folders" in err
    assert f"did you mean {Path('ComfyUI', 'models')}?" in err


def test_models_dir_given_twice_is_refused(home, capsys, serve):  # noqa: F811
    """argparse kept the second --models-dir and dropped the first without a word."""
    for folder in ("a", "b"):
        (home / folder / "checkpoints").mkdir(parents=True)
    code, err = validate(capsys, "--models-dir", "a", "--models-dir", "b")
    assert code == 2
    assert ("latentgraph: error: --models-dir given twice; use --extra-models-dir for "
            "more models folders") in err  # fmt: skip
    code, err, config = serve("--models-dir", "a", "--models-dir", "b")
    assert code == 2 and config is None
    assert "latentgraph: error: --models-dir given twice; use --extra-models-dir" in err
    assert validate(capsys, "--models-dir", "a", "--extra-models-dir", "b")[0] == 2  # not found


def test_an_extra_model_paths_file_adds_its_per_kind_folders(home, capsys, serve):  # noqa: F811
    """ComfyUI keeps per-kind folders in extra_model_paths.yaml: base_path (read from the
    file's folder when relative), kinds naming one folder or several, one per line; kinds no
    node reads are ignored with one note."""
    put(home / "shared" / "sd" / "sd15.safetensors")
    put(home / "shared" / "style-loras" / "ink.safetensors")
    (home / "conf").mkdir()
    (home / "conf" / "extra_model_paths.yaml").write_text(
        "comfyui:\n"
        "    base_path: ../shared\n"
        "    checkpoints: |\n"
        "        old-checkpoints\n"
        "        sd\n"
        "    loras: style-loras\n"
        "    gligen: gligen\n"
        "    photomaker: photomaker\n"
    )
    assert validate(capsys, "wf.json")[0] == 2  # not found without the file
    for flag in ("--extra-model-paths", "--extra-model-paths-config"):
        code, err = validate(capsys, flag, "conf/extra_model_paths.yaml")
        assert code == 0, err
        assert err == ("latentgraph: warning: --extra-model-paths conf/extra_model_paths.yaml:3:18: "
                       "comfyui.checkpoints: "
                       f"{home / 'conf' / '..' / 'shared' / 'old-checkpoints'} is missing: no "
                       "models are found there\n"
                       "latentgraph: note: --extra-model-paths conf/extra_model_paths.yaml: "
                       "ignored (no node here reads them): comfyui.gligen, comfyui.photomaker\n")  # fmt: skip
    code, err, config = serve("--extra-model-paths", "conf/extra_model_paths.yaml")
    assert code == 0, err
    from latentgraph.graph.paths import KindFolder
    from latentgraph.nodes.models_dirs import list_files

    assert (
        KindFolder("loras", home / "conf" / ".." / "shared" / "style-loras") in config.models_dirs
    )
    assert list_files("loras", config.models_dirs) == ["ink.safetensors"]
    assert list_files("checkpoints", config.models_dirs) == ["sd15.safetensors"]


def test_an_is_default_section_is_searched_before_the_models_dir(home, serve):  # noqa: F811
    """ComfyUI makes an `is_default` section's folders its first; the others come after the
    models folders the flags give."""
    from latentgraph.graph.paths import KindFolder

    (home / "m" / "checkpoints").mkdir(parents=True)
    (home / "paths.yaml").write_text(
        "later:\n  base_path: /elsewhere\n  vae: vae\n"
        f"main:\n  base_path: {home / 'first'}\n  is_default: true\n  checkpoints: checkpoints\n"
    )
    code, err, config = serve("--models-dir", "m", "--extra-model-paths", "paths.yaml")
    assert code == 0, err
    assert config.models_dirs == [KindFolder("checkpoints", home / "first" / "checkpoints"),
                                  Path("m"), KindFolder("vae", Path("/elsewhere/vae"))]  # fmt: skip


@pytest.mark.parametrize("text, where", [
    ("comfyui:\n  base_path: x\n  loras: 3\n",
     "paths.yaml:3:10: comfyui.loras: expected a folder, or several one per line, got 3"),
    ("comfyui:\n  is_default: maybe\n",
     "paths.yaml:2:15: comfyui.is_default: expected true or false (or yes, no, on, off), got "
     "'maybe'"),
    ("comfyui: models\n",
     "paths.yaml:1:10: section 'comfyui': expected a mapping with base_path and model kinds"),
    ("comfyui:\n  base_path: [a]\n", "paths.yaml:2:14: base_path: expected a folder, got ['a']"),
    ("- checkpoints\n", "paths.yaml:1:1: expected sections (name: a mapping with base_path"),
    ("a:\n  loras: x\n  loras: y\n", "paths.yaml:3:3: "),
    ("a: [1\n", "paths.yaml:2:1: YAML syntax error"),
    ("a: &x\n  base_path: m\nb: *x\n",
     "paths.yaml:3:4: YAML aliases (*x) are not allowed in an extra_model_paths file; write "
     "the folder out"),
    ("a:\n  loras: !x y\n",
     "paths.yaml:2:10: YAML tag '!x' is not supported in an extra_model_paths file"),
])  # fmt: skip
def test_an_extra_model_paths_file_that_cannot_be_read_names_file_line(home, capsys, text, where):
    (home / "paths.yaml").write_text(text)
    code, err = validate(capsys, "--extra-model-paths", "paths.yaml")
    assert code == 2
    assert err.startswith(f"latentgraph: error: --extra-model-paths {where}"), err
    code, err = validate(capsys, "--extra-model-paths", "missing.yaml")
    assert code == 2 and err.startswith("latentgraph: error: --extra-model-paths missing.yaml: "
                                        "cannot be read: ")  # fmt: skip


def test_load_model_finds_a_checkpoint_in_a_kind_folder(tmp_path):
    """An extra_model_paths.yaml's `checkpoints:` folder made LoadModel's check fail with
    "TypeError: expected str, bytes or os.PathLike object, not KindFolder": its paths were
    built under every models entry as if each were a root."""
    from latentgraph.graph.paths import KindFolder
    from latentgraph.nodes.loaders import find_source

    put(tmp_path / "sd" / "sd15.safetensors")
    source = find_source("sd15.safetensors", [KindFolder("checkpoints", tmp_path / "sd")])
    assert (source.kind, source.location) == (
        "single_file",
        str(tmp_path / "sd" / "sd15.safetensors"),
    )
