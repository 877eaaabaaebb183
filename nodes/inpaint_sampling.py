"""What sampling does for inpainting: the per-step noise-mask blend and the 9-channel UNet input.

Two mechanisms, as in ComfyUI and diffusers' StableDiffusionInpaintPipeline:

- A noise mask on a LATENT (SetLatentNoiseMask, VAEEncodeForInpaint, InpaintModelConditioning)
  limits what a sampler changes: after each step, outside the mask the latents are replaced by
  the original latents noised to the level of the next step (clean after the last), so only the
  masked part is denoised and the rest stays the original (`NoiseMask`). Every sampling loop
  calls `NoiseMask.after_step`; the mask is resized to the latents bilinearly (soft edges blend).
- An inpainting UNet (9 input channels) is given the noisy latents (4), the mask at latent size
  (1, rounded to 0/1) and the masked image's latents (4), concatenated in that order after the
  scheduler has scaled the latents (`concat_channels`, `with_concat`). The mask and masked image
  come from the conditioning (`InpaintImage`, set by InpaintModelConditioning); without them
  from the latent's noise mask and the latent itself (VAEEncodeForInpaint's grey-filled
  encoding); without either, the whole image is to be painted: mask 1, masked image zeros.

MASK values are [B, H, W] (1 = repaint) at any resolution; here they are [B, 1, h, w].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .values import InpaintImage, Latent

INPAINT_CHANNELS = 9  # a UNet taking latents + mask + masked-image latents
LATENT_CHANNELS = 4


def latent_mask(mask: Any, height: int, width: int, batch: int) -> Any:
    """A MASK as [batch, 1, height, width] float32 (bilinear; the batch repeated or cut)."""
    from .compositing import as_masks, resize_masks
    from .resize import match_batch

    masks = as_masks(mask)
    if tuple(masks.shape[-2:]) != (height, width):
        masks = resize_masks(masks, height, width)
    return match_batch(masks, batch)[:, None]


def is_inpainting_unet(model: Any) -> bool:
    """Whether a diffusers UNet takes the inpainting channels (read from its config)."""
    return int(model.config["in_channels"]) == INPAINT_CHANNELS


def concat_channels(shape: tuple[int, ...], image: InpaintImage | None) -> Any:
    """The 5 channels an inpainting UNet takes after latents of `shape` [B, 4, h, w]: the mask
    (rounded to 0/1) then the masked image's latents; float32, on the CPU. Without `image`,
    the whole image is to be painted: mask 1, masked image zeros."""
    import torch

    from .resize import match_batch

    batch, _, height, width = shape
    if image is None:
        return torch.cat([torch.ones((batch, 1, height, width)),
                          torch.zeros((batch, LATENT_CHANNELS, height, width))], dim=1)  # fmt: skip
    mask = latent_mask(image.mask, height, width, batch).round()
    masked = match_batch(image.latents.float(), batch)
    if tuple(masked.shape[-2:]) != (height, width):
        raise ValueError(f"the masked image's latents are {masked.shape[-1]}x"
                         f"{masked.shape[-2]} cells, the latents sampled {width}x{height}; "
                         "encode the image at the size being sampled")  # fmt: skip
    return torch.cat([mask.to(masked.device), masked], dim=1)


def from_latent(latent: Latent) -> InpaintImage | None:
    """What an inpainting UNet is given when no conditioning entry says: the latent's noise
    mask and the latent itself (VAEEncodeForInpaint's grey-filled encoding), as ComfyUI does;
    None without a noise mask."""
    if latent.noise_mask is None or latent.is_noise:
        return None
    return InpaintImage(latent.samples, latent.noise_mask)


def with_concat(model_input: Any, extra: Any | None) -> Any:
    """The UNet's input: the (scaled) latents, then the inpainting channels when it takes
    them (`extra` on the same device and dtype, the same rows)."""
    import torch

    return model_input if extra is None else torch.cat([model_input, extra], dim=1)


@dataclass(frozen=True, eq=False)
class NoiseMask:
    """The original latents a sampler must keep outside the mask, and the noise it started
    from (the same noise diffusers' inpainting pipeline re-noises the original with)."""

    mask: Any  # [B, 1, h, w] on the sampling device, 1 = denoise
    original: Any  # clean latents [B, 4, h, w]
    noise: Any  # the starting noise, same shape

    @classmethod
    def of(cls, noise_mask: Any, original: Any, noise: Any) -> NoiseMask | None:
        """None without a mask; else the mask resized to the latents, on their device."""
        if noise_mask is None:
            return None
        batch, _, height, width = original.shape
        # contiguous, so the blended latents keep the standard layout: the UNet's kernels
        # round differently on others (and results would differ from diffusers')
        mask = latent_mask(noise_mask, height, width, batch).to(original).contiguous()
        return cls(mask, original, noise.to(original))

    @classmethod
    def for_latent(cls, latent: Latent, samples: Any, noise: Any) -> NoiseMask:
        """What a sampler keeps of a latent with a noise mask (`samples`: the latent on the
        sampling device): the latent itself, or zeros for pure noise from LatentNoise,
        re-noised with `noise`, the noise the run starts from."""
        original = samples.new_zeros(samples.shape) if latent.is_noise else samples
        return cls.of(latent.noise_mask, original, noise)

    def blend(self, latents: Any, original_now: Any) -> Any:
        """Masked part from `latents`, the rest from `original_now`."""
        return original_now * (1 - self.mask) + latents * self.mask

    def after_step(self, scheduler: Any, latents: Any, next_timestep: Any | None) -> Any:
        """The blend after a step of a diffusers scheduler: the original noised to the next
        step's timestep, or clean after the last step (`next_timestep` None)."""
        if next_timestep is None:
            return self.blend(latents, self.original)
        t = next_timestep.reshape(1).repeat(latents.shape[0])
        return self.blend(latents, scheduler.add_noise(self.original, self.noise, t))

    def at_sigma(self, latents: Any, sigma: float) -> Any:
        """The blend for a loop over noise levels (k-diffusion style, latents = x0 + sigma *
        noise): the original at noise level `sigma` (0: clean)."""
        return self.blend(latents, self.original + self.noise * sigma)
