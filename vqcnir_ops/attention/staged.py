"""The two-phase algorithm shared by every backend, and its plain PyTorch phases (the ``reference`` backend).

Each backend supplies only two phase kernels over ``[B, heads, C, N]`` tensors (any strides):

- ``gram(x, y) -> (x @ y^T [B, heads, C, C], |x|^2 [B, heads, C], |y|^2 [B, heads, C])``: a reduction
  over N, in the compute dtype (float64 for float64 inputs, else float32);
- ``mix(w, z, x, a) -> w @ z + a * x``: a pass over N tiles with a ``[B, heads, C, C]`` map ``w`` (compute
  dtype), optional ``x`` (same layout as ``z``) with optional per-row ``a`` ``[B, heads, C]`` (1 if None);
  the result has ``z``'s dtype.

Everything on the C x C level (normalisation, softmax, their backward, the temperature and gain
gradients) is done here in PyTorch: it touches O(B * heads * C^2) numbers, nothing of size N.

Op-level naming is by value source: ``y_d = res_d + gain_d * (attn @ v_d)`` and
``y_g = res_g + gain_g * (attn @ v_g)``; the functional maps the DBCA epilogue onto it
(``out_g = y_d`` with ``res_d = f_g``, ``gain_d = gamma_g``, and the other way round).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from vqcnir_ops._dtypes import compute_dtype

GramFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
MixFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]


class Phases(NamedTuple):
    gram: GramFn
    mix: MixFn


class AttentionMap(NamedTuple):
    attn: torch.Tensor  # [B, heads, C, C] softmax(scores * temperature * scale)
    scores: torch.Tensor  # [B, heads, C, C] the (normalised) scores before temperature and scale
    norm_d: torch.Tensor  # [B, heads, C] L2 norms of q_d over N
    norm_g: torch.Tensor  # [B, heads, C]


def _logit_scale(temperature: torch.Tensor, scale: float, dtype: torch.dtype) -> torch.Tensor:
    return temperature.to(dtype).view(1, -1, 1, 1) * scale


def attention_map(
    gram: torch.Tensor, sq_d: torch.Tensor, sq_g: torch.Tensor, temperature: torch.Tensor,
    normalize: bool, scale: float, eps: float,
) -> AttentionMap:  # fmt: skip
    """The C x C stage of the forward: from ``q_d @ q_g^T`` and squared norms to the softmaxed map."""
    norm_d, norm_g = sq_d.sqrt(), sq_g.sqrt()
    scores = gram
    if normalize:
        inv_d = 1.0 / norm_d.clamp_min(eps)
        inv_g = 1.0 / norm_g.clamp_min(eps)
        scores = gram * inv_d.unsqueeze(-1) * inv_g.unsqueeze(-2)
    attn = torch.softmax(scores * _logit_scale(temperature, scale, gram.dtype), dim=-1)
    return AttentionMap(attn, scores, norm_d, norm_g)


class MapGrads(NamedTuple):
    grad_gram: torch.Tensor  # [B, heads, C, C] gradient for q_d @ q_g^T
    alpha_d: torch.Tensor | None  # [B, heads, C] per-row coefficient of q_d in grad q_d (None: no normalisation)
    alpha_g: torch.Tensor | None
    grad_temperature: torch.Tensor  # [heads]


def attention_map_backward(
    grad_attn: torch.Tensor, amap: AttentionMap, temperature: torch.Tensor, normalize: bool, scale: float, eps: float
) -> MapGrads:
    """The C x C stage of the backward: softmax and normalisation backward.

    With ``s_ij = r_i g_ij c_j`` (``r = 1 / max(|q_d|, eps)``, ``c`` likewise for q_g), the gradient of
    ``q_d`` is ``grad_gram @ q_g + alpha_d * q_d`` with ``alpha_d_i = -r_i^2 sum_j ds_ij s_ij`` where the
    norm is at least eps (below it the clamp passes no gradient), and symmetrically for ``q_g``.
    """
    attn, scores = amap.attn, amap.scores
    grad_logits = attn * (grad_attn - (grad_attn * attn).sum(-1, keepdim=True))
    grad_temperature = (grad_logits * scores).sum(dim=(0, 2, 3)) * scale
    grad_scores = grad_logits * _logit_scale(temperature, scale, grad_logits.dtype)
    if not normalize:
        return MapGrads(grad_scores, None, None, grad_temperature)
    inv_d = 1.0 / amap.norm_d.clamp_min(eps)
    inv_g = 1.0 / amap.norm_g.clamp_min(eps)
    grad_gram = grad_scores * inv_d.unsqueeze(-1) * inv_g.unsqueeze(-2)
    weighted = grad_scores * scores
    alpha_d = torch.where(amap.norm_d >= eps, -weighted.sum(-1) * inv_d * inv_d, 0.0)
    alpha_g = torch.where(amap.norm_g >= eps, -weighted.sum(-2) * inv_g * inv_g, 0.0)
    return MapGrads(grad_gram, alpha_d, alpha_g, grad_temperature)


def _row_gain(gain: torch.Tensor, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """``[heads * C]`` -> ``[1, heads, C, 1]``."""
    return gain.to(dtype).view(1, shape[1], shape[2], 1)


def staged_forward(
    phases: Phases, q_d: torch.Tensor, q_g: torch.Tensor, v_d: torch.Tensor, v_g: torch.Tensor,
    temperature: torch.Tensor, gain_d: torch.Tensor, gain_g: torch.Tensor,
    res_d: torch.Tensor | None, res_g: torch.Tensor | None, normalize: bool, scale: float, eps: float,
) -> tuple[torch.Tensor, torch.Tensor, AttentionMap]:  # fmt: skip
    """``(y_d, y_g, map)``: phase 1 (gram over N), the C x C stage, phase 2 (one pass over N per output)."""
    gram, sq_d, sq_g = phases.gram(q_d, q_g)
    amap = attention_map(gram, sq_d, sq_g, temperature, normalize, scale, eps)
    attn = amap.attn
    y_d = phases.mix(_row_gain(gain_d, q_d.shape, attn.dtype) * attn, v_d, res_d, None)
    y_g = phases.mix(_row_gain(gain_g, q_d.shape, attn.dtype) * attn, v_g, res_g, None)
    return y_d, y_g, amap


class StagedGrads(NamedTuple):
    q_d: torch.Tensor
    q_g: torch.Tensor
    v_d: torch.Tensor
    v_g: torch.Tensor
    temperature: torch.Tensor
    gain_d: torch.Tensor
    gain_g: torch.Tensor


def staged_backward(
    phases: Phases, grad_y_d: torch.Tensor, grad_y_g: torch.Tensor, q_d: torch.Tensor, q_g: torch.Tensor,
    v_d: torch.Tensor, v_g: torch.Tensor, temperature: torch.Tensor, gain_d: torch.Tensor, gain_g: torch.Tensor,
    amap: AttentionMap, normalize: bool, scale: float, eps: float,
) -> StagedGrads:  # fmt: skip
    """Gradients of every input but the residuals (whose gradient is ``grad_y`` itself).

    Phase 1 reduces ``grad_y_d @ v_d^T`` and ``grad_y_g @ v_g^T`` over N; the C x C stage turns them into
    ``grad_attn`` and the gain, temperature and normalisation terms; phase 2 makes one pass over N per
    input gradient.
    """
    attn = amap.attn
    dtype = attn.dtype
    row_d, row_g = _row_gain(gain_d, q_d.shape, dtype), _row_gain(gain_g, q_d.shape, dtype)
    m_d = phases.gram(grad_y_d, v_d)[0]
    m_g = phases.gram(grad_y_g, v_g)[0]
    grad_attn = row_d * m_d + row_g * m_g
    grad_gain_d = (attn * m_d).sum(-1).sum(0).reshape(-1)
    grad_gain_g = (attn * m_g).sum(-1).sum(0).reshape(-1)
    grads = attention_map_backward(grad_attn, amap, temperature, normalize, scale, eps)
    grad_gram = grads.grad_gram
    grad_q_d = phases.mix(grad_gram, q_g, q_d if normalize else None, grads.alpha_d)
    grad_q_g = phases.mix(grad_gram.transpose(-2, -1).contiguous(), q_d, q_g if normalize else None, grads.alpha_g)
    grad_v_d = phases.mix((row_d * attn).transpose(-2, -1).contiguous(), grad_y_d, None, None)
    grad_v_g = phases.mix((row_g * attn).transpose(-2, -1).contiguous(), grad_y_g, None, None)
    return StagedGrads(grad_q_d, grad_q_g, grad_v_d, grad_v_g, grads.grad_temperature, grad_gain_d, grad_gain_g)


# --- the reference backend's phases: plain PyTorch ----------------------------------------------------


def gram_torch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dtype = compute_dtype(x.dtype)
    xf, yf = x.to(dtype), y.to(dtype)
    return xf @ yf.transpose(-2, -1), (xf * xf).sum(-1), (yf * yf).sum(-1)


def mix_torch(w: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None, a: torch.Tensor | None) -> torch.Tensor:
    out = w @ z.to(w.dtype)
    if x is not None:
        out = out + (x.to(w.dtype) if a is None else a.unsqueeze(-1) * x.to(w.dtype))
    return out.to(z.dtype)


TORCH_PHASES = Phases(gram_torch, mix_torch)
