"""Denoisers and sharpening from scikit-image, with strengths relative to each image's own noise level.

Night photos differ in noise by an order of magnitude (exposure, sensor gain), so a fixed filter weight is
too weak for one and smears the next. Each denoiser here first estimates the image's noise standard
deviation ``sigma`` (:func:`noise_sigma`: the median absolute deviation of the finest diagonal Haar
wavelet coefficients, Donoho & Johnstone 1994; deterministic) and sets its own strength to
``strength * sigma``. Images are sRGB float64 ``[H, W, 3]`` in [0, 1], in and out.

scikit-image is optional (the ``baselines`` extra); importing this module works without it, and the first
filter that needs it raises an ImportError that says what to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

INSTALL_HINT = "pip install scikit-image (or pip install 'vqcnir[baselines]')"


def _skimage(module: str) -> ModuleType:
    """``skimage.<module>``, or an ImportError naming the extra that provides it."""
    try:
        return importlib.import_module(f"skimage.{module}")
    except ImportError as error:
        message = f"the classical baselines' denoisers and sharpening need scikit-image: {INSTALL_HINT}"
        raise ImportError(message) from error


def noise_sigma(image: np.ndarray) -> float:
    """Estimated noise standard deviation of ``image`` ``[H, W, 3]`` (mean over the channels), in [0, 1] units.

    ``median(|HH|) / 0.6745`` of the orthonormal Haar diagonal detail ``(a - b - c + d) / 2`` of every 2 x 2
    block: for white Gaussian noise HH has the noise's standard deviation, while smooth image content
    cancels in it (what skimage's ``estimate_sigma`` does with PyWavelets, which we do not need).
    """
    height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    if height == 0 or width == 0:
        return 0.0
    x = image[:height, :width]
    detail = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.mean(np.median(np.abs(detail), axis=(0, 1)) / 0.6745))


def denoise_tv(image: np.ndarray, strength: float) -> np.ndarray:
    """Total-variation denoising (Chambolle's projection), weight ``strength * sigma``, channels jointly."""
    restoration = _skimage("restoration")  # first, so a missing scikit-image is reported for every image
    weight = strength * noise_sigma(image)
    if weight <= 0:
        return image
    return restoration.denoise_tv_chambolle(image, weight=weight, channel_axis=-1)


def denoise_nlm(image: np.ndarray, strength: float, patch_size: int = 5, patch_distance: int = 6) -> np.ndarray:
    """Non-local means (Buades et al. 2005; scikit-image's fast mode), filter strength ``h = strength * sigma``."""
    restoration = _skimage("restoration")
    sigma = noise_sigma(image)
    if strength * sigma <= 0:
        return image
    return restoration.denoise_nl_means(
        image, h=strength * sigma, sigma=sigma, patch_size=patch_size, patch_distance=patch_distance,
        fast_mode=True, channel_axis=-1,
    )  # fmt: skip


def unsharp(image: np.ndarray, radius: float, amount: float) -> np.ndarray:
    """Unsharp mask: ``image + amount * (image - gaussian(image, radius))`` per channel, clipped to [0, 1].

    Written out on :func:`skimage.filters.gaussian` because ``skimage.filters.unsharp_mask`` 0.26 with
    ``channel_axis=-1`` returned far darker images than its input (means 0.03 to 0.11 for an input of mean
    0.30, varying between identical calls) in our checks.
    """
    filters = _skimage("filters")
    if amount == 0:
        return image
    blurred = filters.gaussian(image, sigma=radius, mode="reflect", channel_axis=-1, preserve_range=True)
    return np.clip(image + amount * (image - blurred), 0.0, 1.0)
