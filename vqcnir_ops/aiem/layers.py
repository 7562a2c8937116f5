"""Small layers of the AIEM: ``SimpleGate``, ``SimplifiedChannelAttention``, ``LargeKernelAttention``."""

from __future__ import annotations

import torch
from torch import nn

from vqcnir_ops.depthwise.module import DepthwiseConv2d
from vqcnir_ops.validation import check_tensor


def _check_channels(x: torch.Tensor, channels: int) -> None:
    check_tensor("x", x, ndim=4)
    if x.shape[1] != channels:
        raise ValueError(f"argument 'x' must have {channels} channels, got shape {tuple(x.shape)}")


class SimpleGate(nn.Module):
    """NAFNet's gate: split the channels in two halves and multiply them.

    Shapes: ``[B, 2C, H, W]`` -> ``[B, C, H, W]``. No parameters.

    Example:
        >>> SimpleGate()(torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 4, 4, 4])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ndim=4)
        if x.shape[1] % 2:
            raise ValueError(f"argument 'x' must have an even number of channels, got shape {tuple(x.shape)}")
        first, second = x.chunk(2, dim=1)
        return first * second


class SimplifiedChannelAttention(nn.Module):
    """Per-channel weights from global average pooling and a 1x1 conv (NAFNet's SCA).

    Returns the weights, not the reweighted input: ``[B, in_channels, H, W]`` -> ``[B, out_channels, 1, 1]``
    (the AIEM multiplies them into another branch). Keys: ``conv.weight`` ``[out, in, 1, 1]``, ``conv.bias``.

    Example:
        >>> SimplifiedChannelAttention(8, 4)(torch.randn(2, 8, 5, 5)).shape
        torch.Size([2, 4, 1, 1])
    """

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.conv = nn.Conv2d(self.in_channels, int(out_channels or in_channels), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(x, self.in_channels)
        return self.conv(x.mean(dim=(2, 3), keepdim=True))


class LargeKernelAttention(nn.Module):
    """Large-kernel attention (VAN): depth-wise 5x5, depth-wise 7x7 with dilation 3 (receptive field 23x23;
    both ``DepthwiseConv2d``), then a 1x1 conv to ``out_channels``.

    Shapes: ``[B, in_channels, H, W]`` -> ``[B, out_channels, H, W]``. Keys ``conv0``, ``conv_spatial``,
    ``conv1`` as the official ``LKA``.

    Example:
        >>> LargeKernelAttention(16, 8)(torch.randn(1, 16, 12, 12)).shape
        torch.Size([1, 8, 12, 12])
    """

    def __init__(self, in_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        c = self.in_channels = int(in_channels)
        self.conv0 = DepthwiseConv2d(c, 5, padding=2)
        self.conv_spatial = DepthwiseConv2d(c, 7, padding=9, dilation=3)
        self.conv1 = nn.Conv2d(c, int(out_channels or in_channels), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(x, self.in_channels)
        return self.conv1(self.conv_spatial(self.conv0(x)))
