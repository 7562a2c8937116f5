"""Public functional ``nearest_code``: validates arguments, picks the backend, calls the op."""

from __future__ import annotations

import torch

from vqcnir_ops.quantize import op as _op
from vqcnir_ops.quantize.backends import SPEC
from vqcnir_ops.to_onnx import exporting, onnx_form
from vqcnir_ops.validation import check_same_device, check_tensor


def nearest_code(
    z: torch.Tensor, codebook: torch.Tensor, *, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of, and squared Euclidean distance to, the nearest code for every row of ``z``.

    Fused: distances are computed tile by tile and reduced on the fly, so memory is O(N + K); the
    N x K distance matrix is never formed (the reference backend forms it in bounded row chunks).

    Args:
        z: ``[N, D]`` float16/bfloat16/float32/float64, any strides; N may be 0.
        codebook: ``[K, D]`` floating point, K >= 1, same device as ``z``.
        backend: ``'auto'`` (default: ``$VQCNIR_OPS_BACKEND`` or automatic), ``'reference'``,
            ``'cpp'``, ``'cuda'`` or ``'triton'``; an unavailable backend raises
            :class:`vqcnir_ops.BackendUnavailableError`.

    Returns:
        ``indices`` ``[N]`` int64 and ``dist`` ``[N]``, float64 if ``z`` is float64 else float32 (the codebook,
        a parameter, may have any float dtype).
        Ties go to the smallest index; NaN rows get the first NaN-distance code (index 0 for a NaN
        in ``z``) and NaN. ``dist`` is differentiable with respect to ``z`` and ``codebook``. Full
        numerical contract: ``vqcnir_ops.quantize.reference``.

    Example:
        >>> z, codebook = torch.randn(1024, 64), torch.randn(512, 64)
        >>> indices, dist = nearest_code(z, codebook)
        >>> quantized = codebook[indices]
    """
    check_tensor("z", z, ndim=2)
    check_tensor("codebook", codebook, ndim=2)
    if codebook.shape[0] == 0:
        raise ValueError("argument 'codebook' must hold at least one code, got shape (0, D)")
    if z.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"argument 'z' has rows of dim {z.shape[1]} but 'codebook' has codes of dim {codebook.shape[1]}; "
            "they must match"
        )
    if z.shape[1] == 0:
        raise ValueError("arguments 'z' and 'codebook' must have D >= 1, got D = 0")
    check_same_device(z=z, codebook=codebook)
    if exporting():
        return onnx_form("nearest_code")(z, codebook)
    chosen = SPEC.choose(z.device, z.dtype, backend)  # z, the activation, decides the dtype (vqcnir_ops._dtypes)
    dist, indices = _op.forward(z, codebook, chosen)
    return indices, dist
