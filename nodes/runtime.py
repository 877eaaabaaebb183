"""Device, dtype and options for a run, from Settings ("auto": CUDA fp16, then MPS, then CPU fp32).

Which options change a loaded model lives here too (`MODEL_OPTIONS`): they go into the model
manager's keys and the loaders' cache keys alike (`model_identity`), so a result computed with
one device, dtype or option set never serves a run with another.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from latentgraph.graph import Settings

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# Options that change the modules a loader returns (or the numbers they compute).
MODEL_OPTIONS = ("attention_slicing", "sdpa", "channels_last", "compile", "cpu_offload",
                 "vae_fp32", "tf32")  # fmt: skip


# What a device this machine lacks is told to use instead, naming no flag: the message reaches
# `--device` (run, serve), `--devices` and `Settings(device=...)` from Python alike, each
# naming itself before it.
OTHER_DEVICES = "use device 'cpu' or 'auto'"


def device_name(settings: Settings) -> str:
    """The run's torch device, normalized: "cuda" is the current CUDA device by index
    ("cuda:0"), so "cuda" and "cuda:0" share one model manager entry. Every node computing on
    the device asks for it, and so do the loaders' cache keys, which a run makes before any
    node runs: so this is where the run's precision policy is put in force (`apply_tf32`),
    the same for every node, the first VAEEncode of a process as the last."""
    name = _normalized_device(settings)
    apply_tf32(settings, name)
    return name


def _normalized_device(settings: Settings) -> str:
    import torch

    name = settings.device
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        else:
            name = "mps" if torch.backends.mps.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r}: this torch sees no CUDA GPU (a CPU build, or "
                               f"no driver); {OTHER_DEVICES}")  # fmt: skip
        index = int(name.partition(":")[2] or torch.cuda.current_device())
        if index >= torch.cuda.device_count():
            raise RuntimeError(f"device {name!r}: only {torch.cuda.device_count()} CUDA "
                               "device(s) are visible")  # fmt: skip
        return f"cuda:{index}"
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise RuntimeError(f"device 'mps': this torch sees no Apple GPU (MPS); {OTHER_DEVICES}")
    return name


def dtype_name(settings: Settings, device: str) -> str:
    """fp16 on CUDA by default; never fp16 on the CPU unless asked (slow, and overflows)."""
    if settings.dtype != "auto":
        return settings.dtype
    return "fp16" if device.startswith("cuda") else "fp32"


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, DTYPES[name])


def model_identity(settings: Settings) -> str:
    """Device, dtype and model-changing options: part of every loader's manager and cache key."""
    try:
        device = device_name(settings)
    except RuntimeError:  # no such GPU: the loader reports it when it runs
        device = settings.device
    opts = settings.options
    parts = [device, dtype_name(settings, device)]
    parts += [f"{k}={opts[k]}" for k in sorted(MODEL_OPTIONS) if k in opts]
    return "|".join(parts)


def apply_tf32(settings: Settings, device: str) -> None:
    """TF32 matmuls/convolutions for fp32 on CUDA when the `tf32` option is on (off by default:
    ~10 bits of mantissa, faster on Ampere and later, results differ from strict fp32). Set
    both ways: torch's own default lets cuDNN convolutions use TF32."""
    if not device.startswith("cuda"):
        return
    import torch

    on = settings.option("tf32") and dtype_name(settings, device) == "fp32"
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def offloads(settings: Settings, device: str) -> bool:
    """`cpu_offload` on a GPU run: modules live on the CPU and visit the GPU for each use."""
    return settings.option("cpu_offload") and device != "cpu"


def home_device(settings: Settings, device: str) -> str:
    """Where a model for `device` lives between uses, and so whose memory budget it counts
    against: the CPU when `cpu_offload` keeps it there, else `device`."""
    return "cpu" if offloads(settings, device) else device


@contextmanager
def in_use(settings: Settings, device: str, *modules: Any) -> Iterator[None]:
    """Around one use of modules that `cpu_offload` keeps on the CPU: on the GPU for the use,
    back on the CPU after, so the next module has the room. accelerate's hook (loaders.place)
    moves a module on any forward call too, but never back: every use of an offloaded module
    must be inside this (else it stays on the GPU); it also covers entry points that are not
    forward calls (the VAE's tiled_decode)."""
    offload = offloads(settings, device)
    if offload:
        for m in modules:
            m.to(device)
    try:
        yield
    finally:
        if offload:
            for m in modules:
                m.to("cpu")


REDUCED_PRECISION = {"float16": "fp16", "bfloat16": "bf16"}


def nan_warning(what: str, dtype: Any, cause: str, tip: str = "") -> str:
    """The warning for NaN/inf in `what`, computed in `dtype` (the model's). In fp16/bf16 an
    overflow is the likely cause: the advice is a wider --dtype (and `tip`). In fp32 nothing
    overflowed, and the --dtype advice would only repeat what the run already does: `cause`
    names who made them and what to try instead."""
    precision = REDUCED_PRECISION.get(str(dtype).removeprefix("torch."))
    if precision is None:
        return (f"{what} contain NaN or infinite values (the image would be black); the run is "
                f"in fp32, so this is no half-precision overflow: {cause}. This result is not "
                "cached")  # fmt: skip
    wider = "fp32 or bf16" if precision == "fp16" else "fp32"
    return (f"{what} contain NaN or infinite values ({precision} overflow? the image would be "
            f"black): run with --dtype {wider}{tip}. This result is not cached")  # fmt: skip


def check_finite(ctx: Any, tensor: Any, what: str, dtype: Any, cause: str, tip: str = "") -> None:
    """Warn (`nan_warning`) and keep the result out of the cache when `tensor` holds NaN or
    inf, which would otherwise become a black image, served again and again."""
    import torch

    if bool(torch.isfinite(tensor).all()):
        return
    ctx.warn(nan_warning(what, dtype, cause, tip))
    ctx.do_not_cache()
