"""Public functional ``curve_map``: validates arguments, picks the backend, calls the op."""

from __future__ import annotations

import torch

from vqcnir_ops._dtypes import call_dtype
from vqcnir_ops.curve import op as _op
from vqcnir_ops.curve.backends import SPEC
from vqcnir_ops.to_onnx import exporting, onnx_form
from vqcnir_ops.validation import check_same_device, check_tensor

MAX_CURVES = 16


def _as_split_layout(x: torch.Tensor, a: torch.Tensor, splits: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Views of ``x`` and ``a`` as ``[B, S, Cs, H, W]`` / ``[B, S, n, H, W]``, with checked shapes."""
    if x.dim() != a.dim():
        raise ValueError(
            f"arguments 'x' and 'a' must both be 5-D [B, S, C, H, W] or both 4-D [B, S*C, H, W], "
            f"got shapes {tuple(x.shape)} and {tuple(a.shape)}"
        )
    if x.dim() == 4:
        if splits is None:
            raise ValueError("argument 'splits' is required with the flat layout x [B, S*Cs, H, W], a [B, S*n, H, W]")
        if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
            raise ValueError(f"argument 'splits' must be a positive int, got {splits!r}")
        for name, t, what in (("x", x, "S*Cs"), ("a", a, "S*n")):
            if t.shape[1] % splits:
                raise ValueError(
                    f"argument '{name}' has {t.shape[1]} channels, not a multiple of splits={splits} "
                    f"([B, {what}, H, W])"
                )
        x = x.unflatten(1, (splits, x.shape[1] // splits))
        a = a.unflatten(1, (splits, a.shape[1] // splits))
    elif splits is not None and splits != x.shape[1]:
        raise ValueError(f"argument 'splits' is {splits} but 'x' [B, S, Cs, H, W] has S = {x.shape[1]}")
    if a.shape[0] != x.shape[0]:
        raise ValueError(f"argument 'a' has batch {a.shape[0]} but 'x' has batch {x.shape[0]}")
    if a.shape[1] != x.shape[1]:
        raise ValueError(f"argument 'a' has S = {a.shape[1]} splits but 'x' has S = {x.shape[1]}")
    if a.shape[3:] != x.shape[3:]:
        raise ValueError(
            f"argument 'a' has spatial size (H, W) = {tuple(a.shape[3:])} but 'x' has {tuple(x.shape[3:])}"
        )
    if not 1 <= a.shape[2] <= MAX_CURVES:
        raise ValueError(f"argument 'a' must hold 1 to {MAX_CURVES} curve maps per split, got n = {a.shape[2]}")
    return x, a


def curve_map(
    x: torch.Tensor, a: torch.Tensor, splits: int | None = None, *, backend: str | None = None
) -> torch.Tensor:
    """IMACConv's iterated curve: ``y = clamp(x, 0, 1)``, then n times ``y += a_k * y * (1 - y)``.

    Fused: reads x and a once and writes y once; the backward recomputes the curve states from x and
    a (nothing else is saved) and sums ``da`` over each split's channels inside the kernel, in a fixed
    order. Gradient of the clamp: 1 on ``0 < x <= 1``, 0 elsewhere (as autograd of the official
    ``relu(x) - relu(x - 1)``). Full contract: ``vqcnir_ops.curve.reference``.

    Args:
        x: ``[B, S, Cs, H, W]``, or the flat ``[B, S*Cs, H, W]`` with ``splits=S``; float16/bfloat16/
            float32 (float64 on the reference and cpp backends); any strides.
        a: curve maps ``[B, S, n, H, W]``, or ``[B, S*n, H, W]``, 1 <= n <= 16, the dtype and device
            of ``x``. Map k of split s acts on all Cs channels of split s.
        splits: S for the flat layout (required there); optional check for the 5-D layout.
        backend: ``'auto'`` (default: ``$VQCNIR_OPS_BACKEND`` or automatic), ``'reference'``, ``'cpp'``
            or ``'triton'``; there is no CUDA C++ kernel (Triton is the GPU path).

    Returns:
        ``y`` in the layout and dtype of ``x`` (contiguous), computed in float32 (float64 for float64).

    Example:
        >>> x, a = torch.randn(8, 256, 32, 32), torch.rand(8, 12, 32, 32)
        >>> y = curve_map(x, a, splits=4)  # 4 splits of 64 channels, 3 curve maps each
    """
    check_tensor("x", x, ndim=(4, 5))
    check_tensor("a", a, ndim=(4, 5))
    check_same_device(x=x, a=a)
    dtype = call_dtype(x=x, a=a)
    x5, a5 = _as_split_layout(x, a, splits)
    if exporting():
        y = onnx_form("curve_map")(x5, a5)
    else:
        y = _op.forward(x5, a5, SPEC.choose(x.device, dtype, backend))
    return y.flatten(1, 2) if x.dim() == 4 else y
