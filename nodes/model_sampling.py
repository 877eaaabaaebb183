"""How a UNet is sampled: what its output means and which noise schedule it was trained on.

A MODEL handle carries a `ModelSampling` (nodes/values.py): "eps" (the output is the noise),
"v_prediction" (SD 2.x 768-v and v-tuned models: the output is the velocity), or "lcm"
(latent consistency models and LCM-LoRAs: sampled with diffusers' LCMScheduler), and `zsnr`
(betas rescaled to a zero terminal SNR, diffusers' `rescale_betas_zero_snr`). The loaders
set it from what they find (a diffusers scheduler config's `prediction_type`; in a single
file the `v_pred` / `ztsnr` marker tensors, and for SD 2.x the 768-v weights' statistics) or
the user declares it (LoadModel's `prediction`, SetModelSampling, ComfyUI's
ModelSamplingDiscrete).

`for_model(spec, unet)` is THE rule that turns a scheduler spec into the one the model must
be sampled with; every sampler calls it (UNetDenoise, KSampler through it; a custom sampler
through `node_spec`, which names the node input in its errors). `sampled_config(config,
unet.sampling)` is the part about the config alone (prediction type, zsnr betas): what sigma
nodes building noise levels from a MODEL's scheduler config apply; `model_scheduler_config`
is that config, the one a MODEL carries from its checkpoint.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from latentgraph.graph import MODEL, Bool, Choice, Output, Socket, node

from .values import SAMPLING_KINDS, ModelSampling, SchedulerSpec, UNetModel, input_error

LCM_CLASS = "LCMScheduler"
# Markers some single-file checkpoints carry (empty tensors): ComfyUI reads them the same way.
V_PRED_MARKER, ZSNR_MARKER = "v_pred", "ztsnr"
# SD 2.x 768-v and 512-base have the same shapes; ComfyUI tells them apart by the spread of
# one attention norm's biases (a heuristic: the same tensor and threshold here).
SD2_V_PROBE = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
SD2_V_STD = 0.09


class SamplingError(ValueError):
    """A scheduler that cannot sample the model as its sampling says (e.g. no zsnr option)."""


def from_scheduler_config(config: dict[str, Any]) -> ModelSampling:
    """The sampling a diffusers scheduler config describes (a model folder's own)."""
    kind = "v_prediction" if config.get("prediction_type") == "v_prediction" else "eps"
    if config.get("_class_name") == LCM_CLASS:
        kind = "lcm"
    return ModelSampling(kind, bool(config.get("rescale_betas_zero_snr", False)))


def from_markers(keys: Any) -> ModelSampling | None:
    """The sampling a single file declares with marker tensors, None when it has none."""
    if V_PRED_MARKER not in keys:
        return None
    return ModelSampling("v_prediction", ZSNR_MARKER in keys)


def markers(sampling: ModelSampling | None) -> dict[str, Any]:
    """The marker tensors a saved checkpoint carries so loaders (ours, ComfyUI) read it back
    as v-prediction (and zsnr); none for eps and lcm models."""
    import torch

    if sampling is None or sampling.kind != "v_prediction":
        return {}
    found = {V_PRED_MARKER: torch.tensor([])}
    if sampling.zsnr:
        found[ZSNR_MARKER] = torch.tensor([])
    return found


def sd2_is_v_model(path: str) -> bool:
    """Whether an SD 2.x single file is the 768-v (v-prediction) model rather than the
    512-base (eps) one; reads one small tensor."""
    import torch
    from safetensors import safe_open

    with safe_open(path, framework="pt") as fh:
        if SD2_V_PROBE not in fh.keys():
            return True  # the shipped "sd2" preset's assumption
        bias = fh.get_tensor(SD2_V_PROBE).float()
    return float(torch.std(bias, unbiased=False)) > SD2_V_STD


def declared(kind: str, base: ModelSampling) -> ModelSampling:
    """LoadModel's `prediction` input: "auto" keeps what was found."""
    return base if kind == "auto" else replace(base, kind=kind)


def sampled_config(config: dict[str, Any], sampling: ModelSampling | None) -> dict[str, Any]:
    """A scheduler config with the model's prediction type and zero-terminal-SNR setting (for
    sigmas built from a MODEL: `sampled_config(config, unet.sampling)`); None: as it is."""
    if sampling is None:
        return dict(config)
    return {**config, "prediction_type": sampling.prediction_type,
            "rescale_betas_zero_snr": sampling.zsnr}  # fmt: skip


def for_model(spec: SchedulerSpec, unet: UNetModel) -> SchedulerSpec:
    """The scheduler spec `unet` must be sampled with: its prediction type and zsnr in the
    config, LCMScheduler for an "lcm" model. A handle with no sampling keeps `spec` as is.
    Raises SamplingError when the chosen scheduler cannot do zsnr (diffusers would ignore it)."""
    sampling = unet.sampling
    if sampling is None:
        return spec
    class_name = LCM_CLASS if sampling.kind == "lcm" else spec.class_name
    if sampling.zsnr and not _accepts(class_name or spec.config.get("_class_name", ""),
                                      "rescale_betas_zero_snr"):  # fmt: skip
        raise SamplingError(f"scheduler {spec.name or class_name!r} has no zero-terminal-SNR "
                            "option (zsnr); use euler, euler_a, ddim, ddpm, dpm++2m, unipc "
                            "or lcm")  # fmt: skip
    name = "lcm" if sampling.kind == "lcm" else spec.name
    return SchedulerSpec(sampled_config(spec.config, sampling), name, class_name,
                         dict(spec.overrides))  # fmt: skip


def _accepts(class_name: str, parameter: str) -> bool:
    from .schedulers import scheduler_class

    cls = scheduler_class(class_name or "DDIMScheduler")
    return parameter in inspect.signature(cls.__init__).parameters


def node_spec(ctx: Any, spec: SchedulerSpec, unet: UNetModel, input_name: str) -> SchedulerSpec:
    """`for_model` inside a node: its refusal names the node's `input_name`, and a scheduler
    replaced for an "lcm" model is said in a warning."""
    try:
        out = for_model(spec, unet)
    except SamplingError as exc:
        raise input_error(ctx, input_name, str(exc)) from None
    if out.class_name != (spec.class_name or spec.config.get("_class_name")):
        ctx.warn(f"the model's sampling is lcm: sampled with LCMScheduler, not "
                 f"{spec.name or spec.class_name!r}")  # fmt: skip
    return out


def model_scheduler_config(unet: UNetModel) -> dict[str, Any]:
    """The noise schedule a MODEL is sampled with where no SCHEDULER is given (KSampler,
    BasicScheduler, a custom sampler's guider): its checkpoint's scheduler config, Stable
    Diffusion's for a handle made without one. Samplers add its sampling (`for_model`)."""
    if unet.scheduler_config is not None:
        return dict(unet.scheduler_config)
    from .tiny_model import SCHEDULER_CONFIG

    return dict(SCHEDULER_CONFIG)


def with_sampling(unet: UNetModel, sampling: ModelSampling) -> UNetModel:
    """The same UNet (same weights, same manager key, same schedule) sampled another way."""
    return replace(unet, sampling=sampling)


@node(
    "SetModelSampling",
    category="advanced/model",
    inputs=[
        Socket("unet", MODEL),
        Choice("sampling", list(SAMPLING_KINDS), "eps",
               description="eps: predicts noise; v_prediction: SD 2.x 768-v and v-tuned models; "
               "lcm: latent consistency models and LCM-LoRAs (LCMScheduler)"),
        Bool("zsnr", False, description="betas rescaled to zero terminal SNR"),
    ],
    outputs=[Output("unet", MODEL)],
)  # fmt: skip
def set_model_sampling(ctx, unet: UNetModel, sampling: str = "eps", zsnr: bool = False):
    """Say how the UNet is to be sampled; every sampler downstream follows it."""
    return with_sampling(unet, ModelSampling(sampling, zsnr))
