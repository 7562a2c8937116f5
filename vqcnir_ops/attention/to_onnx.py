"""The ONNX form of ``bidirectional_channel_attention``: its reference, which the exporter decomposes.

The reference (``vqcnir_ops.attention.reference``) is made of standard operators only: the L2
normalisation over the pixels becomes ``ReduceL2`` / ``Max`` / ``Div``, the scores and messages ``MatMul``,
the map ``Softmax``. It computes in float32 (float64 for float64), as every backend does.
"""

from __future__ import annotations

import torch

from vqcnir_ops.attention.reference import bidirectional_channel_attention_ref


def bidirectional_channel_attention_onnx(
    q_d: torch.Tensor,
    q_g: torch.Tensor,
    v_d: torch.Tensor,
    v_g: torch.Tensor,
    temperature: torch.Tensor,
    epilogue: dict[str, torch.Tensor],
    normalize: bool,
    scale: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a_d, a_g)``, or ``(out_d, out_g)`` when ``epilogue`` holds ``f_d``, ``f_g`` (``[B, heads, C, N]``),
    ``gamma_d`` and ``gamma_g`` (``[heads * C]``); the queries and values are ``[B, heads, C, N]``."""
    return bidirectional_channel_attention_ref(
        q_d, q_g, v_d, v_g, temperature, **epilogue, normalize=normalize, scale=scale, eps=eps
    )
