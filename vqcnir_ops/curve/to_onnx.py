"""The ONNX form of ``curve_map``: its reference, elementwise operators only.

``clamp(x, 0, 1)`` (a ``Where`` over ``Clip``: the reference's clamp keeps its gradient convention, which
the exported graph carries along at no cost) then ``n`` times ``y + a_k * y * (1 - y)`` with ``a_k`` a
``Slice`` of the curve maps: ``Mul`` / ``Sub`` / ``Add``, in float32 (float64 for float64).
"""

from __future__ import annotations

import torch

from vqcnir_ops.curve.reference import curve_map_ref


def curve_map_onnx(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``y [B, S, Cs, H, W]`` for ``x [B, S, Cs, H, W]`` and ``a [B, S, n, H, W]`` (checked by ``curve_map``)."""
    return curve_map_ref(x, a)
