"""The Adaptive Illumination Enhancement Module (AIEM) of VQCNIR and its two halves, HIE and IMAE.

``AIEM(x) = y + gamma * IMAE(y)`` with ``y = x + beta * HIE(x)``; ``beta`` and ``gamma`` are per-channel
``[1, C, 1, 1]`` scales initialised to zero, so a fresh AIEM is the identity. Channel widths follow the
official model (``DW_Expand = FFN_Expand = 2``): both halves expand C to 2C and gate back to C.
"""

from __future__ import annotations

import torch
from torch import nn

from vqcnir_ops.aiem.layers import LargeKernelAttention, SimpleGate, SimplifiedChannelAttention, _check_channels
from vqcnir_ops.curve.module import IMACConv
from vqcnir_ops.norm import LayerNorm2d


class HIE(nn.Module):
    """Hierarchical information extraction (the first half of the AIEM, without its residual).

    LayerNorm -> 1x1 conv to 2C -> depth-wise 3x3 -> ``(sca(t) * lka(t)) * gate(t)`` -> 1x1 conv,
    where ``sca``/``lka`` map 2C channels to C and ``gate`` halves 2C to C.

    Shapes: ``[B, C, H, W]`` -> ``[B, C, H, W]``.

    Example:
        >>> HIE(32)(torch.randn(1, 32, 8, 8)).shape
        torch.Size([1, 32, 8, 8])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = self.channels = int(channels)
        self.norm = LayerNorm2d(c)
        self.conv_in = nn.Conv2d(c, 2 * c, 1)
        self.dwconv = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.lka = LargeKernelAttention(2 * c, c)
        self.sca = SimplifiedChannelAttention(2 * c, c)
        self.gate = SimpleGate()
        self.conv_out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(x, self.channels)
        t = self.dwconv(self.conv_in(self.norm(x)))
        return self.conv_out((self.sca(t) * self.lka(t)) * self.gate(t))


class IMAE(nn.Module):
    """Illumination mutual attention enhancement (the second half of the AIEM, without its residual).

    LayerNorm -> 1x1 conv to 2C -> SimpleGate (to C) -> IMACConv(C, C) -> 1x1 conv.

    Shapes: ``[B, C, H, W]`` -> ``[B, C, H, W]``; C a multiple of ``split``.

    Example:
        >>> IMAE(32, split=4, n_curve=3)(torch.randn(1, 32, 8, 8)).shape
        torch.Size([1, 32, 8, 8])
    """

    def __init__(self, channels: int, split: int = 4, n_curve: int = 3, backend: str | None = None) -> None:
        super().__init__()
        c = self.channels = int(channels)
        self.norm = LayerNorm2d(c)
        self.conv_in = nn.Conv2d(c, 2 * c, 1)
        self.gate = SimpleGate()
        self.imac = IMACConv(c, c, split=split, n_curve=n_curve, backend=backend)
        self.conv_out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(x, self.channels)
        return self.conv_out(self.imac(self.gate(self.conv_in(self.norm(x)))))


class AIEM(nn.Module):
    """Adaptive Illumination Enhancement Module: HIE then IMAE, each as a zero-initialised residual.

    Args:
        channels: C (256 in VQCNIR, twelve AIEMs at 1/8 resolution), a multiple of ``split``.
        split: IMACConv groups (4). n_curve: curve iterations (3). backend: ``curve_map`` backend.

    Shapes: ``[B, C, H, W]`` -> ``[B, C, H, W]``. Load the official checkpoint's
    ``multiscale_encoder.blocks.3.blks.{k}.*`` with ``vqcnir.official.aiem_state_dict_from_official``.

    Example:
        >>> block = AIEM(64)
        >>> block(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(self, channels: int, split: int = 4, n_curve: int = 3, backend: str | None = None) -> None:
        super().__init__()
        c = self.channels = int(channels)
        self.hie = HIE(c)
        self.imae = IMAE(c, split=split, n_curve=n_curve, backend=backend)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(x, self.channels)
        y = x + self.hie(x) * self.beta
        return y + self.imae(y) * self.gamma
