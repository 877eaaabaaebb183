"""ComfyUI's ControlNet nodes (ControlNetLoader, DiffControlNetLoader, ControlNetApply,
ControlNetApplyAdvanced) as thin adapters over nodes/controlnet.py, registered with the other
ComfyUI nodes (nodes/comfy.py). T2I-Adapters load through ControlNetLoader, as in ComfyUI."""

from __future__ import annotations

from typing import Any

from latentgraph.graph import (
    CONDITIONING,
    IMAGE,
    MODEL,
    VAE,
    Output,
    Settings,
    Socket,
)

from . import models_dirs
from .comfy import _node
from .control_loading import (
    ControlLoadError,
    DifferenceWithoutModel,
    control_names,
    load_control,
)
from .controlnet import (
    CONTROL_NET,
    PERCENT_INPUTS,
    Control,
    applier,
    apply_control_net,
    strength_input,
    with_control,
)
from .values import Conditioning, ControlModel, UNetModel, input_error

CATEGORY = "conditioning/controlnet"


def _identity(inputs: dict[str, Any], settings: Settings) -> str:
    from .control_loading import control_identity
    from .runtime import model_identity

    name = str(inputs.get("control_net_name", ""))
    return f"{control_identity(name, settings.models_dirs)}|{model_identity(settings)}"


def _load(ctx: Any, name: str, model: UNetModel | None) -> ControlModel:
    try:
        return load_control(ctx.settings, name, model)
    except DifferenceWithoutModel as exc:  # ControlNetLoader's: it takes no model
        raise input_error(ctx, "control_net_name", f"{exc}: load it with DiffControlNetLoader "
                          "(the editor's 'Load ControlNet Model (diff)'), which takes that "
                          "model") from None  # fmt: skip
    except (ControlLoadError, models_dirs.ModelNotFound) as exc:
        raise input_error(ctx, "control_net_name", str(exc)) from None


NAME_INPUT = models_dirs.model_choice("control_net_name", "controlnet", control_names,
                    description="a ControlNet or T2I-Adapter in the models folders' controlnet/")  # fmt: skip


@_node(
    "ControlNetLoader", "Load ControlNet Model", "loaders",
    inputs=[NAME_INPUT],
    outputs=[Output("CONTROL_NET", CONTROL_NET)],
    identity=_identity,
)  # fmt: skip
def control_net_loader(ctx, control_net_name: str):
    """Load a ControlNet or T2I-Adapter from controlnet/."""
    return _load(ctx, control_net_name, None)


@_node(
    "DiffControlNetLoader", "Load ControlNet Model (diff)", "loaders",
    inputs=[Socket("model", MODEL), NAME_INPUT],
    outputs=[Output("CONTROL_NET", CONTROL_NET)],
    identity=_identity,
)  # fmt: skip
def diff_control_net_loader(ctx, model: UNetModel, control_net_name: str):
    """Load a ControlNet stored as a difference to `model` (its weights are added back)."""
    return _load(ctx, control_net_name, model)


@_node(
    "ControlNetApply", "Apply ControlNet (OLD)", CATEGORY,
    inputs=[Socket("conditioning", CONDITIONING), Socket("control_net", CONTROL_NET),
            Socket("image", IMAGE), strength_input()],
    outputs=[Output("CONDITIONING", CONDITIONING)],
)  # fmt: skip
def control_net_apply(ctx, conditioning: Conditioning, control_net: ControlModel, image: Any,
                      strength: float = 1.0):  # fmt: skip
    """Apply a ControlNet to one conditioning only (ComfyUI: to the positive; the negative
    side's UNet rows then run without it)."""
    if strength == 0:
        return conditioning
    return with_control(
        conditioning, Control(control_net, image, strength, applied_by=applier(ctx))
    )


@_node(
    "ControlNetApplyAdvanced", "Apply ControlNet", CATEGORY,
    inputs=[Socket("positive", CONDITIONING), Socket("negative", CONDITIONING),
            Socket("control_net", CONTROL_NET), Socket("image", IMAGE), strength_input(),
            *PERCENT_INPUTS,
            Socket("vae", VAE, optional=True, description="only for ControlNets that read "
                   "latents (SD3, Flux); unused by SD 1.x/2.x/XL ControlNets and T2I-Adapters")],
    outputs=[Output("positive", CONDITIONING), Output("negative", CONDITIONING)],
)  # fmt: skip
def control_net_apply_advanced(ctx, positive: Conditioning, negative: Conditioning,
                               control_net: ControlModel, image: Any, strength: float = 1.0,
                               start_percent: float = 0.0, end_percent: float = 1.0,
                               vae: Any = None):  # fmt: skip
    """Apply a ControlNet to both conditionings over part of sampling."""
    return apply_control_net(ctx, positive, negative, control_net, image, strength,
                             start_percent, end_percent)  # fmt: skip
