"""A second night degradation, written independently of ``vqcnir.data.degrade`` to check generalisation.

A model (or a classical baseline) tuned on the project's own synthetic night photos could learn that
generator's quirks instead of night photos. This one shares no code and no model with it (it imports
nothing from vqcnir); every stage is a different law:

=================  ======================================  =============================================
stage              vqcnir.data.degrade                     here
=================  ======================================  =============================================
tone               exact sRGB curve                        pure power law ``x ** 2.2`` (and ``1 / 2.2`` back)
blur               random camera-shake trajectory          straight motion line at a random angle,
                                                           convolved with a Gaussian defocus
exposure           Zero-DCE curve on Lab lightness         one linear-light scale factor (a shorter exposure)
noise              Poisson or Gaussian (one of them)       heteroscedastic Gaussian: shot + read noise in
                                                           electrons, ``var = e + read ** 2``
=================  ======================================  =============================================

followed by clipping and rounding to 8 bits. Deterministic: ``(image, seed)`` gives the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

TONE_GAMMA = 2.2


@dataclass(frozen=True)
class IndependentNightParams:
    """Ranges ``(low, high)`` sampled uniformly per image.

    Attributes:
        exposure: linear-light scale factor (the fraction of the light a good exposure would collect).
        motion_length: length in pixels of the straight motion path.
        defocus_sigma: standard deviation in pixels of the Gaussian defocus.
        full_well: electrons collected at linear value 1.0 after the exposure cut (sets the shot noise).
        read_noise: read-noise standard deviation in electrons.
    """

    exposure: tuple[float, float] = (0.02, 0.10)
    motion_length: tuple[float, float] = (2.0, 9.0)
    defocus_sigma: tuple[float, float] = (0.4, 1.2)
    full_well: tuple[float, float] = (800.0, 4000.0)
    read_noise: tuple[float, float] = (1.0, 4.0)


def line_defocus_kernel(length: float, angle: float, sigma: float) -> np.ndarray:
    """``[K, K]`` kernel summing to 1: a straight segment of ``length`` pixels at ``angle`` (radians) through
    the centre, blurred by a Gaussian of ``sigma`` pixels (evaluated in closed form at 64 points of the line)."""
    radius = int(np.ceil(length / 2 + 3 * sigma))
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    positions = np.linspace(-length / 2, length / 2, 64)
    kernel = np.zeros_like(xs)
    for t in positions:
        kernel += np.exp(-((xs - t * np.cos(angle)) ** 2 + (ys - t * np.sin(angle)) ** 2) / (2 * sigma**2))
    return kernel / kernel.sum()


def convolve_reflect(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``image`` ``[H, W, C]`` convolved with ``kernel`` ``[K, K]`` (odd K), borders reflected, via the FFT."""
    pad = kernel.shape[0] // 2
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    shape = padded.shape[:2]
    spectrum = np.fft.rfft2(kernel, s=shape)
    out = np.fft.irfft2(np.fft.rfft2(padded, axes=(0, 1)) * spectrum[..., None], s=shape, axes=(0, 1))
    # The circular convolution puts the kernel's centre at (pad, pad): the valid image starts at 2 * pad.
    return out[2 * pad : 2 * pad + image.shape[0], 2 * pad : 2 * pad + image.shape[1]]


def degrade_independent(
    image: np.ndarray, seed: int, params: IndependentNightParams = IndependentNightParams()
) -> np.ndarray:
    """A dark, blurred, noisy uint8 ``[H, W, 3]`` version of the sharp uint8 ``[H, W, 3]`` ``image``."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"argument 'image' must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    rng = np.random.default_rng(seed)
    exposure, length, sigma, full_well, read = (
        rng.uniform(*r)
        for r in (params.exposure, params.motion_length, params.defocus_sigma, params.full_well, params.read_noise)
    )
    angle = rng.uniform(0.0, np.pi)
    light = (image.astype(np.float64) / 255.0) ** TONE_GAMMA
    light = convolve_reflect(light, line_defocus_kernel(length, angle, sigma)) * exposure
    electrons = np.clip(light, 0.0, None) * full_well
    electrons = electrons + rng.standard_normal(light.shape) * np.sqrt(electrons + read**2)
    dark = np.clip(electrons / full_well, 0.0, 1.0) ** (1.0 / TONE_GAMMA)
    return np.round(dark * 255.0).astype(np.uint8)


def degrade_folder(gt_dir: str, lq_dir: str, seed: int = 0) -> list[str]:
    """Degrade every PNG under ``gt_dir`` (sorted; image ``i`` with seed ``[seed, i]``) into ``lq_dir``, same
    names. Returns the names written."""
    names = sorted(n for n in os.listdir(gt_dir) if n.lower().endswith(".png"))
    os.makedirs(lq_dir, exist_ok=True)
    for index, name in enumerate(names):
        sharp = np.asarray(Image.open(os.path.join(gt_dir, name)).convert("RGB"))
        night = degrade_independent(sharp, int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
        Image.fromarray(night).save(os.path.join(lq_dir, name))
    return names
