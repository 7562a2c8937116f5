"""Real photos for the loss and metric tests: public-domain images bundled in scikit-image's wheel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the 'test' extra) provides the photos")


def photo_uint8(name: str, size: int | None = None) -> np.ndarray:
    """``[H, W, 3]`` uint8 photo (``astronaut``, ``chelsea``, ``coffee``), centre-cropped to ``size``."""
    img = getattr(skimage_data, name)()
    if size is not None:
        top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
        img = img[top : top + size, left : left + size]
    return np.ascontiguousarray(img)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` uint8 -> ``[1, 3, H, W]`` float32 in [0, 1]."""
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def add_noise(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Gaussian noise of ``sigma`` (8-bit levels), clipped and rounded back to uint8."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, img.shape)
    return np.clip(np.round(img.astype(np.float64) + noise), 0, 255).astype(np.uint8)


def box_blur(img: torch.Tensor, radius: int) -> torch.Tensor:
    """``[B, C, H, W]`` image blurred by a (2 radius + 1)^2 box, reflect-padded to keep its size."""
    if radius == 0:
        return img
    size = 2 * radius + 1
    padded = torch.nn.functional.pad(img, (radius,) * 4, mode="reflect")
    return torch.nn.functional.avg_pool2d(padded, size, stride=1)
