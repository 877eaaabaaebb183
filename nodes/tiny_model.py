"""`builtin:tiny-sd`: a Stable-Diffusion-shaped model with random weights, built on first use.

No machine running the tests can download weights, so the project makes its own: every part of
the real pipeline (tokenizer with the standard CLIP ids, text encoder, UNet, VAE, scheduler
config) in the diffusers folder layout, loaded back through the real `from_pretrained` path.
Weights come from fixed seeds, so every build is the same model. Its images are noise.

    python -m latentgraph.nodes.tiny_model                 # build (or find) the folder, print it
    python -m latentgraph.nodes.tiny_model --single-file out.safetensors
    python -m latentgraph.nodes.tiny_model --inpaint       # builtin:tiny-sd-inpaint's folder
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from latentgraph.graph import paths
from latentgraph.graph.files import (
    make_folders,
    new_sibling,
    remove_folders,
    umask_modes,
    widen_to_umask,
    write_error,
    write_file,
)

NAME = "tiny-sd"
BUILD_VERSION = 2  # bump when the recipe changes so old cached builds are rebuilt

# Stable Diffusion 1.5's geometry (a VAE that downsamples by 8 into 4 latent channels, so
# ComfyUI graphs at 64x64 give 64x64 images), with few, narrow layers.
UNET_CONFIG = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 1,
    "block_out_channels": [32, 64],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
VAE_CONFIG = {
    "block_out_channels": [32, 32, 64, 64],  # four blocks: three halvings, factor 8
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 64,
}
TEXT_CONFIG = {
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
    "hidden_size": 32,
    "intermediate_size": 37,
    "layer_norm_eps": 1e-05,
    "num_attention_heads": 4,
    "num_hidden_layers": 5,
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "projection_dim": 32,
}
SCHEDULER_CONFIG = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.30.0",
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def default_path() -> Path:
    return paths.built_model(NAME, BUILD_VERSION)


def write_model(folder: Path, unet_config: dict | None = None,
                model_index: dict | None = None) -> None:  # fmt: skip
    """Write the model into `folder`; variants (the inpainting one) change only the UNet's
    config and the pipeline named in model_index.json."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from .clip_vocab import write_tokenizer_files

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**(unet_config or UNET_CONFIG))
    torch.manual_seed(1)
    vae = AutoencoderKL(**VAE_CONFIG)
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    write_tokenizer_files(folder / "tokenizer")
    DDIMScheduler(**SCHEDULER_CONFIG).save_pretrained(folder / "scheduler")
    write_json(folder / "model_index.json", model_index or MODEL_INDEX)


def build_folder(dest: Path, write: Callable[[Path], None]) -> Path:
    """Return `dest`, first filling it with `write(folder)` if it holds no model_index.json.

    Atomic: `write` fills a temp folder that is then renamed, so a build that dies half-way
    leaves only a temp folder, never a half-written model; if another process finishes first,
    its folder is kept. With the user's umask, as the rest of the cache (`new_sibling`,
    `umask_modes`: neither mkdtemp's 0700 folder nor safetensors' 0600 weights), so others
    sharing the cache folder can read it. A build the machine refuses (a full cache disk, a read-only one) is a
    `FileWriteError` naming `dest` and saying why in words, and leaves nothing: neither the
    temp folder nor the folders made for it. A folder built before builds followed the umask
    (0700, 0600 weights) is widened to its modes when reused, if it is the user's own
    (`widen_to_umask`)."""
    if (dest / "model_index.json").is_file():
        widen_to_umask(dest)
        return dest
    made: list[Path] = []
    try:
        made = make_folders(dest.parent)
        tmp = new_sibling(dest)
        try:
            write(tmp)
            umask_modes(tmp)
            try:
                os.replace(tmp, dest)
            except OSError:
                if not (dest / "model_index.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as exc:  # Ctrl-C too: nothing left behind
        remove_folders(made)
        failed = write_error(dest, exc)
        if failed is None:
            raise
        raise failed from exc
    return dest


def ensure_tiny_sd(path: Path | None = None) -> Path:
    """Return the tiny model's folder, building it first if needed (see `build_folder`)."""
    return build_folder(Path(path) if path is not None else default_path(), write_model)


def write_config_folder(folder: Path, unet_config: dict | None = None,
                        model_index: dict | None = None) -> None:  # fmt: skip
    """Write the tiny model's configs without weights: the `config=` folder that
    `from_single_file` needs to read a tiny single-file checkpoint offline."""
    from .clip_vocab import write_tokenizer_files

    write_json(folder / "model_index.json", model_index or MODEL_INDEX)
    write_json(folder / "unet" / "config.json",
                {"_class_name": "UNet2DConditionModel", **(unet_config or UNET_CONFIG)})  # fmt: skip
    write_json(folder / "vae" / "config.json", {"_class_name": "AutoencoderKL", **VAE_CONFIG})
    write_json(folder / "text_encoder" / "config.json",
                {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
                 **TEXT_CONFIG})  # fmt: skip
    # Through the class, as the build does: a scheduler config lists every default (e.g.
    # timestep_spacing), and other schedulers built from it inherit those values.
    from diffusers import DDIMScheduler

    DDIMScheduler(**SCHEDULER_CONFIG).save_config(folder / "scheduler")
    write_tokenizer_files(folder / "tokenizer")


def weights(folder: Path, sub: str) -> dict:
    from safetensors.torch import load_file

    files = sorted((folder / sub).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder / sub}")
    state: dict = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def write_single_file(out: Path, folder: Path | None = None) -> Path:
    """Write the tiny model as one original-layout (LDM) `.safetensors` checkpoint, the format
    `from_single_file` reads and people share, so the single-file loading path is tested too.
    Written atomically (temp file + rename): a crash never leaves half a checkpoint."""
    from .ldm_layout import to_original

    folder = Path(folder) if folder is not None else ensure_tiny_sd()
    out = Path(out)
    configs = {
        sub: json.loads((folder / sub / "config.json").read_text(encoding="utf-8"))
        for sub in ("unet", "vae")
    }
    state = to_original(
        weights(folder, "unet"), configs["unet"],
        weights(folder, "vae"), configs["vae"],
        weights(folder, "text_encoder"),
        to_conv1x1=lambda t: t.reshape(*t.shape, 1, 1),
    )  # fmt: skip
    return save_checkpoint(state, out, f"{NAME}-v{BUILD_VERSION}")


def save_checkpoint(state: dict, out: Path, model: str) -> Path:
    """Write a state dict as one .safetensors file, atomically (temp file + rename): a crash
    never leaves half a checkpoint."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in state.items()}
    metadata = {"format": "pt", "model": model}
    return write_file(out, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentgraph.nodes.tiny_model")
    parser.add_argument("--path", type=Path, default=None, help="folder to build into")
    parser.add_argument("--single-file", type=Path, default=None, help="also write a checkpoint")
    parser.add_argument("--inpaint", action="store_true",
                        help="the inpainting variant (builtin:tiny-sd-inpaint, 9-channel UNet)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.inpaint:
        from .tiny_inpaint import ensure_tiny_inpaint

        folder = ensure_tiny_inpaint(args.path)
    else:
        folder = ensure_tiny_sd(args.path)
    print(folder)
    if args.single_file is not None:
        print(write_single_file(args.single_file, folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


ensure_tiny_model = ensure_tiny_sd  # the name the CLI's `tiny-model` command uses
