"""Scores of restored 8-bit images against their targets, as every table of this project reports them:
PSNR (RGB), SSIM (BT.601 Y), LPIPS (when a model is given) and the mean HSV saturation of the outputs
(colour: a restorer that greys images out scores low there even when its PSNR is fine)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vqcnir.metrics import psnr, ssim
from vqcnir.perceptual import LPIPS


def mean_saturation(images: Sequence[np.ndarray]) -> float:
    """Mean HSV saturation ``(max - min) / max`` (0 for black) over every pixel of uint8 ``[H, W, 3]`` images."""
    if not images:
        raise ValueError("argument 'images': expected at least one image")
    values = []
    for image in images:
        high, low = image.max(axis=-1).astype(np.float64), image.min(axis=-1).astype(np.float64)
        values.append(np.where(high > 0, (high - low) / np.maximum(high, 1), 0.0).mean())
    return float(np.mean(values))


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)


def score_outputs(
    outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], lpips: LPIPS | None = None
) -> dict[str, float]:
    """Mean ``psnr``, ``ssim``, ``lpips`` (when given; standard LPIPS of images in [0, 1]) and ``saturation``
    of uint8 ``[H, W, 3]`` outputs against their targets (same sizes, same order)."""
    if len(outputs) != len(targets) or not outputs:
        raise ValueError(f"expected as many outputs as targets (>= 1), got {len(outputs)} and {len(targets)}")
    row = {"psnr": 0.0, "ssim": 0.0} | ({"lpips": 0.0} if lpips is not None else {})
    for out, gt in zip(outputs, targets, strict=True):
        x, y = _tensor(out), _tensor(gt)
        row["psnr"] += psnr(x, y).item() / len(outputs)
        row["ssim"] += ssim(x, y).item() / len(outputs)
        if lpips is not None:
            with torch.inference_mode():
                row["lpips"] += lpips(x.float() / 255, y.float() / 255, normalize=True).item() / len(outputs)
    row["saturation"] = mean_saturation(outputs)
    return row
