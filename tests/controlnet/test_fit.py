"""A ControlNet or T2I-Adapter made for another model family is refused before sampling, by
the sampler that first pairs it with a UNet: the message names the control model as the
workflow does, the node that applied it and what differs in the two configs (it failed in
the middle of the first step with torch's `mat1 and mat2 shapes cannot be multiplied`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentgraph.nodes import controlnet
from latentgraph.nodes.guidance import Guidance
from latentgraph.nodes.values import CondEntry, Conditioning, ControlModel

ROOT = Path(__file__).resolve().parents[2]
FAMILY_HINT = "for another model family (SDXL vs SD 1.5)?"


def test_an_sd_controlnet_on_an_sdxl_model_is_refused_before_sampling(tmp_path, monkeypatch,
                                                                      capsys, torch_1thread):  # fmt: skip
    from latentgraph.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["run", str(ROOT / "workflows" / "controlnet.yaml"), "--set",
                 "model=builtin:tiny-sdxl", "--set", "width=64", "--set", "height=64",
                 "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "mat1 and mat2" not in err
    assert (
        "node 'denoise' (UNetDenoise) input 'positive': ControlNet builtin:tiny-controlnet "
        "(control_net of node 'control' (ApplyControlNet)) does not fit this model's unet: its "
        "cross-attention width 32, the UNet's 96; its added inputs none, the UNet's text_time; "
        "is it a ControlNet for another model family (SDXL vs SD 1.5)?"
    ) in " ".join(err.split())


def _unet(name: str):
    from diffusers import UNet2DConditionModel

    if name == "sdxl":
        from latentgraph.nodes.tiny_sdxl import ensure_tiny_sdxl as ensure
    else:
        from latentgraph.nodes.tiny_model import ensure_tiny_sd as ensure
    return UNet2DConditionModel.from_pretrained(ensure() / "unet")


def _guidance(make_ctx, unet, control: controlnet.Control) -> Guidance:
    import torch

    cond = Conditioning((CondEntry(torch.zeros(1, 77, unet.config.cross_attention_dim)),))
    cond = controlnet.with_control(cond, control)
    return Guidance(make_ctx("KSampler"), unet, torch.device("cpu"), cond, cond, 7.0,
                    (1, 4, 8, 8))  # fmt: skip


def test_an_sdxl_controlnet_on_an_sd_model_is_refused_naming_its_loader_name(make_ctx,
                                                                            cache_dir):  # fmt: skip
    """The reverse: a ControlNet made from the tiny SDXL UNet, on the tiny SD 1.5 UNet."""
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(_unet("sdxl"), load_weights_from_unet=False)
    handle = ControlModel(net, "controlnet", "k", "cpu", name="sdxl-canny.safetensors")
    control = controlnet.Control(handle, None, applied_by="node '18' (ControlNetApplyAdvanced)")
    with pytest.raises(ValueError) as info:
        _guidance(make_ctx, _unet("sd"), control)
    assert str(info.value) == (
        "node 'n1' (KSampler) input 'positive': ControlNet sdxl-canny.safetensors (control_net "
        "of node '18' (ControlNetApplyAdvanced)) does not fit this model's unet: its "
        "cross-attention width 96, the UNet's 32; its added inputs text_time, the UNet's none;"
        f" is it a ControlNet {FAMILY_HINT}"
    )


@pytest.mark.parametrize(("config", "said"), [
    ({"adapter_type": "full_adapter", "downscale_factor": 8},
     "its layout full_adapter, for a UNet whose first down block has cross-attention"),
    ({"channels": [64, 128]}, "its feature widths [64, 128], the UNet's down blocks' [32, 64]"),
])  # fmt: skip
def test_a_t2i_adapter_of_another_layout_or_width_is_refused(make_ctx, cache_dir, config, said):
    """An adapter in SD 1.5's layout (its first feature before the first downsampling) on a
    UNet whose first down block has no cross-attention (SDXL's, the tiny models'), or of other
    widths; the built-in tiny adapter fits both tiny UNets."""
    from diffusers import T2IAdapter

    from latentgraph.nodes.tiny_control import ADAPTER_CONFIG

    fits = ControlModel(T2IAdapter(**ADAPTER_CONFIG), "t2i_adapter", "k", "cpu", 8, "a")
    for family in ("sd", "sdxl"):
        assert controlnet.control_misfit(controlnet.Control(fits, None), _unet(family)) is None
    adapter = T2IAdapter(**{**ADAPTER_CONFIG, **config})
    handle = ControlModel(adapter, "t2i_adapter", "k", "cpu", 8, "depth-adapter.safetensors")
    control = controlnet.Control(handle, None, applied_by="node 'steer' (ApplyControlNet)")
    with pytest.raises(ValueError) as info:
        _guidance(make_ctx, _unet("sd"), control)
    assert str(info.value) == (
        "node 'n1' (KSampler) input 'positive': T2I-Adapter depth-adapter.safetensors "
        "(control_net of node 'steer' (ApplyControlNet)) does not fit this model's unet: "
        f"{said}; is it a T2I-Adapter {FAMILY_HINT}"
    )


# Real T2I-Adapters' configs (diffusers' layout, as TencentARC's SD 1.5 and SDXL adapters
# ship them): both give four features of 320, 640, 1280 and 1280 channels; SD 1.5's halve
# the size from the second feature on (`full_adapter`, one feature per down block), SDXL's
# keep it for two features and halve once (`full_adapter_xl`, SDXL's first down block has
# no cross-attention and two halvings in all). Widths alone do not tell the families apart.
REAL_ADAPTERS = {
    "sd15": {"in_channels": 3, "channels": [320, 640, 1280, 1280], "num_res_blocks": 2,
             "downscale_factor": 8, "adapter_type": "full_adapter"},
    "sdxl": {"in_channels": 3, "channels": [320, 640, 1280, 1280], "num_res_blocks": 2,
             "downscale_factor": 16, "adapter_type": "full_adapter_xl"},
}  # fmt: skip


def _real_size(family: str, adapter_family: str) -> tuple:
    """The UNet of a real `family` (its shipped config) and a real adapter made for
    `adapter_family`, built on the meta device: their configs are real, no weights made."""
    import torch
    from diffusers import T2IAdapter, UNet2DConditionModel

    config = UNet2DConditionModel.load_config(Path(controlnet.__file__).parent / "configs"
                                              / family / "unet")  # fmt: skip
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
        adapter = T2IAdapter(**REAL_ADAPTERS[adapter_family])
    name = f"t2iadapter-{adapter_family}.safetensors"
    return unet, controlnet.Control(ControlModel(adapter, "t2i_adapter", "k", "cpu", 8, name), None)


@pytest.mark.parametrize(("family", "adapter_family", "said"), [
    ("sd15", "sd15", None),
    ("sdxl", "sdxl", None),
    ("sd2", "sd15", None),  # SD 2's down blocks are SD 1.5's: its features fit
    ("sdxl", "sd15", "its layout full_adapter, for a UNet whose first down block has "
                     "cross-attention"),
    ("sd15", "sdxl", "its layout full_adapter_xl, for a UNet whose first down block lacks "
                     "cross-attention"),
])  # fmt: skip
def test_a_real_t2i_adapter_is_refused_on_a_real_model_of_another_family(family,
                                                                         adapter_family, said):  # fmt: skip
    """The built-in tiny adapter fits both tiny UNets, whose down blocks are alike (the tiny
    SD's first has no cross-attention, as SDXL's), so it runs on builtin:tiny-sdxl; a real SD
    1.5 adapter on a real SDXL UNet, whose widths fit, is refused by its layout."""
    unet, control = _real_size(family, adapter_family)
    misfit = controlnet.control_misfit(control, unet)
    if said is None:
        assert misfit is None
    else:
        assert misfit == (f"T2I-Adapter t2iadapter-{adapter_family}.safetensors does not fit "
                          f"this model's unet: {said}; is it a T2I-Adapter {FAMILY_HINT}")  # fmt: skip
