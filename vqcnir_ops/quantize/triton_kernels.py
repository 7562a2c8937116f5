"""Triton kernel of the fused nearest-code lookup (GPU, or CPU under ``TRITON_INTERPRET=1``).

One program owns ``BLOCK_N`` rows of z. It walks the codebook in ``BLOCK_K`` tiles; for each tile it
accumulates ``(z - mu) . codes`` over ``BLOCK_D`` slices with ``tl.dot`` in float32, forms the clamped
distances, and folds the tile's argmin into a running (best, index) pair. Only that pair lives across
tiles: the N x K matrix never exists.

The dot is IEEE float32 always, even where torch allows TF32 for matmuls: distances are differences of
large terms, and TF32's 10-bit mantissa (relative error ~5e-4 per product) would break the contract that
the chosen code is within a few float32 ulps of the nearest one (``reference.py``), flipping near-tied
codes and so the quantized output. It is the one kernel that does not follow torch's TF32 switch.

Contract: see ``reference.py``. NaN distances are mapped to the key -1, below every clamped distance,
so ``tl.argmin``'s left tie-break yields "first NaN wins" and the strict ``<`` between tiles keeps
the earliest tile on ties.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from vqcnir_ops._launch import launch, launch_target


@triton.jit
def _load_centred(z_ptr, mu_ptr, rows, row_ok, cols, D, stride_zn, stride_zd):
    col_ok = cols < D
    mask = row_ok[:, None] & col_ok[None, :]
    tile = tl.load(z_ptr + rows[:, None] * stride_zn + cols[None, :] * stride_zd, mask=mask, other=0.0)
    mu = tl.load(mu_ptr + cols, mask=col_ok, other=0.0)
    return tl.where(mask, tile.to(tl.float32) - mu[None, :], 0.0)


@triton.jit
def _nearest_code_fwd_kernel(
    z_ptr, mu_ptr, codes_ptr, sqnorm_ptr, index_ptr, dist_ptr,
    N, K, D, stride_zn, stride_zd,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    # int64 row numbers: rows * stride_zn can pass 2**31 for large inputs.
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N

    z_sqnorm = tl.zeros([BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        tile = _load_centred(z_ptr, mu_ptr, rows, row_ok, d0 + tl.arange(0, BLOCK_D), D, stride_zn, stride_zd)
        z_sqnorm += tl.sum(tile * tile, axis=1)

    best = tl.full([BLOCK_N], float("inf"), dtype=tl.float32)
    best_index = tl.zeros([BLOCK_N], dtype=tl.int64)
    for k0 in range(0, K, BLOCK_K):
        codes_k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
        code_ok = codes_k < K
        dots = tl.zeros([BLOCK_N, BLOCK_K], dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            cols = d0 + tl.arange(0, BLOCK_D)
            tile = _load_centred(z_ptr, mu_ptr, rows, row_ok, cols, D, stride_zn, stride_zd)
            codes_t = tl.load(
                codes_ptr + codes_k[None, :] * D + cols[:, None],
                mask=code_ok[None, :] & (cols[:, None] < D),
                other=0.0,
            )
            dots += tl.dot(tile, codes_t, input_precision="ieee")
        code_sqnorm = tl.load(sqnorm_ptr + codes_k, mask=code_ok, other=0.0)
        dist = z_sqnorm[:, None] + code_sqnorm[None, :] - 2.0 * dots
        dist = tl.where(dist < 0.0, 0.0, dist)
        key = tl.where(dist != dist, -1.0, dist)  # NaN -> below every clamped distance
        key = tl.where(code_ok[None, :], key, float("inf"))
        tile_best = tl.min(key, axis=1)
        tile_index = tl.argmin(key, axis=1, tie_break_left=True).to(tl.int64) + k0
        better = tile_best < best
        best = tl.where(better, tile_best, best)
        best_index = tl.where(better, tile_index, best_index)

    tl.store(index_ptr + rows, best_index, mask=row_ok)
    tl.store(dist_ptr + rows, tl.where(best < 0.0, float("nan"), best), mask=row_ok)


def block_sizes(n_rows: int, n_codes: int, dim: int) -> tuple[int, int, int, int]:
    """(BLOCK_N, BLOCK_K, BLOCK_D, num_warps) from the problem size; tl.dot needs every block >= 16.

    The IEEE float32 dot runs on FMA units with both operand tiles in registers: 64 x 64 tiles over
    32-wide slices of D with 8 warps compile without spills on sm_80-sm_90 (64-wide slices with 4 warps
    spilled ~0.6 KB per thread on sm_80). Shared memory stays near 33 KB, so every target runs the same.
    """
    block_n = 64 if n_rows > 32 else 16 if n_rows <= 16 else 32
    block_k = 64 if n_codes > 32 else 16 if n_codes <= 16 else 32
    block_d = min(32, max(16, triton.next_power_of_2(dim)))
    num_warps = 8 if block_n * block_k >= 64 * 64 and block_d >= 32 else 4
    return block_n, block_k, block_d, num_warps


def nearest_code_triton(
    z: torch.Tensor, mu: torch.Tensor, codes: torch.Tensor, code_sqnorm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the kernel. ``z [N, D]`` float32/16/bf16, any strides; the rest float32 contiguous."""
    n_rows, dim = z.shape
    n_codes = codes.shape[0]
    index = torch.empty(n_rows, dtype=torch.int64, device=z.device)
    dist = torch.empty(n_rows, dtype=torch.float32, device=z.device)
    if n_rows == 0:
        return index, dist
    block_n, block_k, block_d, num_warps = block_sizes(n_rows, n_codes, dim)
    launch(
        launch_target(z.device), _nearest_code_fwd_kernel, (triton.cdiv(n_rows, block_n),),
        z, mu, codes, code_sqnorm, index, dist,
        n_rows, n_codes, dim, z.stride(0), z.stride(1),
        BLOCK_N=block_n, BLOCK_K=block_k, BLOCK_D=block_d, num_warps=num_warps,
    )  # fmt: skip
    return index, dist
