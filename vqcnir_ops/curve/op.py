"""Registration of the curve mapping as ``torch.ops.vqcnir.curve_map_fwd`` / ``_bwd``.

The only file of this op that talks to ``torch.library``. Both ops take the concrete backend name
(resolved by ``vqcnir_ops._backend`` before the call) and the 5-D layout ``x [B, S, Cs, H, W]``,
``a [B, S, n, H, W]``. Autograd saves only ``x`` and ``a``: the fused backward recomputes the curve
states. The reference backend's backward is the explicit formula of ``curve_map_bwd_ref``.

No CUDA C++ kernel: the issue admits one only where a GPU benchmark shows it beating the Triton
kernel, and no GPU has been available to run that benchmark; on CUDA tensors Triton runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from vqcnir_ops import _backend, _extension
from vqcnir_ops.curve.reference import curve_map_bwd_ref, curve_map_ref

SPEC = _backend.register_op(
    _backend.OpBackends(
        name="curve_map",
        dtypes={
            "reference": _backend.ALL_FLOAT,
            "cpp": _backend.ALL_FLOAT,
            "triton": _backend.HALF_AND_FLOAT,
        },
        gpu_order=("triton",),
        notes={"cuda": "no CUDA C++ kernel: Triton is the GPU path until a GPU benchmark shows otherwise"},
    )
)


def _device_guard(t: torch.Tensor) -> contextlib.AbstractContextManager:
    # Triton launches on the current CUDA device: make it the tensor's.
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _fwd_reference(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return curve_map_ref(x, a).contiguous()


def _fwd_cpp(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    _extension.require()
    return torch.ops.vqcnir_C.curve_map_fwd(x, a)


def _fwd_triton(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    from vqcnir_ops.curve.triton_kernels import curve_map_fwd_triton

    with _device_guard(x):
        return curve_map_fwd_triton(x, a)


def _bwd_reference(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dx, da = curve_map_bwd_ref(dy, x, a)
    return dx.contiguous(), da.contiguous()


def _bwd_cpp(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _extension.require()
    return torch.ops.vqcnir_C.curve_map_bwd(dy, x, a)


def _bwd_triton(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from vqcnir_ops.curve.triton_kernels import curve_map_bwd_triton

    with _device_guard(x):
        return curve_map_bwd_triton(dy, x, a)


_FORWARD: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "reference": _fwd_reference,
    "cpp": _fwd_cpp,
    "triton": _fwd_triton,
}
_BACKWARD: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {
    "reference": _bwd_reference,
    "cpp": _bwd_cpp,
    "triton": _bwd_triton,
}


@torch.library.custom_op("vqcnir::curve_map_fwd", mutates_args=())
def curve_map_fwd(x: torch.Tensor, a: torch.Tensor, backend: str) -> torch.Tensor:
    """``y [B, S, Cs, H, W]`` (contiguous, x's dtype) of the curve mapping; ``backend`` is concrete."""
    return _FORWARD[backend](x, a)


@curve_map_fwd.register_fake
def _(x: torch.Tensor, a: torch.Tensor, backend: str) -> torch.Tensor:
    return x.new_empty(x.shape)


@torch.library.custom_op("vqcnir::curve_map_bwd", mutates_args=())
def curve_map_bwd(
    dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx, da)``, contiguous, in the dtypes of ``x`` and ``a`` (see ``curve_map_bwd_ref``)."""
    return _BACKWARD[backend](dy, x, a)


@curve_map_bwd.register_fake
def _(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    return x.new_empty(x.shape), a.new_empty(a.shape)


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
    x, a, backend = inputs
    ctx.save_for_backward(x, a)
    ctx.backend = backend


def _backward(ctx: torch.autograd.function.FunctionCtx, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
    x, a = ctx.saved_tensors
    dx, da = torch.ops.vqcnir.curve_map_bwd(dy, x, a, ctx.backend)
    return dx, da, None


curve_map_fwd.register_autograd(_backward, setup_context=_setup_context)
