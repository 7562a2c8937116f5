"""Registration of the curve mapping as ``torch.ops.vqcnir.curve_map_fwd`` / ``_bwd``.

The only file of this op that talks to ``torch.library``. Both ops take the concrete backend name
(chosen by ``SPEC.choose`` before the call) and run it through the glue (``vqcnir_ops._backend``), on the
5-D layout ``x [B, S, Cs, H, W]``, ``a [B, S, n, H, W]``. Autograd saves only ``x`` and ``a``: the fused
backward recomputes the curve states. The reference backend's backward is ``curve_map_bwd_ref``.
"""

from __future__ import annotations

import functools

import torch

from vqcnir_ops._backend import call_forward
from vqcnir_ops.curve.backends import SPEC


def _forward(x: torch.Tensor, a: torch.Tensor, backend: str) -> torch.Tensor:
    """``y [B, S, Cs, H, W]`` (contiguous, x's dtype) of the curve mapping; ``backend`` is concrete."""
    return SPEC.forward(backend, x, a)


curve_map_fwd = torch.library.custom_op("vqcnir::curve_map_fwd", _forward, mutates_args=())


# What the functional calls: the custom op, or ``_forward`` itself where nothing needs the op
# (``vqcnir_ops._backend.call_forward``); the same arguments as ``curve_map_fwd``.
forward = functools.partial(call_forward, curve_map_fwd, _forward)


@curve_map_fwd.register_fake
def _(x: torch.Tensor, a: torch.Tensor, backend: str) -> torch.Tensor:
    return x.new_empty(x.shape)


@torch.library.custom_op("vqcnir::curve_map_bwd", mutates_args=())
def curve_map_bwd(
    dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx, da)``, contiguous, in the dtypes of ``x`` and ``a`` (see ``curve_map_bwd_ref``)."""
    return SPEC.backward(backend, dy, x, a)


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
