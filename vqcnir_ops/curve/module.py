"""``IMACConv``: Illumination Mutual Attention Convolution over the fused curve mapping."""

from __future__ import annotations

import torch
from torch import nn

from vqcnir_ops.curve.functional import MAX_CURVES, curve_map
from vqcnir_ops.validation import check_tensor


def curve_estimator(in_channels: int, mid_channels: int, n_curve: int) -> nn.Sequential:
    """conv 5x5 -> ReLU -> conv 3x3 -> ReLU -> conv 1x1 to ``n_curve`` maps -> sigmoid.

    An ``nn.Sequential`` whose convs sit at indices 0, 2, 4, as the official ``predictA{i}``.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 5, padding=2),
        nn.ReLU(),
        nn.Conv2d(mid_channels, mid_channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(mid_channels, n_curve, 1),
        nn.Sigmoid(),
    )


class IMACConv(nn.Module):
    """Splits the channels into ``split`` groups; each group is brightened by curves predicted from the
    other groups, then convolved (3x3) on its own; the groups' outputs are concatenated.

    For split i: ``a_i = curve_nets[i](cat(x_j, j != i))`` (``[B, n_curve, H, W]`` in (0, 1)); every
    split's curve mapping then runs in one fused ``curve_map`` launch; the per-split 3x3 convs run as
    one grouped conv (``proj``, ``groups=split``), equal to the official per-split ``conv{i}``.

    Args:
        in_channels: C, a multiple of ``split``.
        out_channels: a multiple of ``split``.
        split: number of groups S >= 2 (4 in VQCNIR).
        n_curve: curve iterations n, 1..16 (3 in VQCNIR).
        backend: ``curve_map`` backend (default automatic).

    Shapes: ``[B, in_channels, H, W]`` -> ``[B, out_channels, H, W]``. Official checkpoint keys:
    ``vqcnir.official.AIEM_RULES`` map ``predictA{i}.*`` to ``curve_nets.{i}.*`` and concatenate
    ``conv{i}.*`` into ``proj.*``.

    Example:
        >>> imac = IMACConv(256, 256, split=4, n_curve=3)
        >>> imac(torch.randn(2, 256, 16, 16)).shape
        torch.Size([2, 256, 16, 16])
    """

    def __init__(
        self, in_channels: int, out_channels: int, split: int = 4, n_curve: int = 3, backend: str | None = None
    ) -> None:
        super().__init__()
        if split < 2:
            raise ValueError(f"argument 'split' must be at least 2 (each split reads the others), got {split}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value < split or value % split:
                raise ValueError(f"argument '{name}' must be a positive multiple of split={split}, got {value}")
        if not 1 <= n_curve <= MAX_CURVES:
            raise ValueError(f"argument 'n_curve' must be in 1..{MAX_CURVES}, got {n_curve}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.split, self.n_curve, self.backend = int(split), int(n_curve), backend
        group = self.in_channels // self.split
        self.curve_nets = nn.ModuleList(
            curve_estimator(self.in_channels - group, group, self.n_curve) for _ in range(self.split)
        )
        self.proj = nn.Conv2d(self.in_channels, self.out_channels, 3, padding=1, groups=self.split)

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, split * n_curve, H, W]``: the curve maps of every split, split-major."""
        parts = x.chunk(self.split, dim=1)
        maps = [net(torch.cat(parts[:i] + parts[i + 1 :], dim=1)) for i, net in enumerate(self.curve_nets)]
        return torch.cat(maps, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ndim=4)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"argument 'x' must have {self.in_channels} channels, got shape {tuple(x.shape)}")
        a = self.curves(x).to(x.dtype)
        return self.proj(curve_map(x, a, splits=self.split, backend=self.backend))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, split={self.split}, n_curve={self.n_curve}"
