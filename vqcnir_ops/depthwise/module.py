"""``DepthwiseConv2d``: an ``nn.Conv2d`` with ``groups = channels`` and stride 1 that runs ``depthwise_conv2d``."""

from __future__ import annotations

import torch
from torch import nn

from vqcnir_ops._backend import requested_backend
from vqcnir_ops.depthwise.backends import SPEC
from vqcnir_ops.depthwise.functional import depthwise_conv2d


class DepthwiseConv2d(nn.Conv2d):
    """Depth-wise convolution layer: one ``kernel_size`` filter per channel, stride 1, zero padding.

    A subclass of ``nn.Conv2d(channels, channels, kernel_size, padding=..., dilation=..., groups=channels)``
    with the same parameters (``weight [C, 1, kh, kw]``, ``bias [C]``) and initialisation, so state dicts load
    either way; the forward calls :func:`vqcnir_ops.depthwise_conv2d` (the fast C++ kernel on CPU).

    ``backend`` (or ``$VQCNIR_OPS_BACKEND``) as the functional's, except that a backend this op does not
    implement (``triton``, ``cuda``: chosen for a network's fused ops) falls back to the automatic choice, the
    C++ kernel on CPU and cuDNN on CUDA, instead of failing: the layer sits inside those networks.

    Shapes: ``[B, C, H, W]`` -> ``[B, C, Ho, Wo]``.

    Example:
        >>> conv = DepthwiseConv2d(16, 7, padding=3)
        >>> conv(torch.randn(2, 16, 32, 32)).shape
        torch.Size([2, 16, 32, 32])
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, int],
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        backend: str | None = None,
    ) -> None:
        if isinstance(padding, str):
            raise ValueError(f"argument 'padding' must be an int or two ints, got {padding!r}")
        super().__init__(
            channels, channels, kernel_size, padding=padding, dilation=dilation, groups=channels, bias=bias
        )
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        requested = requested_backend(self.backend)
        backend = requested if requested in SPEC.backends else "auto"
        return depthwise_conv2d(x, self.weight, self.bias, self.padding, self.dilation, backend=backend)
