"""Convolutional building blocks shared by the VQGAN (stage 1) and VQCNIR (stage 2)."""

from __future__ import annotations

import torch
from torch import nn


class ResBlock(nn.Module):
    """Pre-activation residual block: (GroupNorm, SiLU, 3x3 conv) x 2 plus a skip connection.

    The skip is the identity when ``in_channels == out_channels``, else a 1x1 conv (``residual_func``).
    This one class is both the official encoder/decoder ``ResBlock`` (taming-style, GroupNorm eps 1e-6,
    SiLU) and the main decoder's ``ResnetBlock``.

    Example:
        >>> ResBlock(64, 64)(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int = 32) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_groups, in_channels, eps=1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(norm_groups, out_channels, eps=1e-6)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.residual_func = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.residual_func(x)


def down_block(in_channels: int, out_channels: int, norm_groups: int) -> nn.Sequential:
    """Stride-2 3x3 conv, then two residual blocks (one encoder level)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
        ResBlock(out_channels, out_channels, norm_groups),
        ResBlock(out_channels, out_channels, norm_groups),
    )


def up_block(in_channels: int, out_channels: int, norm_groups: int) -> nn.Sequential:
    """Nearest x2 upsampling, 3x3 conv, then two residual blocks (one decoder-G level)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        ResBlock(out_channels, out_channels, norm_groups),
        ResBlock(out_channels, out_channels, norm_groups),
    )
