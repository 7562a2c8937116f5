"""Registration of the channel attention as ``torch.ops.vqcnir.bidirectional_channel_attention_fwd`` / ``_bwd``.

The only file of this op that talks to ``torch.library``. Both ops run the concrete backend (chosen by
``SPEC.choose`` before the call) through the glue (``vqcnir_ops._backend``): the two-phase algorithm of
``staged.py`` with that backend's phase kernels. Naming is by value source: ``y_d = res_d + gain_d *
(attn @ v_d)``, likewise for g. The forward also returns the small ``[B, heads, C, C]`` map, scores and
``[B, heads, C]`` norms that the backward needs (not differentiable); fake implementations give shapes
without running anything.
"""

from __future__ import annotations

import functools

import torch

from vqcnir_ops._backend import call_forward
from vqcnir_ops._dtypes import compute_dtype
from vqcnir_ops.attention.backends import SPEC

_FWD = "vqcnir::bidirectional_channel_attention_fwd"
_BWD = "vqcnir::bidirectional_channel_attention_bwd"
Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _forward(
    q_d: torch.Tensor,
    q_g: torch.Tensor,
    v_d: torch.Tensor,
    v_g: torch.Tensor,
    temperature: torch.Tensor,
    gain_d: torch.Tensor,
    gain_g: torch.Tensor,
    res_d: torch.Tensor | None,
    res_g: torch.Tensor | None,
    normalize: bool,
    scale: float,
    eps: float,
    backend: str,
) -> Outputs:
    """``(y_d, y_g, attn, scores, norm_d, norm_g)``; inputs ``[B, heads, C, N]``, gains ``[heads * C]``."""
    return SPEC.forward(backend, q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, res_d, res_g, normalize, scale, eps)


bidirectional_channel_attention_fwd = torch.library.custom_op(_FWD, _forward, mutates_args=())


# What the functional calls: the custom op, or ``_forward`` itself where nothing needs the op
# (``vqcnir_ops._backend.call_forward``); the same arguments as ``bidirectional_channel_attention_fwd``.
forward = functools.partial(call_forward, bidirectional_channel_attention_fwd, _forward)


@bidirectional_channel_attention_fwd.register_fake
def _(q_d: torch.Tensor, q_g: torch.Tensor, v_d: torch.Tensor, v_g: torch.Tensor, *_rest: object) -> Outputs:
    # Shapes only (torch.compile, meta tensors): the other arguments do not change them.
    batch, heads, channels, _ = q_d.shape
    dtype = compute_dtype(q_d.dtype)
    square = q_d.new_empty(batch, heads, channels, channels, dtype=dtype)
    norms = q_d.new_empty(batch, heads, channels, dtype=dtype)
    return v_d.new_empty(v_d.shape), v_g.new_empty(v_g.shape), square, square.clone(), norms, norms.clone()


Grads = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@torch.library.custom_op(_BWD, mutates_args=())
def bidirectional_channel_attention_bwd(
    grad_y_d: torch.Tensor, grad_y_g: torch.Tensor,  # the outputs' gradients
    q_d: torch.Tensor, q_g: torch.Tensor, v_d: torch.Tensor, v_g: torch.Tensor,  # the forward's inputs
    temperature: torch.Tensor, gain_d: torch.Tensor, gain_g: torch.Tensor,
    attn: torch.Tensor, scores: torch.Tensor, norm_d: torch.Tensor, norm_g: torch.Tensor,  # saved by the forward
    normalize: bool, scale: float, eps: float, backend: str,
) -> Grads:  # fmt: skip
    """Gradients ``(q_d, q_g, v_d, v_g, temperature, gain_d, gain_g)``, each in its input's dtype."""
    tensors = (grad_y_d, grad_y_g, q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, attn, scores, norm_d, norm_g)
    return SPEC.backward(backend, *tensors, normalize, scale, eps)


@bidirectional_channel_attention_bwd.register_fake
def _(
    grad_y_d: torch.Tensor, grad_y_g: torch.Tensor, q_d: torch.Tensor, q_g: torch.Tensor, v_d: torch.Tensor,
    v_g: torch.Tensor, temperature: torch.Tensor, gain_d: torch.Tensor, gain_g: torch.Tensor, *_rest: object,
) -> Grads:  # fmt: skip
    return tuple(t.new_empty(t.shape) for t in (q_d, q_g, v_d, v_g, temperature, gain_d, gain_g))  # type: ignore[return-value]


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, res_d, res_g, normalize, scale, eps, backend = inputs
    _, _, attn, scores, norm_d, norm_g = output
    ctx.save_for_backward(q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, attn, scores, norm_d, norm_g)
    ctx.mark_non_differentiable(attn, scores, norm_d, norm_g)
    ctx.has_res = (res_d is not None, res_g is not None)
    ctx.options = (normalize, scale, eps, backend)


def _backward(
    ctx: torch.autograd.function.FunctionCtx,
    grad_y_d: torch.Tensor | None,
    grad_y_g: torch.Tensor | None,
    *_unused: torch.Tensor | None,
) -> tuple:
    v_d, v_g = ctx.saved_tensors[2:4]
    grad_y_d = torch.zeros_like(v_d) if grad_y_d is None else grad_y_d
    grad_y_g = torch.zeros_like(v_g) if grad_y_g is None else grad_y_g
    # The saved tensors are in the backward op's order: q_d ... gain_g, then attn, scores, norm_d, norm_g.
    grads = torch.ops.vqcnir.bidirectional_channel_attention_bwd(grad_y_d, grad_y_g, *ctx.saved_tensors, *ctx.options)
    grad_res_d = grad_y_d if ctx.has_res[0] else None
    grad_res_g = grad_y_g if ctx.has_res[1] else None
    return (*grads, grad_res_d, grad_res_g, None, None, None, None)


bidirectional_channel_attention_fwd.register_autograd(_backward, setup_context=_setup_context)
