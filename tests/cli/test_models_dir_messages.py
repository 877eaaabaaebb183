"""What validate and run say about models folders: a workflow with a reading problem judges
its model names by the folders given (not the default one), the advice on finding a model
names the flag that can still be given, and `$LATENTGRAPH_MODELS_DIRS` is warned about as
the flags are."""

from __future__ import annotations

import os
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


def test_model_loaders_quote_a_backslash_as_sent(home, capsys):  # noqa: F811
    r"""LoadModel, LoadVAE and LoadTextEncoder quoted `sub\t9.safetensors` as
    'sub\\t9.safetensors', a name nobody sent."""
    (home / "models").mkdir()
    (home / "b.yaml").write_text(
        "version: 1\n"
        "nodes:\n"
        "  model: {type: LoadModel, source: 'sub\\t9.safetensors'}\n"
        "  vae: {type: LoadVAE, source: 'sub\\t9.safetensors'}\n"
        "  te: {type: LoadTextEncoder, source: 'sub\\t9.safetensors'}\n"
        "  p: {type: PreviewAny, source: vae.vae}\n"
        "  p2: {type: PreviewAny, source: te.clip}\n"
        "  p3: {type: PreviewAny, source: model.unet}\n"
    )
    code, err = validate_file(capsys, "b.yaml", "--models-dir", "models")
    assert code == 2
    assert err.count("model file not found: 'sub\\t9.safetensors' (looked at: ") == 3, err
    assert "\\\\" not in err


def test_the_advice_names_the_flag_that_can_still_be_given(home, capsys):  # noqa: F811
    """With --models-dir given, the advice was "pass --models-dir DIR", which is then refused
    ("use --extra-models-dir")."""
    put(home / "models" / "checkpoints" / "other.safetensors")
    code, err = validate_file(capsys, "wf.json")
    assert code == 2 and "pass --models-dir DIR to look in another models folder (" in err
    code, err = validate_file(capsys, "wf.json", "--models-dir", "models")
    assert code == 2 and "--models-dir DIR" not in err
    assert "pass --extra-models-dir DIR to look in another models folder too (" in err
    # the advice taken works
    put(home / "more" / "checkpoints" / "sd15.safetensors")
    assert validate_file(
        capsys, "wf.json", "--models-dir", "models", "--extra-models-dir", "more"
    ) == (0, "")


def test_the_advice_leaves_out_extra_model_paths_once_one_is_given(home, capsys):  # noqa: F811
    """With --extra-model-paths given, a model not found still advised "(or --extra-model-paths
    FILE to read ComfyUI's extra_model_paths.yaml)", the flag just given; it names the file's
    entry the folder came from instead, and --models-dir, which none gave ("--extra-models-dir
    DIR to look in another models folder too" named a flag as if given)."""
    put(home / "sdwebui" / "checkpoints" / "other.safetensors")
    (home / "paths.yaml").write_text(
        "a111:\n    base_path: sdwebui/\n    checkpoints: checkpoints\n"
    )
    code, err = validate_file(capsys, "wf.json", "--extra-model-paths", "paths.yaml")
    assert code == 2
    assert (f"looked in {home / 'sdwebui' / 'checkpoints'}; pass --models-dir DIR to look in "
            "another models folder, or add one to a111.checkpoints in the --extra-model-paths "
            "file; pickled files") in err  # fmt: skip
    assert "--extra-model-paths FILE" not in err


def test_an_environment_root_holding_no_kind_folder_is_warned_about(home, capsys, monkeypatch):  # noqa: F811
    """`LATENTGRAPH_MODELS_DIRS=/tmp/x` (a root without kind folders) was taken silently, while
    the same folder given by a flag was warned about."""
    put(home / "ComfyUI" / "models" / "checkpoints" / "sd15.safetensors")
    (home / "empty").mkdir()
    monkeypatch.setenv(
        "LATENTGRAPH_MODELS_DIRS", f"ComfyUI{os.pathsep}empty{os.pathsep}ComfyUI/models"
    )
    code, err = validate_file(capsys, "wf.json")
    assert code == 0
    assert (
        "latentgraph: warning: $LATENTGRAPH_MODELS_DIRS: ComfyUI has none of the models "
        "folders' kind folders (checkpoints/, vae/, loras/, embeddings/, ...); did you mean "
        f"{Path('ComfyUI', 'models')}?"
    ) in err
    assert "$LATENTGRAPH_MODELS_DIRS: empty has none" in err
    assert err.count("warning:") == 2
    # a folder both given and in the environment: warned about once, as the flag
    code, err = validate_file(capsys, "wf.json", "--extra-models-dir", "empty")
    assert err.count("empty has none") == 1 and "--extra-models-dir empty has none" in err


def test_an_environment_root_that_does_not_exist_is_warned_about(home, capsys, monkeypatch):  # noqa: F811
    """A `$LATENTGRAPH_MODELS_DIRS` entry with a typo (no such folder) was ignored without a
    word, and every dropdown was empty; the same folder given by a flag is a usage error."""
    put(home / "models" / "checkpoints" / "sd15.safetensors")
    monkeypatch.setenv("LATENTGRAPH_MODELS_DIRS", f"models{os.pathsep}modles")
    code, err = validate_file(capsys, "wf.json")
    assert code == 0
    assert err == (
        "latentgraph: warning: $LATENTGRAPH_MODELS_DIRS: modles does not exist: no models are "
        "found there\n"
    )


def test_an_extra_model_paths_file_is_read_as_comfyui_reads_it(home, capsys):  # noqa: F811
    """ComfyUI reads the file with PyYAML's safe_load, where `is_default: yes` is true (it was
    refused); a kind naming a file or a missing folder was taken silently."""
    from latentgraph.graph.paths import KindFolder
    from latentgraph.nodes.extra_model_paths import read_model_paths

    put(home / "a" / "checkpoints" / "sd15.safetensors")
    put(home / "a" / "notes.txt")
    (home / "paths.yaml").write_text(
        "other:\n  base_path: a\n  vae: vae\n"
        "main:\n  base_path: a\n  is_default: yes\n  checkpoints: checkpoints\n"
        "  loras:\n    - notes.txt\n    - gone\n"
        "off:\n  is_default: Off\n  base_path: a\n  embeddings: checkpoints\n"
    )
    found = read_model_paths(home / "paths.yaml")
    assert found.first == [
        KindFolder("checkpoints", home / "a" / "checkpoints"),
        KindFolder("loras", home / "a" / "notes.txt"),
        KindFolder("loras", home / "a" / "gone"),
    ]
    assert [k.kind for k in found.others] == ["vae", "embeddings"]
    code, err = validate_file(capsys, "wf.json", "--extra-model-paths", "paths.yaml")
    assert code == 0
    assert err.splitlines() == [
        f"latentgraph: warning: --extra-model-paths paths.yaml:3:8: other.vae: {home / 'a' / 'vae'} "
        "is missing: no models are found there",
        f"latentgraph: warning: --extra-model-paths paths.yaml:9:7: main.loras: "
        f"{home / 'a' / 'notes.txt'} is a file, not a folder; paths.yaml:10:7: main.loras: "
        f"{home / 'a' / 'gone'} is missing: no models are found there",  # one line per kind
    ]


def test_a_file_above_a_kinds_folder_is_named_not_called_missing(home):  # noqa: F811
    """A base_path that is a file (or a file where `models/` of `models/loras` should be)
    was warned about as "<folder> is missing", sending the user to look for a folder that
    a file stands in the place of."""
    from latentgraph.nodes.extra_model_paths import read_model_paths

    put(home / "comfy")  # a file where the install's folder should be
    (home / "paths.yaml").write_text(
        "comfyui:\n  base_path: comfy\n  checkpoints: models/checkpoints\n"
        "here:\n  loras: comfy/loras\n  vae: vae\n"
    )
    assert read_model_paths(Path("paths.yaml")).warnings == [
        f"paths.yaml:3:16: comfyui.checkpoints: {home / 'comfy' / 'models' / 'checkpoints'} "
        f"is under {home / 'comfy'}, a file, not a folder: no models are found there",
        f"paths.yaml:5:10: here.loras: {home / 'comfy' / 'loras'} is under {home / 'comfy'}, "
        "a file, not a folder: no models are found there",
        f"paths.yaml:6:8: here.vae: {home / 'vae'} is missing: no models are found there",
    ]


def test_nodes_lists_the_dropdowns_of_the_models_folders_given(home, capsys):  # noqa: F811
    """`latentgraph nodes --json --models-dir models` failed ("argument action: invalid
    choice: 'models'"); it lists each dropdown's files as the server's /object_info does."""
    import json

    from latentgraph.cli import main

    put(home / "models" / "checkpoints" / "sub" / "t2.safetensors")
    put(home / "more" / "loras" / "foo.safetensors")
    assert main(["nodes", "--json", "--models-dir", "models", "--extra-models-dir", "more"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (
        "sub/t2.safetensors" in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    )
    assert "foo.safetensors" in info["LoraLoader"]["input"]["required"]["lora_name"][0]
    assert main(["nodes", "describe", "CheckpointLoaderSimple", "--models-dir", "models"]) == 0
    assert "sub/t2.safetensors" in capsys.readouterr().out
    assert main(["nodes", "describe", "CheckpointLoaderSimple"]) == 0
    assert "sub/t2.safetensors" not in capsys.readouterr().out


def test_no_checkpoints_folder_is_said_plainly_naming_the_flags(home, capsys):  # noqa: F811
    """It said "looked in no checkpoints/ folder under DIR", and never named the flag a
    ComfyUI user has the answer for, --extra-model-paths."""
    code, err = validate_file(capsys, "wf.json")
    assert code == 2 and "looked in no" not in err
    assert (
        "no models folder has a checkpoints/ folder (models folders: "
        f"{home / 'data' / 'models'}); pass --models-dir DIR to look in another models folder "
        "(or --extra-model-paths FILE to read ComfyUI's extra_model_paths.yaml)"
    ) in err


def test_an_extra_model_paths_file_warns_once_per_kind_a_node_reads(home, capsys):  # noqa: F811
    """ComfyUI's stock file names kinds no node here reads (hypernetworks, clip_vision,
    configs, diffusion_models) and three upscale_models folders most installs lack some of:
    every command printed a dozen warnings. A kind no node reads is ignored with the note
    gligen gets; a read kind's missing folders are one warning."""
    from latentgraph.cli import main
    from latentgraph.nodes.models_dirs import FOLDERS

    put(home / "sdwebui" / "models" / "Stable-diffusion" / "sd15.safetensors")
    (home / "paths.yaml").write_text(
        "a111:\n"
        "    base_path: sdwebui/\n"
        "    checkpoints: models/Stable-diffusion\n"
        "    configs: models/Stable-diffusion\n"
        "    upscale_models: |\n"
        "        models/ESRGAN\n"
        "        models/RealESRGAN\n"
        "        models/SwinIR\n"
        "    hypernetworks: models/hypernetworks\n"
        "comfyui:\n"
        "    base_path: comfy/\n"
        "    clip_vision: models/clip_vision/\n"
        "    diffusion_models: |\n"
        "        models/diffusion_models\n"
        "        models/unet\n"
        "    gligen: models/gligen\n"
    )
    assert main(["nodes", "describe", "VAELoader", "--extra-model-paths", "paths.yaml"]) == 0
    models = home / "sdwebui" / "models"
    assert capsys.readouterr().err.splitlines() == [
        "latentgraph: warning: --extra-model-paths paths.yaml:5:21: a111.upscale_models: "
        f"{models / 'ESRGAN'}, {models / 'RealESRGAN'}, {models / 'SwinIR'} are missing: no "
        "models are found there",
        "latentgraph: note: --extra-model-paths paths.yaml: ignored (no node here reads them): "
        "a111.configs, a111.hypernetworks, comfyui.clip_vision, comfyui.diffusion_models, "
        "comfyui.gligen",
    ]
    assert not {"configs", "hypernetworks", "clip_vision", "diffusion_models"} & set(FOLDERS)


def test_a_base_path_that_does_not_exist_is_said_once_for_its_section(home, capsys):  # noqa: F811
    """ComfyUI's stock file's a111 section (`base_path: path/to/stable-diffusion-webui/`, a
    placeholder) gave one "is missing" warning per kind, six lines, each a folder under it."""
    from latentgraph.cli import main

    (home / "paths.yaml").write_text(
        "a111:\n"
        "    base_path: path/to/stable-diffusion-webui/\n"
        "\n"
        "    checkpoints: models/Stable-diffusion\n"
        "    configs: models/Stable-diffusion\n"
        "    vae: models/VAE\n"
        "    loras: |\n"
        "         models/Lora\n"
        "         models/LyCORIS\n"
        "    upscale_models: |\n"
        "                  models/ESRGAN\n"
        "                  models/RealESRGAN\n"
        "                  models/SwinIR\n"
        "    embeddings: embeddings\n"
        "    hypernetworks: models/hypernetworks\n"
        "    controlnet: models/ControlNet\n"
        "only_ignored:\n"
        "    base_path: nowhere/\n"
        "    gligen: models/gligen\n"
        "here:\n"
        "    base_path: .\n"
        "    vae: vae\n"
    )
    assert main(["nodes", "describe", "VAELoader", "--extra-model-paths", "paths.yaml"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "latentgraph: warning: --extra-model-paths a111: base_path "
        "path/to/stable-diffusion-webui/ does not exist (paths.yaml:2:16)",
        f"latentgraph: warning: --extra-model-paths paths.yaml:22:10: here.vae: {home / 'vae'} "
        "is missing: no models are found there",
        "latentgraph: note: --extra-model-paths paths.yaml: ignored (no node here reads them): "
        "a111.configs, a111.hypernetworks, only_ignored.gligen",
    ]
