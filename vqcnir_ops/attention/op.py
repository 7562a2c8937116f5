"""Registration of the channel attention as ``torch.ops.vqcnir.bidirectional_channel_attention_fwd`` / ``_bwd``.

The only file of this op that talks to ``torch.library``. Both ops run the two-phase algorithm of
``staged.py`` with the phase kernels of the concrete backend (resolved by ``vqcnir_ops._backend``
before the call). Naming is by value source: ``y_d = res_d + gain_d * (attn @ v_d)``, likewise for g.
The forward also returns the small ``[B, heads, C, C]`` map, scores and ``[B, heads, C]`` norms that the
backward needs (not differentiable); fake implementations give shapes without running anything.
"""

from __future__ import annotations

import contextlib

import torch

from vqcnir_ops import _backend, _extension
from vqcnir_ops.attention.reference import compute_dtype
from vqcnir_ops.attention.staged import TORCH_PHASES, AttentionMap, Phases, staged_backward, staged_forward

SPEC = _backend.register_op(
    _backend.OpBackends(
        name="bidirectional_channel_attention",
        dtypes={
            "reference": _backend.ALL_FLOAT,
            "cpp": _backend.ALL_FLOAT,
            "triton": _backend.HALF_AND_FLOAT,
        },
        gpu_order=("triton",),
        # cpp on CPU: ahead of reference in 9 of 10 cases of benchmarks/bench_channel_attention.py (2-core EPYC,
        # batch 1; 2.2-4.5x the official code fwd+bwd, 0.4-3x fwd), the exception (1080p fwd) within noise.
        cpu_order=("cpp",),
    )
)


def _cpp_gram(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.ops.vqcnir_C.channel_gram(x, y)


def _cpp_mix(w: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None, a: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.vqcnir_C.channel_mix(w, z, x, a)


def _phases(backend: str) -> Phases:
    if backend == "reference":
        return TORCH_PHASES
    if backend == "cpp":
        _extension.require()
        return Phases(_cpp_gram, _cpp_mix)
    if backend == "triton":
        from vqcnir_ops.attention.triton_kernels import gram_triton, mix_triton

        return Phases(gram_triton, mix_triton)
    raise ValueError(f"bidirectional_channel_attention has no {backend!r} backend")


def _on_device(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """Triton launches on the current CUDA device: make it the tensors'."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


_FWD = "vqcnir::bidirectional_channel_attention_fwd"
_BWD = "vqcnir::bidirectional_channel_attention_bwd"
Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@torch.library.custom_op(_FWD, mutates_args=())
def bidirectional_channel_attention_fwd(
    q_d: torch.Tensor, q_g: torch.Tensor, v_d: torch.Tensor, v_g: torch.Tensor, temperature: torch.Tensor,
    gain_d: torch.Tensor, gain_g: torch.Tensor, res_d: torch.Tensor | None, res_g: torch.Tensor | None,
    normalize: bool, scale: float, eps: float, backend: str,
) -> Outputs:  # fmt: skip
    """``(y_d, y_g, attn, scores, norm_d, norm_g)``; inputs ``[B, heads, C, N]``, gains ``[heads * C]``."""
    with _on_device(q_d):
        y_d, y_g, amap = staged_forward(
            _phases(backend), q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, res_d, res_g, normalize, scale, eps
        )
    return y_d, y_g, amap.attn, amap.scores, amap.norm_d, amap.norm_g


@bidirectional_channel_attention_fwd.register_fake
def _(
    q_d: torch.Tensor, q_g: torch.Tensor, v_d: torch.Tensor, v_g: torch.Tensor, temperature: torch.Tensor,
    gain_d: torch.Tensor, gain_g: torch.Tensor, res_d: torch.Tensor | None, res_g: torch.Tensor | None,
    normalize: bool, scale: float, eps: float, backend: str,
) -> Outputs:  # fmt: skip
    batch, heads, channels, _ = q_d.shape
    dtype = compute_dtype(q_d, q_g, v_d, v_g)
    square = q_d.new_empty(batch, heads, channels, channels, dtype=dtype)
    norms = q_d.new_empty(batch, heads, channels, dtype=dtype)
    return (
        v_d.new_empty(v_d.shape), v_g.new_empty(v_g.shape), square, torch.empty_like(square), norms,
        torch.empty_like(norms),
    )  # fmt: skip


Grads = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@torch.library.custom_op(_BWD, mutates_args=())
def bidirectional_channel_attention_bwd(
    grad_y_d: torch.Tensor, grad_y_g: torch.Tensor, q_d: torch.Tensor, q_g: torch.Tensor, v_d: torch.Tensor,
    v_g: torch.Tensor, temperature: torch.Tensor, gain_d: torch.Tensor, gain_g: torch.Tensor, attn: torch.Tensor,
    scores: torch.Tensor, norm_d: torch.Tensor, norm_g: torch.Tensor, normalize: bool, scale: float, eps: float,
    backend: str,
) -> Grads:  # fmt: skip
    """Gradients ``(q_d, q_g, v_d, v_g, temperature, gain_d, gain_g)``, each in its input's dtype."""
    amap = AttentionMap(attn, scores, norm_d, norm_g)
    with _on_device(q_d):
        g = staged_backward(
            _phases(backend), grad_y_d, grad_y_g, q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, amap,
            normalize, scale, eps,
        )  # fmt: skip
    return (
        g.q_d, g.q_g, g.v_d, g.v_g, g.temperature.to(temperature.dtype), g.gain_d.to(gain_d.dtype),
        g.gain_g.to(gain_g.dtype),
    )  # fmt: skip


@bidirectional_channel_attention_bwd.register_fake
def _(
    grad_y_d: torch.Tensor, grad_y_g: torch.Tensor, q_d: torch.Tensor, q_g: torch.Tensor, v_d: torch.Tensor,
    v_g: torch.Tensor, temperature: torch.Tensor, gain_d: torch.Tensor, gain_g: torch.Tensor, attn: torch.Tensor,
    scores: torch.Tensor, norm_d: torch.Tensor, norm_g: torch.Tensor, normalize: bool, scale: float, eps: float,
    backend: str,
) -> Grads:  # fmt: skip
    return tuple(t.new_empty(t.shape) for t in (q_d, q_g, v_d, v_g, temperature, gain_d, gain_g))  # type: ignore[return-value]


def _setup_context(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: tuple) -> None:
    q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, res_d, res_g, normalize, scale, eps, backend = inputs
    _, _, attn, scores, norm_d, norm_g = output
    ctx.save_for_backward(q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, attn, scores, norm_d, norm_g)
    ctx.mark_non_differentiable(attn, scores, norm_d, norm_g)
    ctx.has_res = (res_d is not None, res_g is not None)
    ctx.options = (normalize, scale, eps, backend)


def _backward(ctx: torch.autograd.function.FunctionCtx, grad_y_d: torch.Tensor | None,
              grad_y_g: torch.Tensor | None, *_unused: torch.Tensor | None) -> tuple:  # fmt: skip
    q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, attn, scores, norm_d, norm_g = ctx.saved_tensors
    grad_y_d = torch.zeros_like(v_d) if grad_y_d is None else grad_y_d
    grad_y_g = torch.zeros_like(v_g) if grad_y_g is None else grad_y_g
    grads = torch.ops.vqcnir.bidirectional_channel_attention_bwd(
        grad_y_d, grad_y_g, q_d, q_g, v_d, v_g, temperature, gain_d, gain_g, attn, scores, norm_d, norm_g,
        *ctx.options,
    )  # fmt: skip
    grad_res_d = grad_y_d if ctx.has_res[0] else None
    grad_res_g = grad_y_g if ctx.has_res[1] else None
    return (*grads, grad_res_d, grad_res_g, None, None, None, None)


bidirectional_channel_attention_fwd.register_autograd(_backward, setup_context=_setup_context)
