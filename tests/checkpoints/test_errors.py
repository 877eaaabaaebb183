"""Bad checkpoint files: pickles refused unopened, corrupt files a clear located error."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from latentgraph.nodes import loaders, model_presets
from latentgraph.nodes.model_manager import manager
from latentgraph.nodes.values import NodeInputError

from .conftest import context


class Payload:
    """Unpickling this would create the marker file: proof that nothing unpickles."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin", ".pkl"])
def test_pickle_checkpoints_are_refused_unopened(tmp_path, suffix):
    marker = tmp_path / "unpickled"
    bad = tmp_path / f"model{suffix}"
    bad.write_bytes(pickle.dumps(Payload(str(marker))))
    for loader, node_type in ((loaders.load_model, "LoadModel"), (loaders.load_vae, "LoadVAE"),
                              (loaders.load_text_encoder, "LoadTextEncoder")):  # fmt: skip
        with pytest.raises(
            NodeInputError, match=rf"node 'n1' \({node_type}\) input 'source'.*pickle"
        ):
            loader(context(node_type), str(bad))
    assert not marker.exists()


def test_renamed_pickle_is_not_unpickled_either(tmp_path, torch_1thread):
    marker = tmp_path / "unpickled"
    bad = tmp_path / "sneaky.safetensors"
    bad.write_bytes(pickle.dumps(Payload(str(marker))))
    with pytest.raises(NodeInputError, match="not a valid .safetensors"):
        loaders.load_model(context("LoadModel"), str(bad))
    assert not marker.exists()


@pytest.mark.parametrize("cut", ["empty", "header", "half", "last_byte"])
def test_truncated_checkpoint_names_node_input_and_file(tiny_file, tmp_path, cut):
    data = tiny_file.read_bytes()
    keep = {"empty": 0, "header": 100, "half": len(data) // 2, "last_byte": len(data) - 1}[cut]
    bad = tmp_path / f"cut-{cut}.safetensors"
    bad.write_bytes(data[:keep])
    for config in ("auto", "builtin:tiny-sd"):
        with pytest.raises(NodeInputError) as info:
            loaders.load_model(context("LoadModel", "model"), str(bad), config)
        message = str(info.value)
        assert message.startswith("node 'model' (LoadModel) input 'source': could not load")
        assert str(bad) in message
        assert "not a valid .safetensors" in message
    assert not any(str(bad.resolve()) in k for k in manager().keys())


def test_unknown_architecture_is_a_located_error(tmp_path, torch_1thread):
    import torch
    from safetensors.torch import save_file

    odd = tmp_path / "odd.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(64, 4, 3, 3),
               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight":
               torch.zeros(64, 2048)}, str(odd))  # fmt: skip
    with pytest.raises(NodeInputError, match=r"node 'n1' \(LoadModel\) input 'source': .*odd.safe"
                       r"tensors: unknown architecture .*64.*2048.*Set config"):  # fmt: skip
        loaders.load_model(context("LoadModel"), str(odd))


def test_bad_config_names_the_config_input(tiny_file, tmp_path):
    with pytest.raises(NodeInputError, match=r"input 'config': .*neither a preset"):
        loaders.load_model(context("LoadModel"), str(tiny_file), str(tmp_path))
    with pytest.raises(NodeInputError, match=r"input 'source': could not load"):
        loaders.load_model(context("LoadModel"), str(tiny_file), "sd15")  # wrong architecture


def test_empty_source_and_addon_files_given_to_load_model_say_what_they_are(tmp_path):
    """An empty source says so (was "'.' is a folder but not a diffusers model folder"); a
    LoRA, ControlNet, T2I-Adapter or embedding file names the loader that reads it."""
    from latentgraph.nodes.tiny_addons import write_models_folder
    from latentgraph.nodes.tiny_control import write_controlnet_folder

    write_models_folder(tmp_path)
    write_controlnet_folder(tmp_path)
    assert loaders.check_source({"source": " "}, None) == [("source", loaders.EMPTY_SOURCE)]
    with pytest.raises(NodeInputError, match=r"input 'source': the source is empty; expected a "
                       r"built-in model"):  # fmt: skip
        loaders.load_model(context("LoadModel"), "")
    for name, says in (("loras/tiny-lora-kohya.safetensors", "a LoRA .*LoadLoRA"),
                       ("controlnet/tiny-controlnet.safetensors", "a ControlNet: .*LoadControlNet"),
                       ("controlnet/tiny-t2i-adapter.safetensors", "a T2I-Adapter: .*LoadControlNet"),
                       ("embeddings/tiny-embedding.safetensors", "a textual-inversion embedding: ")):  # fmt: skip
        with pytest.raises(NodeInputError, match=r"input 'source': .*not a full Stable Diffusion "
                           rf"checkpoint: no UNet weights .*; it looks like {says}"):  # fmt: skip
            loaders.load_model(context("LoadModel"), str(tmp_path / name))


WORKFLOWS = Path(__file__).parents[2] / "workflows"


def test_validate_refuses_a_missing_model_file_as_the_run_does(tiny_file, tmp_path, monkeypatch,
                                                              capsys):  # fmt: skip
    """`latentgraph validate` said ok for a LoadModel source that is no file, and the run then
    refused it; now validation refuses it with the run's message (one lookup, find_source).
    Built-ins, hub ids and existing files (by path, or by name in checkpoints/) pass."""
    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    root = str(tiny_file.parents[1])

    def validate(source: str) -> tuple[int, str]:
        code = main(["validate", str(WORKFLOWS / "txt2img.yaml"), "--set", f"model={source}",
                     "--models-dir", root])  # fmt: skip
        return code, capsys.readouterr().err

    code, err = validate("/nope/model.safetensors")
    assert code == 2
    assert "node 'model' input 'source': model file not found: '/nope/model.safetensors' " \
        "(looked at: /nope/model.safetensors" in err  # fmt: skip
    with pytest.raises(NodeInputError) as ran:
        loaders.load_model(context("LoadModel", "model", models_dirs=[root]),
                           "/nope/model.safetensors")  # fmt: skip
    assert str(ran.value).split("input 'source': ")[1] in err  # the run's words
    code, err = validate("nope.safetensors")
    assert code == 2
    assert "input 'source': model file not found: 'nope.safetensors' (looked at: " \
        f"nope.safetensors, {root}/nope.safetensors; for a name, looked in {root}/checkpoints" in err  # fmt: skip
    for fine in ("builtin:tiny-sd", "org/some-model", str(tiny_file), tiny_file.name):
        assert validate(fine) == (0, ""), fine


def test_each_loader_checks_its_source_in_its_own_models_folders(tiny_file, tmp_path):
    """LoadVAE looks in vae/, LoadTextEncoder in text_encoders/ (as they do when running); a
    diffusers model folder passes, a folder that is none is refused."""
    import shutil

    from latentgraph.graph import Settings, default_registry

    root = tmp_path / "models"
    (root / "vae").mkdir(parents=True)
    shutil.copy(tiny_file, root / "vae" / "vae-only.safetensors")
    settings = Settings(models_dirs=[root])

    def problems(node_type: str, source: str) -> list:
        return default_registry.get(node_type).check({"source": source}, settings)

    assert problems("LoadVAE", "vae-only.safetensors") == []
    [(name, message)] = problems("LoadModel", "vae-only.safetensors")
    assert name == "source" and message.startswith("model file not found: 'vae-only.safetensors'")
    [(_, message)] = problems("LoadTextEncoder", "vae-only.safetensors")
    assert message.startswith("model file not found: 'vae-only.safetensors'")
    assert problems("LoadTextEncoder", str(tiny_file.parents[2])) != []  # a folder, not a model's
    from latentgraph.nodes.tiny_model import ensure_tiny_sd

    assert problems("LoadVAE", str(ensure_tiny_sd())) == []


def test_post_prompt_refuses_a_missing_model_file_with_a_400_naming_the_input():
    """The server checks a prompt with the same validation (server/prompts.py check_prompt):
    POST /prompt's 400 names the node and input, as `latentgraph validate` does."""
    from latentgraph.graph import Settings
    from latentgraph.server.prompts import check_prompt
    from latentgraph.wiring import node_registry

    error = _source_refused("/nope/model.safetensors")
    assert error["message"].startswith("model file not found: '/nope/model.safetensors'")
    prompt = _load_model_prompt("builtin:tiny-sd")
    assert check_prompt(prompt, node_registry(), Settings())[0].node_errors == {}


def _load_model_prompt(source: str) -> dict:
    return {"m": {"class_type": "LoadModel", "inputs": {"source": source}},
            "p": {"class_type": "PreviewAny", "inputs": {"source": ["m", 0]}}}  # fmt: skip


def _source_refused(source: str) -> dict:
    """The node_errors entry POST /prompt's check gives LoadModel's `source` input."""
    from latentgraph.graph import Settings
    from latentgraph.server.prompts import PromptRejected, check_prompt
    from latentgraph.wiring import node_registry

    with pytest.raises(PromptRejected) as caught:
        check_prompt(_load_model_prompt(source), node_registry(), Settings())
    assert caught.value.body["error"]["type"] == "prompt_outputs_failed_validation"
    [error] = caught.value.body["node_errors"]["m"]["errors"]
    assert error["extra_info"]["input_name"] == "source"
    return error


def test_a_lora_loaded_as_a_checkpoint_names_the_lora_loader_of_the_workflows_dialect(tmp_path):
    """LoadModel points to LoadLoRA; ComfyUI's CheckpointLoaderSimple to LoraLoader (a
    ComfyUI prompt has no LoadLoRA); with no node to tell the dialect, both are named."""
    import shutil

    from latentgraph.nodes.comfy import checkpoint_loader
    from latentgraph.nodes.tiny_addons import write_models_folder

    write_models_folder(tmp_path)
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "loras" / "tiny-lora-kohya.safetensors",
                tmp_path / "checkpoints" / "style.safetensors")  # fmt: skip
    with pytest.raises(NodeInputError, match=r"node 'n1' \(LoadModel\) input 'source': .*it looks like "
                       r"a LoRA \(lora_\* tensors\): load it with LoadLoRA$"):  # fmt: skip
        loaders.load_model(context("LoadModel"), str(tmp_path / "checkpoints/style.safetensors"))
    with pytest.raises(NodeInputError, match=r"node 'n1' \(CheckpointLoaderSimple\) input 'ckpt_name':"
                       r" .*it looks like a LoRA \(lora_\* tensors\): load it with LoraLoader$"):  # fmt: skip
        checkpoint_loader(context("CheckpointLoaderSimple", models_dirs=[tmp_path]),
                          "style.safetensors")  # fmt: skip
    shapes = model_presets.checkpoint_shapes(str(tmp_path / "checkpoints" / "style.safetensors"))
    with pytest.raises(ValueError, match=r"load it with LoadLoRA, or LoraLoader in ComfyUI$"):
        model_presets.detect_preset(shapes)


# --- a `~user` of no user typed as a model or config path -----------------------------------

NO_USER = "~nouser_lg_test"
NO_USER_SAYS = (f"no user 'nouser_lg_test' on this machine (for {NO_USER}); give the full "
                "path")  # fmt: skip
CONFIGURED = """\
version: 1
params: {model: builtin:tiny-sd, config: auto}
nodes:
  model: {type: LoadModel, source: $model, config: $config}
  noise: {type: LatentNoise, vae: model.vae, width: 64, height: 64}
  decode: {type: VAEDecode, samples: noise.latent, vae: model.vae}
  save: {type: SaveImage, images: decode}
"""


@pytest.mark.parametrize(("workflow", "param", "node", "input_name"), [
    ("txt2img.yaml", "model", "model", "source"),
    ("lora.yaml", "lora", "style", "lora"),
    ("controlnet.yaml", "controlnet", "controlnet", "control_net"),
])  # fmt: skip
def test_a_tilde_user_of_no_user_as_a_model_path_is_the_inputs_error(cache_dir, tmp_path,
                                                                      monkeypatch, capsys,
                                                                      workflow, param, node,
                                                                      input_name):  # fmt: skip
    """Path.expanduser's bare RuntimeError: `run` and `validate` said "LoadModel could not
    check its inputs: RuntimeError: Could not determine home directory." Now the node's error
    names its input and the user, as a model file not found is named (exit 2)."""
    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    value = f"{NO_USER}/x.safetensors"
    for command in ("run", "validate"):
        code = main([command, str(WORKFLOWS / workflow), "--set", f"{param}={value}"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"node '{node}' input '{input_name}': '{value}': {NO_USER_SAYS}\n" in err, err
        assert "RuntimeError" not in err and "Traceback" not in err


def test_a_tilde_user_of_no_user_as_the_config_folder_fails_the_run_as_the_inputs_error(
        tiny_file, tmp_path, monkeypatch, capsys):  # fmt: skip
    """A single file's `config` is read as a folder only when the node runs: that run failed
    with "node 'model' (LoadModel): RuntimeError: Could not determine home directory.", exit 1
    (a bug's failure); now the input's error, exit 2 as for any refused input."""
    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "wf.yaml").write_text(CONFIGURED)
    code = main(["run", "wf.yaml", "--set", f"model={tiny_file}", "--set",
                 f"config={NO_USER}/configs", "--output-dir", "out"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert (f"node 'model' (LoadModel) input 'config': '{NO_USER}/configs': {NO_USER_SAYS}\n"
            in err), err  # fmt: skip
    assert "RuntimeError" not in err


def test_post_prompt_refuses_a_tilde_user_of_no_user_as_a_missing_model_is_refused():
    """POST /prompt's check: a 400 whose node_errors name the node and input, as for a model
    file not found (it was "LoadModel could not check its inputs: RuntimeError: ...")."""
    value = f"{NO_USER}/x.safetensors"
    error = _source_refused(value)
    assert error["extra_info"]["received_value"] == value
    assert error["message"] == f"'{value}': {NO_USER_SAYS}"
    assert error["details"] == f"node 'm' input 'source': '{value}': {NO_USER_SAYS}"
