"""The ONNX form of ``nearest_code`` (inference): squared distances by one ``MatMul``, then ``ArgMin``.

The same centred expansion as every backend (``vqcnir_ops.quantize.reference``: the codebook mean is
subtracted, distances are clamped at zero) and ``ArgMin``'s first-index rule for ties. One difference:
the backends map a chosen code that has an exact duplicate in the codebook to the duplicate's first
occurrence (``first_duplicates``, a ``torch.unique`` whose result depends on the codebook's values, which
an exported graph cannot hold). Exact duplicates have equal distances, so ``ArgMin`` already picks the
first of them unless the two distances round differently; either copy is the same vector, so the
quantized features, and every image a model makes from them, are identical. The distance carries no
gradient in the exported graph (inference only).
"""

from __future__ import annotations

import torch

from vqcnir_ops._dtypes import compute_dtype
from vqcnir_ops.quantize.reference import center_codebook, clamped_distances


def nearest_code_onnx(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices [N] int64, dist [N])`` of the nearest code of each row of ``z [N, D]``, as ``nearest_code``."""
    dtype = compute_dtype(z.dtype)
    mu, codes, code_sqnorm = center_codebook(codebook, dtype)
    dist = clamped_distances(z.to(dtype) - mu, codes, code_sqnorm)
    indices = torch.argmin(dist, dim=1)
    return indices, dist.gather(1, indices.unsqueeze(1)).squeeze(1)
