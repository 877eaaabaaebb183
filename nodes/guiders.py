"""Guiders (GUIDER): how each step's noise prediction is made, as a value on a socket.

A guider holds the model, its conditionings and the rule combining their predictions;
SamplerCustomAdvanced asks it for a `predictor` and calls that once per step. ComfyUI's
BasicGuider (one conditioning, no guidance), CFGGuider (classifier-free guidance) and
DualCFGGuider (two prompts and a negative, each pair with its own scale) have the same names
and inputs here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from latentgraph.graph import CONDITIONING, MODEL, Choice, Float, Output, Socket, node
from latentgraph.graph.declare import GUIDER

from .values import Conditioning, UNetModel

CFG = dict(min=0.0, max=100.0, step=0.1, round=0.01)  # ComfyUI's cfg widget
DUAL_STYLES = ("regular", "nested")
NOTHING = Conditioning(())  # no entries: the unused negative side of an unguided prediction


@dataclass(eq=False)
class Guider:
    """GUIDER: the model, its conditionings (negative first) and the scales.

    Every prediction is nodes/guidance.py's, the one UNetDenoise makes (entries, areas, masks,
    timestep ranges, SDXL inputs): CFGGuider's is exactly UNetDenoise's; the others predict
    each conditioning alone and `combine` the results."""

    unet: UNetModel
    conds: tuple[Conditioning, ...]
    kind: str  # "basic", "cfg", "dual" or "dual_nested"
    scales: tuple[float, ...] = ()

    def predictor(self, ctx: Any, device: Any, latent_shape: tuple[int, ...],
                  train_steps: int) -> Callable[[Any, Any], Any]:  # fmt: skip
        """`predict(model_input, t)` for sampling latents of `latent_shape` on `device`; the
        conditionings are checked here, before any step runs."""
        from .guidance import Guidance

        def guidance(positive: Conditioning, negative: Conditioning = NOTHING,
                     scale: float = 1.0) -> Guidance:  # fmt: skip
            return Guidance(ctx, self.unet.unet, device, positive, negative, scale,
                            latent_shape, train_steps, comfy_cfg=True)  # fmt: skip

        if self.kind == "cfg":
            negative, positive = self.conds
            return guidance(positive, negative, self.scales[0]).predict
        alone = [guidance(cond) for cond in self.conds]
        return lambda x, t: self.combine([each.predict(x, t) for each in alone])

    def combine(self, preds: list[Any]) -> Any:
        """One prediction from each conditioning's, in `conds` order."""
        if self.kind == "basic":
            return preds[0]
        negative, middle, positive = preds
        cfg_conds, cfg_negative = self.scales
        if self.kind == "dual_nested":  # guide cond1 from cond2, then that from the negative
            text = middle + cfg_conds * (positive - middle)
            return negative + cfg_negative * (text - negative)
        return negative + cfg_negative * (middle - negative) + cfg_conds * (positive - middle)


@node(
    "BasicGuider", display_name="Basic Guider", category="sampling/guiders",
    inputs=[Socket("model", MODEL), Socket("conditioning", CONDITIONING)],
    outputs=[Output("GUIDER", GUIDER)],
)  # fmt: skip
def basic_guider(ctx, model: UNetModel, conditioning: Conditioning):
    """Follow one conditioning, without guidance (distilled models: Turbo, LCM, Flux)."""
    return Guider(model, (conditioning,), "basic")


@node(
    "CFGGuider", display_name="CFG Guider", category="sampling/guiders",
    inputs=[Socket("model", MODEL), Socket("positive", CONDITIONING),
            Socket("negative", CONDITIONING), Float("cfg", 8.0, **CFG)],
    outputs=[Output("GUIDER", GUIDER)],
)  # fmt: skip
def cfg_guider(ctx, model: UNetModel, positive: Conditioning, negative: Conditioning,
               cfg: float = 8.0):  # fmt: skip
    """Classifier-free guidance: negative + cfg * (positive - negative), as ComfyUI's: cfg 1
    follows the positive alone (one UNet call), cfg 0 the negative, 0.5 a blend (UNetDenoise,
    as diffusers, follows the positive alone for any guidance up to 1)."""
    return Guider(model, (negative, positive), "cfg", (cfg,))


@node(
    "DualCFGGuider", display_name="Dual CFG Guider", category="sampling/guiders",
    inputs=[Socket("model", MODEL), Socket("cond1", CONDITIONING), Socket("cond2", CONDITIONING),
            Socket("negative", CONDITIONING), Float("cfg_conds", 8.0, **CFG),
            Float("cfg_cond2_negative", 8.0, **CFG),
            Choice("style", list(DUAL_STYLES), "regular", description="regular: negative + "
                   "cfg_cond2_negative * (cond2 - negative) + cfg_conds * (cond1 - cond2); "
                   "nested: cond1 guided from cond2, then that guided from the negative")],
    outputs=[Output("GUIDER", GUIDER)],
)  # fmt: skip
def dual_cfg_guider(ctx, model: UNetModel, cond1: Conditioning, cond2: Conditioning,
                    negative: Conditioning, cfg_conds: float = 8.0,
                    cfg_cond2_negative: float = 8.0, style: str = "regular"):  # fmt: skip
    """Guidance by two prompts: cond2 away from the negative, cond1 away from cond2."""
    kind = "dual_nested" if style == "nested" else "dual"
    return Guider(model, (negative, cond2, cond1), kind, (cfg_conds, cfg_cond2_negative))
