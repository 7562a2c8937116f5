"""Registration of the depth-wise convolution as ``torch.ops.vqcnir.depthwise_conv2d_fwd`` / ``_bwd``.

The only file of this op that talks to ``torch.library``. Both ops take the concrete backend name (chosen by
``SPEC.choose`` before the call) and run it through the glue (``vqcnir_ops._backend``). Autograd saves the
input and the weight; the backward returns every gradient, the bias's even without a bias (then dropped).
"""

from __future__ import annotations

import functools

import torch

from vqcnir_ops._backend import call_forward
from vqcnir_ops.conv_geometry import Geometry
from vqcnir_ops.depthwise.backends import SPEC


def _forward(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: list[int],
    dilation: list[int],
    backend: str,
) -> torch.Tensor:
    """``[B, C, Ho, Wo]`` (contiguous, input's dtype); ``backend`` is concrete."""
    return SPEC.forward(backend, input, weight, bias, padding, dilation)


depthwise_conv2d_fwd = torch.library.custom_op("vqcnir::depthwise_conv2d_fwd", _forward, mutates_args=())


# What the functional calls: the custom op, or ``_forward`` itself where nothing needs the op
# (``vqcnir_ops._backend.call_forward``); the same arguments as ``depthwise_conv2d_fwd``.
forward = functools.partial(call_forward, depthwise_conv2d_fwd, _forward)


@depthwise_conv2d_fwd.register_fake
def _(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: list[int],
      dilation: list[int], backend: str) -> torch.Tensor:  # fmt: skip
    geometry = Geometry(padding=tuple(padding), dilation=tuple(dilation))
    height, width = geometry.output_size(input.shape[2], input.shape[3], weight.shape[2:])
    return input.new_empty(input.shape[0], input.shape[1], height, width)


@torch.library.custom_op("vqcnir::depthwise_conv2d_bwd", mutates_args=())
def depthwise_conv2d_bwd(
    grad_out: torch.Tensor,  # the output's gradient, then the forward's arguments
    input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: list[int], dilation: list[int],
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(grad_input, grad_weight, grad_bias)``, contiguous, in the dtypes of input, weight and bias (weight's
    without a bias)."""
    return SPEC.backward(backend, grad_out, input, weight, bias, padding, dilation)


Grads = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@depthwise_conv2d_bwd.register_fake
def _(grad_out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
      padding: list[int], dilation: list[int], backend: str) -> Grads:  # fmt: skip
    bias_dtype = weight.dtype if bias is None else bias.dtype
    grad_bias = weight.new_empty(weight.shape[0], dtype=bias_dtype)
    return input.new_empty(input.shape), weight.new_empty(weight.shape), grad_bias


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
    input, weight, bias, padding, dilation, backend = inputs
    ctx.save_for_backward(input, weight, bias)
    ctx.options = (padding, dilation, backend)


def _backward(ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor) -> tuple:
    input, weight, bias = ctx.saved_tensors
    grad_input, grad_weight, grad_bias = torch.ops.vqcnir.depthwise_conv2d_bwd(
        grad_out, input, weight, bias, *ctx.options
    )
    return grad_input, grad_weight, None if bias is None else grad_bias, None, None, None


depthwise_conv2d_fwd.register_autograd(_backward, setup_context=_setup_context)
