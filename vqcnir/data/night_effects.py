"""The effects of a real night photo beyond shake and darkness: defocus, street-light colour casts, sensor
noise with signal-dependent (shot) and constant (read) parts, and JPEG compression.

Used by :func:`vqcnir.data.degrade.degrade` when the matching :class:`~vqcnir.data.degrade.NightBlurParams`
options are on. Each function is deterministic given its arguments (and the Generator it is handed).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Street-lighting illuminants as linear-RGB gains relative to daylight (R, G, B), normalised to G = 1:
# low-pressure/high-pressure sodium (orange), warm-white LED / halogen, and mercury vapour / cool LED.
# Rough white-balance gains of those lamps' spectra (sodium ~2000 K, warm ~3000 K, mercury/cool ~6500 K+
# with a green-blue tint); a cast of strength s mixes them with neutral light: gains = 1 + s (cast - 1).
STREET_LIGHT_CASTS = {
    "sodium": (1.45, 1.0, 0.35),
    "warm": (1.25, 1.0, 0.70),
    "cool": (0.80, 1.0, 1.20),
}


def disk_kernel(radius: float) -> np.ndarray:
    """Defocus (pillbox) kernel ``[K, K]`` of ``radius`` pixels, anti-aliased at its rim, summing to 1.

    Example:
        >>> k = disk_kernel(2.5)
        >>> k.shape, bool(abs(k.sum() - 1) < 1e-12)
        ((7, 7), True)
    """
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"argument 'radius' must be a finite number >= 0, got {radius}")
    half = int(np.ceil(radius))
    if half == 0:
        return np.ones((1, 1))
    # 8 x 8 sub-samples per pixel give the fraction of each pixel inside the disk.
    sub = (np.arange(8) + 0.5) / 8.0 - 0.5
    grid = np.arange(-half, half + 1)
    ys = (grid[:, None] + sub[None, :]).reshape(-1)
    inside = (ys[:, None] ** 2 + ys[None, :] ** 2) <= radius**2
    size = 2 * half + 1
    kernel = inside.reshape(size, 8, size, 8).mean(axis=(1, 3))
    return kernel / kernel.sum()


def combine_kernels(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The kernel of blurring by ``first`` then ``second`` (full 2-D convolution; odd sides stay odd)."""
    ka, kb = first.shape[0], second.shape[0]
    out = np.zeros((ka + kb - 1, ka + kb - 1))
    for y in range(kb):
        for x in range(kb):
            out[y : y + ka, x : x + ka] += second[y, x] * first
    return out / out.sum()


def cast_gains(kind: str, strength: float) -> np.ndarray:
    """Linear-RGB gains ``[3]`` of a street-light cast (see :data:`STREET_LIGHT_CASTS`), luminance kept."""
    if kind not in STREET_LIGHT_CASTS:
        raise ValueError(f"argument 'kind' must be one of {sorted(STREET_LIGHT_CASTS)}, got {kind!r}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"argument 'strength' must be in [0, 1], got {strength}")
    gains = 1.0 + strength * (np.asarray(STREET_LIGHT_CASTS[kind]) - 1.0)
    luminance = np.array([0.2126, 0.7152, 0.0722]) @ gains  # keep the exposure: only the colour changes
    return gains / luminance


def sensor_noise(linear: np.ndarray, rng: np.random.Generator, shot: float, read: float) -> np.ndarray:
    """Poisson-Gaussian sensor noise in linear light: ``shot * Poisson(x / shot) + N(0, read^2)``.

    ``shot`` is the value of one photo-electron (variance ``shot * x``: the signal-dependent part), ``read``
    the standard deviation of the signal-independent read noise, both in linear units where 1.0 is white.
    """
    if shot < 0 or read < 0:
        raise ValueError(f"arguments 'shot' and 'read' must be >= 0, got {shot}, {read}")
    out = np.clip(linear, 0.0, None)
    if shot > 0:
        out = rng.poisson(out / shot) * shot
    if read > 0:
        out = out + rng.normal(0.0, read, size=out.shape)
    return out


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode ``[H, W, 3]`` uint8 as a JPEG of ``quality`` (1-95, 4:2:0 as cameras do) and decode it."""
    if not 1 <= quality <= 95:
        raise ValueError(f"argument 'quality' must be in [1, 95], got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality), subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))
