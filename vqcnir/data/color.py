"""Colour conversions used by the degradation: sRGB <-> linear light <-> CIE Lab (D65), in numpy.

All functions take and return float arrays ``[..., 3]`` (channels last), computed in float64 so that
round trips are exact to ~1e-12; values outside [0, 1] pass through the sRGB curves unchanged in sign
(light sources boosted above 1 stay above 1).
"""

from __future__ import annotations

import numpy as np

# Linear sRGB (D65) -> CIE XYZ, IEC 61966-2-1.
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = _RGB_TO_XYZ.sum(axis=1)  # XYZ of RGB (1, 1, 1)
_EPS = (6.0 / 29.0) ** 3
_KAPPA = 3.0 * (6.0 / 29.0) ** 2


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """Inverse sRGB gamma: display values in [0, 1] -> linear light."""
    x = np.asarray(srgb, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """sRGB gamma: linear light -> display values (not clipped)."""
    x = np.asarray(linear, dtype=np.float64)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.maximum(x, 0.0031308) ** (1.0 / 2.4) - 0.055)


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB ``[..., 3]`` -> CIE Lab ``[..., 3]`` (L in [0, 100] for inputs in [0, 1])."""
    xyz = np.asarray(linear, dtype=np.float64) @ _RGB_TO_XYZ.T / _WHITE_D65
    f = np.where(xyz > _EPS, np.cbrt(xyz), xyz / _KAPPA + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIE Lab ``[..., 3]`` -> linear sRGB ``[..., 3]`` (inverse of :func:`linear_to_lab`)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], -1)
    xyz = np.where(f > 6.0 / 29.0, f**3, _KAPPA * (f - 4.0 / 29.0)) * _WHITE_D65
    return xyz @ _XYZ_TO_RGB.T


def lightness(srgb: np.ndarray) -> np.ndarray:
    """Lab lightness L in [0, 100] of sRGB display values ``[..., 3]``."""
    return linear_to_lab(srgb_to_linear(srgb))[..., 0]
