"""NIQE, the no-reference "Natural Image Quality Evaluator" (Mittal, Soundararajan, Bovik, IEEE SPL 2013).

Lower is better. The algorithm of the authors' MATLAB release (and of BasicSR's ``calculate_niqe``,
which reports the MATLAB value to 4 decimals), written here in numpy:

1. The image's BT.601 luma Y (16..235, from 8-bit RGB), rounded, cropped to whole 96 x 96 blocks.
2. At two scales (the image, then a MATLAB-``imresize`` bicubic half-size copy with antialiasing):
   MSCN coefficients ``(Y - mu) / (sigma + 1)`` with ``mu``, ``sigma`` the local mean and deviation
   under a 7 x 7 Gaussian window (sigma 7/6), image edges replicated; per block (96 px, 48 px at the
   second scale) a generalized Gaussian fit of the coefficients (shape, scale) and asymmetric
   generalized Gaussian fits of the products of horizontal, vertical and both diagonal neighbours
   (shape, mean, left and right scale): 18 features per scale, 36 per block.
3. A multivariate Gaussian fitted to the block features (blocks with a NaN feature left out of the
   covariance) and its distance to the pristine-image model:
   ``sqrt((mu_p - mu) @ pinv((cov_p + cov) / 2) @ (mu_p - mu))``.

The pristine model (``mu_pris_param`` [36], ``cov_pris_param`` [36, 36], fitted by the NIQE authors on
their pristine image set) is BasicSR 1.4.2's ``niqe_pris_params.npz`` (Apache-2.0), shipped in
``vqcnir/data_files/`` with its licence; see NOTICE.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from vqcnir.metrics import rgb_to_y

BLOCK = 96
# Shape parameters searched by the moment-matching fit, as in the MATLAB release.
_SHAPES = np.arange(0.2, 10.001, 0.001)
_FLAT = 1e-8  # |Y - mu| below this (in 8-bit levels) is a rounding residue of a flat region
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical, main and anti-diagonal neighbours


def _gamma(x: np.ndarray) -> np.ndarray:
    return np.exp(np.vectorize(math.lgamma)(x))


@lru_cache(maxsize=1)
def _shape_table() -> tuple[np.ndarray, np.ndarray]:
    """The shape grid and its moment ratio ``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))``."""
    inv = 1.0 / _SHAPES
    return _SHAPES, _gamma(2 * inv) ** 2 / (_gamma(inv) * _gamma(3 * inv))


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """``(mu [36], cov [36, 36])`` of the NIQE pristine model (float64)."""
    with resources.files("vqcnir").joinpath("data_files", "niqe_pris_params.npz").open("rb") as handle:
        params = np.load(handle)
        return params["mu_pris_param"].astype(np.float64).ravel(), params["cov_pris_param"].astype(np.float64)


def gaussian_window_2d(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """Normalised ``[size, size]`` Gaussian (MATLAB's ``fspecial('gaussian', 7, 7/6)`` by default)."""
    coords = np.arange(size) - (size - 1) / 2
    line = np.exp(-(coords**2) / (2 * sigma**2))
    window = np.outer(line, line)
    return window / window.sum()


def _smooth(image: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Separable filtering of ``[H, W]`` by the 1-D kernel ``line``, edges replicated (same size)."""
    radius = len(line) // 2
    padded = np.pad(image, radius, mode="edge")
    height, width = image.shape
    rows = sum(w * padded[i : i + height, :] for i, w in enumerate(line))
    return sum(w * rows[:, i : i + width] for i, w in enumerate(line))


def mscn(image: np.ndarray, sigma: float = 7.0 / 6.0, size: int = 7) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a ``[H, W]`` float image in [0, 255]."""
    coords = np.arange(size) - (size - 1) / 2
    line = np.exp(-(coords**2) / (2 * sigma**2))
    line /= line.sum()
    mu = _smooth(image, line)
    sigma_map = np.sqrt(np.abs(_smooth(image * image, line) - mu * mu))
    residual = image - mu
    # In flat regions the residual is 0 in exact arithmetic but a rounding error of either sign in floating
    # point; the fits count negative and positive coefficients, so such residues are set to exactly 0.
    residual[np.abs(residual) < _FLAT] = 0.0
    return residual / (sigma_map + 1.0)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``imresize`` bicubic)."""
    ax = np.abs(x)
    near = (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
    far = (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def imresize_matrix(in_length: int, scale: float) -> np.ndarray:
    """``[ceil(in_length * scale), in_length]`` matrix of MATLAB's bicubic ``imresize`` along one axis.

    Downscaling widens the kernel by ``1 / scale`` (antialiasing); taps outside the signal are
    mirrored back (symmetric, edge sample repeated), as MATLAB does.
    """
    out_length = math.ceil(in_length * scale)
    kernel_scale = min(scale, 1.0)
    width = 4.0 / kernel_scale
    centres = (np.arange(1, out_length + 1) / scale + 0.5 * (1 - 1 / scale))[:, None]  # 1-based input coords
    first = np.floor(centres - width / 2)
    taps = first + np.arange(math.ceil(width) + 2)[None, :]
    weights = kernel_scale * _cubic(kernel_scale * (centres - taps))
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    index = mirror[(taps.astype(np.int64) - 1) % (2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps.shape[1]), index.ravel()), weights.ravel())
    return matrix


def imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB-compatible bicubic resize of a ``[H, W]`` float image (no rounding, no clipping)."""
    return imresize_matrix(image.shape[0], scale) @ image @ imresize_matrix(image.shape[1], scale).T


def fit_aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching fit of an asymmetric generalized Gaussian to each row of ``[N, M]`` samples.

    Returns ``(shape, left_scale, right_scale)``, each ``[N]``. Shape is searched on 0.2:0.001:10;
    a row without negative (or positive) samples gives NaN scales, as in the MATLAB release.
    """
    shapes, ratios = _shape_table()
    neg, pos = samples < 0, samples > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt((samples**2 * neg).sum(1) / neg.sum(1))
        right = np.sqrt((samples**2 * pos).sum(1) / pos.sum(1))
        gamma_hat = left / right
        r_hat = np.abs(samples).mean(1) ** 2 / (samples**2).mean(1)
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    # All-NaN rows give index 0, like MATLAB's min over NaNs.
    errors = (ratios[None, :] - r_norm[:, None]) ** 2
    shape = shapes[np.argmin(np.where(np.isnan(errors), np.inf, errors), axis=1)]
    factor = np.sqrt(_gamma(1 / shape) / _gamma(3 / shape))
    return shape, left * factor, right * factor


def block_features(coefficients: np.ndarray, block: int) -> np.ndarray:
    """The 18 NIQE features ``[N, 18]`` of the ``block``-sized tiles of an MSCN map, column-major order."""
    height, width = coefficients.shape
    rows, cols = height // block, width // block
    tiles = coefficients[: rows * block, : cols * block].reshape(rows, block, cols, block)
    tiles = tiles.transpose(2, 0, 1, 3).reshape(rows * cols, block, block)  # MATLAB's blkproc: columns first
    flat = tiles.reshape(len(tiles), -1)
    shape, left, right = fit_aggd(flat)
    features = [shape, (left + right) / 2]
    for shift in _SHIFTS:
        products = (tiles * np.roll(tiles, shift, axis=(1, 2))).reshape(len(tiles), -1)
        shape, left, right = fit_aggd(products)
        mean = (right - left) * _gamma(2 / shape) / _gamma(1 / shape)
        features += [shape, mean, left, right]
    return np.stack(features, axis=1)


def niqe_luma(luma: np.ndarray) -> float:
    """NIQE of a ``[H, W]`` image in [0, 255] (rounded to integer levels first); at least 96 x 192 px.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> niqe_luma(rng.uniform(0, 255, (192, 192))) > 10  # noise is far from natural images
        True
    """
    luma = np.asarray(luma, dtype=np.float64)
    if luma.ndim != 2:
        raise ValueError(f"argument 'luma' must be [H, W], got shape {luma.shape}")
    rows, cols = luma.shape[0] // BLOCK, luma.shape[1] // BLOCK
    if rows * cols < 2:
        raise ValueError(f"NIQE needs at least two whole {BLOCK} x {BLOCK} blocks, got an image of {luma.shape}")
    image = np.round(luma)[: rows * BLOCK, : cols * BLOCK]
    features = []
    for scale in (1, 2):
        features.append(block_features(mscn(image), BLOCK // scale))
        if scale == 1:
            image = imresize(image / 255.0, 0.5) * 255.0
    distorted = np.concatenate(features, axis=1)
    mu = np.nanmean(distorted, axis=0)
    complete = distorted[~np.isnan(distorted).any(axis=1)]
    cov = np.cov(complete, rowvar=False)
    mu_p, cov_p = pristine_model()
    diff = mu_p - mu
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + cov) / 2) @ diff))


def niqe(image: np.ndarray | torch.Tensor, crop_border: int = 0) -> float:
    """NIQE of an RGB image on its BT.601 luma (BasicSR's ``convert_to='y'``); lower is better.

    Args:
        image: ``[H, W, 3]`` uint8 array (as :func:`vqcnir.data.read_rgb` returns), or a ``[3, H, W]`` /
            ``[1, 3, H, W]`` tensor (uint8, or float in [0, 1], rounded to 8-bit levels). ``[H, W]``
            grayscale arrays are used as they are (values in [0, 255]).
        crop_border: pixels left out on every side.

    Example:
        >>> from vqcnir.data import read_rgb
        >>> niqe(read_rgb("night.png"))  # doctest: +SKIP
        4.93
    """
    if crop_border < 0:
        raise ValueError(f"argument 'crop_border' must be >= 0, got {crop_border}")
    if isinstance(image, torch.Tensor):
        tensor = image.unsqueeze(0) if image.dim() == 3 else image
        if tensor.dim() != 4 or tensor.shape[0] != 1 or tensor.shape[1] != 3:
            raise ValueError(f"argument 'image' must be [3, H, W] or [1, 3, H, W], got {tuple(image.shape)}")
        if tensor.dtype != torch.uint8:
            tensor = (tensor.detach().double().clamp(0, 1) * 255).round()
        luma = rgb_to_y(tensor.double())[0, 0].cpu().numpy()
    else:
        array = np.asarray(image)
        if array.ndim == 2:
            luma = array.astype(np.float64)
        elif array.ndim == 3 and array.shape[-1] == 3:
            rgb = torch.from_numpy(array.astype(np.float64)).permute(2, 0, 1).unsqueeze(0)
            luma = rgb_to_y(rgb)[0, 0].numpy()
        else:
            raise ValueError(f"argument 'image' must be [H, W] or [H, W, 3], got shape {array.shape}")
    if crop_border:
        luma = luma[crop_border:-crop_border, crop_border:-crop_border]
    return niqe_luma(luma)
