"""Loading ControlNets and T2I-Adapters: every layout gives the same weights; refusals name
the file and the node input."""

from __future__ import annotations

import pytest
import torch

from latentgraph.nodes import control_loading, controlnet
from latentgraph.nodes.tiny_control import tiny_adapter, tiny_controlnet
from latentgraph.nodes.values import NodeInputError


def _load(make_ctx, root, name, unet=None):
    ctx = make_ctx("LoadControlNet", models_dirs=[root])
    return controlnet.load_control_net(ctx, name, unet)


@pytest.mark.parametrize("name", ["tiny-controlnet.safetensors",
                                  "tiny-controlnet-original.safetensors",
                                  "tiny-controlnet-diffusers/diffusion_pytorch_model.safetensors",
                                  "tiny-controlnet-diffusers", "tiny-controlnet-diffusers/",
                                  "builtin:tiny-controlnet"])  # fmt: skip
def test_every_controlnet_layout_loads_the_same_weights(make_ctx, control_root, name):
    handle = _load(make_ctx, control_root, name)
    assert handle.kind == "controlnet" and handle.hint_scale == 8
    expected = tiny_controlnet().state_dict()
    got = handle.model.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_difference_controlnet_needs_its_model_and_adds_it_back(make_ctx, control_root, tiny):
    with pytest.raises(NodeInputError, match=r"node 'n1' \(LoadControlNet\) input 'control_net'.*"
                       r"tiny-controlnet-diff.safetensors.*difference"):  # fmt: skip
        _load(make_ctx, control_root, "tiny-controlnet-diff.safetensors")
    handle = _load(make_ctx, control_root, "tiny-controlnet-diff.safetensors", tiny[0])
    expected = tiny_controlnet().state_dict()
    got = handle.model.state_dict()
    assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in expected)
    # the UNet's weights really were added: the stored tensors alone are far off
    stored = control_loading.read_tensors(control_root / "controlnet"
                                          / "tiny-controlnet-diff.safetensors")  # fmt: skip
    assert not torch.allclose(stored["control_model.input_blocks.0.0.weight"],
                              expected["conv_in.weight"], atol=1e-3)  # fmt: skip


def test_a_difference_controlnet_without_its_model_says_how_each_loader_takes_one(
    make_ctx, control_root
):
    """ControlNetLoader has no model input: it said "connect the model it applies to"; a
    ComfyUI user is pointed to DiffControlNetLoader, ours to its own unet input."""
    from latentgraph.nodes import comfy_controlnet

    ctx = make_ctx("ControlNetLoader", models_dirs=[control_root])
    with pytest.raises(NodeInputError) as comfy:
        comfy_controlnet.control_net_loader(ctx, "tiny-controlnet-diff.safetensors")
    assert str(comfy.value).startswith("node 'n1' (ControlNetLoader) input 'control_net_name': ")
    assert str(comfy.value).endswith(
        "tiny-controlnet-diff.safetensors: a difference ControlNet (stored minus its base model) "
        "needs the model it applies to: load it with DiffControlNetLoader (the editor's 'Load "
        "ControlNet Model (diff)'), which takes that model"
    )
    with pytest.raises(NodeInputError) as ours:
        _load(make_ctx, control_root, "tiny-controlnet-diff.safetensors")
    assert str(ours.value).endswith("needs the model it applies to: connect that model to unet")


def test_t2i_adapter_loads_from_its_single_file(make_ctx, control_root):
    handle = _load(make_ctx, control_root, "tiny-t2i-adapter.safetensors")
    assert handle.kind == "t2i_adapter" and handle.hint_scale == 8
    assert handle.model.config.adapter_type == "full_adapter_xl"
    expected = tiny_adapter().state_dict()
    assert all(torch.equal(handle.model.state_dict()[k], v) for k, v in expected.items())


def test_the_manager_loads_a_control_model_once(make_ctx, control_root):
    first = _load(make_ctx, control_root, "tiny-controlnet-2.safetensors")
    again = _load(make_ctx, control_root, "tiny-controlnet-2.safetensors")
    assert first.model is again.model  # each handle carries the name it was loaded by


@pytest.mark.parametrize(("name", "message"), [
    ("missing.safetensors", r"ControlNet or T2I-Adapter 'missing.safetensors' not found"),
    ("canny.pth", r"pickle-based file.*refused"),
    ("builtin:tiny-nothing", r"unknown built-in control model"),
])  # fmt: skip
def test_bad_names_are_refused_naming_the_input(make_ctx, control_root, name, message):
    with pytest.raises(NodeInputError, match=r"input 'control_net': .*" + message):
        _load(make_ctx, control_root, name)


def test_a_file_that_is_no_control_model_is_refused_by_name(make_ctx, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "controlnet"
    folder.mkdir()
    save_file({"weight": torch.zeros(2)}, folder / "other.safetensors")
    (folder / "broken.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(NodeInputError, match=r"other.safetensors: neither a ControlNet nor"):
        _load(make_ctx, tmp_path, "other.safetensors")
    with pytest.raises(NodeInputError, match=r"broken.safetensors: not a readable"):
        _load(make_ctx, tmp_path, "broken.safetensors")


def test_validation_reports_a_missing_control_model_before_running(control_root):
    from latentgraph.graph import Settings

    problems = controlnet._check({"control_net": "nope.safetensors"},
                                 Settings(models_dirs=[control_root]))  # fmt: skip
    assert problems and problems[0][0] == "control_net" and "nope.safetensors" in problems[0][1]
    assert controlnet._check({"control_net": "tiny-controlnet.safetensors"},
                             Settings(models_dirs=[control_root])) == []  # fmt: skip


def test_dropdown_lists_builtins_then_the_folder(control_root):
    from latentgraph.graph import Settings

    names = control_loading.control_names(Settings(models_dirs=[control_root]))
    assert names[:2] == ["builtin:tiny-controlnet", "builtin:tiny-t2i-adapter"]
    assert "tiny-controlnet-original.safetensors" in names
    assert "tiny-t2i-adapter.safetensors" in names


def test_absolute_diffusers_folders_load_with_their_own_config(make_ctx, control_root, tmp_path):
    folder = control_root / "controlnet" / "tiny-controlnet-diffusers"
    handle = _load(make_ctx, tmp_path, str(folder))
    assert handle.kind == "controlnet"
    assert torch.equal(handle.model.conv_in.weight, tiny_controlnet().conv_in.weight)
    tiny_adapter().save_pretrained(tmp_path / "adapter")
    adapter = _load(make_ctx, tmp_path, str(tmp_path / "adapter"))
    assert adapter.kind == "t2i_adapter" and adapter.hint_scale == 8
    missing = r"input 'control_net'.*nowhere does not exist \(expected a .safetensors file or a"
    with pytest.raises(NodeInputError, match=missing):
        _load(make_ctx, tmp_path, str(tmp_path / "nowhere"))


def test_a_diffusers_folder_in_controlnet_is_named_and_checked_like_a_file(control_root, tmp_path):
    """The README's promise: diffusers folders in the models folder's controlnet/ load by their
    name there; validation finds them too; the dropdown lists files only, as ComfyUI's."""
    from latentgraph.graph import Settings

    settings = Settings(models_dirs=[control_root])
    assert controlnet._check({"control_net": "tiny-controlnet-diffusers"}, settings) == []
    names = control_loading.control_names(settings)
    assert "tiny-controlnet-diffusers" not in names
    assert "tiny-controlnet-diffusers/diffusion_pytorch_model.safetensors" in names
    (control_root / "controlnet" / "empty").mkdir(exist_ok=True)
    [(_, message)] = controlnet._check({"control_net": "empty"}, settings)
    assert "ControlNet or T2I-Adapter 'empty' not found" in message


def test_an_edit_in_a_control_folders_subfolder_changes_its_identity(tmp_path):
    """A diffusers ControlNet folder is keyed by every file under it (`file_identity`, the one
    rule): a file changed in a subfolder kept its cache key (only the top level was read)."""
    folder = tmp_path / "controlnet" / "mine"
    (folder / "extra").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"w")
    (folder / "extra" / "part.json").write_text("{}")
    before = control_loading.control_identity("mine", [tmp_path])
    (folder / "extra" / "part.json").write_text('{"changed": true}')
    assert control_loading.control_identity("mine", [tmp_path]) != before
