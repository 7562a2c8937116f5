"""The official VQCNIR AIEM, re-written for the tests from its description (AlexZou14/VQCNIR,
models/main_decode.py): same attribute names, shapes and forward, in plain PyTorch.

It gives state dicts with the official key names and shapes, and the expected outputs, so the tests can
check ``vqcnir.official.aiem_state_dict_from_official`` and the fused layers end to end.
"""

from __future__ import annotations

import torch
from torch import nn

from vqcnir_ops import LayerNorm2d


class OfficialLKA(nn.Module):
    def __init__(self, inp_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(inp_dim, inp_dim, 5, padding=2, groups=inp_dim)
        self.conv_spatial = nn.Conv2d(inp_dim, inp_dim, 7, padding=9, groups=inp_dim, dilation=3)
        self.conv1 = nn.Conv2d(inp_dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv_spatial(self.conv0(x)))


class OfficialIMAConv(nn.Module):
    """Per split i: predictA{i} on the other splits, the relu - relu clamp, n curve steps, conv{i}."""

    def __init__(self, channels: int, split: int, n_curve: int) -> None:
        super().__init__()
        self.split, self.n_curve = split, n_curve
        group = channels // split
        for i in range(split):
            predict = nn.Sequential(
                nn.Conv2d(channels - group, group, 5, padding=2), nn.ReLU(),
                nn.Conv2d(group, group, 3, padding=1), nn.ReLU(),
                nn.Conv2d(group, n_curve, 1), nn.Sigmoid(),
            )  # fmt: skip
            setattr(self, f"predictA{i}", predict)
            setattr(self, f"conv{i}", nn.Conv2d(group, group, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.chunk(x, self.split, dim=1)
        outputs = []
        for i in range(self.split):
            a = getattr(self, f"predictA{i}")(torch.cat(parts[:i] + parts[i + 1 :], dim=1))
            y = torch.relu(parts[i]) - torch.relu(parts[i] - 1)
            for j in range(self.n_curve):
                y = y + a[:, j : j + 1] * y * (1 - y)
            outputs.append(getattr(self, f"conv{i}")(y))
        return torch.cat(outputs, dim=1)


class OfficialAIEM(nn.Module):
    def __init__(self, c: int, split: int = 4, n_curve: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.conv3 = nn.Conv2d(c, c, 1)
        self.sca1 = OfficialLKA(2 * c, c)
        self.sca2 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(2 * c, c, 1))
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.IMAC = OfficialIMAConv(c, split, n_curve)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    @staticmethod
    def gate(x: torch.Tensor) -> torch.Tensor:
        first, second = x.chunk(2, dim=1)
        return first * second

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(self.norm1(inp)))
        x = self.conv3((self.sca2(x) * self.sca1(x)) * self.gate(x))
        y = inp + x * self.beta
        x = self.conv5(self.IMAC(self.gate(self.conv4(self.norm2(y)))))
        return y + x * self.gamma


def randomise_(module: nn.Module, seed: int) -> nn.Module:
    """Fill every parameter with random values (including the zero-initialised scales)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return module
