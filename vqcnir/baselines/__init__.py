"""Classical baselines for night-photo restoration: the bar every published VQCNIR number stands beside.

Each named variant in :data:`BASELINES` lifts exposure with a tone curve solved to a target mean
lightness, then (optionally) denoises (total variation or non-local means, from scikit-image) and
sharpens (unsharp mask). Deterministic; parameters tuned on the demo training split.

    >>> from vqcnir.baselines import BASELINES, restore_baseline
    >>> sorted(BASELINES)[:2]
    ['exposure', 'exposure+nlm']
    >>> dark = np.full((16, 16, 3), 20, dtype=np.uint8)
    >>> bool(restore_baseline(dark, "exposure").mean() > dark.mean())
    True

The denoisers and the unsharp mask need scikit-image (``pip install 'vqcnir[baselines]'``); the
``"exposure"`` variant needs nothing beyond numpy.
"""

from __future__ import annotations

import numpy as np
import torch

from vqcnir.baselines.exposure import CURVES, correct_exposure, solve_curve, tone_curve
from vqcnir.baselines.filters import denoise_nlm, denoise_tv, noise_sigma, unsharp
from vqcnir.baselines.pipelines import (
    BASELINES,
    Baseline,
    Exposure,
    NonLocalMeans,
    Step,
    TotalVariation,
    Unsharp,
)


def get_baseline(name: str | Baseline) -> Baseline:
    """The :class:`Baseline` called ``name`` (a Baseline passes through); ValueError listing the names."""
    if isinstance(name, Baseline):
        return name
    if name not in BASELINES:
        raise ValueError(f"argument 'baseline': unknown baseline {name!r}; expected one of {', '.join(BASELINES)}")
    return BASELINES[name]


def restore_baseline(image: np.ndarray, baseline: str | Baseline) -> np.ndarray:
    """Restore sRGB ``image`` (uint8 ``[H, W, 3]``) with a classical pipeline; returns uint8 ``[H, W, 3]``.

    Args:
        image: the night photo, uint8 ``[H, W, 3]``, H and W >= 1.
        baseline: a name in :data:`BASELINES` (e.g. ``"exposure+tv+unsharp"``) or a :class:`Baseline`.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"argument 'image' must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
        raise ValueError(f"argument 'image' must be uint8 [H, W, 3] with H, W >= 1, got {image.dtype} {image.shape}")
    pipeline = get_baseline(baseline)
    restored = pipeline(image.astype(np.float64) / 255.0)
    return np.round(np.clip(restored, 0.0, 1.0) * 255.0).astype(np.uint8)


def restore_baseline_tensor(images: torch.Tensor, baseline: str | Baseline) -> torch.Tensor:
    """:func:`restore_baseline` for a batch: float ``[B, 3, H, W]`` in [0, 1] -> float32 ``[B, 3, H, W]``.

    Inputs are rounded to 8 bits first (the pipelines are defined on 8-bit photos); the result is on
    ``images``' device, in 8-bit steps.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"argument 'images' must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"argument 'images' must be float [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")
    pipeline = get_baseline(baseline)
    eight_bit = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    restored = np.stack([restore_baseline(np.ascontiguousarray(image), pipeline) for image in eight_bit])
    return torch.from_numpy(restored).permute(0, 3, 1, 2).float().div(255).to(images.device)


__all__ = [
    "BASELINES",
    "CURVES",
    "Baseline",
    "Exposure",
    "NonLocalMeans",
    "Step",
    "TotalVariation",
    "Unsharp",
    "correct_exposure",
    "denoise_nlm",
    "denoise_tv",
    "get_baseline",
    "noise_sigma",
    "restore_baseline",
    "restore_baseline_tensor",
    "solve_curve",
    "tone_curve",
    "unsharp",
]
