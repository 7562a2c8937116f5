"""The backends of ``deform_conv2d``, declared once (see ``vqcnir_ops._backend``).

Each implementation takes ``(input, offset, mask, weight, bias, geometry, deterministic)`` forward and
``(grad_out, <the same>)`` backward, with ``geometry`` a :class:`~vqcnir_ops.deform.reference.Geometry`;
``mask`` and ``bias`` are always tensors here (the functional passes ones / zeros for ``None``). The CPU
kernel is always deterministic; ``cuda`` honours ``deterministic`` with its ordered scatter and ``triton``
by taking the input gradient from the reference. Triton first on GPU until a GPU run of
``benchmarks/bench_deform_conv.py`` says otherwise.
"""

from __future__ import annotations

import torch

from vqcnir_ops._backend import Backend, OpSpec
from vqcnir_ops.deform.reference import Geometry, deform_conv2d_grads_ref, deform_conv2d_ref

Tensors = tuple[torch.Tensor, ...]


def _forward_reference(x, offset, mask, weight, bias, geometry: Geometry, deterministic: bool) -> torch.Tensor:  # noqa: ANN001
    return deform_conv2d_ref(x, offset, weight, bias, *geometry, mask)


def _backward_reference(grad, x, offset, mask, weight, bias, geometry: Geometry, deterministic: bool) -> Tensors:  # noqa: ANN001
    return deform_conv2d_grads_ref(grad, x, offset, mask, weight, bias, geometry)


def _forward_compiled(x, offset, mask, weight, bias, geometry: Geometry, deterministic: bool) -> torch.Tensor:  # noqa: ANN001
    return torch.ops.vqcnir_C.deform_conv2d(x, offset, mask, weight, bias, *geometry.flat())


def _backward_compiled(grad, x, offset, mask, weight, bias, geometry: Geometry, deterministic: bool) -> Tensors:  # noqa: ANN001
    return torch.ops.vqcnir_C.deform_conv2d_backward(
        grad, x, offset, mask, weight, bias, *geometry.flat(), deterministic
    )


def _forward_triton(x, offset, mask, weight, bias, geometry: Geometry, deterministic: bool) -> torch.Tensor:  # noqa: ANN001
    from vqcnir_ops.deform.triton_kernels import deform_conv2d_triton

    return deform_conv2d_triton(x, offset, mask, weight, bias, geometry)


def _backward_triton(grad, x, offset, mask, weight, bias, geometry: Geometry, deterministic: bool) -> Tensors:  # noqa: ANN001
    from vqcnir_ops.deform.triton_backward import deform_conv2d_backward_triton

    return deform_conv2d_backward_triton(grad, x, offset, mask, weight, bias, geometry, deterministic)


_COMPILED = Backend(_forward_compiled, _backward_compiled)
SPEC = OpSpec(
    "deform_conv2d",
    {
        "reference": Backend(_forward_reference, _backward_reference),
        "cpp": _COMPILED,
        "cuda": _COMPILED,
        "triton": Backend(_forward_triton, _backward_triton),
    },
    gpu_order=("triton", "cuda"),
)
