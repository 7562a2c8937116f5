"""The ONNX form of ``depthwise_conv2d``: its reference, one ``Conv`` node with ``group = C``."""

from __future__ import annotations

import torch

from vqcnir_ops.depthwise.reference import depthwise_conv2d_ref


def depthwise_conv2d_onnx(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> torch.Tensor:
    """``[B, C, Ho, Wo]`` (arguments checked by ``depthwise_conv2d``)."""
    return depthwise_conv2d_ref(input, weight, bias, padding, dilation)
