"""The contract of ``depthwise_conv2d``: plain PyTorch, the spec every backend is tested against.

A depth-wise 2-D convolution with stride 1: channel ``c`` of the output is channel ``c`` of the input
correlated with its own filter ``weight[c, 0]`` (``groups = C``), zero padding, dilation, plus ``bias[c]``::

    out[b, c, y, x] = bias[c] + sum_{i, j} weight[c, 0, i, j] * input[b, c, y - ph + i * dh, x - pw + j * dw]

Computed in float32 (float64 for float64 input) whatever the dtypes; the output has the input's dtype and
every gradient its argument's dtype (``vqcnir_ops._dtypes``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqcnir_ops._dtypes import compute_dtype


def depthwise_conv2d_ref(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> torch.Tensor:
    """``[B, C, Ho, Wo]`` for ``input [B, C, H, W]``, ``weight [C, 1, kh, kw]``, ``bias [C]`` or None."""
    dtype = compute_dtype(input.dtype)
    out = F.conv2d(
        input.to(dtype),
        weight.to(dtype),
        None if bias is None else bias.to(dtype),
        padding=tuple(padding),
        dilation=tuple(dilation),
        groups=input.shape[1],
    )
    return out.to(input.dtype)


def depthwise_conv2d_bwd_ref(
    grad_out: torch.Tensor,
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(grad_input, grad_weight, grad_bias)``: the reference's gradients, each in its argument's dtype
    (``grad_bias`` in the weight's when there is no bias)."""
    dtype = compute_dtype(input.dtype)
    channels = input.shape[1]
    # The convolution's own backward (no autograd graph: custom-op kernels run below autograd).
    grad_input, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
        grad_out.to(dtype), input.to(dtype), weight.to(dtype), [channels], [1, 1], list(padding), list(dilation),
        False, [0, 0], channels, [True, True, True],
    )  # fmt: skip
    bias_dtype = weight.dtype if bias is None else bias.dtype
    return grad_input.to(input.dtype), grad_weight.to(weight.dtype), grad_bias.to(bias_dtype)
