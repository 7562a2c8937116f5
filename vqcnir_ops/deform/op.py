"""Registration of the deformable convolution as ``torch.ops.vqcnir.deform_conv2d_fwd`` / ``_bwd``.

The only file of this op that talks to ``torch.library``. Both ops take the concrete backend name
(resolved by ``vqcnir_ops._backend`` before the call) and run that implementation; the fake
implementations give shapes without running anything, so ``torch.compile(fullgraph=True)`` traces them.
``mask`` and ``bias`` are always tensors here: the functional passes ones / zeros for ``None``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from vqcnir_ops import _backend, _extension
from vqcnir_ops.deform.reference import deform_conv2d_grads_ref, deform_conv2d_ref

SPEC = _backend.register_op(
    _backend.OpBackends(
        name="deform_conv2d",
        dtypes={
            "reference": _backend.ALL_FLOAT,
            "cpp": _backend.ALL_FLOAT,
            "triton": _backend.HALF_AND_FLOAT,
            "cuda": _backend.HALF_AND_FLOAT,
        },
        # Triton first on GPU until a GPU benchmark (benchmarks/results/) says otherwise.
        gpu_order=("triton", "cuda"),
    )
)

Grads = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _device_guard(t: torch.Tensor) -> contextlib.AbstractContextManager:
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _fwd_reference(x, offset, mask, weight, bias, stride, padding, dilation, deterministic):  # noqa: ANN001, ANN202
    return deform_conv2d_ref(x, offset, weight, bias, tuple(stride), tuple(padding), tuple(dilation), mask)


def _bwd_reference(grad, x, offset, mask, weight, bias, stride, padding, dilation, deterministic):  # noqa: ANN001, ANN202
    return deform_conv2d_grads_ref(grad, x, offset, mask, weight, bias, tuple(stride), tuple(padding), tuple(dilation))


def _fwd_compiled(x, offset, mask, weight, bias, stride, padding, dilation, deterministic):  # noqa: ANN001, ANN202
    _extension.require()
    return torch.ops.vqcnir_C.deform_conv2d(x, offset, mask, weight, bias, *stride, *padding, *dilation)


def _bwd_compiled(grad, x, offset, mask, weight, bias, stride, padding, dilation, deterministic):  # noqa: ANN001, ANN202
    _extension.require()
    return torch.ops.vqcnir_C.deform_conv2d_backward(
        grad, x, offset, mask, weight, bias, *stride, *padding, *dilation, deterministic
    )


def _fwd_triton(x, offset, mask, weight, bias, stride, padding, dilation, deterministic):  # noqa: ANN001, ANN202
    from vqcnir_ops.deform.triton_kernels import deform_conv2d_triton

    with _device_guard(x):
        return deform_conv2d_triton(x, offset, mask, weight, bias, tuple(stride), tuple(padding), tuple(dilation))


def _bwd_triton(grad, x, offset, mask, weight, bias, stride, padding, dilation, deterministic):  # noqa: ANN001, ANN202
    from vqcnir_ops.deform.triton_backward import deform_conv2d_backward_triton

    with _device_guard(x):
        return deform_conv2d_backward_triton(
            grad, x, offset, mask, weight, bias, tuple(stride), tuple(padding), tuple(dilation), deterministic
        )


_FORWARD: dict[str, Callable[..., torch.Tensor]] = {
    "reference": _fwd_reference,
    "cpp": _fwd_compiled,
    "cuda": _fwd_compiled,
    "triton": _fwd_triton,
}
_BACKWARD: dict[str, Callable[..., Grads]] = {
    "reference": _bwd_reference,
    "cpp": _bwd_compiled,
    "cuda": _bwd_compiled,
    "triton": _bwd_triton,
}


@torch.library.custom_op("vqcnir::deform_conv2d_fwd", mutates_args=())
def deform_conv2d_fwd(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    deterministic: bool,
    backend: str,
) -> torch.Tensor:
    """``[B, Cout, Ho, Wo]`` in ``input``'s dtype; ``backend`` is concrete (see ``functional.py``)."""
    return _FORWARD[backend](input, offset, mask, weight, bias, stride, padding, dilation, deterministic).contiguous()


@deform_conv2d_fwd.register_fake
def _(input, offset, mask, weight, bias, stride, padding, dilation, deterministic, backend):  # noqa: ANN001, ANN202
    return input.new_empty(input.shape[0], weight.shape[0], offset.shape[2], offset.shape[3])


@torch.library.custom_op("vqcnir::deform_conv2d_bwd", mutates_args=())
def deform_conv2d_bwd(
    grad_out: torch.Tensor,
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    deterministic: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of ``(input, offset, mask, weight, bias)``, each contiguous in its argument's dtype."""
    grads = _BACKWARD[backend](grad_out, input, offset, mask, weight, bias, stride, padding, dilation, deterministic)
    return tuple(g.contiguous() for g in grads)  # type: ignore[return-value]


@deform_conv2d_bwd.register_fake
def _(grad_out, input, offset, mask, weight, bias, stride, padding, dilation, deterministic, backend):  # noqa: ANN001, ANN202
    tensors = (input, offset, mask, weight, bias)
    return tuple(torch.empty_like(t, memory_format=torch.contiguous_format) for t in tensors)


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
    x, offset, mask, weight, bias, stride, padding, dilation, deterministic, backend = inputs
    ctx.save_for_backward(x, offset, mask, weight, bias)
    ctx.settings = (stride, padding, dilation, deterministic, backend)


def _backward(ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor) -> tuple:
    x, offset, mask, weight, bias = ctx.saved_tensors
    stride, padding, dilation, deterministic, backend = ctx.settings
    grads = torch.ops.vqcnir.deform_conv2d_bwd(
        grad_out, x, offset, mask, weight, bias, stride, padding, dilation, deterministic, backend
    )
    return (*grads, None, None, None, None, None)


deform_conv2d_fwd.register_autograd(_backward, setup_context=_setup_context)
