"""Nearest-code lookup in plain PyTorch: the specification every backend is tested against.

Numerical contract (shared by the reference, C++, CUDA and Triton backends):

- Dtypes (the library's policy, ``vqcnir_ops._dtypes``): ``z`` is the activation, ``codebook`` a
  parameter of any float dtype. Computed in float64 when ``z`` is float64, else float32 (float16/bfloat16
  inputs are upcast); the distance is returned in that compute dtype, so it cannot overflow float16.
- The squared distance is evaluated by the expansion ``|z - mu|^2 + |e - mu|^2 - 2 (z - mu).(e - mu)``
  where ``mu`` is the codebook mean (ignoring NaN; 0 where not finite). Subtracting ``mu`` changes
  no true distance but removes the common offset that makes the expansion cancel catastrophically
  (e.g. z and codes near 1000 with a small spread). What rounding is left can still make the
  expansion slightly negative: it is clamped at 0 (with a select, so NaN stays NaN).
- Index: the argmin of the clamped distance; ties of computed distances go to the smallest index. Exact
  duplicate codes (bitwise equal rows) always resolve to the first of them (``first_duplicates``): a
  kernel may round the dot products of two copies differently in the last bit (BLAS and ``tl.dot`` do,
  depending on where a code sits in a tile), so the chosen copy is mapped to its first occurrence after
  the search. Distinct codes at the same true distance may go either way (see Accuracy). A NaN distance
  counts as smaller than every number (``torch.argmin``'s rule): a row with a NaN entry gets the first
  code whose distance is NaN, and its reported distance is NaN. A NaN in ``z`` therefore gives index 0
  and NaN, and a NaN code is chosen by every row.
- Accuracy: where two codes are nearly equidistant, float32 rounding may pick either. The chosen
  code's true distance exceeds the true minimum by at most a few float32 ulps of
  ``|z - mu|^2 + max_k |e_k - mu|^2`` (see ``vqcnir_ops._testing.nearest_code_tolerance``).
"""

from __future__ import annotations

import torch

from vqcnir_ops._dtypes import compute_dtype

# Rows per chunk in the reference, so that its N x K distance block stays near 64 MiB in float32.
_CHUNK_ELEMENTS = 1 << 24


def center_codebook(codebook: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mu [D], codes [K, D] = codebook - mu, code_sqnorm [K])`` in ``dtype``, contiguous.

    Shared by every backend so that all of them see the same centred codebook. ``mu`` ignores NaN
    entries and is 0 in columns where it is not finite, so that a non-finite code spoils only its
    own distances, not everyone's.
    """
    book = codebook.to(dtype)
    mu = torch.nanmean(book, dim=0)
    mu = torch.where(torch.isfinite(mu), mu, torch.zeros_like(mu))
    codes = (book - mu).contiguous()
    return mu.contiguous(), codes, (codes * codes).sum(dim=1).contiguous()


def first_duplicates(codebook: torch.Tensor) -> torch.Tensor | None:
    """``[K]`` int64: for each code, the index of the first code bitwise equal to it; None when all differ.

    Rows are compared as bit patterns (so NaN rows compare like any other, and -0.0 differs from 0.0).
    """
    n_codes = codebook.shape[0]
    bits = {8: torch.int64, 4: torch.int32, 2: torch.int16}[codebook.element_size()]
    _, inverse = torch.unique(codebook.contiguous().view(bits), dim=0, return_inverse=True)
    n_unique = int(inverse.max()) + 1
    if n_unique == n_codes:
        return None
    positions = torch.arange(n_codes, device=codebook.device)
    first = torch.full((n_unique,), n_codes, dtype=torch.int64, device=codebook.device)
    return first.scatter_reduce(0, inverse, positions, "amin")[inverse]


def resolve_duplicates(indices: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``indices`` with every exact duplicate code replaced by its first occurrence (module docstring)."""
    first = first_duplicates(codebook) if indices.numel() else None
    return indices if first is None else first[indices]


def clamped_distances(z_centred: torch.Tensor, codes: torch.Tensor, code_sqnorm: torch.Tensor) -> torch.Tensor:
    """``[n, K]`` clamped squared distances of centred rows to centred codes (NaN kept)."""
    z_sqnorm = (z_centred * z_centred).sum(dim=1, keepdim=True)
    dist = z_sqnorm + code_sqnorm.unsqueeze(0) - 2.0 * (z_centred @ codes.t())
    return torch.where(dist < 0, torch.zeros_like(dist), dist)


def nearest_code_ref(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference nearest-code lookup.

    Args:
        z: ``[N, D]`` query rows, floating point.
        codebook: ``[K, D]`` codes, floating point, K >= 1.

    Returns:
        ``(indices [N] int64, dist [N])``: the chosen code and its clamped squared distance, in the
        compute dtype (module docstring). Rows are processed in chunks, so memory stays bounded.

    Example:
        >>> idx, dist = nearest_code_ref(torch.randn(6, 8), torch.randn(4, 8))
    """
    dtype = compute_dtype(z.dtype)
    mu, codes, code_sqnorm = center_codebook(codebook, dtype)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // codes.shape[0])
    indices, dists = [], []
    for chunk in z.split(rows_per_chunk, dim=0):
        dist = clamped_distances(chunk.to(dtype) - mu, codes, code_sqnorm)
        index = torch.argmin(dist, dim=1)
        indices.append(index)
        dists.append(dist.gather(1, index.unsqueeze(1)).squeeze(1))
    if not indices:  # N == 0
        return z.new_empty(0, dtype=torch.int64), z.new_empty(0, dtype=dtype)
    return resolve_duplicates(torch.cat(indices), codebook), torch.cat(dists)


def nearest_code_dist_grad_ref(
    grad_dist: torch.Tensor, z: torch.Tensor, codebook: torch.Tensor, indices: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``dist = |z - codebook[indices]|^2`` for ``z`` and ``codebook``.

    The index is piecewise constant, so only the distance carries a gradient. The codebook gradient
    sums the rows that chose each code; ``index_put_(accumulate=True)`` does so in a fixed order.
    """
    dtype = compute_dtype(z.dtype)
    diff = z.to(dtype) - codebook.to(dtype).index_select(0, indices)
    grad_rows = 2.0 * grad_dist.to(dtype).unsqueeze(1) * diff
    grad_codebook = torch.zeros(codebook.shape, dtype=dtype, device=codebook.device)
    grad_codebook.index_put_((indices,), -grad_rows, accumulate=True)
    return grad_rows.to(z.dtype), grad_codebook.to(codebook.dtype)
