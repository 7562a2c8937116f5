"""Bi-directional channel cross-attention in plain PyTorch: the specification every backend is tested against.

For one batch element and head, with ``Q_D, Q_G, V_D, V_G`` of shape ``[C, N]`` (``N = H * W``):

    attn = softmax(normalize(Q_D) @ normalize(Q_G)^T * temperature * scale)    # [C, C], softmax over the last dim
    a_d = attn @ V_D        # the D -> G message
    a_g = attn @ V_G        # the G -> D message

``normalize`` is ``torch.nn.functional.normalize`` over N (``x / max(||x||_2, eps)``, eps 1e-12), as in the
official model's ``TWAM`` block; ``scale`` is 1 there. The paper writes the formula without the L2
normalisation and with ``scale = 1 / sqrt(C)``: ``normalize=False`` gives that. The optional fused
epilogue of the DBCA block is ``out_d = f_d + gamma_d * a_g`` and ``out_g = f_g + gamma_g * a_d`` with
per-channel ``gamma`` ``[heads * C]``.

Dtypes (the library's policy, ``vqcnir_ops._dtypes``): the queries, values and ``f`` share one dtype; the
temperature and gammas (parameters) may have any float dtype. Computed in float64 for float64, else float32
(float16/bfloat16 are upcast); outputs are returned in the activations' dtype.
"""

from __future__ import annotations

import math

import torch

from vqcnir_ops._dtypes import compute_dtype

NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's default, used by the official model


def default_scale(channels_per_head: int, normalize: bool) -> float:
    """1 with L2 normalisation (official model); ``1 / sqrt(C)`` without it (the paper's formula)."""
    return 1.0 if normalize else 1.0 / math.sqrt(channels_per_head)


def bidirectional_channel_attention_ref(
    q_d: torch.Tensor,
    q_g: torch.Tensor,
    v_d: torch.Tensor,
    v_g: torch.Tensor,
    temperature: torch.Tensor,
    *,
    f_d: torch.Tensor | None = None,
    f_g: torch.Tensor | None = None,
    gamma_d: torch.Tensor | None = None,
    gamma_g: torch.Tensor | None = None,
    normalize: bool = True,
    scale: float | None = None,
    eps: float = NORMALIZE_EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention on ``[B, heads, C, N]`` tensors, differentiable by autograd.

    Args:
        q_d, q_g, v_d, v_g: ``[B, heads, C, N]`` queries and values of the D and G streams.
        temperature: ``[heads]``.
        f_d, f_g, gamma_d, gamma_g: all four or none; ``f`` ``[B, heads, C, N]``, ``gamma`` ``[heads * C]``.
        normalize: L2-normalise the queries over N (official model) or not (paper).
        scale: multiplies the logits; default :func:`default_scale`.
        eps: lower bound of the norm in the normalisation.

    Returns:
        ``(a_d, a_g)`` without the epilogue, ``(out_d, out_g)`` with it.

    Example:
        >>> q = torch.randn(2, 4, 16, 64)
        >>> a_d, a_g = bidirectional_channel_attention_ref(q, q.flip(-1), q.cos(), q.sin(), torch.ones(4))
    """
    dtype = compute_dtype(q_d.dtype)
    heads, channels = q_d.shape[1], q_d.shape[2]
    if scale is None:
        scale = default_scale(channels, normalize)
    qd, qg = q_d.to(dtype), q_g.to(dtype)
    if normalize:
        qd = torch.nn.functional.normalize(qd, dim=-1, eps=eps)
        qg = torch.nn.functional.normalize(qg, dim=-1, eps=eps)
    logits = (qd @ qg.transpose(-2, -1)) * (temperature.to(dtype).view(1, heads, 1, 1) * scale)
    attn = torch.softmax(logits, dim=-1)
    a_d = attn @ v_d.to(dtype)
    a_g = attn @ v_g.to(dtype)
    if f_d is None:
        return a_d.to(v_d.dtype), a_g.to(v_g.dtype)
    gd = gamma_d.to(dtype).view(1, heads, channels, 1)
    gg = gamma_g.to(dtype).view(1, heads, channels, 1)
    out_d = f_d.to(dtype) + gd * a_g
    out_g = f_g.to(dtype) + gg * a_d
    return out_d.to(v_d.dtype), out_g.to(v_g.dtype)
