"""Registration of the nearest-code lookup as ``torch.ops.vqcnir.nearest_code_fwd`` / ``_bwd``.

The only file of this op that talks to ``torch.library``. The forward op takes the concrete backend
name (chosen by ``SPEC.choose`` before the call) and runs it through the glue (``vqcnir_ops._backend``);
its fake implementation gives shapes without running anything, so ``torch.compile(fullgraph=True)``
traces it. Only ``dist`` is differentiable (the index is piecewise constant); its backward is an op of
its own, written in PyTorch for every backend, since it is a gather and a deterministic scatter.
"""

from __future__ import annotations

import functools

import torch

from vqcnir_ops._backend import call_forward
from vqcnir_ops._dtypes import compute_dtype
from vqcnir_ops.quantize.backends import SPEC
from vqcnir_ops.quantize.reference import nearest_code_dist_grad_ref


# The op returns (dist, indices), the functional (indices, dist): opcheck's autograd test sums the
# outputs into the first one's dtype, which fails when an integer output comes first.
def _forward(z: torch.Tensor, codebook: torch.Tensor, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dist [N], indices [N] int64)`` of the nearest code of each row; ``backend`` is concrete."""
    return SPEC.forward(backend, z, codebook)


nearest_code_fwd = torch.library.custom_op("vqcnir::nearest_code_fwd", _forward, mutates_args=())


# What the functional calls: the custom op, or ``_forward`` itself where nothing needs the op
# (``vqcnir_ops._backend.call_forward``); the same arguments as ``nearest_code_fwd``.
forward = functools.partial(call_forward, nearest_code_fwd, _forward)


@nearest_code_fwd.register_fake
def _(z: torch.Tensor, codebook: torch.Tensor, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    n_rows = z.shape[0]
    return z.new_empty(n_rows, dtype=compute_dtype(z.dtype)), z.new_empty(n_rows, dtype=torch.int64)


@torch.library.custom_op("vqcnir::nearest_code_bwd", mutates_args=())
def nearest_code_bwd(
    grad_dist: torch.Tensor, z: torch.Tensor, codebook: torch.Tensor, indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``dist`` for ``z`` and ``codebook`` (see ``nearest_code_dist_grad_ref``)."""
    return nearest_code_dist_grad_ref(grad_dist, z, codebook, indices)


@nearest_code_bwd.register_fake
def _(
    grad_dist: torch.Tensor, z: torch.Tensor, codebook: torch.Tensor, indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(z, memory_format=torch.contiguous_format), torch.empty_like(
        codebook, memory_format=torch.contiguous_format
    )


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    z, codebook, _ = inputs
    _, indices = output
    ctx.save_for_backward(z, codebook, indices)


def _backward(
    ctx: torch.autograd.function.FunctionCtx, grad_dist: torch.Tensor | None, grad_indices: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
    z, codebook, indices = ctx.saved_tensors
    if grad_dist is None:
        return None, None, None
    grad_z, grad_codebook = torch.ops.vqcnir.nearest_code_bwd(grad_dist, z, codebook, indices)
    return grad_z, grad_codebook, None


nearest_code_fwd.register_autograd(_backward, setup_context=_setup_context)
