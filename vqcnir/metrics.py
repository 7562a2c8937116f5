"""Image-quality metrics with the protocol of the LOL-Blur tables (LEDNet / VQCNIR, BasicSR's metrics).

PSNR on 8-bit RGB; SSIM on the BT.601 luma (Y) of 8-bit images with an 11 x 11 Gaussian window
(sigma 1.5), K1 = 0.01, K2 = 0.03, population statistics and the valid region only, which is Wang et
al.'s MATLAB ``ssim`` and ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)``. RGB SSIM (mean over channels) is an option.

Images are ``[B, 3, H, W]`` or ``[3, H, W]`` tensors: uint8, or float in ``[0, 1]``, which is clamped
and rounded to 8-bit levels first (what saving the restored image does; ``quantize=False`` skips
the rounding). Results are float64 ``[B]`` tensors (one value per image).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from vqcnir_ops.validation import check_tensor

Channel = Literal["rgb", "y"]
# ITU-R BT.601 studio-swing luma from 8-bit R, G, B: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
_BT601_Y = (65.481, 128.553, 24.966)


def to_8bit_range(img: torch.Tensor, quantize: bool = True, name: str = "img") -> torch.Tensor:
    """``img`` (uint8, or float in [0, 1]) as float64 in [0, 255]; float inputs rounded when ``quantize``."""
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"argument '{name}' must be a torch.Tensor, got {type(img).__name__}")
    if img.dtype == torch.uint8:
        return img.to(torch.float64)
    check_tensor(name, img)
    scaled = img.detach().to(torch.float64).clamp(0, 1) * 255.0
    return scaled.round() if quantize else scaled


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """BT.601 luma ``[B, 1, H, W]`` (16..235) of RGB ``[B, 3, H, W]`` given in [0, 255]."""
    weights = torch.tensor(_BT601_Y, dtype=img.dtype, device=img.device).view(1, 3, 1, 1) / 255.0
    return (img * weights).sum(dim=1, keepdim=True) + 16.0


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian ``[size]`` (the separable factor of SSIM's 2-D window)."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


def _filter_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable filtering of every channel of ``[B, C, H, W]``, valid region only (no padding)."""
    channels, size = x.shape[1], window.numel()
    x = F.conv2d(x, window.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)
    return F.conv2d(x, window.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)


def ssim_map(
    x: torch.Tensor, y: torch.Tensor, data_range: float, window_size: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """SSIM index map ``[B, C, H - window_size + 1, W - window_size + 1]`` of ``[B, C, H, W]`` images.

    Differentiable (the fallback perceptual loss uses it); computed in the inputs' dtype.
    """
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f"images must be at least {window_size} x {window_size} for SSIM, got {tuple(x.shape)}")
    window = gaussian_window(window_size, sigma, x.dtype).to(x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, window), _filter_valid(y, window)
    var_x = _filter_valid(x * x, window) - mu_x**2
    var_y = _filter_valid(y * y, window) - mu_y**2
    cov = _filter_valid(x * y, window) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def _prepare(
    pred: torch.Tensor, target: torch.Tensor, channel: str, crop_border: int, quantize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if channel not in ("rgb", "y"):
        raise ValueError(f"argument 'channel' must be 'rgb' or 'y', got {channel!r}")
    if crop_border < 0:
        raise ValueError(f"argument 'crop_border' must be >= 0, got {crop_border}")
    out = []
    for name, img in (("pred", pred), ("target", target)):
        img = to_8bit_range(img, quantize, name)
        if img.dim() == 3:
            img = img.unsqueeze(0)
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"argument '{name}' must be [B, 3, H, W] or [3, H, W], got {tuple(img.shape)}")
        if crop_border:
            img = img[..., crop_border:-crop_border, crop_border:-crop_border]
        out.append(rgb_to_y(img) if channel == "y" else img)
    if out[0].shape != out[1].shape:
        raise ValueError(
            f"arguments 'pred' and 'target' must have one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    return out[0], out[1]


def psnr(
    pred: torch.Tensor, target: torch.Tensor, channel: Channel = "rgb", crop_border: int = 0, quantize: bool = True
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB ``[B]`` on 8-bit images (peak 255); ``inf`` for identical images.

    Example:
        >>> img = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
        >>> psnr(img, img)
        tensor([inf], dtype=torch.float64)
    """
    x, y = _prepare(pred, target, channel, crop_border, quantize)
    mse = (x - y).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0**2 / mse)


def ssim(
    pred: torch.Tensor, target: torch.Tensor, channel: Channel = "y", crop_border: int = 0, quantize: bool = True
) -> torch.Tensor:
    """Structural similarity ``[B]`` on 8-bit images: Y channel by default, or the mean over R, G, B.

    Example:
        >>> img = torch.rand(2, 3, 32, 32)
        >>> ssim(img, img)
        tensor([1., 1.], dtype=torch.float64)
    """
    x, y = _prepare(pred, target, channel, crop_border, quantize)
    return ssim_map(x, y, data_range=255.0).mean(dim=(1, 2, 3))


def psnr_float(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR ``[B]`` of float ``[B, C, H, W]`` images without 8-bit rounding (for training logs)."""
    check_tensor("pred", pred, ndim=4)
    check_tensor("target", target, ndim=4)
    if data_range <= 0:
        raise ValueError(f"argument 'data_range' must be > 0, got {data_range}")
    mse = (pred.detach().double() - target.detach().double()).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)
