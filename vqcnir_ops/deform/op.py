"""Registration of the deformable convolution as ``torch.ops.vqcnir.deform_conv2d_fwd`` / ``_bwd``.

The only file of this op that talks to ``torch.library``. Both ops take the concrete backend name
(chosen by ``SPEC.choose`` before the call) and run it through the glue (``vqcnir_ops._backend``); the
geometry travels as ``Geometry.flat()`` (six ints), the form a custom op's schema takes. The fake
implementations give shapes without running anything, so ``torch.compile(fullgraph=True)`` traces them.
``mask`` and ``bias`` are always tensors here: the functional passes ones / zeros for ``None``.
"""

from __future__ import annotations

import functools

import torch

from vqcnir_ops._backend import call_forward
from vqcnir_ops.deform.backends import SPEC
from vqcnir_ops.deform.reference import Geometry

Grads = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _forward(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    geometry: list[int],
    deterministic: bool,
    backend: str,
) -> torch.Tensor:
    """``[B, Cout, Ho, Wo]`` in ``input``'s dtype; ``backend`` is concrete (see ``functional.py``)."""
    return SPEC.forward(backend, input, offset, mask, weight, bias, Geometry.from_flat(geometry), deterministic)


deform_conv2d_fwd = torch.library.custom_op("vqcnir::deform_conv2d_fwd", _forward, mutates_args=())


# What the functional calls: the custom op, or ``_forward`` itself where nothing needs the op
# (``vqcnir_ops._backend.call_forward``); the same arguments as ``deform_conv2d_fwd``.
forward = functools.partial(call_forward, deform_conv2d_fwd, _forward)


@deform_conv2d_fwd.register_fake
def _(input, offset, mask, weight, bias, geometry, deterministic, backend):  # noqa: ANN001, ANN202
    return input.new_empty(input.shape[0], weight.shape[0], offset.shape[2], offset.shape[3])


@torch.library.custom_op("vqcnir::deform_conv2d_bwd", mutates_args=())
def deform_conv2d_bwd(
    grad_out: torch.Tensor,
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    geometry: list[int],
    deterministic: bool,
    backend: str,
) -> Grads:
    """Gradients of ``(input, offset, mask, weight, bias)``, each contiguous in its argument's dtype."""
    return SPEC.backward(
        backend, grad_out, input, offset, mask, weight, bias, Geometry.from_flat(geometry), deterministic
    )


@deform_conv2d_bwd.register_fake
def _(grad_out, input, offset, mask, weight, bias, geometry, deterministic, backend):  # noqa: ANN001, ANN202
    tensors = (input, offset, mask, weight, bias)
    return tuple(torch.empty_like(t, memory_format=torch.contiguous_format) for t in tensors)


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
    x, offset, mask, weight, bias, *settings = inputs
    ctx.save_for_backward(x, offset, mask, weight, bias)
    ctx.settings = settings


def _backward(ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor) -> tuple:
    grads = torch.ops.vqcnir.deform_conv2d_bwd(grad_out, *ctx.saved_tensors, *ctx.settings)
    return (*grads, None, None, None)


deform_conv2d_fwd.register_autograd(_backward, setup_context=_setup_context)
