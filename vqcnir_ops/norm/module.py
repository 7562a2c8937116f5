"""``LayerNorm2d``: channel LayerNorm for NCHW features (state-dict keys ``weight``, ``bias``)."""

from __future__ import annotations

import torch
from torch import nn

from vqcnir_ops.norm.reference import layer_norm_2d_ref
from vqcnir_ops.validation import check_tensor


class LayerNorm2d(nn.Module):
    """Normalises each pixel over its channels, then applies a per-channel affine map.

    Matches the official model's ``LayerNorm2d`` (eps 1e-6, ``weight`` ones and ``bias`` zeros of
    shape ``[C]``), so its checkpoint keys load unchanged.

    Example:
        >>> norm = LayerNorm2d(64)
        >>> norm(torch.randn(2, 64, 16, 16)).shape
        torch.Size([2, 64, 16, 16])
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.channels, self.eps = int(channels), float(eps)
        self.weight = nn.Parameter(torch.ones(self.channels))
        self.bias = nn.Parameter(torch.zeros(self.channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, ndim=4)
        if x.shape[1] != self.channels:
            raise ValueError(f"argument 'x' must have {self.channels} channels, got shape {tuple(x.shape)}")
        return layer_norm_2d_ref(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}"
