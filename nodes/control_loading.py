"""Finding and loading ControlNets and T2I-Adapters (CONTROL_NET values).

Sources: `builtin:tiny-controlnet` / `builtin:tiny-t2i-adapter` (nodes/tiny_control.py), a
name in the models folders' controlnet/ (ComfyUI's folder; t2i_adapter/ too): a file, or a
diffusers folder by its name there (the dropdown lists files only, as ComfyUI's does: the
folder's weights file, which loads with its config.json), or a path (absolute, or from the
working directory) to a .safetensors file or a diffusers folder. Only safetensors are read: pickles are
refused by name, never opened.

A diffusers folder (or its `diffusion_pytorch_model.safetensors`, as the controlnet/ dropdown
lists it) brings its own config.json. A single file is recognised from its tensors, offline:
- a ControlNet in diffusers' layout or the original ("LDM") one, with or without the
  `control_model.` prefix: diffusers' own converter renames the tensors, and the config is
  the one of the UNet it was copied from (the shipped SD 1.x / 2.x presets, or the tiny
  model's, picked by width and cross-attention size) with the hint encoder's widths read from
  the file;
- a "difference" ControlNet (a `difference` tensor; ComfyUI's DiffControlNetLoader): stored
  minus the UNet it applies to, so that UNet's weights are added back (the `unet` input);
- a T2I-Adapter in diffusers' layout (`adapter.*`), its config read from the shapes (a 16x
  pixel unshuffle is the SDXL layout, as ComfyUI decides it).
Everything loads once per process through the model manager, in the run's device and dtype.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from latentgraph.graph import Settings
from latentgraph.graph.paths import builtin_identity
from latentgraph.graph.problems import error_line

from . import models_dirs, runtime
from .model_manager import budgeted, module_bytes
from .tiny_control import BUILD_VERSION, BUILTIN_CONTROLS, builtin_control
from .values import ControlModel, UNetModel

FOLDER = "controlnet"
WEIGHTS_STEM = "diffusion_pytorch_model"  # diffusers' weight file name in a model folder


class ControlLoadError(ValueError):
    """A control model that cannot be found or read; the message names the file."""


class DifferenceWithoutModel(ControlLoadError):
    """A difference ControlNet (stored minus its base model) loaded with no model to add it
    to; the message names the file, and each loader adds how to give it the model (its own
    input, or ComfyUI's DiffControlNetLoader)."""


def control_names(settings: Settings) -> list[str]:
    """The dropdown: the built-in tiny control models, then every file in controlnet/."""
    return [*BUILTIN_CONTROLS, *models_dirs.list_files(FOLDER, settings.models_dirs)]


def control_path(name: str, dirs: list[Path] | None = None) -> Path:
    """The file or folder behind a control model name (see the module docstring)."""
    if name in BUILTIN_CONTROLS:
        return builtin_control(name)
    if name.startswith("builtin:"):
        raise ControlLoadError(f"unknown built-in control model {name!r}; known: "
                               f"{', '.join(BUILTIN_CONTROLS)}")  # fmt: skip
    if models_dirs.is_pickled(name):
        raise ControlLoadError(models_dirs.pickle_refusal(name))
    try:
        return models_dirs.weights_path(FOLDER, name, dirs, folders=True)
    except models_dirs.ModelNotFound as exc:
        raise ControlLoadError(str(exc)) from None


def control_identity(name: str, dirs: list[Path] | None = None) -> str:
    """Cheap (no torch, nothing built): the built-in's recipe version, or the file's (a
    folder's: every file under it) path, size and mtime (`models_dirs.file_identity`);
    `missing:<why>` when the name does not resolve."""
    if name in BUILTIN_CONTROLS:
        return builtin_identity(name, BUILD_VERSION)
    try:
        path = control_path(name, dirs)
    except ControlLoadError as exc:
        return models_dirs.missing_identity(exc)
    return models_dirs.file_identity(path)


def _own_config(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """(weights file, the diffusers config.json beside it or None)."""
    if path.is_dir():
        found = sorted(path.glob(f"{WEIGHTS_STEM}*.safetensors"))
        if not found:
            raise ControlLoadError(f"{path}: no {WEIGHTS_STEM}.safetensors in the folder")
        path = found[0]
    config = path.parent / "config.json"
    if path.name.startswith(WEIGHTS_STEM) and config.is_file():
        return path, json.loads(config.read_text(encoding="utf-8"))
    return path, None


def read_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ControlLoadError(
            f"{path}: not a readable .safetensors file ({error_line(exc)})"
        ) from None


def kind_of(state: dict[str, Any], config: dict[str, Any] | None, path: Path) -> str:
    """The kind of control model ("controlnet" or "t2i_adapter"), from the config's
    class or the tensor names."""
    if config is not None:
        kinds = {"ControlNetModel": "controlnet", "T2IAdapter": "t2i_adapter"}
        kind = kinds.get(config.get("_class_name", ""))
        if kind is None:
            raise ControlLoadError(f"{path}: config.json describes a {config.get('_class_name')!r}"
                                   f"; expected one of {', '.join(kinds)}")  # fmt: skip
        return kind
    if any(k.startswith("adapter.") for k in state):
        return "t2i_adapter"
    if any("input_hint_block." in k or k.startswith("controlnet_cond_embedding.") for k in state):
        return "controlnet"
    if "lora_controlnet" in state:
        raise ControlLoadError(f"{path}: a Control-LoRA; those are not supported")
    if "conv_in.weight" in state or "body.0.in_conv.weight" in state:
        raise ControlLoadError(f"{path}: a T2I-Adapter in its original layout; convert it to "
                               "diffusers' layout (diffusers' T2I-Adapter conversion script)")  # fmt: skip
    raise ControlLoadError(f"{path}: neither a ControlNet nor a T2I-Adapter (no "
                           "controlnet_cond_embedding.*, input_hint_block.* or adapter.* tensors)")  # fmt: skip


def _unet_config(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """The config of the UNet a single-file ControlNet was copied from, by its width and
    cross-attention size (either tensor layout)."""
    from .model_presets import config_folder, unet_preset

    width = next((v.shape[0] for k, v in state.items()
                  if k.endswith(("input_blocks.0.0.weight", "conv_in.weight"))
                  and "controlnet_cond_embedding" not in k), None)  # fmt: skip
    contexts = {v.shape[1] for k, v in state.items() if k.endswith("attn2.to_k.weight")}
    context = contexts.pop() if len(contexts) == 1 else None
    preset = unet_preset(width, context) if width is not None else None
    if preset is None:
        raise ControlLoadError(
            f"{path}: unknown ControlNet architecture (width {width}, cross-attention context "
            f"{context}); known: SD 1.x (320, 768), SD 2.x (320, 1024), the tiny model (32, 32)."
            " A diffusers folder with its config.json loads any architecture"
        )  # fmt: skip
    config = config_folder(preset) / "unet" / "config.json"
    return json.loads(config.read_text(encoding="utf-8"))


def _controlnet_config(unet_config: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """A ControlNetModel config: the UNet's (diffusers' `from_unet` on the meta device), with
    the hint encoder's input and widths read from the (diffusers-layout) tensors."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    prefix = "controlnet_cond_embedding."
    conv_in = state[prefix + "conv_in.weight"]
    blocks = sorted({int(k[len(prefix + "blocks.") :].split(".")[0])
                     for k in state if k.startswith(prefix + "blocks.")})  # fmt: skip
    widths = [conv_in.shape[0]] + [state[f"{prefix}blocks.{i}.weight"].shape[0]
                                   for i in blocks if i % 2 == 1]  # fmt: skip
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(widths),
                                        load_weights_from_unet=False,
                                        conditioning_channels=conv_in.shape[1])  # fmt: skip
    return dict(net.config)


def _adapter_config(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """A T2IAdapter config from a diffusers-layout file's shapes (full and SDXL layouts)."""
    if "adapter.conv_in.weight" not in state:
        raise ControlLoadError(f"{path}: only the full T2I-Adapter layouts load from a single "
                               "file; use the adapter's diffusers folder")  # fmt: skip
    unshuffled = state["adapter.conv_in.weight"].shape[1]
    in_channels = (
        3 if unshuffled % 3 == 0 and math.isqrt(unshuffled // 3) ** 2 * 3 == unshuffled else 1
    )
    factor = math.isqrt(unshuffled // in_channels)
    count = len({k.split(".")[2] for k in state if k.startswith("adapter.body.")})
    resnets = {k.split(".")[4] for k in state if k.startswith("adapter.body.0.resnets.")}
    channels = [state[f"adapter.body.{i}.resnets.0.block1.weight"].shape[0] for i in range(count)]
    return {"in_channels": in_channels, "channels": channels, "num_res_blocks": len(resnets),
            "downscale_factor": factor,
            "adapter_type": "full_adapter_xl" if factor == 16 else "full_adapter"}  # fmt: skip


def _load_exact(module: Any, state: dict[str, Any], path: Path) -> Any:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ControlLoadError(f"{path}: tensors do not fit the architecture (missing "
                               f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")  # fmt: skip
    return module


def _add_base(state: dict[str, Any], unet: Any) -> dict[str, Any]:
    """A difference file's tensors plus the UNet's (every tensor the UNet has, same shape)."""
    base = unet.state_dict()
    return {k: v + base[k].to(v) if k in base and base[k].shape == v.shape else v
            for k, v in state.items()}  # fmt: skip


def read_control(path: Path, unet: UNetModel | None) -> tuple[Any, str, int]:
    """(module on the CPU in fp32, kind, hint pixels per latent cell) from a file or folder.
    `unet` is the model a difference ControlNet is added to."""
    from diffusers import ControlNetModel, T2IAdapter
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    weights, config = _own_config(path)
    state = read_tensors(weights)
    kind = kind_of(state, config, weights)
    if kind == "t2i_adapter":
        config = config or _adapter_config(state, weights)
        init = {k: v for k, v in config.items() if not k.startswith("_")}
        adapter = _load_exact(T2IAdapter(**init), state, weights)
        factor = adapter.config.downscale_factor
        return adapter, kind, factor // 2 if adapter.config.adapter_type.endswith("_xl") else factor
    difference = state.pop("difference", None) is not None
    if config is None:
        unet_config = _unet_config(state, weights)
        state = convert_controlnet_checkpoint(state, unet_config)
        config = _controlnet_config(unet_config, state)
    else:
        state = convert_controlnet_checkpoint(state, config)
    if difference:
        if unet is None:
            raise DifferenceWithoutModel(f"{weights}: a difference ControlNet (stored minus "
                                         "its base model) needs the model it applies to")  # fmt: skip
        state = _add_base(state, unet.unet)
    net = _load_exact(ControlNetModel.from_config(config), state, weights)
    return net, kind, 2 ** (len(net.config.conditioning_embedding_out_channels) - 1)


def load_control(settings: Settings, name: str, unet: UNetModel | None = None) -> ControlModel:
    """A CONTROL_NET handle, loaded once per process (per base model for a difference file);
    the handle carries `name` as given (one file under two names is loaded once)."""
    from .loaders import place

    path = control_path(name, settings.models_dirs)
    device = runtime.device_name(settings)
    dtype = runtime.dtype_name(settings, device)
    base = unet.key if unet is not None else ""
    key = f"{FOLDER}|{control_identity(name, settings.models_dirs)}|{base}|" \
          f"{runtime.model_identity(settings)}"  # fmt: skip

    def load() -> ControlModel:
        from .quiet import quiet_libraries

        quiet_libraries()
        module, kind, scale = read_control(path, unet)
        torch_dtype = runtime.torch_dtype(dtype)
        if module.dtype != torch_dtype:  # (diffusers warns on every dtype cast)
            module = module.to(torch_dtype)
        return ControlModel(place(settings, module, device), kind, key, device, scale)

    where = runtime.home_device(settings, device)  # offloaded: counted against RAM
    mgr = budgeted(settings)
    handle = mgr.get(key, load, where, size=lambda handle: module_bytes(handle.model))
    return replace(handle, name=name)
