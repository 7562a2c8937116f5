"""IMACConv's iterated light-enhancement curve in plain PyTorch: the specification of ``curve_map``.

Layout: ``x [B, S, Cs, H, W]`` (S channel splits of Cs channels each) and ``a [B, S, n, H, W]`` (n curve
maps per split, shared by the split's Cs channels; in (0, 1) in the model, any finite value here).

Forward, per split s and channel c::

    y_0 = clamp(x, 0, 1)
    y_k = y_{k-1} + a_k * y_{k-1} * (1 - y_{k-1})        k = 1 .. n

Gradient convention of the clamp: that of the official model's ``relu(x) - relu(x - 1)`` under autograd
(torch's ReLU has derivative 0 at 0): ``d y_0 / d x = 1`` for ``0 < x <= 1`` and 0 otherwise, so 0 at
exactly ``x = 0`` and 1 at exactly ``x = 1``. Values are the exact clamp (the official subtraction rounds
``x - (x - 1)`` to 0 for ``|x| >= 2**24`` in float32; that is a rounding artefact, not the intended map).
A NaN in ``x`` gives NaN in ``y`` and a zero gradient for that element.

Backward (``curve_map_bwd_ref``), with ``g_n = dy``::

    da_k    = sum over the split's Cs channels of g_k * y_{k-1} * (1 - y_{k-1})
    g_{k-1} = g_k * (1 + a_k * (1 - 2 * y_{k-1}))
    dx      = g_0 * [0 < x <= 1]

Dtypes (the library's policy, ``vqcnir_ops._dtypes``): ``x`` and ``a`` share one dtype; computed in float64
for float64, else float32; outputs in the input dtypes.
"""

from __future__ import annotations

import torch

from vqcnir_ops._dtypes import compute_dtype


def clamp_unit(x: torch.Tensor) -> torch.Tensor:
    """``clamp(x, 0, 1)`` whose autograd gradient is 1 on ``0 < x <= 1`` and 0 elsewhere (NaN kept)."""
    inside = (x > 0) & (x <= 1)
    return torch.where(inside, x, x.detach().clamp(0.0, 1.0))


def curve_map_ref(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Reference curve mapping; differentiable by autograd.

    Args:
        x: ``[B, S, Cs, H, W]`` features.
        a: ``[B, S, n, H, W]`` curve maps, n >= 1.

    Returns:
        ``[B, S, Cs, H, W]`` in ``x.dtype`` (computed in float32, or float64 for float64 inputs).

    Example:
        >>> y = curve_map_ref(torch.randn(2, 4, 8, 5, 5), torch.rand(2, 4, 3, 5, 5))
    """
    dtype = compute_dtype(x.dtype)
    y = clamp_unit(x.to(dtype))
    af = a.to(dtype)
    for k in range(a.shape[2]):
        y = y + af[:, :, k : k + 1] * y * (1 - y)
    return y.to(x.dtype)


def curve_map_bwd_ref(dy: torch.Tensor, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dx [B, S, Cs, H, W], da [B, S, n, H, W])`` by the explicit backward formulas (module docstring)."""
    dtype = compute_dtype(x.dtype)
    xf, af = x.to(dtype), a.to(dtype)
    states = [xf.clamp(0.0, 1.0)]
    for k in range(a.shape[2] - 1):
        y = states[-1]
        states.append(y + af[:, :, k : k + 1] * y * (1 - y))
    g = dy.to(dtype)
    da = []
    for k in reversed(range(a.shape[2])):
        y, ak = states[k], af[:, :, k : k + 1]
        da.append((g * y * (1 - y)).sum(dim=2, keepdim=True))
        g = g * (1 + ak * (1 - 2 * y))
    dx = torch.where((xf > 0) & (xf <= 1), g, torch.zeros_like(g))
    return dx.to(x.dtype), torch.cat(da[::-1], dim=2).to(a.dtype)
